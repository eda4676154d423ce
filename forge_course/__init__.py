"""Forge Course: helpers for a Jupyter course on deep learning with Keras on TensorFlow.

Importing the package is cheap: TensorFlow loads only when a helper needs it.
"""

from __future__ import annotations

import os

# Hide TensorFlow's runtime C++ info and warning logs (not the few lines TensorFlow 2.21
# prints while it loads, which ignore this setting); users may override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from forge_course.errors import (  # noqa: E402
    CacheError,
    DatasetError,
    DownloadError,
    ExecutionError,
    ForgeError,
    GradingError,
    WidgetInputError,
)

__version__ = "0.1.0"

__all__ = [
    "CacheError",
    "DatasetError",
    "DownloadError",
    "ExecutionError",
    "ForgeError",
    "GradingError",
    "WidgetInputError",
    "__version__",
]
