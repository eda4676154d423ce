"""A model ready to serve: loaded once (Keras ``safe_mode``), compiled, warmed.

:func:`load_servable` takes a ``.keras`` file or a folder written by ``model.export()``
(TensorFlow Serving's ``models/<name>/<version>/`` layout) and returns a :class:`Servable`:
its one input's signature (name, dtype, shape), its outputs' names, and ``run(batch)``,
which calls a compiled function, never ``model.predict()``.

A ``.keras`` model is wrapped in a ``tf.function`` with a fixed input signature and
``jit_compile=True`` (XLA): one trace, and on a small dense model about half the Python
overhead of a plain ``tf.function``. XLA compiles once per batch shape, so batches are
padded up to the next *allowed batch size* (powers of two up to the maximum batch, as
TensorFlow Serving's ``allowed_batch_sizes``), and :meth:`Servable.warm` compiles each of
them before the first request. A model XLA cannot compile falls back to plain graph mode.
An exported SavedModel is already a graph: its ``serving_default`` signature is called as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forge_course.errors import ArtifactHashError, ServingError

__all__ = ["InputSpec", "Servable", "allowed_batch_sizes", "load_servable", "verify_sha256"]

SIGNATURE = "serving_default"

# TensorFlow's dtype names as TF Serving's metadata writes them.
_DT_NAMES = {
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "float16": "DT_HALF",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
}


@dataclass(frozen=True)
class InputSpec:
    """The one input a served model takes: its name, dtype and shape (``None`` = any)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]  # batch dimension first

    @property
    def row_shape(self) -> tuple[int | None, ...]:
        """Shape of one instance (the shape without its batch dimension)."""
        return self.shape[1:]

    def describe(self) -> str:
        """Say what one instance must look like, e.g. ``[64] float32``."""
        dims = ", ".join("any" if d is None else str(d) for d in self.row_shape)
        return f"[{dims}] {self.dtype}"


def allowed_batch_sizes(max_batch_size: int) -> tuple[int, ...]:
    """Return the batch sizes a compiled model is padded to: powers of two, then the maximum."""
    sizes = [1]
    while sizes[-1] * 2 < max_batch_size:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != max_batch_size:
        sizes.append(max_batch_size)
    return tuple(sizes)


def verify_sha256(path: str | os.PathLike, expected: str) -> str:
    """Check a file's SHA-256 against ``expected`` before anything loads it; return the hash.

    Raises:
        ArtifactHashError: the file's hash differs (it was changed or swapped).
    """
    from forge_course.download import file_sha256

    actual = file_sha256(path)
    if actual.lower() != expected.strip().lower():
        raise ArtifactHashError(
            f"{path} has SHA-256 {actual}, not the expected {expected.strip()}; "
            "the file changed since it was hashed: do not load it, re-export or re-register it"
        )
    return actual


@dataclass
class Servable:
    """A loaded model behind a compiled function; ``run`` takes and returns NumPy arrays."""

    name: str
    version: str
    source: str
    input: InputSpec
    outputs: tuple[str, ...]
    output_shapes: dict[str, tuple[int | None, ...]]
    max_batch_size: int
    _fn: object = field(repr=False, default=None)
    _pad: bool = field(repr=False, default=False)
    _keep: object = field(repr=False, default=None)  # the object owning the graph
    jit_compiled: bool = False

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes the compiled function is called with (padded up to)."""
        return allowed_batch_sizes(self.max_batch_size) if self._pad else ()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch (rows first) through the compiled function; return outputs by name."""
        import tensorflow as tf

        rows = batch.shape[0]
        if rows > self.max_batch_size:  # one request larger than a batch: run it in slices
            parts = [
                self.run(batch[i : i + self.max_batch_size])
                for i in range(0, rows, self.max_batch_size)
            ]
            return {k: np.concatenate([p[k] for p in parts]) for k in self.outputs}
        if self._pad:
            size = next(s for s in self.batch_sizes if s >= rows)
            if size != rows:
                pad = np.zeros((size - rows, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
        result = self._fn(tf.constant(batch))
        return {k: result[k].numpy()[:rows] for k in self.outputs}

    def warm(self) -> None:
        """Call the function once per allowed batch size so no request pays for a compile."""
        shape = [1 if d is None else d for d in self.input.row_shape]
        for size in self.batch_sizes or (1,):
            self.run(np.zeros((size, *shape), self.input.dtype))

    def metadata(self) -> dict:
        """TensorFlow Serving's ``GET /v1/models/NAME/metadata`` body for this model."""

        def tensor(name: str, dtype: str, shape) -> dict:
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in shape]
            return {
                "dtype": _DT_NAMES.get(dtype, "DT_" + dtype.upper()),
                "tensor_shape": {"dim": dims, "unknown_rank": False},
                "name": name,
            }

        out_dtype = "float32"
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": self.version},
            "metadata": {
                "signature_def": {
                    "signature_def": {
                        SIGNATURE: {
                            "inputs": {
                                self.input.name: tensor(
                                    f"{SIGNATURE}_{self.input.name}:0",
                                    self.input.dtype,
                                    self.input.shape,
                                )
                            },
                            "outputs": {
                                k: tensor(f"StatefulPartitionedCall:{i}", out_dtype, shape)
                                for i, (k, shape) in enumerate(self.output_shapes.items())
                            },
                            "method_name": "tensorflow/serving/predict",
                        }
                    }
                }
            },
        }


