"""Exercise 06: callbacks that keep the best, stop early for a measured saving, and a repair.

The ladder: train with EarlyStopping and a ModelCheckpoint and hand in the restored and
the reloaded model (apply), configure early stopping that saves at least 40 % of a
fixed budget's epochs for at most 0.01 validation accuracy lost (target), and repair a
cell whose callbacks should stop at a target accuracy and keep the best weights but
quietly do neither (debug).

How many epochs a model trained is read from the model itself: its optimizer's step
counter (``optimizer.iterations``) travels inside the ``.keras`` file, and one epoch is
``ceil(rows / BATCH_SIZE)`` steps. Submitted per-epoch logs are checked against it.
"""

from __future__ import annotations

import math

import numpy as np

from forge_course.grading.checks import flat_digits, maps_wrong_shapes, predict
from forge_course.grading.spec import Check, Exercise, Task

SAVE_AT_LEAST = 0.4  # share of the budget's epochs early stopping must save ...
MAX_ACCURACY_LOST = 0.01  # ... for at most this much validation accuracy
MAX_TEST_LOST = 0.03  # hidden: the same on the test images, with room for noise
TARGET = 0.94  # task 3: stop at the first epoch whose validation accuracy reaches this
MIN_TEST_ACCURACY = 0.9  # a trained digits model clears this easily
LOSS_RTOL = 2e-3  # a loss recomputed here against the one fit() logged


def digit_rows() -> tuple[np.ndarray, ...]:
    """(x_fit, y_fit, x_val, y_val): the digits' training split, flattened, cut in two.

    The last fifth validates, as in the lesson and the exercise notebook.
    """
    x, y = flat_digits("train")
    n_val = len(x) // 5
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


def steps_per_epoch(p) -> int:
    """Optimizer steps in one epoch over the fit rows at the grading batch size."""
    return math.ceil(len(digit_rows()[0]) / p["BATCH_SIZE"])


def epochs_trained(model, p) -> float:
    """How many epochs ``model`` trained, from its optimizer's step counter (0 if none)."""
    optimizer = getattr(model, "optimizer", None)
    steps = int(getattr(optimizer, "iterations", 0)) if optimizer is not None else 0
    return steps / steps_per_epoch(p)


def _digit_model(model) -> str | None:
    return maps_wrong_shapes(model, (64,), (10,), "64 pixels in, 10 classes out")


def _probs(model, x) -> np.ndarray:
    return predict(model, x).reshape(len(x), -1)


def val_loss(model) -> float:
    """Cross-entropy of ``model``'s softmax outputs on the validation rows."""
    _, _, x_val, y_val = digit_rows()
    probs = np.clip(_probs(model, x_val), 1e-7, 1.0)
    return float(-np.mean(np.log(probs[np.arange(len(y_val)), y_val.astype(int)])))


def accuracy_on(model, split: str) -> float:
    """Accuracy of ``model`` on the validation rows (``"val"``) or the test images."""
    if split == "val":
        _, _, x, y = digit_rows()
    else:
        x, y = flat_digits("test")
    return float(np.mean(_probs(model, x).argmax(axis=-1) == y.astype(int)))


def _numbers(values, name: str) -> tuple[list[float] | None, str | None]:
    """The per-epoch values fit() logged, as floats, or what is wrong with them."""
    arr = np.asarray(values)
    ok = arr.ndim == 1 and len(arr) >= 1 and np.issubdtype(arr.dtype, np.number)
    if not ok or not np.isfinite(arr).all():
        return None, (
            f"{name} should hold one number per epoch, as fit() logged them "
            f"(history.history[...]), got shape {arr.shape}"
        )
    return [float(a) for a in arr], None


# ---------------------------------------------------------------- ex06_1 apply


def _matches_best(model, losses, who: str) -> str | None:
    best, score = min(losses), val_loss(model)
    if not np.isclose(score, best, rtol=LOSS_RTOL, atol=1e-4):
        epoch = losses.index(best) + 1
        return (
            f"{who} scores a validation loss of {score:.4f}, but the best epoch ({epoch}) "
            f"scored {best:.4f}"
        )
    return None


