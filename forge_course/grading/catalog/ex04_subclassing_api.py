"""Exercise 04: the Subclassing API: a layer that saves, a loop that keeps a penalty, a step.

The ladder: a ``Polynomial`` layer written as a class, registered, round-tripped through
``.keras`` with ``safe_mode`` on (apply); a ``GradientTape`` loop that reaches an
accuracy bar while keeping the model's L2 penalty under its bar (target); and a
``train_step`` that trains, yet minimises and logs the wrong loss (debug).

What the grader can trust: it loads submitted models with ``safe_mode`` in its own
process, where classes written in the learner's notebook do not exist. So no submitted
model contains a custom class:

- task 1 submits what the *reloaded* layer reports and computes: its ``get_config()``
  (a JSON dict), its registered name, and its outputs on :func:`probe_batch`. The grader
  checks them against the polynomial's formula with :data:`COEFFICIENTS`, which it knows.
  It cannot tell whether the outputs came from the reloaded layer or from the original
  one; the round trip itself is verified in the learner's notebook (its cell fails
  without ``get_config`` and registration), not by the grader.
- tasks 2 and 3 submit the trained *core*, a functional model of built-in layers (the
  custom ``train_step`` lives in a wrapper that is not submitted), plus, for task 3,
  the last loss ``fit()`` logged, which the grader compares with the loss it computes.
  (Scalars travel as numbers or text, so task 1's config goes as JSON text.)
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import dataset, not_a_model
from forge_course.grading.spec import Check, Exercise, Task

DEGREE = 3
COEFFICIENTS = (0.5, -1.0, 0.25, 2.0)  # c0 + c1 x + c2 x^2 + c3 x^3
L2 = 0.01  # the penalty on both kernels of the core model
HIDDEN = 64  # units of the core's hidden layer
MAX_PENALTY = 0.7  # sum(model.losses) after training; ignoring the penalty leaves it above 0.85
MIN_LOOP_ACCURACY = 0.92  # task 2, test accuracy after EPOCHS epochs
MIN_STEP_ACCURACY = 0.92  # task 3
LOSS_TOLERANCE = 0.15  # task 3: the logged loss within this fraction of the true loss (+0.05)


def probe_batch() -> np.ndarray:
    """The inputs task 1's reloaded layer is run on: 4 rows of 6 values from -2 to 2."""
    return np.linspace(-2.0, 2.0, 24, dtype="float32").reshape(4, 6)


def polynomial(x: np.ndarray, coefficients=COEFFICIENTS) -> np.ndarray:
    """sum_k c_k x^k, elementwise: what the layer must compute."""
    x = np.asarray(x, dtype="float64")
    return sum(c * x**k for k, c in enumerate(coefficients))


