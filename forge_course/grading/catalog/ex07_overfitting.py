"""Exercise 07: regularize a model that memorizes, cut its gap to a bar, repair a bad recipe.

All three tasks use the lesson's regime: a few digit images, some with wrong labels, and a
big model. The ladder: add Dropout and an L2 penalty (apply), bring the generalization gap
under a bar without giving up validation accuracy (target), and repair a regularized model
that learns almost nothing because three of its choices are wrong (debug).

Every accuracy is computed here, on the very rows the notebook trains and validates on
(:func:`noisy_digits` builds them for both), and hidden checks use the test images.
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import dataset, maps_wrong_shapes, predict
from forge_course.grading.spec import Check, Exercise, Task

TRAIN_ROWS = 120
VAL_ROWS = 400
LABEL_NOISE = 0.3
NOISE_SEED = 0  # the same wrong labels for everyone, whatever SEED the grader injects
MAX_GAP = 0.15  # task 2: train minus validation accuracy at most this ...
MIN_VAL_ACCURACY = 0.68  # ... with validation accuracy at least this
MIN_TEST_ACCURACY = 0.62  # hidden, on the test images
MIN_TRAINED = 0.55  # task 1: the regularized model still learnt something
MAX_DEBUG_GAP = 0.2  # task 3: still regularized (the plain model's gap is far larger)


def noisy_digits() -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val): the lesson's regime, images shaped (n, 8, 8, 1).

    ``TRAIN_ROWS`` training images whose labels are wrong for a ``LABEL_NOISE`` share
    (always another class), and ``VAL_ROWS`` validation images with their true labels.
    """
    ds = dataset("digits")
    images = ds.x_train[..., None].astype("float32") / 255
    y = ds.y_train.astype(int)
    rng = np.random.default_rng(NOISE_SEED)
    flipped = rng.random(TRAIN_ROWS) < LABEL_NOISE
    y_train = y[:TRAIN_ROWS].copy()
    y_train[flipped] = (y_train[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return images[:TRAIN_ROWS], y_train, images[-VAL_ROWS:], y[-VAL_ROWS:]


def _digit_model(model) -> str | None:
    return maps_wrong_shapes(model, (8, 8, 1), (10,), "8x8x1 images in, 10 classes out")


def accuracy(model, x, y) -> float:
    """Accuracy in inference mode (no dropout, no augmentation)."""
    return float(np.mean(predict(model, x).reshape(len(x), -1).argmax(axis=-1) == y))


def train_val(model) -> tuple[float, float]:
    """Accuracy on the (noisy) training labels and on the validation rows."""
    x_train, y_train, x_val, y_val = noisy_digits()
    return accuracy(model, x_train, y_train), accuracy(model, x_val, y_val)


def test_accuracy(model) -> float:
    ds = dataset("digits")
    return accuracy(model, ds.x_test[..., None].astype("float32") / 255, ds.y_test.astype(int))


def _layers(model, kind: str) -> list:
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def l2_factors(model) -> list[float]:
    """The L2 factor of each layer's kernel regularizer (0.0 where there is none)."""
    factors = []
    for layer in model.layers:
        reg = getattr(layer, "kernel_regularizer", None)
        factors.append(float(getattr(reg, "l2", 0.0) or 0.0) if reg is not None else 0.0)
    return factors


# ---------------------------------------------------------------- ex07_1 apply


def _has_dropout(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    rates = [float(layer.rate) for layer in _layers(v["model"], "Dropout")]
    if not any(0.0 < r < 1.0 for r in rates):
        return f"no Dropout layer with a rate between 0 and 1 (rates found: {rates or 'none'})"


def _has_l2(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    if not any(f > 0 for f in l2_factors(v["model"])):
        return "no layer has a kernel_regularizer with an L2 factor above 0"


def _trained(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    _, val = train_val(v["model"])
    if val < MIN_TRAINED:
        return f"validation accuracy {val:.3f}; a trained model reaches {MIN_TRAINED}"


# ---------------------------------------------------------------- ex07_2 target


def _gap(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    train, val = train_val(v["model"])
    if train - val > MAX_GAP:
        return (
            f"train accuracy {train:.3f} - validation accuracy {val:.3f} = gap "
            f"{train - val:.3f}; the bar is {MAX_GAP}"
        )


def _val_accuracy(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    _, val = train_val(v["model"])
    if val < MIN_VAL_ACCURACY:
        return f"validation accuracy {val:.3f}; the bar is {MIN_VAL_ACCURACY}"


def _test(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    acc = test_accuracy(v["model"])
    if acc < MIN_TEST_ACCURACY:
        return f"test accuracy {acc:.3f}; the bar is {MIN_TEST_ACCURACY}"


# ---------------------------------------------------------------- ex07_3 debug


def _learns(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    train, val = train_val(v["model"])
    if val < MIN_VAL_ACCURACY:
        return f"validation accuracy {val:.3f}; a well-regularized model reaches {MIN_VAL_ACCURACY}"
    if train - val > MAX_DEBUG_GAP:
        return (
            f"validation accuracy {val:.3f}, but the gap is {train - val:.3f} (bar "
            f"{MAX_DEBUG_GAP}): repair the regularization, do not remove it"
        )


def _labels_kept(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    flips = _layers(v["model"], "RandomFlip")
    if flips:
        return (
            f"the model still augments with {len(flips)} RandomFlip layer(s): a mirrored or "
            "upside-down digit is often another digit, or none"
        )
    if not (_layers(v["model"], "Dropout") or any(f > 0 for f in l2_factors(v["model"]))):
        return "the model has neither Dropout nor an L2 penalty left: repair them, keep them"


def _debug_test(v, p):
    if bad := _digit_model(v["model"]):
        return bad
    acc = test_accuracy(v["model"])
    if acc < MIN_TEST_ACCURACY:
        return f"test accuracy {acc:.3f}; the bar is {MIN_TEST_ACCURACY}"


EXERCISE = Exercise(
    name="07_overfitting",
    params={"SEED": 0, "EPOCHS": 20, "BATCH_SIZE": 40},
    timeout=240.0,
    tasks=(
        Task(
            "ex07_1", "apply", "Dropout and an L2 penalty",
            {"model": "model"},
            (
                Check(
                    "dropout", _has_dropout,
                    description="at least one Dropout layer with a rate between 0 and 1",
                    hints=(
                        "Silencing a random share of the hidden units at each step keeps any "
                        "one of them from carrying a memorized example.",
                        "`layers.Dropout(rate)` after a hidden `Dense` layer.",
                        "`layers.Dense(WIDTH, activation='relu'), layers.Dropout(0.5),`",
                    ),
                ),
                Check(
                    "l2", _has_l2,
                    description="at least one layer with an L2 kernel penalty above 0",
                    hints=(
                        "Making large weights cost something in the loss discourages the sharp "
                        "fits that memorization needs.",
                        "`kernel_regularizer=regularizers.L2(factor)` on a `Dense` layer.",
                        "`layers.Dense(WIDTH, activation='relu', "
                        "kernel_regularizer=regularizers.L2(0.01))`",
                    ),
                ),
                Check(
                    "trained", _trained, hidden=True,
                    description=f"validation accuracy at least {MIN_TRAINED}",
                ),
            ),
        ),
        Task(
            "ex07_2", "target", "cut the gap, keep the accuracy",
            {"model": "model"},
            (
                Check(
                    "gap", _gap, points=2,
                    description=f"train minus validation accuracy at most {MAX_GAP}",
                    hints=(
                        "The gap shrinks when the model cannot fit the wrong labels: it needs "
                        "to see many versions of each image, or to stop before it memorizes.",
                        "Augmentation layers such as `layers.RandomTranslation`, or "
                        "`keras.callbacks.EarlyStopping(restore_best_weights=True)`.",
                        "`layers.RandomTranslation(0.125, 0.125, fill_mode='constant')` right "
                        "after `keras.Input(shape=(8, 8, 1))`",
                    ),
                ),
                Check(
                    "val_accuracy", _val_accuracy, points=2,
                    description=f"validation accuracy at least {MIN_VAL_ACCURACY}",
                    hints=(
                        "An untrained model has no gap at all: the gap counts only if the model "
                        "still learns the digits.",
                        "Combine two remedies, e.g. augmentation and Dropout, and keep training "
                        "for the full `EPOCHS`.",
                        "`layers.RandomTranslation(...)`, then the Dense layers each followed by "
                        "`layers.Dropout(0.3)`",
                    ),
                ),
                Check(
                    "test_accuracy", _test, hidden=True,
                    description=f"test accuracy at least {MIN_TEST_ACCURACY}",
                ),
            ),
        ),
        Task(
            "ex07_3", "debug", "repair a regularized model that learns almost nothing",
            {"model": "model"},
            (
                Check(
                    "learns", _learns, points=3,
                    description=f"validation accuracy at least {MIN_VAL_ACCURACY} with a gap "
                    f"at most {MAX_DEBUG_GAP}",
                    hints=(
                        "Regularization is a dose: too much of it leaves nothing to learn with. "
                        "Check each rate and factor against the lesson's.",
                        "`Dropout(rate)` drops `rate` of the units, it does not keep them; an "
                        "`L2` factor of 1 outweighs the whole loss.",
                        "`layers.Dropout(0.5)` and `regularizers.L2(0.01)`, as in the lesson",
                    ),
                ),
                Check(
                    "labels_kept", _labels_kept, points=2,
                    description="augmentation that keeps every label true (and the "
                    "regularization repaired, not removed)",
                    hints=(
                        "An augmented image must still show what its label says.",
                        "Mirror a 2 or turn a 6 upside down and it is no longer the same digit; "
                        "`layers.RandomTranslation` only moves it.",
                        "replace `layers.RandomFlip(...)` by "
                        "`layers.RandomTranslation(0.125, 0.125, fill_mode='constant')`",
                    ),
                ),
                Check(
                    "test_accuracy", _debug_test, hidden=True,
                    description=f"test accuracy at least {MIN_TEST_ACCURACY}",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _model(*, dropout=0.0, l2=0.0, flip=False, epochs=0, p=None):
    """A digits model of the lesson's shape, trained ``epochs`` epochs on the noisy rows."""
    import keras
    from keras import layers, regularizers

    keras.utils.set_random_seed(0)
    stack = [keras.Input(shape=(8, 8, 1))]
    if flip:
        stack.append(layers.RandomFlip("horizontal_and_vertical"))
    stack.append(layers.Flatten())
    reg = regularizers.L2(l2) if l2 else None
    stack.append(layers.Dense(64, activation="relu", kernel_regularizer=reg))
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(10, activation="softmax"))
    model = keras.Sequential(stack)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    if epochs:
        x_train, y_train, _, _ = noisy_digits()
        model.fit(x_train, y_train, epochs=epochs, batch_size=p["BATCH_SIZE"], verbose=0)
    return model


FAILING = {
    "ex07_1.dropout": lambda p: {"model": _model(l2=0.01)},
    "ex07_1.l2": lambda p: {"model": _model(dropout=0.5)},
    "ex07_1.trained": lambda p: {"model": _model(dropout=0.5, l2=0.01)},  # untrained
    "ex07_2.gap": lambda p: {"model": _model(epochs=60, p=p)},  # memorizes the noisy labels
    "ex07_2.val_accuracy": lambda p: {"model": _model()},  # untrained: no gap, no accuracy
    "ex07_2.test_accuracy": lambda p: {"model": _model()},
    "ex07_3.learns": lambda p: {"model": _model(dropout=0.5, l2=0.01, flip=True)},  # untrained
    "ex07_3.labels_kept": lambda p: {"model": _model(dropout=0.5, l2=0.01, flip=True)},
    "ex07_3.test_accuracy": lambda p: {"model": _model(flip=True)},
}  # fmt: skip
