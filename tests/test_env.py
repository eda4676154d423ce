"""Seeding, the environment line and the doctor."""

from __future__ import annotations

import random

import numpy as np

from forge_course import env


def draw():
    import keras

    return random.random(), np.random.rand(), float(keras.random.uniform((1,))[0])


def test_setup_seeds_python_numpy_and_tensorflow(capsys):
    env.setup(seed=7)
    first = draw()
    env.setup(seed=7)
    assert draw() == first
    env.setup(seed=8)
    assert draw() != first
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for part in ("Python", "TensorFlow 2.21", "Keras 3", "backend: tensorflow", "device: CPU"):
        assert part in lines[0]


def test_setup_can_switch_on_op_determinism():
    from tensorflow.python.framework import config

    assert not config.is_op_determinism_enabled()
    info = env.setup(seed=1, deterministic=True, verbose=False)
    try:
        assert config.is_op_determinism_enabled()
        assert info["deterministic"] and info["seed"] == 1
        assert "deterministic ops" in env.environment_line(info)
    finally:
        config.disable_op_determinism()


def test_doctor_passes_on_a_cpu_only_machine(keras_home):
    report = env.doctor()
    by_name = {c.name: c for c in report.checks}
    assert report.ok, str(report)
    assert set(by_name) == {
        "Python", "packages", "TensorFlow", "GPU", "dataset cache", "Jupyter kernel",
    }  # fmt: skip
    assert by_name["GPU"].status == "ok" and "CPU only is fine" in by_name["GPU"].detail
    assert "tensorflow[and-cuda]" in by_name["GPU"].fix
    assert "fetch-data" in by_name["dataset cache"].fix
    assert "Everything the course needs is in place." in str(report)


def test_doctor_reports_a_missing_kernel_and_an_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))
    report = env.doctor(kernel_name="no-such-kernel")
    failed = {c.name: c for c in report.problems}
    assert set(failed) == {"Jupyter kernel", "dataset cache"}
    assert "no kernel named 'no-such-kernel'" in failed["Jupyter kernel"].detail
    assert "ipykernel install" in failed["Jupyter kernel"].fix
    assert "KERAS_HOME" in failed["dataset cache"].fix
    assert "2 problem(s) to fix" in str(report)


def test_doctor_fails_when_keras_is_not_on_tensorflow(monkeypatch):
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    check = env._check_tensorflow()
    assert check.status == "fail" and "KERAS_BACKEND" in check.fix


def test_doctor_names_a_foreign_backend_before_importing_keras(monkeypatch, keras_home):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    check = env._check_tensorflow()
    assert check.status == "fail" and "'jax' backend" in check.detail
    assert "unset KERAS_BACKEND" in check.fix
    monkeypatch.delenv("KERAS_BACKEND")
    keras_home.mkdir()
    (keras_home / "keras.json").write_text('{"backend": "torch"}')
    check = env._check_tensorflow()
    assert check.status == "fail" and "'torch' backend" in check.detail
    assert str(keras_home / "keras.json") in check.fix


def test_a_check_that_breaks_is_reported_not_raised(monkeypatch):
    def broken():
        raise RuntimeError("kaput")

    monkeypatch.setattr(env, "_check_gpu", broken)
    report = env.doctor()
    gpu = next(c for c in report.checks if c.name == "GPU")
    assert gpu.status == "fail" and "kaput" in gpu.detail and not report.ok
