"""Exercise 09: name three mistakes with diagnose, repair a digits model, repair a pipeline.

The ladder: run ``diagnose`` on three setups and name each one's mistake (apply), change
a digits model that reads raw pixels and squashes its output twice until ``diagnose`` is
clean and it clears an accuracy bar (target), and repair a breast-cancer pipeline with
a scaler adapted on the test rows, an output the loss misreads and a score taken on the
training rows (debug); a hidden check scores it on patients the notebook never loads.
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import accuracy, dataset, not_a_model
from forge_course.grading.spec import Check, Exercise, Task

MIN_DIGITS_ACCURACY = 0.9  # digits test accuracy, raw pixels in
MIN_HOLDOUT_ACCURACY = 0.85  # the repaired screen on the grader's patients
HONEST_GAP = 0.01  # how far the reported test accuracy may sit from the grader's own
EXPECTED = {  # what diagnose reports on each setup of task 1
    "a": ["LOSS_OUTPUT_MISMATCH"],
    "b": ["UNSCALED_INPUTS"],
    "c": ["TEST_STATISTICS_LEAK"],
}


def raw_digits() -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): the digits as 64 raw pixels (0-255), float32."""
    ds = dataset("digits")
    flat = lambda x: x.reshape(len(x), -1).astype("float32")  # noqa: E731
    return flat(ds.x_train), ds.y_train, flat(ds.x_test), ds.y_test


def setups() -> dict[str, tuple]:
    """Task 1's three setups, ``name -> (model, x, y, x_test)``: one mistake each, untrained."""
    import keras
    import tensorflow as tf
    from keras import layers

    x_train, y_train, x_test, _ = raw_digits()
    cancer = dataset("breast_cancer")

    inputs = keras.Input(shape=(64,))
    hidden = layers.Dense(32, activation="relu")(layers.Rescaling(1 / 255)(inputs))
    a = keras.Model(inputs, layers.Dense(10)(hidden))  # raw scores out ...
    a.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # ... read as probabilities

    b = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(32, activation="relu"),
                          layers.Dense(10, activation="softmax")])  # fmt: skip
    b.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pixels = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(64)  # raw 0-255

    norm = layers.Normalization()
    norm.adapt(np.concatenate([cancer.x_train, cancer.x_test]))  # every row, before splitting
    c = keras.Sequential([keras.Input(shape=(10,)), norm, layers.Dense(16, activation="relu"),
                          layers.Dense(1, activation="sigmoid")])  # fmt: skip
    c.compile(optimizer="adam", loss="binary_crossentropy")
    return {
        "a": (a, x_train / 255, y_train, x_test / 255),
        "b": (b, pixels, None, None),
        "c": (c, cancer.x_train, cancer.y_train, cancer.x_test),
    }


# ---------------------------------------------------------------- ex09_1 apply


def _named(key: str):
    def check(v, p):
        got = v[f"code_{key}"]
        if not isinstance(got, str):
            return f"code_{key} should be one code, as text, got {got!r}"
        if [got] != EXPECTED[key]:
            return f"code_{key} is {got!r}, which is not what diagnose reports on setup {key}"

    return check


# ---------------------------------------------------------------- ex09_2 target


def _clean_on(model, x, y, x_test) -> str | None:
    from forge_course.diagnose import diagnose

    if bad := not_a_model(model):
        return bad
    found = diagnose(model, x, y, x_test=x_test)
    if found:
        return "diagnose still reports " + "; ".join(f"{f.code}: {f.message}" for f in found)
    return None


def _digits_clean(v, p):
    x_train, y_train, x_test, _ = raw_digits()
    return _clean_on(v["model"], x_train, y_train, x_test)


def _digits_accuracy(v, p):
    if bad := not_a_model(v["model"]):
        return bad
    _, _, x_test, y_test = raw_digits()
    try:
        acc = accuracy(v["model"], x_test, y_test)
    except ValueError as exc:
        return str(exc)
    if acc < MIN_DIGITS_ACCURACY:
        return (
            f"on the raw test pixels the model is right for {acc:.3f}; the bar is "
            f"{MIN_DIGITS_ACCURACY}"
        )


# ---------------------------------------------------------------- ex09_3 debug


def _pipeline_clean(v, p):
    ds = dataset("breast_cancer")
    return _clean_on(v["model"], ds.x_train, ds.y_train, ds.x_test)


def _honest(v, p):
    reported = v["test_accuracy"]
    if isinstance(reported, bool) or not isinstance(reported, int | float):
        return f"test_accuracy should be a number between 0 and 1, got {reported!r}"
    if bad := not_a_model(v["model"]):
        return bad
    ds = dataset("breast_cancer")
    try:
        own = accuracy(v["model"], ds.x_test, ds.y_test)
    except ValueError as exc:
        return str(exc)
    if abs(reported - own) > HONEST_GAP:
        return (
            f"test_accuracy says {reported:.3f}, but this model is right for {own:.3f} of the "
            "test tumours, fed raw"
        )


def _holdout(v, p):
    from forge_course.data import grading_holdout

    if _pipeline_clean(v, p) or _honest(v, p):  # the given, unrepaired pipeline earns nothing
        return "the pipeline is not repaired yet: diagnose is not clean or the score not honest"
    try:
        acc = accuracy(v["model"], *grading_holdout("breast_cancer"))
    except ValueError as exc:
        return str(exc)
    if acc < MIN_HOLDOUT_ACCURACY:
        return (
            f"fed raw measurements of the grader's patients, the model is right for {acc:.3f} "
            f"(needs {MIN_HOLDOUT_ACCURACY})"
        )


