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
    core = {"Python", "packages", "TensorFlow", "GPU", "dataset cache", "Jupyter kernel"}
    from forge_course.doctor_tools import TOOL_CHECKS

    assert set(by_name) == core | {name for name, _ in TOOL_CHECKS}
    assert all(by_name[name].status in ("ok", "warn") for name, _ in TOOL_CHECKS)
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


# ------------------------------------------------------------------ the cache, read as load does


def write_idx(path, count, *, images):
    import gzip

    header = (2051 if images else 2049).to_bytes(4, "big") + count.to_bytes(4, "big")
    if images:
        header += (28).to_bytes(4, "big") * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + bytes(count * (784 if images else 1))))


@pytest.fixture
def fashion_cache(keras_home):
    """A whole (tiny) Fashion-MNIST cache in the formats keras.datasets writes."""
    from forge_course import data

    folder = data.cache_dir() / "fashion-mnist"
    for key, fname in data.FASHION_FILES.items():
        write_idx(folder / fname, 6 if "train" in key else 3, images=key.startswith("x"))
    return folder


def test_a_whole_cache_is_healthy(fashion_cache):
    check = doc._check_cache()
    assert check.status == "ok" and "cached fashion_mnist" in check.detail


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda raw: raw[: len(raw) // 2], "gzip"),  # a download cut short
        (lambda raw: b"<html>proxy login</html>", "not a gzip file"),
    ],
)
def test_doctor_names_a_corrupt_fashion_file_and_its_fix(fashion_cache, damage, why):
    from forge_course import data

    bad = fashion_cache / data.FASHION_FILES["x_train"]
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(data.CacheError):
        data.load("fashion_mnist", verbose=False)  # what the doctor must foresee
    check = doc._check_cache()
    assert check.status == "fail" and str(bad) in check.detail and why in check.detail
    assert check.fix == f"delete {bad} and run `forge-course fetch-data fashion_mnist` while online"


def test_doctor_checks_mnist_against_the_published_hash(keras_home):
    import numpy as np

    from forge_course import data

    path = data.cache_dir() / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip at all")
    check = doc._check_cache()
    assert check.status == "fail" and str(path) in check.detail and "npz" in check.detail
    assert "fetch-data mnist" in check.fix and f"delete {path}" in check.fix
    zeros = np.zeros((2, 28, 28), np.uint8)
    np.savez(path, x_train=zeros, y_train=zeros[:, 0, 0], x_test=zeros, y_test=zeros[:, 0, 0])
    check = doc._check_cache()  # a readable npz, but not the file Keras publishes
    assert check.status == "fail" and "SHA-256" in check.detail


# ------------------------------------------------------------------ inspection writes nothing


def test_doctor_creates_nothing_it_inspects_and_keeps_tensorflow_quiet(tmp_path):
    from tests.conftest import run_cli

    keras_home = tmp_path / "nonexistent" / "deep" / "keras"
    done = run_cli("doctor", env={"KERAS_HOME": str(keras_home)})
    assert "TensorFlow 2.21" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "nonexistent").exists()
    for chatter in ("oneDNN", "cuInit", "absl", "cuda"):
        assert chatter not in done.stderr


def test_probing_tensorflow_writes_no_keras_json(keras_home):
    keras_home.mkdir()
    facts = doc._probe_tensorflow()
    assert facts["backend"] == "tensorflow" and "gpus" in facts
    assert list(keras_home.iterdir()) == []


def test_a_malformed_keras_json_is_named_not_blamed_on_the_install(keras_home):
    keras_home.mkdir()
    (keras_home / "keras.json").write_text("[1, 2]")
    check = doc._check_tensorflow()
    assert check.status == "fail" and "make install" not in check.fix
    assert str(keras_home / "keras.json") in check.detail and "list" in check.detail
    assert check.fix.startswith(f"fix {keras_home / 'keras.json'} or delete it")
    (keras_home / "keras.json").write_text('{"backend": "tensorflow", "floatx": "float8"}')
    assert "floatx" in doc._check_tensorflow().detail
    (keras_home / "keras.json").write_text("{not json")
    assert "not valid JSON" in doc._check_tensorflow().detail


def test_model_graphs_line_says_what_plot_model_needs(monkeypatch):
    from forge_course import doctor_tools

    monkeypatch.setattr(doctor_tools.shutil, "which", lambda name: None)
    line = doctor_tools._check_graphviz()
    assert line.status == "warn" and "as text" in line.detail
    assert "graphviz" in line.fix.lower()
    assert not doctor_tools.graphviz_available()
