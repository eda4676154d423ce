"""Keras callbacks the lessons use, one module each.

| name | module | lesson |
|---|---|---|
| :class:`LivePlot` | ``forge_course.callbacks.live`` | 06 callbacks |
| :class:`GradientNormLogger` | ``forge_course.callbacks.gradients`` | 08 vanishing gradients |
| :class:`RegistryCallback` | ``forge_course.callbacks.registry`` | 11 SQL model versioning |

Each loads on first use, so importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "LivePlot": "live",
    "GradientNormLogger": "gradients",
    "RegistryCallback": "registry",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'forge_course.callbacks' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
