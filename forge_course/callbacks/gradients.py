"""Record every layer's gradient norm while a model trains, for lesson 08.

Why a probe batch: ``fit()`` computes its gradients inside its compiled training step and
applies them at once; a callback is handed the model and the logs, never the gradients.
So :class:`GradientNormLogger` computes gradients itself, with ``tf.GradientTape``, on one
fixed *probe batch* you give it: once before training and after every epoch. The other
way is a custom ``train_step`` that stores the gradients it applies; it sees the real
gradients of every step, but it changes the model's class, works with that model only,
and its numbers move with each random batch. A fixed probe gives numbers comparable
from epoch to epoch and from model to model, works with any model and any ``fit()``
call, and leaves training untouched (the probe's forward pass runs in training mode, as
``fit()``'s does, and its side effects on non-trainable state such as BatchNormalization's
moving statistics are undone). Its cost: one forward and backward pass per epoch.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = ["GradientNormLogger", "kernel_layers"]


def kernel_layers(model) -> list:
    """The layers of ``model`` that hold a trainable ``kernel``, in order (nested models too)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model) or (
            hasattr(layer, "layers") and not hasattr(layer, "kernel")
        ):
            found.extend(kernel_layers(layer))
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and getattr(kernel, "trainable", False) and layer.trainable:
            found.append(layer)
    return found


class GradientNormLogger(keras.callbacks.Callback):
    """Record each layer's kernel gradient norm (and how far its kernel moved) every epoch.

    The gradients are those of the model's compiled loss (plus its regularization losses)
    on a fixed probe batch, computed before training and at the end of every epoch: a
    callback cannot see the gradients ``fit()`` applies (see the module's docstring).

    Args:
        x: the probe inputs (a few hundred examples are plenty).
        y: their labels, in the format the model's loss reads.
        loss: the loss to differentiate; default: the one ``compile()`` was given.

    After ``fit()``:

    - ``layer_names``: the layers with a trainable kernel, first to last;
    - ``epochs``: ``[0, 1, ..., n]``, 0 meaning before training;
    - ``norms``: array ``(len(epochs), len(layer_names))``, the L2 norm of each kernel's
      gradient at each record;
    - ``changes``: the same shape, each kernel's relative change from its starting value,
      ``||W_t - W_0|| / ||W_0||``;
    - :meth:`ratio`: first layer's gradient norm over the last layer's.

    Example::

        logger = GradientNormLogger(x_train[:256], y_train[:256])
        model.fit(x_train, y_train, epochs=5, callbacks=[logger], verbose=0)
        plot_gradient_norms({"sigmoid": logger}); logger.ratio()
    """

    def __init__(self, x, y, *, loss=None) -> None:
        super().__init__()
        self.x = np.asarray(x, dtype="float32")
        self.y = np.asarray(y)
        if len(self.x) != len(self.y):
            raise ValueError(
                f"the probe batch has {len(self.x)} inputs but {len(self.y)} labels; "
                "pass the same rows of x and y"
            )
        self.loss = loss
        self.layer_names: list[str] = []
        self.epochs: list[int] = []
        self._norms: list[list[float]] = []
        self._changes: list[list[float]] = []
        self._start: list[np.ndarray] = []

    # ------------------------------------------------------------------ results

    @property
    def norms(self) -> np.ndarray:
        return np.asarray(self._norms, dtype="float64").reshape(-1, len(self.layer_names))

    @property
    def changes(self) -> np.ndarray:
        return np.asarray(self._changes, dtype="float64").reshape(-1, len(self.layer_names))

    def ratio(self, record: int = -1) -> float:
        """First layer's gradient norm divided by the last layer's, at one record."""
        if not self._norms:
            raise ValueError("no gradients recorded yet: pass the logger to fit(callbacks=[...])")
        row = self._norms[record]
        return float(row[0] / row[-1]) if row[-1] > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, for JSON or :func:`forge_course.plots.plot_gradient_norms`."""
        return {
            "layer_names": list(self.layer_names),
            "epochs": list(self.epochs),
            "norms": self.norms.tolist(),
            "changes": self.changes.tolist(),
        }

    # ------------------------------------------------------------------ measuring

    def measure(self, model=None) -> np.ndarray:
        """The kernel gradient norms of ``model`` (default: the one training) on the probe."""
        import tensorflow as tf

        model = model if model is not None else self.model
        layers = kernel_layers(model)
        kernels = [layer.kernel for layer in layers]
        loss_fn = self._loss_fn(model)
        state = [v.numpy() for v in model.non_trainable_variables]
        try:
            with tf.GradientTape() as tape:
                pred = model(self.x, training=True)
                loss = loss_fn(self.y, pred)
                if model.losses:
                    loss = loss + tf.add_n([tf.cast(v, loss.dtype) for v in model.losses])
            grads = tape.gradient(loss, kernels)
        finally:  # BatchNormalization's moving statistics, dropout seeds: as they were
            for v, value in zip(model.non_trainable_variables, state, strict=True):
                v.assign(value)
        return np.array([0.0 if g is None else float(tf.norm(g)) for g in grads], dtype="float64")

    def _loss_fn(self, model):
        loss = self.loss if self.loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "GradientNormLogger needs a loss: compile the model first, or pass "
                "GradientNormLogger(x, y, loss=...)"
            )
        fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        if not callable(fn):
            raise ValueError(
                f"GradientNormLogger cannot differentiate the loss {loss!r} (one output "
                "only); pass loss=... explicitly"
            )
        return lambda y, p: keras.ops.mean(fn(y, p))

    def _record(self, epoch: int) -> None:
        layers = kernel_layers(self.model)
        kernels = [layer.kernel.numpy() for layer in layers]
        if epoch == 0 or not self._start:
            self._start = [k.copy() for k in kernels]
        self.epochs.append(epoch)
        self._norms.append(self.measure().tolist())
        self._changes.append(
            [
                float(np.linalg.norm(k - k0) / max(np.linalg.norm(k0), 1e-12))
                for k, k0 in zip(kernels, self._start, strict=True)
            ]
        )

    # ------------------------------------------------------------------ callback hooks

    def on_train_begin(self, logs=None) -> None:
        self.layer_names = [layer.name for layer in kernel_layers(self.model)]
        if not self.layer_names:
            raise ValueError("this model has no layer with a trainable kernel to watch")
        self.epochs, self._norms, self._changes, self._start = [], [], [], []
        self._record(0)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self._record(epoch + 1)
