"""A register that fails at any step leaves no row and no file, and loses nothing before it."""

from __future__ import annotations

import pytest

from forge_course.errors import RegistryError
from forge_course.registry import ModelRegistry


class Boom(RuntimeError):
    pass


def _files(registry):
    return sorted(p.name for p in registry.artifacts.rglob("*") if p.is_file())


def _state(registry):
    return [(r.ref, r.sha256, r.aliases) for r in registry.list()], _files(registry)


@pytest.mark.parametrize("step", ["staged", "inserted", "moved"])
def test_failure_at_each_step_leaves_no_orphan(registry, keras_file, monkeypatch, step):
    registry.register(keras_file, "digits", metrics={"accuracy": 0.8})
    registry.set_alias("digits", 1, "champion")
    before = _state(registry)

    def fail(self, name):
        if name == step:
            raise Boom(f"injected at {name}")

    monkeypatch.setattr(ModelRegistry, "_step", fail)
    with pytest.raises(Boom):
        registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    with pytest.raises(Boom):
        registry.register(keras_file, "brand_new", metrics={"accuracy": 0.9})
    assert _state(registry) == before  # no row, no file (temporary or final), alias kept
    assert registry.names() == ["digits"]  # the new name's row rolled back too

    monkeypatch.undo()
    assert registry.register(keras_file, "digits", metrics={"accuracy": 0.9}) == 2
    assert registry.verify().ok


def test_a_save_that_dies_half_way_leaves_no_half_file(registry, keras_file):
    class HalfSaver:
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a zip")
            raise OSError(28, "No space left on device")

    registry.register(keras_file, "digits", metrics={"accuracy": 0.8})
    before = _state(registry)
    with pytest.raises(OSError, match="No space left"):
        registry.register(HalfSaver(), "digits", metrics={"accuracy": 0.9})
    assert _state(registry) == before


def test_a_move_that_fails_rolls_the_rows_back(registry, keras_file, monkeypatch):
    import forge_course.registry.core as core

    registry.register(keras_file, "digits", metrics={"accuracy": 0.8})
    before = _state(registry)

    def no_move(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(core.os, "replace", no_move)
    with pytest.raises(PermissionError):
        registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    assert _state(registry) == before


def test_not_a_model_is_refused_before_anything_is_written(registry, tmp_path):
    with pytest.raises(RegistryError, match="give a Keras model or a .keras file"):
        registry.register(object(), "digits", metrics={"accuracy": 0.8})
    with pytest.raises(RegistryError, match="existing .keras file"):
        registry.register(tmp_path / "absent.keras", "digits", metrics={"accuracy": 0.8})
    assert registry.names() == [] and _files(registry) == []


KILLED = """
import os, signal, sys
from forge_course.registry import ModelRegistry
url, artifacts, model, step = sys.argv[1:5]

def die(self, name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback: the machine "crashed"

ModelRegistry._step = die
ModelRegistry(url, artifacts=artifacts).register(model, "digits", metrics={"accuracy": 0.9})
"""


@pytest.mark.parametrize("step", ["inserted", "moved"])
def test_a_process_killed_mid_register_leaves_no_row_and_no_lock(
    registry, db_url, keras_file, step
):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    registry.register(keras_file, "digits", metrics={"accuracy": 0.8})
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    args = [db_url, str(registry.artifacts), str(keras_file), step]
    done = subprocess.run([sys.executable, "-c", KILLED, *args], env=env, timeout=120)
    assert done.returncode == -9
    assert [r.version for r in registry.list()] == [1]  # the dead transaction left no row
    assert registry.register(keras_file, "digits", metrics={"accuracy": 0.9}) == 2  # no lock
    report = registry.verify()
    assert report.ok and len(report.unregistered) == 1  # the dead one's file, loaded by none
    assert "safe to delete" in str(report)
