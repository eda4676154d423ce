"""Packaging stays consistent: conda mirrors pyproject, public names are real."""

from __future__ import annotations

import importlib
import sys

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _normalize(reqs):
    return {
        Requirement(r).name.lower(): (str(Requirement(r).specifier), str(Requirement(r).marker))
        for r in reqs
    }


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _normalize(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    assert _normalize(pip_lists[0]) == wanted


def test_every_dependency_has_an_upper_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"]):
        if req.name == "packaging":
            continue
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), req
    keras = next(r for r in map(Requirement, project["dependencies"]) if r.name == "keras")
    assert not keras.specifier.contains("3.13.1") and keras.specifier.contains("3.13.2")


@pytest.mark.parametrize(
    "module",
    ["forge_course", "forge_course.env", "forge_course.data", "forge_course.plots",
     "forge_course.errors", "forge_course.grading", "forge_course.diagnose",
     "forge_course.registry", "forge_course.serving"],
)  # fmt: skip
def test_public_names_exist(module):
    mod = importlib.import_module(module)
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"{module}.__all__ names {name}, which does not exist"


def test_make_install_is_idempotent():
    """After an install, the install step is up to date: make would do nothing."""
    import shutil
    import subprocess

    stamp = ROOT / ".venv" / ".forge-course-installed"
    if not stamp.exists() or not shutil.which("make"):
        pytest.skip("not installed through make")
    result = subprocess.run(["make", "-q", str(stamp.relative_to(ROOT))], cwd=ROOT)
    assert result.returncode == 0, "make would reinstall although pyproject.toml is unchanged"


def test_registry_migrations_ship_inside_the_package():
    """Alembic's scripts are package files (packages with __init__.py), so a wheel has them."""
    from forge_course.registry import migrate

    versions = migrate.MIGRATIONS / "versions"
    assert (migrate.MIGRATIONS / "env.py").is_file() and (versions / "__init__.py").is_file()
    assert migrate.head_revision() in {p.name.split("_")[0] for p in versions.glob("*.py")}
