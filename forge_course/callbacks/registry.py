"""Register the trained model in the SQL registry when ``fit()`` ends, for lesson 11.

``RegistryCallback("digits_mlp", params={"units": 32})`` in ``fit(callbacks=[...])``
stores the model as the next version of ``digits_mlp`` with the final epoch's metrics
(``accuracy``, ``loss``, ``val_accuracy``, ...) and the training parameters: yours, plus
what ``fit()`` and the optimizer know (epochs run, steps per epoch, optimizer, learning
rate). A run that diverged (a NaN loss) is not registered: the callback says so instead.
"""

from __future__ import annotations

import math
from typing import Any

import keras

__all__ = ["RegistryCallback"]


class RegistryCallback(keras.callbacks.Callback):
    """Register the model with its final metrics and training parameters at the end of fit().

    Args:
        name: the model's name in the registry.
        registry: a :class:`~forge_course.registry.ModelRegistry`; default: a new one on
            ``url`` (``$FORGE_REGISTRY_URL``, else ``runs/registry.db``).
        params: extra training parameters to record (batch size, units, seed, ...).
        url: the database, when ``registry`` is not given.
        verbose: print one line naming the version registered.

    After ``fit()``, ``version`` and ``record`` hold what was registered (None if nothing).
    """

    def __init__(
        self,
        name: str,
        *,
        registry=None,
        params: dict[str, Any] | None = None,
        url: str | None = None,
        verbose: bool = True,
    ):
        super().__init__()
        from forge_course.registry import ModelRegistry
        from forge_course.registry.records import check_name, check_params

        self.name = check_name(name)
        self.extra = check_params(params)
        self.registry = registry if registry is not None else ModelRegistry(url)
        self.verbose = verbose
        self.version: int | None = None
        self.record = None
        self._epochs_run = 0

    def on_train_begin(self, logs=None):
        self._epochs_run = 0
        self.version = None
        self.record = None

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_run = epoch + 1

    def training_params(self) -> dict[str, Any]:
        """What this run was trained with: fit()'s settings, the optimizer, your params."""
        out: dict[str, Any] = {}
        fit = dict(self.params or {})
        if fit.get("epochs") is not None:
            out["epochs"] = int(fit["epochs"])
        out["epochs_run"] = self._epochs_run
        if fit.get("steps") is not None:
            out["steps_per_epoch"] = int(fit["steps"])
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            out["optimizer"] = type(optimizer).__name__
            try:
                rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                out["learning_rate"] = float(f"{rate:.7g}")  # float32's digits, not 0.0010000000474
            except (TypeError, ValueError, AttributeError):
                pass
        loss = getattr(self.model, "loss", None)
        if isinstance(loss, str):
            out["loss"] = loss
        out.update(self.extra)
        return out

    def on_train_end(self, logs=None):
        scores = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        bad = sorted(k for k, v in scores.items() if not math.isfinite(v))
        if not scores or bad:
            why = f"non-finite {', '.join(bad)}" if bad else "no metrics in the final logs"
            print(f"RegistryCallback: {self.name} not registered ({why})")
            return
        self.version = self.registry.register(
            self.model, self.name, metrics=scores, params=self.training_params()
        )
        self.record = self.registry.get(f"{self.name}/{self.version}")
        if self.verbose:
            print(f"RegistryCallback: registered {self.record.summary()}")


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