def load_servable(
    path: str | os.PathLike,
    *,
    name: str,
    version: str | int | None = None,
    max_batch_size: int = 32,
    sha256: str | None = None,
    jit_compile: bool = True,
    model=None,
) -> Servable:
    """Load a ``.keras`` file (safe mode) or an exported version folder, compiled and warmed.

    Args:
        path: a ``.keras`` file, or a folder holding ``saved_model.pb`` (``model.export()``).
        name: the model name the service answers to.
        version: the version it reports; default: the folder's name when it is a number
            (``models/digits/3`` -> ``3``), else ``1``.
        max_batch_size: the largest batch one model call takes.
        sha256: if given, the ``.keras`` file's hash is checked before it is loaded.
        jit_compile: compile a ``.keras`` model with XLA (falls back to graph mode).
        model: an already loaded (and verified) Keras model; ``path`` then only names it.

    Raises:
        ServingError: the path is not a model we can serve (missing, several inputs, ...).
        ArtifactHashError: ``sha256`` was given and the file's hash differs.
    """
    path = Path(path)
    if max_batch_size < 1:
        raise ServingError(f"max batch size must be at least 1, not {max_batch_size}")
    if model is None and not path.exists():
        raise ServingError(f"no model at {path}; give a .keras file or an exported version folder")
    if version is None:
        version = path.name if path.is_dir() and path.name.isdigit() else "1"
    version = str(version)
    if not version.isdigit():
        raise ServingError(f"version must be a whole number (TF Serving's rule), not {version!r}")
    if model is None and path.is_dir():
        if sha256:
            raise ServingError("--sha256 checks a .keras file; an exported folder has many files")
        servable = _from_saved_model(path, name, version, max_batch_size)
    else:
        if model is None:
            if path.suffix != ".keras":
                raise ServingError(
                    f"{path} is not a .keras file; save with model.save('model.keras') "
                    "or give the folder model.export() wrote"
                )
            if sha256:
                verify_sha256(path, sha256)
            model = _load_keras(path)
        servable = _from_keras(model, path, name, version, max_batch_size, jit_compile)
    try:
        servable.warm()
    except Exception as exc:  # XLA cannot compile every op: fall back to graph mode
        if not servable.jit_compiled:
            raise ServingError(f"{path}: the model fails on a batch of zeros: {exc}") from exc
        servable = _from_keras(servable._keep, path, name, version, max_batch_size, False)
        servable.warm()
    return servable


def _load_keras(path: Path):
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ServingError(
                f"{path} holds Python code (a Lambda layer) that safe_mode refuses to run; "
                "replace the Lambda with a built-in or registered layer and save again"
            ) from exc
        raise ServingError(f"{path} is not a Keras model we can load: {exc}") from exc


def _from_keras(model, path, name, version, max_batch_size, jit_compile) -> Servable:
    import tensorflow as tf

    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ServingError(
            f"{path}: the model has no defined inputs; build it with keras.Input(...) "
            "(Sequential or Functional) before saving"
        )
    if len(inputs) != 1:
        raise ServingError(f"{path}: the model takes {len(inputs)} inputs; the service takes one")
    x = inputs[0]
    layer = getattr(x, "_keras_history", None)
    in_name = layer[0].name if layer else x.name
    spec = InputSpec(name=in_name, dtype=str(x.dtype), shape=tuple(x.shape))
    outs = list(model.outputs)
    names = tuple(f"output_{i}" for i in range(len(outs)))
    shapes = {k: tuple(o.shape) for k, o in zip(names, outs, strict=True)}

    @tf.function(
        input_signature=[tf.TensorSpec([None, *spec.row_shape], spec.dtype)],
        jit_compile=jit_compile,
    )
    def serve(batch):
        result = model(batch, training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return {k: tf.cast(v, tf.float32) for k, v in zip(names, result, strict=False)}

    return Servable(
        name=name,
        version=version,
        source=str(path),
        input=spec,
        outputs=names,
        output_shapes=shapes,
        max_batch_size=max_batch_size,
        _fn=serve.get_concrete_function(),
        _pad=jit_compile,
        _keep=model,
        jit_compiled=jit_compile,
    )


def _from_saved_model(path: Path, name, version, max_batch_size) -> Servable:
    import tensorflow as tf

    if not (path / "saved_model.pb").exists():
        raise ServingError(
            f"{path} has no saved_model.pb; give the version folder model.export() wrote "
            "(models/<name>/<version>/)"
        )
    loaded = tf.saved_model.load(str(path))
    if SIGNATURE not in loaded.signatures:
        have = ", ".join(loaded.signatures) or "none"
        raise ServingError(f"{path} has no '{SIGNATURE}' signature (have: {have})")
    fn = loaded.signatures[SIGNATURE]
    kwargs = fn.structured_input_signature[1]
    if len(kwargs) != 1:
        raise ServingError(
            f"{path}: the signature takes {len(kwargs)} inputs; the service takes one"
        )
    ((in_name, tspec),) = kwargs.items()
    spec = InputSpec(name=in_name, dtype=tspec.dtype.name, shape=tuple(tspec.shape.as_list()))
    outputs = fn.structured_outputs
    names = tuple(sorted(outputs))
    shapes = {k: tuple(outputs[k].shape.as_list()) for k in names}

    def call(batch):
        return fn(**{in_name: batch})

    return Servable(
        name=name,
        version=version,
        source=str(path),
        input=spec,
        outputs=names,
        output_shapes=shapes,
        max_batch_size=max_batch_size,
        _fn=call,
        _pad=False,
        _keep=loaded,
    )
