"""Settings from the environment, and the module boundaries that keep imports acyclic."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from forge_course import config
from tests.conftest import ROOT


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_offline_is_on_for_a_true_value(monkeypatch, value):
    monkeypatch.setenv("FORGE_COURSE_OFFLINE", value)
    assert config.offline()


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_offline_is_off_otherwise(monkeypatch, value):
    monkeypatch.setenv("FORGE_COURSE_OFFLINE", value)
    assert not config.offline()


def test_home_is_keras_home_or_the_users_keras_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    assert config.home() == tmp_path / "k"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.home() == tmp_path / ".keras"


def _imports(module: str) -> set[str]:
    """The forge_course modules a module imports, wherever in its source."""
    tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("forge_course")}


def test_config_imports_no_other_course_module():
    assert _imports("forge_course.config") == set()
    code = "import sys, forge_course.config; print(*sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    package = {"forge_course", "forge_course.errors"}  # what `import forge_course` loads
    ours = {m for m in out.stdout.split() if m.split(".")[0] == "forge_course"}
    assert ours == package | {"forge_course.config"}, out.stderr


def test_env_and_data_do_not_import_each_other():
    assert not {m for m in _imports("forge_course.data") if m.startswith("forge_course.env")}
    assert not {m for m in _imports("forge_course.env") if m.startswith("forge_course.data")}