def flat_digits() -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): the digits as 64 pixels in [0, 1]."""
    ds = dataset("digits")

    def flat(x):
        return x.reshape(len(x), -1).astype("float32") / 255

    return flat(ds.x_train), ds.y_train.astype(int), flat(ds.x_test), ds.y_test.astype(int)


def build_core():
    """The model tasks 2 and 3 train: 64 pixels -> Dense(HIDDEN, relu) -> Dense(10, softmax).

    Both kernels carry an L2 penalty of :data:`L2`; it appears in ``model.losses``.
    """
    import keras
    from keras import layers

    def penalty():
        return keras.regularizers.L2(L2)

    pixels = keras.Input(shape=(64,), name="pixels")
    hidden = layers.Dense(HIDDEN, activation="relu", kernel_regularizer=penalty())(pixels)
    out = layers.Dense(10, activation="softmax", kernel_regularizer=penalty())(hidden)
    return keras.Model(pixels, out, name="core")


# ---------------------------------------------------------------- ex04_1 apply


def _config(v, p):
    import json

    text = v["config"]
    if not isinstance(text, str):
        kind = type(text).__name__
        return f"config should be the reloaded layer's get_config() as JSON text, got {kind}"
    try:
        config = json.loads(text)
    except ValueError:
        return "config is not JSON text: send json.dumps(reloaded.get_config())"
    if not isinstance(config, dict):
        kind = type(config).__name__
        return f"config should hold the dictionary get_config() returns; got {kind}"
    degree = config.get("degree")
    if degree != DEGREE or isinstance(degree, bool):
        return (
            f"the reloaded layer's config says degree={degree!r}; it should keep the degree it "
            f"was built with, {DEGREE}"
        )
    if not isinstance(config.get("name"), str):
        return "the config lacks the layer's name: start from super().get_config()"


def _registered(v, p):
    name = v["registered_name"]
    if not isinstance(name, str):
        return f"registered_name should be a string, got {type(name).__name__}"
    package, sep, cls = name.partition(">")
    if not sep or not package or not cls:
        return (
            f"{name!r} is a bare class name: load_model can find the class only under a "
            "registered name such as 'package>Polynomial'"
        )


def _outputs(v, p):
    out = np.asarray(v["probe_outputs"])
    probe = probe_batch()
    if out.shape != probe.shape or not np.issubdtype(out.dtype, np.number):
        return (
            f"probe_outputs should be numbers shaped like the probe, {probe.shape}; got {out.shape}"
        )
    want = polynomial(probe)
    if not np.allclose(out, want, rtol=1e-4, atol=1e-4):
        worst = float(np.max(np.abs(out - want)))
        return (
            f"the outputs differ from {' + '.join(f'{c}x^{k}' for k, c in enumerate(COEFFICIENTS))}"
            f" by up to {worst:.3g}"
        )


# ---------------------------------------------------------------- ex04_2 target


def _core_problem(model) -> str | None:
    """A message unless ``model`` is the given core: its layers and its penalties."""
    if bad := not_a_model(model):
        return bad
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    if [getattr(d, "units", None) for d in dense] != [HIDDEN, 10]:
        return f"submit the given core model (Dense {HIDDEN} then Dense 10), trained"
    for d in dense:
        reg = getattr(d, "kernel_regularizer", None)
        if reg is None or not np.isclose(float(getattr(reg, "l2", 0.0)), L2):
            return f"keep the core's L2 penalty of {L2} on both kernels: it is part of the task"
    return None


def _penalty(model) -> float:
    return float(sum(float(np.asarray(loss)) for loss in model.losses))


def _core_accuracy(model) -> float:
    import keras

    _, _, x_test, y_test = flat_digits()
    probs = keras.ops.convert_to_numpy(model(x_test, training=False))
    return float(np.mean(probs.argmax(axis=1) == y_test))


def _penalty_bar(v, p):
    model = v["model"]
    if bad := _core_problem(model):
        return bad
    penalty = _penalty(model)
    if penalty > MAX_PENALTY:
        return f"sum(model.losses) is {penalty:.3f} after training; the bar is {MAX_PENALTY}"


def _loop_accuracy(v, p):
    model = v["model"]
    if bad := _core_problem(model):
        return bad
    accuracy = _core_accuracy(model)
    if accuracy < MIN_LOOP_ACCURACY:
        return f"test accuracy is {accuracy:.3f}; the bar is {MIN_LOOP_ACCURACY}"


# ---------------------------------------------------------------- ex04_3 debug


def _true_loss(model) -> float:
    """Cross-entropy on the training rows plus the penalty: what compute_loss minimises."""
    import keras

    x_train, y_train, _, _ = flat_digits()
    probs = keras.ops.convert_to_numpy(model(x_train, training=False))
    picked = np.clip(probs[np.arange(len(y_train)), y_train], 1e-7, 1.0)
    return float(-np.mean(np.log(picked))) + _penalty(model)


def _logged_loss(v) -> tuple[float | None, str | None]:
    loss = v["logged_loss"]
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not np.isfinite(loss):
        return None, f"logged_loss should be the last epoch's loss, a number; got {loss!r}"
    return float(loss), None


def _honest_loss(v, p):
    model = v["model"]
    if bad := _core_problem(model):
        return bad
    logged, bad = _logged_loss(v)
    if bad:
        return bad
    true = _true_loss(model)
    if abs(logged - true) > LOSS_TOLERANCE * true + 0.05:
        return (
            f"fit() logged a loss of {logged:.3f}, but the model's cross-entropy plus its "
            f"penalty is {true:.3f} on the training rows: the step minimises something else"
        )


def _step_accuracy(v, p):
    if _penalty_bar(v, p) or _honest_loss(v, p):  # the given step earns nothing here
        return "the step does not yet minimise the model's own loss, penalty included"
    accuracy = _core_accuracy(v["model"])
    if accuracy < MIN_STEP_ACCURACY:
        return f"test accuracy is {accuracy:.3f}; the repaired step reaches {MIN_STEP_ACCURACY}"


EXERCISE = Exercise(
    name="04_subclassing_api",
    params={"SEED": 0, "EPOCHS": 8, "BATCH_SIZE": 32},
    tasks=(
        Task(
            "ex04_1", "apply", "a custom layer that survives the round trip",
            {"config": "scalar", "registered_name": "scalar", "probe_outputs": "array"},
            (
                Check(
                    "config", _config,
                    description=f"the reloaded layer's get_config() (as JSON text) keeps "
                    f"degree={DEGREE} and its name",
                    hints=(
                        "Loading rebuilds a layer from its config alone: every constructor "
                        "argument must be in it.",
                        "Override `get_config` to return `super().get_config()` plus "
                        "`degree`.",
                        "`return {**super().get_config(), 'degree': self.degree}`",
                    ),
                ),
                Check(
                    "registered", _registered,
                    description="the class registered under a 'package>Name' name",
                    hints=(
                        "load_model looks a custom class up by a registered name; an "
                        "unregistered class cannot be found.",
                        "Decorate the class with `@keras.saving.register_keras_serializable`.",
                        "`@keras.saving.register_keras_serializable(package='ex04')` above "
                        "`class Polynomial(layers.Layer):`",
                    ),
                ),
                Check(
                    "outputs", _outputs,
                    description="on the probe batch, the reloaded layer computes "
                    "c0 + c1 x + c2 x^2 + c3 x^3 with the given coefficients",
                    hints=(
                        "The weights travel in the file too: set them before saving, and "
                        "compute with the layer that came back.",
                        "`add_weight(shape=(degree + 1,), ...)` in `build`; "
                        "`layer.set_weights([np.array(COEFFICIENTS, dtype='float32')])`.",
                        "`return sum(self.coefficients[k] * x**k for k in "
                        "range(self.degree + 1))` in `call`",
                    ),
                ),
            ),
        ),
        Task(
            "ex04_2", "target", "a GradientTape loop that keeps the penalty",
            {"model": "model"},
            (
                Check(
                    "penalty", _penalty_bar, points=2,
                    description=f"sum(model.losses) at most {MAX_PENALTY} after training",
                    hints=(
                        "The penalty is not part of the cross-entropy: a loop that does not "
                        "add it lets the weights grow unchecked.",
                        "Add `tf.add_n(model.losses)` (or `sum(model.losses)`) to the loss "
                        "inside the tape.",
                        "`loss = cross_entropy(y, model(x, training=True)) + "
                        "tf.add_n(model.losses)`",
                    ),
                ),
                Check(
                    "accuracy", _loop_accuracy, points=2,
                    description=f"test accuracy at least {MIN_LOOP_ACCURACY}",
                    hints=(
                        "In few epochs, a plain small step may not get far: the optimizer "
                        "decides how far each step goes.",
                        "Use `keras.optimizers.Adam` with a learning rate around 0.01, and "
                        "`optimizer.apply(gradients, model.trainable_variables)`.",
                        "`optimizer = keras.optimizers.Adam(0.01)`",
                    ),
                ),
            ),
        ),
        Task(
            "ex04_3", "debug", "a train_step that minimises the wrong loss",
            {"model": "model", "logged_loss": "scalar"},
            (
                Check(
                    "penalty", _penalty_bar, points=2,
                    description=f"sum(model.losses) at most {MAX_PENALTY} after fit()",
                    hints=(
                        "The model's penalties live in model.losses; a loss written by hand "
                        "leaves them out unless you add them.",
                        "`self.compute_loss(x=x, y=y, y_pred=y_pred)` is the compiled loss "
                        "plus `self.losses`.",
                        "`loss = self.compute_loss(x=x, y=y, y_pred=y_pred)`",
                    ),
                ),
                Check(
                    "honest_loss", _honest_loss, points=2,
                    description="the loss fit() logged matches the model's cross-entropy "
                    f"plus penalty on the training rows (within {LOSS_TOLERANCE:.0%} + 0.05)",
                    hints=(
                        "A loss is an average over the batch's examples; a total grows with "
                        "the batch size, and the number fit() logs means something else.",
                        "`keras.ops.mean` averages; `self.compute_loss(x=x, y=y, y_pred=y_pred)` "
                        "averages the compiled loss and adds `self.losses`.",
                        "`loss = self.compute_loss(x=x, y=y, y_pred=y_pred)`",
                    ),
                ),
                Check(
                    "accuracy", _step_accuracy, points=2, hidden=True,
                    description=f"the repaired step trains the core to test accuracy "
                    f"{MIN_STEP_ACCURACY}",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _trained_core(*, penalty: bool, epochs: int = 2, lr: float = 0.01):
    """A core trained by a short loop, with or without its penalty (for FAILING)."""
    import keras
    import tensorflow as tf

    model = build_core()
    x_train, y_train, _, _ = flat_digits()
    optimizer = keras.optimizers.Adam(lr)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    for _ in range(epochs):
        for start in range(0, len(x_train), 64):
            x, y = x_train[start : start + 64], y_train[start : start + 64]
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
                if penalty:
                    loss = loss + tf.add_n(model.losses)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
    return model


FAILING = {
    "ex04_1.config": lambda p: {  # the default degree came back
        "config": '{"name": "polynomial", "degree": 2}',
        "registered_name": "ex04>Polynomial",
        "probe_outputs": polynomial(probe_batch()),
    },
    "ex04_1.registered": lambda p: {
        "config": f'{{"name": "polynomial", "degree": {DEGREE}}}',
        "registered_name": "Polynomial",
        "probe_outputs": polynomial(probe_batch()),
    },
    "ex04_1.outputs": lambda p: {  # the weights were not set (zeros)
        "config": f'{{"name": "polynomial", "degree": {DEGREE}}}',
        "registered_name": "ex04>Polynomial",
        "probe_outputs": np.zeros((4, 6), dtype="float32"),
    },
    "ex04_2.penalty": lambda p: {"model": _trained_core(penalty=False, epochs=6)},
    "ex04_2.accuracy": lambda p: {"model": build_core()},  # untrained
    "ex04_3.penalty": lambda p: {
        "model": _trained_core(penalty=False, epochs=6), "logged_loss": 0.1
    },
    "ex04_3.honest_loss": lambda p: {  # penalty kept, but the log is cross-entropy only
        "model": _trained_core(penalty=True), "logged_loss": 0.05
    },
    "ex04_3.accuracy": lambda p: {"model": build_core(), "logged_loss": 2.3},
}  # fmt: skip
