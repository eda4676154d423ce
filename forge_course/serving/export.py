"""Save, export and convert a Keras model the safe way.

* :func:`save_with_hash` writes a ``.keras`` file and returns its SHA-256;
  :func:`load_verified` checks that hash *before* loading, then loads with ``safe_mode``
  (a model file is code: a ``Lambda`` layer's Python would run on load, so it is refused).
* :func:`export_for_serving` writes ``model.export()`` into TensorFlow Serving's layout,
  ``<base>/<name>/<version>/``, loads it back and checks its ``serving_default`` signature
  against the Keras model on a sample batch.
* :func:`convert_to_tflite` writes a LiteRT (TFLite) flatbuffer with
  ``model.export(format="litert")``; :func:`litert_predict` runs it with
  ``ai_edge_litert.interpreter`` (``tf.lite.Interpreter`` is deprecated).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forge_course.errors import ServingError
from forge_course.serving.servable import SIGNATURE, verify_sha256

__all__ = [
    "ExportResult",
    "convert_to_tflite",
    "export_for_serving",
    "litert_predict",
    "load_verified",
    "save_with_hash",
]


@contextlib.contextmanager
def _quiet_tensorflow():
    """Hide TensorFlow's Python INFO lines ("Assets written to ...") while exporting."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def save_with_hash(model, path: str | os.PathLike) -> str:
    """Save ``model`` to a ``.keras`` file and return the file's SHA-256 (hex)."""
    from forge_course.download import file_sha256

    path = Path(path)
    if path.suffix != ".keras":
        raise ServingError(
            f"{path}: save to a .keras file (the .h5 format loses the model's config)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return file_sha256(path)


def load_verified(path: str | os.PathLike, sha256: str):
    """Check a ``.keras`` file's SHA-256, then load it with ``safe_mode=True``.

    Raises:
        ArtifactHashError: the file is not the one that was hashed; nothing was loaded.
        ServingError: the file holds a ``Lambda`` layer (code) that safe mode refuses.
    """
    from forge_course.serving.servable import _load_keras

    verify_sha256(path, sha256)
    return _load_keras(Path(path))


@dataclass(frozen=True)
class ExportResult:
    """Where ``model.export()`` wrote, and how closely the reloaded signature agrees."""

    path: Path
    input_name: str
    output_name: str
    max_abs_diff: float

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict."""
        return {
            "path": str(self.path),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "max_abs_diff": self.max_abs_diff,
        }


def export_for_serving(
    model,
    base: str | os.PathLike,
    name: str,
    version: int = 1,
    *,
    sample: np.ndarray | None = None,
    atol: float = 1e-5,
) -> ExportResult:
    """Export ``model`` to ``base/name/version`` and verify its ``serving_default`` signature.

    The folder is what ``tensorflow/serving`` (and ``forge-course serve``) loads. The
    signature is loaded back with ``tf.saved_model.load`` and called on ``sample`` (default:
    a seeded random batch of 4); its output must match ``model(sample)`` within ``atol``.

    Raises:
        ServingError: the version folder exists already, or the signature disagrees.
    """
    import tensorflow as tf

    if int(version) < 1:
        raise ServingError(f"version must be a positive integer, not {version}")
    path = Path(base) / name / str(int(version))
    if path.exists():
        raise ServingError(f"{path} exists; TF Serving versions are immutable, export version "
                           f"{int(version) + 1} instead")  # fmt: skip
    with _quiet_tensorflow():
        model.export(str(path), verbose=False)
    loaded = tf.saved_model.load(str(path))
    if SIGNATURE not in loaded.signatures:
        raise ServingError(f"{path} has no {SIGNATURE} signature")
    fn = loaded.signatures[SIGNATURE]
    ((input_name, spec),) = fn.structured_input_signature[1].items()
    ((output_name,),) = [tuple(fn.structured_outputs)]
    if sample is None:
        shape = [4] + [1 if d is None else d for d in spec.shape.as_list()[1:]]
        sample = np.random.default_rng(0).random(shape).astype(spec.dtype.as_numpy_dtype)
    served = fn(**{input_name: tf.constant(sample)})[output_name].numpy()
    diff = float(np.max(np.abs(served - np.asarray(model(sample)))))
    if not diff <= atol:
        raise ServingError(f"{path}: serving_default differs from the model by {diff:.2e} > {atol}")
    return ExportResult(path, input_name, output_name, diff)


def convert_to_tflite(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as a LiteRT (TFLite) flatbuffer at ``path`` (``.tflite``); return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_tensorflow():
            model.export(str(path), format="litert", verbose=False)
    except Exception as exc:
        raise ServingError(f"LiteRT conversion of {model.name} failed: {exc}") from exc
    if not path.exists():
        raise ServingError(f"LiteRT conversion wrote no file at {path}")
    return path


def litert_predict(path: str | os.PathLike, batch: np.ndarray) -> np.ndarray:
    """Run a ``.tflite`` model on ``batch`` with LiteRT's interpreter; return its output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    (inp,) = interpreter.get_input_details()
    out = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], batch.astype(inp["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])
