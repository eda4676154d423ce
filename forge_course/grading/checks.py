"""Helpers that several exercises' checks share: data, models, scores.

Every helper returns plain values or a message; none prints. They run in the learner's
kernel (public checks) and in the grader's own process (all checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "maps_wrong_shapes",
    "binary_scores",
    "dataset",
    "flat_digits",
    "from_logits",
    "last_activation",
    "loss_name",
    "not_a_model",
    "predict",
    "screen",
    "validation_rows",
]


def dataset(name: str, **kwargs):
    """A course dataset, loaded quietly (offline under the grader); ``kwargs`` go to load."""
    from forge_course import data

    return data.load(name, verbose=False, **kwargs)


def flat_digits(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits of a split, flattened to 64 pixels in [0, 1], and their labels."""
    ds = dataset("digits")
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    return x.reshape(len(x), -1).astype("float32") / 255.0, y


def validation_rows(n: int, fraction: float) -> int:
    """How many of ``n`` rows Keras's ``validation_split=fraction`` holds out (the last ones)."""
    return n - int(n * (1.0 - fraction))


def not_a_model(value: Any) -> str | None:
    """A message when ``value`` is not a Keras model, else None."""
    import keras

    if not isinstance(value, keras.Model):
        return f"expected a Keras model, got {type(value).__name__}"
    return None


def maps_wrong_shapes(model: Any, inputs: tuple, outputs: tuple, said: str) -> str | None:
    """A message when ``model`` is not a built model mapping ``(None, *inputs)`` to
    ``(None, *outputs)`` (``said`` names both for the learner, e.g. "64 pixels in, 10
    classes out"), else None."""
    if bad := not_a_model(model):
        return bad
    try:
        shapes = (tuple(model.input_shape), tuple(model.output_shape))
    except (AttributeError, ValueError):
        return f"the model was never built; give it keras.Input(shape={tuple(inputs)})"
    if shapes != ((None, *inputs), (None, *outputs)):
        return f"the model maps {shapes[0]} to {shapes[1]}; {said}"
    return None


def predict(model, x) -> np.ndarray:
    """The model's outputs on ``x`` as NumPy, by a direct call (no tf.function to trace).

    Raises:
        ValueError: the model takes inputs of another shape than ``x`` has (one line).
    """
    import keras

    x = np.asarray(x, dtype="float32")
    wants = _input_features(model)
    if wants is not None and wants != x.shape[1:]:
        raise ValueError(
            f"the model takes inputs shaped {(None, *wants)}, but these examples are shaped "
            f"{(None, *x.shape[1:])}; build it for the data this task uses"
        )
    return keras.ops.convert_to_numpy(model(x, training=False))


def _input_features(model) -> tuple | None:
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError):  # a model that was never built
        return None
    if shape and isinstance(shape[0], tuple):  # several inputs: leave it to Keras
        return None
    return tuple(shape[1:])


def binary_scores(model, x) -> np.ndarray:
    """P(label 1) per example from a one-unit sigmoid classifier."""
    return predict(model, x).reshape(len(x), -1)[:, 0]


def accuracy(model, x, y) -> float:
    """Accuracy of a sigmoid (1 unit, threshold 0.5) or softmax (k units) classifier."""
    probs = predict(model, x).reshape(len(x), -1)
    guess = (probs[:, 0] > 0.5) if probs.shape[-1] == 1 else probs.argmax(axis=-1)
    return float(np.mean(guess.astype(int) == np.asarray(y).astype(int)))


def screen(y_true, scores, threshold: float, positive: int = 0) -> tuple[float, float]:
    """Recall and precision of class ``positive`` when label 1 is called at ``scores >= t``.

    The numbers the threshold slider shows: :func:`forge_course.widgets.threshold_metrics`.
    """
    from forge_course.widgets import threshold_metrics

    metrics = threshold_metrics(y_true, scores, threshold, positive=positive)
    return metrics.recall, metrics.precision


def last_activation(model) -> str:
    """The activation the model ends in: ``softmax`` for a Softmax layer, ``""`` for none."""
    last = model.layers[-1] if model.layers else None
    if type(last).__name__ == "Softmax":
        return "softmax"
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def loss_name(model) -> str:
    """The compiled loss of ``model`` as a lower-case name without underscores (or ``""``)."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return ""
    if isinstance(loss, str):
        name = loss
    else:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", type(loss).__name__)
    return str(name).lower().replace("_", "")


def from_logits(model) -> bool:
    """Whether the compiled loss reads raw scores (logits) rather than probabilities."""
    return bool(getattr(getattr(model, "loss", None), "from_logits", False))