EXERCISE = Exercise(
    name="09_common_mistakes",
    params={"SEED": 0, "EPOCHS": 15, "BATCH_SIZE": 32},
    tasks=(
        Task(
            "ex09_1", "apply", "name each setup's mistake",
            {f"code_{key}": "scalar" for key in EXPECTED},
            tuple(
                Check(
                    f"setup_{key}", _named(key),
                    description=f"code_{key} is the code diagnose reports on setup {key}",
                    hints=(
                        "Let the detector read the setup rather than guessing: it names each "
                        "mistake with a code.",
                        "`diagnose(model, x, y, x_test=x_test).codes` lists the codes of one "
                        "setup.",
                        f"`model, x, y, x_test = given['{key}']; code_{key} = diagnose(model, x, "
                        "y, x_test=x_test).codes[0]`",
                    ),
                )
                for key in EXPECTED
            ),
        ),
        Task(
            "ex09_2", "target", "a digits model that reads raw pixels",
            {"model": "model"},
            (
                Check(
                    "clean", _digits_clean,
                    description="diagnose finds nothing with raw pixels in",
                    hints=(
                        "Two of the lesson's mistakes are in this model: one about its inputs, "
                        "one about its output.",
                        "A `layers.Rescaling(1 / 255)` first; a single softmax last.",
                        "`keras.Sequential([keras.Input(shape=(64,)), layers.Rescaling(1 / 255), "
                        "layers.Dense(64, activation='relu'), layers.Dense(10, "
                        "activation='softmax')])`",
                    ),
                ),
                Check(
                    "accuracy", _digits_accuracy, points=3,
                    description=f"test accuracy at least {MIN_DIGITS_ACCURACY} on raw pixels",
                    hints=(
                        "A model whose probabilities are squashed twice has little gradient to "
                        "learn from; one whose inputs run to 255 takes lopsided steps.",
                        "Fix both mistakes, then train for `EPOCHS` epochs.",
                        "`model.fit(x_pixels, y_train, epochs=EPOCHS, batch_size=BATCH_SIZE)`",
                    ),
                ),
            ),
        ),
        Task(
            "ex09_3", "debug", "repair a screening pipeline",
            {"model": "model", "test_accuracy": "scalar"},
            (
                Check(
                    "clean", _pipeline_clean, points=2,
                    description="diagnose finds nothing with the training rows and the test "
                    "rows",
                    hints=(
                        "The test rows may play no part before the final score, and the loss "
                        "must read what the last layer outputs.",
                        "`norm.adapt(...)` on the training rows only; a sigmoid output for "
                        "`binary_crossentropy`.",
                        "`norm.adapt(cancer.x_train)` and `layers.Dense(1, "
                        "activation='sigmoid')`",
                    ),
                ),
                Check(
                    "honest", _honest, points=2,
                    description=f"test_accuracy within {HONEST_GAP} of the model's accuracy on "
                    "the test split",
                    hints=(
                        "A score on rows the model trained on measures memory.",
                        "Score with `model.evaluate` on `cancer.x_test, cancer.y_test`.",
                        "`test_accuracy = float(model.evaluate(cancer.x_test, cancer.y_test, "
                        "verbose=0)[1])`",
                    ),
                ),
                Check(
                    "holdout", _holdout, points=2, hidden=True,
                    description=f"right for at least {MIN_HOLDOUT_ACCURACY} of patients the "
                    "notebook never saw, fed raw",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _digits_model(*, rescale: bool, double: bool, train: bool):
    import keras
    from keras import layers

    stack = [keras.Input(shape=(64,))] + ([layers.Rescaling(1 / 255)] if rescale else [])
    stack += [layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")]
    stack += [layers.Softmax()] if double else []
    model = keras.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if train:
        x, y, _, _ = raw_digits()
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    return model


def _screen(*, adapt_on_test: bool):
    """An untrained screen; its output is fixed at "malignant" for every tumour."""
    import keras
    from keras import layers

    ds = dataset("breast_cancer")
    norm = layers.Normalization()
    norm.adapt(ds.x_test if adapt_on_test else ds.x_train)
    model = keras.Sequential([keras.Input(shape=(10,)), norm,
                              layers.Dense(1, activation="sigmoid")])  # fmt: skip
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.layers[-1].set_weights([np.zeros((10, 1), "float32"), np.array([-5.0], "float32")])
    return model


_CODES = {f"code_{key}": codes[0] for key, codes in EXPECTED.items()}
FAILING = {
    "ex09_1.setup_a": lambda p: dict(_CODES, code_a="UNSCALED_INPUTS"),
    "ex09_1.setup_b": lambda p: dict(_CODES, code_b="NOT_INSPECTED"),
    "ex09_1.setup_c": lambda p: dict(_CODES, code_c="TRAIN_TEST_OVERLAP"),
    "ex09_2.clean": lambda p: {"model": _digits_model(rescale=False, double=True, train=False)},
    "ex09_2.accuracy": lambda p: {"model": _digits_model(rescale=True, double=False, train=False)},
    "ex09_3.clean": lambda p: {"model": _screen(adapt_on_test=True),
                               "test_accuracy": 0.5},
    "ex09_3.honest": lambda p: {"model": _screen(adapt_on_test=False),
                                "test_accuracy": 1.0},
    "ex09_3.holdout": lambda p: {"model": _screen(adapt_on_test=False),
                                 "test_accuracy": 0.5},
}  # fmt: skip
