"""The environment: seeding and the one-line banner every lesson prints.

The doctor lives in :mod:`forge_course.doctor` and the settings in
:mod:`forge_course.config`; ``doctor``, ``offline`` and ``home`` are re-exported here
because lessons import them from this module (``from forge_course.env import doctor``).
"""

from __future__ import annotations

import numbers
import platform
import random

from forge_course.config import home, offline
from forge_course.doctor import backend_problem, doctor
from forge_course.errors import ForgeError

__all__ = ["describe", "doctor", "environment_line", "home", "offline", "setup"]


def setup(seed: int = 42, *, deterministic: bool = False, verbose: bool = True) -> dict:
    """Seed Python, NumPy and TensorFlow, optionally force determinism, and print one line.

    Args:
        seed: the seed for ``random``, NumPy and the Keras backend (TensorFlow).
        deterministic: also switch on TensorFlow's op determinism, so that the same
            program gives bit-identical results on the same machine (a little slower).
        verbose: print the environment line.

    Returns:
        The dictionary from :func:`describe`, plus ``seed`` and ``deterministic``.

    Raises:
        ForgeError: ``seed`` is not an integer from 0 to 2**32 - 1, or Keras is set up
            for a backend other than TensorFlow.
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ForgeError(
            f"seed must be a non-negative integer below 2**32, got {seed!r}; "
            "pass a whole number such as setup(seed=42)"
        )
    seed = int(seed)
    problem = backend_problem()  # before importing Keras, which would fail with a traceback
    if problem:
        raise ForgeError(problem)
    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend in one call
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    info = describe() | {"seed": seed, "deterministic": deterministic}
    if verbose:
        print(environment_line(info))
    return info


def describe() -> dict:
    """Return versions and the compute device: Python, TensorFlow, Keras, backend, device."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "gpus": [gpu.name for gpu in gpus],
    }


def environment_line(info: dict | None = None) -> str:
    """Format the one-line banner that every lesson prints after seeding."""
    info = info or describe()
    line = (
        f"Python {info['python']} | TensorFlow {info['tensorflow']} | Keras {info['keras']}"
        f" (backend: {info['backend']}) | device: {info['device']}"
    )
    if "seed" in info:
        line += f" | seed {info['seed']}" + (", deterministic ops" if info["deterministic"] else "")
    return line
