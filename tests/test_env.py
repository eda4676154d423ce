"""Seeding and the environment line (the doctor: tests/test_doctor.py)."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from forge_course import env
from forge_course.errors import ForgeError


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
    device = env.describe()["device"]  # "CPU", or "GPU x1" on a GPU machine
    for part in ("Python", "TensorFlow 2.21", "Keras 3", "backend: tensorflow", device):
        assert part in lines[0]
    assert lines[0].endswith(f"device: {device} | seed 7")


def test_describe_reports_the_gpus_tensorflow_sees():
    import tensorflow as tf

    info = env.describe()
    gpus = tf.config.list_physical_devices("GPU")
    assert info["device"] == (f"GPU x{len(gpus)}" if gpus else "CPU")
    assert info["gpus"] == [g.name for g in gpus]


def test_environment_line_names_the_device_it_is_given():
    info = {"python": "3.12.1", "tensorflow": "2.21.0", "keras": "3.13.2"}
    info |= {"backend": "tensorflow", "device": "GPU x2"}
    assert env.environment_line(info) == (
        "Python 3.12.1 | TensorFlow 2.21.0 | Keras 3.13.2 (backend: tensorflow) | device: GPU x2"
    )


def test_lessons_imports_still_work():
    from forge_course import config
    from forge_course import doctor as doctor_module
    from forge_course.env import doctor, home, offline, setup  # noqa: F401 - as lesson 00 does

    assert doctor is doctor_module.doctor and offline is config.offline and home is config.home


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


@pytest.mark.parametrize("seed", ["abc", -1, 2.5, True, 2**32, None])
def test_setup_rejects_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(ForgeError, match=r"seed must be a non-negative integer.*got"):
        env.setup(seed=seed, verbose=False)


def test_setup_accepts_numpy_integers():
    assert env.setup(seed=np.int64(3), verbose=False)["seed"] == 3


def test_setup_diagnoses_a_foreign_backend_instead_of_a_traceback(monkeypatch, keras_home):
    monkeypatch.delitem(sys.modules, "keras")  # as in a fresh kernel: Keras not loaded yet
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(ForgeError) as caught:
        env.setup(seed=1, verbose=False)
    message = str(caught.value)
    assert "'jax' backend (KERAS_BACKEND=jax)" in message and "unset KERAS_BACKEND" in message
    assert "restart the kernel" in message