def _restored(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    losses, bad = _numbers(v["val_losses"], "val_losses")
    return bad or _matches_best(v["model"], losses, "the model fit() returned")


def _checkpoint(v, p):
    if bad := _digit_model(v["checkpoint"]):
        return bad
    losses, bad = _numbers(v["val_losses"], "val_losses")
    return bad or _matches_best(v["checkpoint"], losses, "the model reloaded from the .keras file")


def _checkpoint_test(v, p):
    if bad := _digit_model(v["checkpoint"]):
        return bad
    acc = accuracy_on(v["checkpoint"], "test")
    if acc < MIN_TEST_ACCURACY:
        return (
            f"the checkpoint's test accuracy is {acc:.3f}; a trained model reaches "
            f"{MIN_TEST_ACCURACY}"
        )


# ---------------------------------------------------------------- ex06_2 target


def _budget(v, p) -> str | None:
    if bad := _digit_model(v["budget_model"]) or _digit_model(v["model"]):
        return bad
    ran = epochs_trained(v["budget_model"], p)
    if not np.isclose(ran, p["EPOCHS"]):
        return (
            f"budget_model trained {ran:g} epochs of batch size {p['BATCH_SIZE']}; the fixed "
            f"budget is EPOCHS = {p['EPOCHS']} (run the given cell unchanged)"
        )
    return None


def _saves_epochs(v, p):
    if bad := _budget(v, p):
        return bad
    ran, allowed = epochs_trained(v["model"], p), (1 - SAVE_AT_LEAST) * p["EPOCHS"]
    if ran == 0:
        return "model has not been trained (compile it and call fit)"
    if ran > allowed + 1e-9:
        return (
            f"model trained {ran:g} epochs of the budget's {p['EPOCHS']}: that saves "
            f"{1 - ran / p['EPOCHS']:.0%}, the bar is {SAVE_AT_LEAST:.0%} "
            f"(at most {allowed:g} epochs)"
        )


def _accuracy_kept(v, p):
    if bad := _budget(v, p):
        return bad
    ours, theirs = accuracy_on(v["model"], "val"), accuracy_on(v["budget_model"], "val")
    if ours < theirs - MAX_ACCURACY_LOST - 1e-9:
        return (
            f"validation accuracy {ours:.3f} against the budget's {theirs:.3f}: that gives up "
            f"{theirs - ours:.3f}, the bar is {MAX_ACCURACY_LOST}"
        )


def _test_kept(v, p):
    if bad := _budget(v, p):
        return bad
    ours, theirs = accuracy_on(v["model"], "test"), accuracy_on(v["budget_model"], "test")
    if ours < theirs - MAX_TEST_LOST:
        return f"test accuracy {ours:.3f} against the budget's {theirs:.3f}"


# ---------------------------------------------------------------- ex06_3 debug


def _history(v, p) -> tuple[list[float] | None, str | None]:
    if bad := _digit_model(v["model"]):
        return None, bad
    accs, bad = _numbers(v["val_accuracy"], "val_accuracy")
    if bad:
        return None, bad
    ran = epochs_trained(v["model"], p)
    if not np.isclose(ran, len(accs)):
        return None, (
            f"val_accuracy has {len(accs)} epochs but the model trained {ran:g}; hand in the "
            "model and the history of the same fit() call"
        )
    return accs, None


def _stops_at_target(v, p):
    accs, bad = _history(v, p)
    if bad:
        return bad
    reached = [i for i, a in enumerate(accs) if a >= TARGET]
    if not reached:
        return (
            f"validation accuracy never reached {TARGET} in {len(accs)} epochs "
            f"(best {max(accs):.3f})"
        )
    if reached[0] != len(accs) - 1:
        return (
            f"validation accuracy reached {TARGET} at epoch {reached[0] + 1}, but training "
            f"went on to epoch {len(accs)}"
        )


def _best_weights(v, p):
    accs, bad = _history(v, p)
    if bad:
        return bad
    n_val = len(digit_rows()[3])
    ours = accuracy_on(v["model"], "val")
    if abs(ours - max(accs)) > 1.5 / n_val:
        best = accs.index(max(accs)) + 1
        return (
            f"the model scores {ours:.3f} on the validation rows; its best epoch ({best}) "
            f"scored {max(accs):.3f}"
        )
    if ours < TARGET:
        return f"the model scores {ours:.3f} on the validation rows; the target is {TARGET}"


def _debug_test(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    acc = accuracy_on(v["model"], "test")
    if acc < TARGET - 0.04:
        return f"test accuracy {acc:.3f}; a model that reached the target scores {TARGET - 0.04}"


EXERCISE = Exercise(
    name="06_callbacks",
    params={"SEED": 0, "EPOCHS": 40, "BATCH_SIZE": 64},
    timeout=240.0,
    tasks=(
        Task(
            "ex06_1", "apply", "keep the best: EarlyStopping and a ModelCheckpoint",
            {"model": "model", "checkpoint": "model", "val_losses": "array"},
            (
                Check(
                    "restored", _restored,
                    description="the model fit() returns scores the best epoch's validation loss",
                    hints=(
                        "fit() ends with the last epoch's weights unless a callback puts the "
                        "best ones back.",
                        "`keras.callbacks.EarlyStopping(monitor='val_loss', patience=..., "
                        "restore_best_weights=True)`",
                        "`model.fit(..., callbacks=[stopper, checkpoint])`, then "
                        "`val_losses = history.history['val_loss']`",
                    ),
                ),
                Check(
                    "checkpoint", _checkpoint,
                    description="the model reloaded from the .keras checkpoint scores the best "
                    "validation loss",
                    hints=(
                        "A checkpoint written at every epoch ends up holding the last epoch; "
                        "write it only when the monitored value improves.",
                        "`keras.callbacks.ModelCheckpoint(path, monitor='val_loss', "
                        "save_best_only=True)` with a path ending in `.keras`",
                        "`checkpoint = keras.saving.load_model(path)` after fit()",
                    ),
                ),
                Check(
                    "test_accuracy", _checkpoint_test, hidden=True,
                    description=f"the checkpoint's test accuracy at least {MIN_TEST_ACCURACY}",
                ),
            ),
        ),
        Task(
            "ex06_2", "target", "early stopping that pays for itself",
            {"budget_model": "model", "model": "model"},
            (
                Check(
                    "saves_epochs", _saves_epochs, points=2,
                    description=f"model trains at most {1 - SAVE_AT_LEAST:.0%} of the budget's "
                    "epochs (its optimizer's step count says how many)",
                    hints=(
                        "Stopping sooner means giving up waiting for an improvement sooner.",
                        "`EarlyStopping`'s `patience` is how many epochs without a better "
                        "value it waits; `min_delta` sets how much better counts.",
                        "`keras.callbacks.EarlyStopping(monitor='val_loss', patience=3, "
                        "restore_best_weights=True)`",
                    ),
                ),
                Check(
                    "accuracy_kept", _accuracy_kept, points=2,
                    description=f"validation accuracy at most {MAX_ACCURACY_LOST} below "
                    "budget_model's",
                    hints=(
                        "Stopping early is cheap only if the model you keep is the best one seen, "
                        "not the last one.",
                        "`restore_best_weights=True`; and a patience too small may stop before "
                        "the curve has flattened.",
                        "compare `model.evaluate(x_val, y_val)` with "
                        "`budget_model.evaluate(x_val, y_val)`",
                    ),
                ),
                Check(
                    "test_kept", _test_kept, hidden=True,
                    description=f"test accuracy at most {MAX_TEST_LOST} below budget_model's",
                ),
            ),
        ),
        Task(
            "ex06_3", "debug", "repair the callbacks that should stop at a target",
            {"model": "model", "val_accuracy": "array"},
            (
                Check(
                    "stops_at_target", _stops_at_target, points=2,
                    description=f"training stops at the first epoch whose validation accuracy "
                    f"reaches {TARGET}",
                    hints=(
                        "Validation accuracy exists once per epoch, after the validation round; "
                        "look at when the callback looks for it.",
                        "Batch hooks see training metrics only; `on_epoch_end(self, epoch, logs)` "
                        "sees `logs['val_accuracy']`.",
                        "`def on_epoch_end(self, epoch, logs=None):` then "
                        "`if logs['val_accuracy'] >= self.target: self.model.stop_training = True`",
                    ),
                ),
                Check(
                    "best_weights", _best_weights, points=3,
                    description="the model handed in scores the best validation accuracy of "
                    f"its run, at least {TARGET}",
                    hints=(
                        "For an accuracy, better means higher: ask what the stopper thinks "
                        "'best' means.",
                        "`EarlyStopping(mode=...)`: 'min' suits losses, 'max' suits accuracies, "
                        "'auto' guesses from the name.",
                        "`keras.callbacks.EarlyStopping(monitor='val_accuracy', mode='max', "
                        "patience=3, restore_best_weights=True)`",
                    ),
                ),
                Check(
                    "test_accuracy", _debug_test, hidden=True,
                    description=f"test accuracy at least {TARGET - 0.04:.2f}",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _model(epochs: int = 0, p=None, units: int = 10):
    """A digits model trained ``epochs`` epochs on the fit rows (0: untrained)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(units, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    if epochs:
        x_fit, y_fit, _, _ = digit_rows()
        model.fit(x_fit, y_fit, epochs=epochs, batch_size=p["BATCH_SIZE"], verbose=0)
    return model


FAILING = {
    "ex06_1.restored": lambda p: {  # untrained: nowhere near the logged best
        "model": _model(), "checkpoint": _model(), "val_losses": np.array([0.5, 0.2, 0.3]),
    },
    "ex06_1.checkpoint": lambda p: {
        "model": _model(), "checkpoint": _model(), "val_losses": np.array([0.5, 0.2, 0.3]),
    },
    "ex06_1.test_accuracy": lambda p: {
        "model": _model(), "checkpoint": _model(), "val_losses": np.array([0.5, 0.2]),
    },
    "ex06_2.saves_epochs": lambda p: {  # the budget model handed in twice
        "budget_model": _model(p["EPOCHS"], p), "model": _model(p["EPOCHS"], p),
    },
    "ex06_2.accuracy_kept": lambda p: {  # one epoch: cheap, and much worse
        "budget_model": _model(p["EPOCHS"], p), "model": _model(1, p),
    },
    "ex06_2.test_kept": lambda p: {"budget_model": _model(p["EPOCHS"], p), "model": _model(1, p)},
    "ex06_3.stops_at_target": lambda p: {  # went on past the target
        "model": _model(3, p), "val_accuracy": np.array([0.5, 0.95, 0.96]),
    },
    "ex06_3.best_weights": lambda p: {  # the history claims more than the model scores
        "model": _model(2, p), "val_accuracy": np.array([0.5, 0.99]),
    },
    "ex06_3.test_accuracy": lambda p: {"model": _model(), "val_accuracy": np.array([0.5])},
}  # fmt: skip
