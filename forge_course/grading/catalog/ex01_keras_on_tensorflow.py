"""Exercise 01: what a layer computes, and the training step that ``fit()`` runs.

The ladder: compute a ``tanh`` Dense layer by hand (apply), write a training step that
matches ``fit()`` weight by weight on a model with an L2 penalty (target), and repair a
loop whose loss will not fall (debug).
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import accuracy, flat_digits, not_a_model
from forge_course.grading.spec import Check, Exercise, Task

X_SHAPE = (6, 5)  # the batch of task 1
UNITS = 4
TOLERANCE = 1e-4  # how close to fit()'s weights the hand-written step must end
MIN_FALL = 0.5  # task 3: the last losses must be at most this fraction of the first
MIN_ACCURACY = 0.85  # task 3: digits test accuracy of the repaired loop


def task1_input(seed: int) -> np.ndarray:
    """The batch ``x`` of task 1, the same in the notebook and in the grader."""
    return np.random.default_rng(seed).normal(size=X_SHAPE).astype("float32")


def task1_layer(seed: int):
    """The layer of task 1, built: seeded weights, so the grader rebuilds the very same."""
    import keras

    layer = keras.layers.Dense(
        UNITS,
        activation="tanh",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed),
    )
    layer.build(X_SHAPE)
    return layer


def make_model(seed: int, l2: float):
    """The linear softmax classifier (as logits) of tasks 2 and 3, seeded explicitly."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(
                10,
                kernel_regularizer=keras.regularizers.L2(l2),
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            ),
        ]
    )


