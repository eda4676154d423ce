"""Catch the classic beginner mistakes of a training setup before any training happens.

``diagnose(model, x, y, x_test=x_test)`` reads the model (its first layers, its output
layer, its compiled loss) and a sample of the data, and returns a list of
:class:`Finding`, each with a ``code``, a ``message`` saying what it saw and a ``fix``.
An empty list means none of its detectors fired. It never trains, calls or changes the
model, and it never raises on odd input: what it could not inspect comes back as a
``NOT_INSPECTED`` finding instead.

Codes:

- ``UNSCALED_INPUTS``: raw features (pixels 0-255, areas in the hundreds) reach a model
  that does not scale them itself.
- ``INPUT_SKEW``: the test inputs are on another scale than the training inputs, or inputs
  arrive already scaled at a model that scales them itself (train/serve skew).
- ``LOSS_OUTPUT_MISMATCH``: the loss does not read what the output layer produces
  (probabilities with ``from_logits=True``, logits without it, a double softmax, a softmax
  over one unit).
- ``LABELS_LOSS_MISMATCH``: the labels are not in the format the loss reads (integers with
  ``categorical_crossentropy``, one-hot rows with the sparse one, labels out of range).
- ``TRAIN_TEST_OVERLAP``: test rows also appear among the training rows, so a test score
  measures memory.
- ``TEST_STATISTICS_LEAK``: the model's Normalization layer was adapted on the test rows
  (or on train and test together).
- ``NOT_INSPECTED``: something could not be checked; the message says what and why.

Without ``x_test``, the skew, overlap and leak checks are skipped silently (no finding).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["CODES", "Finding", "Findings", "diagnose"]

CODES = (
    "UNSCALED_INPUTS",
    "INPUT_SKEW",
    "LOSS_OUTPUT_MISMATCH",
    "LABELS_LOSS_MISMATCH",
    "TRAIN_TEST_OVERLAP",
    "TEST_STATISTICS_LEAK",
    "NOT_INSPECTED",
)
MAX_ROWS = 20_000  # rows read from a tf.data pipeline (and kept from an array) per split
RAW_SCALE = 20.0  # a feature whose typical magnitude passes this is not scaled
SKEW_Z = 3.0  # test means this many training standard deviations away: another scale
OVERLAP_FRACTION = 0.05  # this share of test rows found among the training rows


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem :func:`diagnose` found: a stable ``code``, what it saw, how to fix it."""

    code: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}\n  fix: {self.fix}"


class Findings(list):
    """The list :func:`diagnose` returns; prints one finding per paragraph."""

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self]

    def __str__(self) -> str:
        if not self:
            return "diagnose: no findings"
        return "\n".join(str(f) for f in self)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's display of a cell's value
        p.text(str(self))


# --------------------------------------------------------------------------- data


def _to_array(value, what: str) -> tuple[np.ndarray | None, str | None]:
    """A float array of at most MAX_ROWS rows, or (None, why not)."""
    if value is None:
        return None, None
    if isinstance(value, dict | list | tuple) and not _is_numeric_sequence(value):
        return None, f"{what} is a {type(value).__name__} (several inputs?)"
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything array-like may fail its own way
        return None, f"{what} could not be read as an array ({type(exc).__name__})"
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        return None, f"{what} holds {arr.dtype} values, not numbers"
    if arr.ndim == 0 or len(arr) == 0:
        return None, f"{what} is empty or a single number"
    return arr[:MAX_ROWS].astype("float64"), None


def _is_numeric_sequence(value) -> bool:
    try:
        return np.asarray(value).dtype != object and not isinstance(value, dict)
    except Exception:  # noqa: BLE001
        return False


def _from_dataset(ds) -> tuple[Any, Any, str | None]:
    """(x, y) arrays read from the first batches of a tf.data pipeline, or why not."""
    xs, ys, rows = [], [], 0
    try:
        for element in ds:
            if isinstance(element, tuple | list) and len(element) in (2, 3):
                bx, by = element[0], element[1]
            else:
                return None, None, "its elements are not (inputs, labels) pairs"
            if isinstance(bx, dict) or isinstance(by, dict):
                return None, None, "its elements hold dictionaries (several inputs or outputs)"
            bx, by = np.asarray(bx), np.asarray(by)
            if bx.ndim == 0:
                return None, None, "its elements are single examples: batch it first"
            xs.append(bx)
            ys.append(by)
            rows += len(bx)
            if rows >= MAX_ROWS:
                break
    except Exception as exc:  # noqa: BLE001 - a pipeline can fail in any way
        return None, None, f"reading it failed ({type(exc).__name__}: {str(exc)[:80]})"
    if not xs:
        return None, None, "it yielded no batches"
    try:
        return np.concatenate(xs), np.concatenate(ys), None
    except ValueError:
        return None, None, "its batches have different shapes"


