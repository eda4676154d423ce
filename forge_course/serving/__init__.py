"""Save, export and serve a Keras model: a TensorFlow-Serving-compatible REST service.

Modules (one concern each)::

    servable   load a .keras file (safe_mode) or a model.export() folder, compiled and warmed
    validate   a :predict body -> a checked NumPy batch, or a 400 naming what is wrong
    batching   concurrent requests share one model call (max batch size, bounded wait)
    server     the REST API v1 on asyncio + httptools (why: see its docstring)
    export     safe saving with SHA-256, model.export() in TF Serving's layout, LiteRT
    process    start/stop the service next to a notebook; answer a body in process
    cli        the ``forge-course serve`` verb

Importing this package is cheap; TensorFlow loads when a model does.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ModelServer",
    "ServeConfig",
    "Servable",
    "Service",
    "convert_to_tflite",
    "export_for_serving",
    "litert_predict",
    "load_servable",
    "load_verified",
    "run_server",
    "respond",
    "save_with_hash",
    "start_service",
    "verify_sha256",
]

_HOME = {
    "ModelServer": "server",
    "ServeConfig": "server",
    "run_server": "server",
    "Servable": "servable",
    "load_servable": "servable",
    "verify_sha256": "servable",
    "convert_to_tflite": "export",
    "export_for_serving": "export",
    "litert_predict": "export",
    "load_verified": "export",
    "save_with_hash": "export",
    "Service": "process",
    "respond": "process",
    "start_service": "process",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"forge_course.serving.{_HOME[name]}"), name)
    raise AttributeError(f"module 'forge_course.serving' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
