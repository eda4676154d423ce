"""Forge Course: helpers for a Jupyter course on deep learning with Keras on TensorFlow.

Importing the package is cheap: TensorFlow loads only when a helper needs it.
"""

from __future__ import annotations

import os

# Hide TensorFlow's runtime C++ info and warning logs (not the few lines TensorFlow 2.21
# prints while it loads, which ignore this setting); users may override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from forge_course import errors  # noqa: E402
from forge_course.errors import *  # noqa: E402, F403 - every error class, at the top level

__version__ = "0.1.0"

__all__ = [*errors.__all__, "__version__"]
