"""The doctor: a healthy machine passes, a broken one gets a fix for each problem.

Nothing here assumes the machine it runs on: GPU or not, Linux or macOS.
"""

from __future__ import annotations

import sys

import pytest

from forge_course import doctor as doc


def test_doctor_passes_on_a_healthy_machine(keras_home):
    import tensorflow as tf

    report = doc.doctor()
    by_name = {c.name: c for c in report.checks}
    assert report.ok, str(report)
    assert set(by_name) == {
        "Python", "packages", "TensorFlow", "GPU", "dataset cache", "Jupyter kernel",
    }  # fmt: skip
    gpu = by_name["GPU"]
    assert gpu.status == "ok"
    if tf.config.list_physical_devices("GPU"):
        assert "visible:" in gpu.detail
    else:
        assert "CPU only is fine" in gpu.detail and gpu.fix
    assert "fetch-data" in by_name["dataset cache"].fix  # the test's Keras home is empty
    assert "Everything the course needs is in place." in str(report)


@pytest.fixture
def no_gpu(monkeypatch):
    """TensorFlow sees no GPU and no NVIDIA driver is installed, whatever the machine."""
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(doc.shutil, "which", lambda name: None)


@pytest.mark.parametrize(
    "platform, hint",
    [("linux", "tensorflow[and-cuda]"), ("darwin", "no GPU support on macOS")],
)
def test_a_cpu_only_machine_is_fine_and_told_what_a_gpu_needs(no_gpu, monkeypatch, platform, hint):
    monkeypatch.setattr(sys, "platform", platform)
    check = doc._check_gpu()
    assert check.status == "ok" and "CPU only is fine" in check.detail
    assert hint in check.fix


def test_a_driver_without_a_cuda_build_is_named(no_gpu, monkeypatch):
    monkeypatch.setattr(doc.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    check = doc._check_gpu()
    assert "TensorFlow sees no GPU" in check.fix and "tensorflow[and-cuda]" in check.fix


def test_visible_gpus_are_listed(monkeypatch):
    import tensorflow as tf

    class Gpu:
        name = "/physical_device:GPU:0"

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [Gpu()])
    check = doc._check_gpu()
    assert check.status == "ok" and check.detail == "1 visible: /physical_device:GPU:0"
    assert check.fix == ""


def test_doctor_reports_a_missing_kernel_and_an_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))
    report = doc.doctor(kernel_name="no-such-kernel")
    failed = {c.name: c for c in report.problems}
    assert set(failed) == {"Jupyter kernel", "dataset cache"}
    assert "no kernel named 'no-such-kernel'" in failed["Jupyter kernel"].detail
    assert "ipykernel install" in failed["Jupyter kernel"].fix
    assert "KERAS_HOME" in failed["dataset cache"].fix
    assert "2 problem(s) to fix" in str(report)
    assert report.to_dict()["ok"] is False


def test_doctor_fails_when_keras_is_not_on_tensorflow(monkeypatch):
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    check = doc._check_tensorflow()
    assert check.status == "fail" and "KERAS_BACKEND" in check.fix


def test_doctor_names_a_foreign_backend_before_importing_keras(monkeypatch, keras_home):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    check = doc._check_tensorflow()
    assert check.status == "fail" and "'jax' backend" in check.detail
    assert "unset KERAS_BACKEND" in check.fix
    monkeypatch.delenv("KERAS_BACKEND")
    keras_home.mkdir()
    (keras_home / "keras.json").write_text('{"backend": "torch"}')
    check = doc._check_tensorflow()
    assert check.status == "fail" and "'torch' backend" in check.detail
    assert str(keras_home / "keras.json") in check.fix


def test_a_check_that_breaks_is_reported_not_raised(monkeypatch):
    def broken():
        raise RuntimeError("kaput")

    monkeypatch.setattr(doc, "_check_gpu", broken)
    report = doc.doctor()
    gpu = next(c for c in report.checks if c.name == "GPU")
    assert gpu.status == "fail" and "kaput" in gpu.detail and not report.ok