def _is_dataset(value) -> bool:
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return False
    return isinstance(value, tf.data.Dataset)


# --------------------------------------------------------------------------- model


def _flat_layers(model) -> list:
    """The model's layers in order, nested models opened, input layers left out."""
    out = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and not hasattr(layer, "kernel"):
            out.extend(_flat_layers(layer))
        else:
            out.append(layer)
    return out


def _scaler(model):
    """The Rescaling/Normalization layer met before the first weighted layer, or None."""
    for layer in _flat_layers(model):
        kind = type(layer).__name__
        if kind in ("Rescaling", "Normalization", "LayerNormalization", "BatchNormalization"):
            return layer
        if getattr(layer, "kernel", None) is not None or kind in ("Embedding", "StringLookup"):
            return None
    return None


def _activation(layer) -> str:
    kind = type(layer).__name__
    if kind == "Softmax":
        return "softmax"
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", "") if fn is not None else ""
    return name or "linear"


def _output_layers(model) -> list:
    """The layers near the output that shape it: the last weighted layer and what follows."""
    layers = _flat_layers(model)
    for i in range(len(layers) - 1, -1, -1):
        if getattr(layers[i], "kernel", None) is not None:
            return layers[i:]
    return layers[-1:]


def _loss_info(model) -> tuple[str | None, bool, str | None]:
    """(normalized loss name, from_logits, why it could not be read)."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return None, False, "the model is not compiled, so there is no loss to compare"
    if isinstance(loss, dict | list | tuple):
        return None, False, "the model has several losses (several outputs)"
    if isinstance(loss, str):
        name = loss
        logits = False
    else:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
        name = name or type(loss).__name__
        logits = bool(getattr(loss, "from_logits", False))
    key = str(name).lower().replace("_", "")
    return key, logits, None


def _output_units(model) -> int | None:
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if not isinstance(shape, tuple) or not shape or isinstance(shape[0], tuple | list):
        return None
    last = shape[-1]
    return int(last) if isinstance(last, int) else None


# --------------------------------------------------------------------------- detectors


def _scaling(model, x, x_test) -> list[Finding]:
    found = []
    scaler = _scaler(model)
    flat = x.reshape(len(x), -1)
    typical = np.percentile(np.abs(flat), 99, axis=0)  # per feature, outliers aside
    if scaler is None and typical.max() > RAW_SCALE:
        big = int(np.sum(typical > RAW_SCALE))
        found.append(
            Finding(
                "UNSCALED_INPUTS",
                f"{big} of {flat.shape[1]} input features reach magnitudes up to "
                f"{typical.max():,.0f} (range {flat.min():.3g} to {flat.max():.3g}), and the "
                "model's first layers do not scale them",
                "scale inside the model: a keras.layers.Normalization adapted on the training "
                "inputs (or Rescaling(1/255) for pixels) as its first layer, so training and "
                "serving see the same arithmetic",
            )
        )
    if scaler is not None and type(scaler).__name__ == "Normalization":
        found += _scaled_twice(scaler, flat)
    if x_test is not None:
        test = x_test.reshape(len(x_test), -1)
        if test.shape[1] == flat.shape[1]:
            found += _skew(flat, test)
    return found


def _adapted_stats(layer) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        mean = np.asarray(layer.mean, dtype="float64").ravel()
        var = np.asarray(layer.variance, dtype="float64").ravel()
    except Exception:  # noqa: BLE001 - not adapted yet, or built another way
        return None
    return mean, var


def _scaled_twice(layer, flat) -> list[Finding]:
    stats = _adapted_stats(layer)
    if stats is None or stats[0].shape[0] != flat.shape[1]:
        return []
    mean, var = stats
    std = np.sqrt(np.maximum(var, 1e-12))
    z = np.abs(flat.mean(axis=0) - mean) / std
    spread = flat.std(axis=0) / std
    if np.median(z) > SKEW_Z or np.median(spread) < 1 / 20:
        return [
            Finding(
                "INPUT_SKEW",
                f"the model's Normalization layer expects features around its adapted means, "
                f"but these inputs sit a median {np.median(z):.1f} standard deviations away "
                f"with {np.median(spread):.2g} times the spread: were they scaled before "
                "reaching a model that scales them itself?",
                "hand the model raw inputs, exactly as it will get them when served; its "
                "Normalization layer does the scaling",
            )
        ]
    return []


def _skew(train, test) -> list[Finding]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    varying = std > 1e-8
    if not varying.any():
        return []
    z = np.abs(test.mean(axis=0)[varying] - mean[varying]) / std[varying]
    ratio = test.std(axis=0)[varying] / std[varying]
    if np.median(z) > SKEW_Z or not 1 / 5 < np.median(ratio) < 5:
        return [
            Finding(
                "INPUT_SKEW",
                f"the test inputs are on another scale than the training inputs: their "
                f"feature means sit a median {np.median(z):.1f} training standard deviations "
                f"away, with {np.median(ratio):.2g} times the spread (train/serve skew)",
                "apply the very same scaling to every split, best by putting it inside the "
                "model (a Normalization or Rescaling layer) and feeding every split raw",
            )
        ]
    return []


def _loss_output(model) -> list[Finding]:
    name, logits, why = _loss_info(model)
    if why:
        return [_not_inspected("the loss against the output layer", why)]
    tail = _output_layers(model)
    acts = [_activation(layer) for layer in tail]
    final = next((a for a in reversed(acts) if a != "linear"), "linear")
    units = _output_units(model)
    crossentropy = "crossentropy" in name
    found = []
    if acts.count("softmax") >= 2 or (acts.count("softmax") and acts.count("sigmoid")):
        found.append(
            Finding(
                "LOSS_OUTPUT_MISMATCH",
                f"the output goes through {' then '.join(a for a in acts if a != 'linear')}: "
                "a second squashing of probabilities leaves them nearly uniform",
                "keep one softmax (Dense(k, activation='softmax')) and drop the extra "
                "Softmax/Activation layer",
            )
        )
    elif crossentropy and logits and final in ("softmax", "sigmoid"):
        found.append(
            Finding(
                "LOSS_OUTPUT_MISMATCH",
                f"the loss ({name}) is built with from_logits=True, but the output layer "
                f"already applies a {final}: the loss squashes probabilities a second time",
                f"either keep the {final} and drop from_logits=True, or end in a linear "
                "Dense layer (raw scores) and keep from_logits=True",
            )
        )
    elif crossentropy and not logits and final == "linear":
        found.append(
            Finding(
                "LOSS_OUTPUT_MISMATCH",
                f"the output layer is linear (raw scores), but the loss ({name}) reads "
                "probabilities",
                "build the loss with from_logits=True (e.g. keras.losses."
                "SparseCategoricalCrossentropy(from_logits=True)), or end in a softmax/sigmoid",
            )
        )
    elif final == "softmax" and units == 1:
        found.append(
            Finding(
                "LOSS_OUTPUT_MISMATCH",
                "the output is a softmax over one unit, which is always exactly 1: the model "
                "cannot say anything",
                "for two classes use Dense(1, activation='sigmoid') with binary_crossentropy",
            )
        )
    elif "categorical" in name and units == 1:
        found.append(
            Finding(
                "LOSS_OUTPUT_MISMATCH",
                f"the loss ({name}) needs one output per class, but the model has one output",
                "for two classes use binary_crossentropy; for k classes end in Dense(k)",
            )
        )
    return found


def _labels(model, y) -> list[Finding]:
    name, _, why = _loss_info(model)
    if why or "crossentropy" not in name:
        return []  # said once by _loss_output; other losses read any numbers
    units = _output_units(model)
    finite = y[np.isfinite(y)]
    if finite.size == 0:
        return []
    integers = finite.size > 0 and np.all(finite == np.round(finite))
    column = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    if name.startswith("sparsecategorical"):
        if y.ndim >= 2 and y.shape[-1] > 1:
            return [
                Finding(
                    "LABELS_LOSS_MISMATCH",
                    f"the labels are shaped {y.shape} (one-hot?), but {name} reads one "
                    "integer class per example",
                    "use categorical_crossentropy for one-hot labels, or pass integer labels "
                    "(y.argmax(axis=-1))",
                )
            ]
        if not integers or finite.min() < 0 or (units is not None and finite.max() >= units):
            return [
                Finding(
                    "LABELS_LOSS_MISMATCH",
                    f"{name} needs integer labels from 0 to {units - 1 if units else 'k-1'}, "
                    f"but they run from {finite.min():g} to {finite.max():g}",
                    "give the last layer one unit per class and label the classes 0..k-1",
                )
            ]
    elif name.startswith("categorical"):
        if column and (units is None or units > 1):
            return [
                Finding(
                    "LABELS_LOSS_MISMATCH",
                    f"the labels are one integer per example (shape {y.shape}), but {name} "
                    "reads one-hot rows (one column per class)",
                    "compile with loss='sparse_categorical_crossentropy', or one-hot the "
                    "labels with keras.utils.to_categorical(y)",
                )
            ]
        if units is not None and y.shape[-1] != units:
            return [
                Finding(
                    "LABELS_LOSS_MISMATCH",
                    f"the labels have {y.shape[-1]} columns but the model has {units} outputs",
                    "one-hot the labels with as many columns as the model has classes",
                )
            ]
    elif name.startswith("binary"):
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            return [
                Finding(
                    "LABELS_LOSS_MISMATCH",
                    f"{name} reads labels between 0 and 1, but they run from {finite.min():g} "
                    f"to {finite.max():g}",
                    "for more than two classes use sparse_categorical_crossentropy and a "
                    "softmax over one unit per class",
                )
            ]
    return []


def _overlap(x, x_test) -> list[Finding]:
    train = np.ascontiguousarray(x.reshape(len(x), -1).astype("float32"))
    test = np.ascontiguousarray(x_test.reshape(len(x_test), -1).astype("float32"))
    if train.shape[1] != test.shape[1]:
        return [_not_inspected("train/test overlap", "the splits have different row shapes")]
    seen = {row.tobytes() for row in train}
    shared = sum(row.tobytes() in seen for row in test)
    if shared / len(test) >= OVERLAP_FRACTION:
        return [
            Finding(
                "TRAIN_TEST_OVERLAP",
                f"{shared} of {len(test)} test rows ({shared / len(test):.0%}) are also "
                "training rows: a score on them measures memory, not generalization",
                "evaluate on rows the model never trained on: split once, before anything "
                "else, and keep the test split out of fit() and adapt()",
            )
        ]
    return []


def _leak(model, x, x_test) -> list[Finding]:
    scaler = _scaler(model)
    if scaler is None or type(scaler).__name__ != "Normalization":
        return []
    stats = _adapted_stats(scaler)
    train = x.reshape(len(x), -1)
    test = x_test.reshape(len(x_test), -1)
    if stats is None or not stats[0].shape[0] == train.shape[1] == test.shape[1]:
        return []
    mean, var = stats
    scale = np.sqrt(np.maximum(train.var(axis=0), 1e-12))

    def gap(rows):
        return float(np.median(np.abs(rows.mean(axis=0) - mean) / scale))

    own, on_test, on_both = gap(train), gap(test), gap(np.concatenate([train, test]))
    if min(on_test, on_both) < 1e-3 and own > 10 * min(on_test, on_both):
        which = "the test rows" if on_test <= on_both else "the training and test rows together"
        return [
            Finding(
                "TEST_STATISTICS_LEAK",
                f"the model's Normalization layer was adapted on {which}: its means match "
                f"them (median gap {min(on_test, on_both):.1e} standard deviations), not the "
                f"training rows' ({own:.1e})",
                "adapt the scaler on the training rows only (normalize.adapt(x_train)); the "
                "test split must play no part before the final evaluation",
            )
        ]
    return []


def _not_inspected(what: str, why: str) -> Finding:
    if "not compiled" in why:
        fix = "compile the model (optimizer, loss) before diagnosing it, as before fit()"
    else:
        fix = (
            "pass NumPy arrays (or a batched tf.data pipeline of (inputs, labels)) and a "
            "compiled single-input, single-output Keras model"
        )
    return Finding("NOT_INSPECTED", f"could not check {what}: {why}", fix)


# --------------------------------------------------------------------------- entry point


def diagnose(model, x, y=None, *, x_test=None) -> Findings:
    """Check a training setup for common mistakes, before training it.

    Args:
        model: a compiled Keras model (Sequential or Functional).
        x: the training inputs (NumPy array), or a batched ``tf.data.Dataset`` of
            ``(inputs, labels)``, in which case ``y`` is read from it.
        y: the training labels (ignored for a dataset).
        x_test: the inputs the model will be evaluated or served on, if known (array or
            dataset): enables the skew, overlap and leak checks.

    Returns:
        A :class:`Findings` list of :class:`Finding` (empty when nothing is wrong). The
        model is never called, trained or changed.
    """
    found = Findings()
    try:
        import keras

        if not isinstance(model, keras.Model):
            found.append(_not_inspected("the model", f"got a {type(model).__name__}"))
            return found
        if _is_dataset(x):
            x, y_ds, why = _from_dataset(x)
            if why:
                found.append(_not_inspected("the training data", f"the tf.data pipeline: {why}"))
            y = y_ds if y is None else y
        if _is_dataset(x_test):
            x_test, _, why = _from_dataset(x_test)
            if why:
                found.append(_not_inspected("the test data", f"the tf.data pipeline: {why}"))
        found += _loss_output(model)
        xs, why_x = _to_array(x, "x")
        ys, why_y = _to_array(y, "y")
        xt, why_t = _to_array(x_test, "x_test")
        for why in (why_x, why_y, why_t):
            if why:
                found.append(_not_inspected("the data", why))
        if xs is not None:
            found += _scaling(model, xs, xt)
        if ys is not None:
            found += _labels(model, ys)
        if xs is not None and xt is not None:
            found += _overlap(xs, xt)
            found += _leak(model, xs, xt)
    except Exception as exc:  # noqa: BLE001 - a diagnosis never raises: it says what failed
        found.append(
            _not_inspected("everything", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        )
    return found