def fit_reference(p):
    """What ``fit()`` reaches from the same start, trained in the grader's own process."""
    import keras

    x, y = flat_digits("train")
    model = make_model(p["SEED"], p["L2"])
    model.compile(
        optimizer=keras.optimizers.SGD(p["LEARNING_RATE"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # as in the notebook: XLA's round-off would blur the comparison
    )
    model.fit(x, y, batch_size=p["BATCH_SIZE"], epochs=p["EPOCHS"], shuffle=False, verbose=0)
    return model


def _gap(a, b) -> float:
    pairs = zip(a.get_weights(), b.get_weights(), strict=True)
    return max(float(np.abs(u - w).max()) for u, w in pairs)


# ---------------------------------------------------------------- ex01_1 apply


def _by_hand(v, p):
    got = np.asarray(v["by_hand"])
    if got.shape != (X_SHAPE[0], UNITS):
        return f"by_hand has shape {got.shape}; the layer's output has shape {(X_SHAPE[0], UNITS)}"
    layer = task1_layer(p["SEED"])
    want = np.tanh(task1_input(p["SEED"]) @ layer.kernel.numpy() + layer.bias.numpy())
    if not np.allclose(got, want, atol=1e-5):
        return f"by_hand differs from the layer's output by up to {np.abs(got - want).max():.3g}"


def _parameter_count(v, p):
    if v["n_params"] != X_SHAPE[1] * UNITS + UNITS:
        return f"n_params is {v['n_params']!r}; count the kernel's entries and the biases"


# ---------------------------------------------------------------- ex01_2 target


def _matches_fit(v, p):
    for name in ("mine", "twin"):
        if bad := not_a_model(v[name]):
            return f"{name}: {bad}"
    gap = _gap(v["mine"], v["twin"])
    if not gap < TOLERANCE:
        return f"your weights end up to {gap:.2g} away from fit()'s; the target is {TOLERANCE:g}"


def _matches_grader_fit(v, p):
    gap = _gap(v["mine"], fit_reference(p))
    if not gap < TOLERANCE:
        return f"your weights end up {gap:.2g} away from what fit() reaches in the grader"


# ---------------------------------------------------------------- ex01_3 debug


def _loss_falls(v, p):
    losses = np.asarray(v["losses"], dtype=float).ravel()
    if len(losses) < 20 or not np.all(np.isfinite(losses)):
        return f"losses should hold one finite loss per step; got {len(losses)} values"
    if losses[-10:].mean() > MIN_FALL * losses[0]:
        return (
            f"the loss went from {losses[0]:.2f} to {losses[-10:].mean():.2f} (mean of the "
            f"last 10 steps); it should fall below {MIN_FALL:g} x the first"
        )


def _learns_digits(v, p):
    if bad := not_a_model(v["model"]):
        return bad
    acc = accuracy(v["model"], *flat_digits("test"))
    if acc < MIN_ACCURACY:
        return f"digits test accuracy is {acc:.3f}; the repaired loop reaches {MIN_ACCURACY:g}"


EXERCISE = Exercise(
    name="01_keras_on_tensorflow",
    params={"SEED": 0, "EPOCHS": 5, "BATCH_SIZE": 64, "LEARNING_RATE": 0.5, "L2": 0.001},
    tasks=(
        Task(
            "ex01_1", "apply", "a tanh layer, computed by hand",
            {"by_hand": "array", "n_params": "scalar"},
            (
                Check(
                    "matches_layer", _by_hand,
                    description="by_hand equals the layer's output (within 1e-5)",
                    hints=(
                        "A Dense layer computes activation(inputs times kernel, plus bias).",
                        "`layer.kernel`, `layer.bias`, the `@` product and `np.tanh` (or "
                        "`keras.ops.tanh`).",
                        "`np.tanh(x @ layer.kernel.numpy() + layer.bias.numpy())`",
                    ),
                ),
                Check(
                    "parameter_count", _parameter_count,
                    description="n_params is the layer's number of weights",
                    hints=(
                        "One kernel entry per (input feature, unit) pair, one bias per unit.",
                        "`layer.count_params()` confirms a count made by hand.",
                        "`x.shape[1] * 4 + 4`",
                    ),
                ),
            ),
        ),
        Task(
            "ex01_2", "target", "a training step that matches fit() on a penalized model",
            {"mine": "model", "twin": "model"},
            (
                Check(
                    "matches_fit", _matches_fit, points=2,
                    description=f"your weights within {TOLERANCE:g} of fit()'s, everywhere",
                    hints=(
                        "fit() minimizes the loss *plus* every penalty the layers add; a step "
                        "that leaves the penalty out follows a different slope.",
                        "`model.losses` lists the layers' penalties; read it inside the tape, "
                        "after the forward pass.",
                        "`loss = loss_fn(y, model(x, training=True)) + sum(model.losses)`",
                    ),
                ),
                Check(
                    "matches_grader_fit", _matches_grader_fit, hidden=True,
                    description=f"within {TOLERANCE:g} of fit() run again by the grader",
                ),
            ),
        ),
        Task(
            "ex01_3", "debug", "repair a training loop whose loss will not fall",
            {"losses": "array", "model": "model"},
            (
                Check(
                    "loss_falls", _loss_falls, points=2,
                    description=f"the last losses below {MIN_FALL:g} x the first",
                    hints=(
                        "A loss stuck near log(10) = 2.30 means the model can do no better "
                        "than guessing: does each image still go with its own label?",
                        "`x_train[order]` reorders the images; what reorders the labels?",
                        "`y_shuffled = y_train[order]`",
                    ),
                ),
                Check(
                    "test_accuracy", _learns_digits, hidden=True, points=2,
                    description=f"digits test accuracy at least {MIN_ACCURACY:g}",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _untrained(p):
    return make_model(p["SEED"], p["L2"])


def _shifted(p):
    model = make_model(p["SEED"], p["L2"])
    model.set_weights([w + 0.01 for w in model.get_weights()])
    return model


FAILING = {
    "ex01_1.matches_layer": lambda p: {  # the bias forgotten
        "by_hand": np.tanh(task1_input(p["SEED"]) @ task1_layer(p["SEED"]).kernel.numpy()),
        "n_params": 24,
    },
    "ex01_1.parameter_count": lambda p: {"by_hand": np.zeros((X_SHAPE[0], UNITS)), "n_params": 20},
    "ex01_2.matches_fit": lambda p: {"mine": _untrained(p), "twin": _shifted(p)},
    "ex01_2.matches_grader_fit": lambda p: {"mine": _untrained(p), "twin": _untrained(p)},
    "ex01_3.loss_falls": lambda p: {"losses": np.full(100, 2.3), "model": _untrained(p)},
    "ex01_3.test_accuracy": lambda p: {"losses": np.full(100, 2.3), "model": _untrained(p)},
}  # fmt: skip
