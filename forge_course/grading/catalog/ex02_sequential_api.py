"""Exercise 02: the Sequential API on new data, a decision threshold, broken decisions.

The ladder: a softmax classifier for the ten digits (apply), the threshold that keeps
malignant recall at the bar with the best precision (target), and a cell that turns
the screen's scores into decisions worse than guessing, wrong twice over (debug).
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import (
    accuracy,
    binary_scores,
    dataset,
    flat_digits,
    from_logits,
    last_activation,
    loss_name,
    not_a_model,
    screen,
    validation_rows,
)
from forge_course.grading.spec import Check, Exercise, Task

MIN_DIGITS_ACCURACY = 0.85
MIN_RECALL = 0.95  # malignant recall on the validation rows, the screen's bar
MIN_HOLDOUT_RECALL = 0.85  # the same on patients the kernel never saw, with room for noise
MIN_HOLDOUT_BENIGN = 0.5  # ... while still calling at least half the benign tumours benign
MIN_TEST_ACCURACY = 0.88
MIN_HOLDOUT_ACCURACY = 0.85
VALIDATION_SPLIT = 0.2


def cancer_split() -> tuple[np.ndarray, ...]:
    """(x_fit, y_fit, x_val, y_val): the rows fit() trains on and the validation rows.

    The same cut as ``fit(validation_split=0.2)``: the last fifth of the training split.
    """
    ds = dataset("breast_cancer")
    n_val = validation_rows(len(ds.x_train), VALIDATION_SPLIT)
    x, y = ds.x_train, ds.y_train
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


def best_precision(y_true, scores, min_recall: float) -> float:
    """The best malignant precision of any threshold whose malignant recall reaches the bar."""
    candidates = np.unique(np.append(np.asarray(scores, dtype=float), 1.0))
    best = 0.0
    for t in candidates:
        recall, precision = screen(y_true, scores, t)
        if recall >= min_recall:
            best = max(best, precision)
    return best


# ---------------------------------------------------------------- ex02_1 apply


def _digit_shape(v, p):
    model = v["digit_model"]
    if bad := not_a_model(model):
        return bad
    shapes = (tuple(model.input_shape), tuple(model.output_shape))
    if shapes != ((None, 64), (None, 10)):
        return f"the model maps {shapes[0]} to {shapes[1]}; 64 pixels in, 10 classes out"
    ends = last_activation(model)
    if ends != "softmax" and not (ends in ("", "linear") and from_logits(model)):
        return (
            f"the last layer's activation is {ends or 'none'}: end in a softmax, or in raw "
            "scores with a loss built with from_logits=True"
        )


def _digit_loss(v, p):
    name = loss_name(v["digit_model"])
    if "sparsecategoricalcrossentropy" not in name:
        return f"the loss is {name or 'missing (compile the model)'}; labels are integers 0-9"


def _digit_accuracy(v, p):
    acc = accuracy(v["digit_model"], *flat_digits("test"))
    if acc < MIN_DIGITS_ACCURACY:
        return f"digits test accuracy is {acc:.3f}; a trained model reaches {MIN_DIGITS_ACCURACY}"


# ---------------------------------------------------------------- ex02_2 target


def _bad_threshold(v) -> str | None:
    t = v["threshold"]
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= t <= 1.0:
        return f"threshold should be a number between 0 and 1, got {t!r}"
    return None


def _threshold(v) -> float:
    return float(v["threshold"])


def _recall_bar(v, p):
    if bad := not_a_model(v["model"]) or _bad_threshold(v):
        return bad
    _, _, x_val, y_val = cancer_split()
    recall, _ = screen(y_val, binary_scores(v["model"], x_val), _threshold(v))
    if recall < MIN_RECALL:
        return f"malignant recall on the validation rows is {recall:.3f}; the bar is {MIN_RECALL}"


def _best_precision(v, p):
    if bad := not_a_model(v["model"]) or _bad_threshold(v):
        return bad
    _, _, x_val, y_val = cancer_split()
    scores = binary_scores(v["model"], x_val)
    _, precision = screen(y_val, scores, _threshold(v))
    best = best_precision(y_val, scores, MIN_RECALL)
    if precision < best - 1e-9:
        return (
            f"malignant precision is {precision:.3f}; another threshold that meets the bar "
            f"reaches {best:.3f}"
        )


def _holdout_screen(v, p):
    from forge_course.data import grading_holdout

    if bad := not_a_model(v["model"]) or _bad_threshold(v):
        return bad
    x, y = grading_holdout("breast_cancer")
    scores = binary_scores(v["model"], x)
    recall, _ = screen(y, scores, _threshold(v))
    benign, _ = screen(y, scores, _threshold(v), positive=1)
    if recall < MIN_HOLDOUT_RECALL or benign < MIN_HOLDOUT_BENIGN:
        return (
            f"on the grader's patients the screen catches {recall:.2f} of malignant tumours "
            f"(needs {MIN_HOLDOUT_RECALL}) and clears {benign:.2f} of benign ones "
            f"(needs {MIN_HOLDOUT_BENIGN})"
        )


# ---------------------------------------------------------------- ex02_3 debug


def _decisions(v) -> tuple[np.ndarray | None, str | None]:
    """The submitted test decisions as 0/1 labels, or what is wrong with them."""
    pred = np.asarray(v["test_predictions"]).ravel()
    n = len(dataset("breast_cancer").y_test)
    if pred.shape != (n,):
        return (
            None,
            f"test_predictions should hold one label per test tumour ({n}), got {pred.shape}",
        )
    if not np.isin(pred, (0, 1)).all():
        return None, "test_predictions should hold the labels 0 (malignant) and 1 (benign)"
    return pred.astype(int), None


def _beats_baseline(v, p):
    pred, bad = _decisions(v)
    if bad:
        return bad
    ds = dataset("breast_cancer")
    acc = float(np.mean(pred == ds.y_test.astype(int)))
    if acc < MIN_TEST_ACCURACY:
        baseline = max(ds.y_test.mean(), 1 - ds.y_test.mean())
        return (
            f"these decisions are right for {acc:.3f} of the test tumours; always answering "
            f"benign scores {baseline:.3f}, and the model can reach {MIN_TEST_ACCURACY}"
        )


def _raw_inputs(v, p):
    pred, bad = _decisions(v)
    if bad:
        return bad
    x_test = dataset("breast_cancer").x_test
    own = (binary_scores(v["model"], x_test) >= 0.5).astype(int)
    differ = int(np.sum(pred != own))
    if differ > 1:  # one tumour may sit on the threshold, within round-off
        return (
            f"{differ} of your decisions differ from the model's own on the raw test "
            "measurements at threshold 0.5"
        )


def _holdout_accuracy(v, p):
    from forge_course.data import grading_holdout

    if _beats_baseline(v, p) or _raw_inputs(v, p):  # the given model alone earns nothing
        return "the decisions on the test tumours are not yet the model's own, right ones"
    acc = accuracy(v["model"], *grading_holdout("breast_cancer"))
    if acc < MIN_HOLDOUT_ACCURACY:
        return (
            f"fed raw measurements of the grader's patients, the model is right for {acc:.3f} "
            f"(needs {MIN_HOLDOUT_ACCURACY}); keep the model taking raw inputs"
        )


EXERCISE = Exercise(
    name="02_sequential_api",
    params={"SEED": 0, "EPOCHS": 6, "BATCH_SIZE": 32},
    tasks=(
        Task(
            "ex02_1", "apply", "a Sequential classifier for the ten digits",
            {"digit_model": "model"},
            (
                Check(
                    "shape", _digit_shape,
                    description="64 pixels in, a softmax over 10 classes out",
                    hints=(
                        "Ten classes need ten outputs that read as probabilities summing to 1.",
                        "`layers.Dense(10, activation='softmax')` as the last layer, after "
                        "`keras.Input(shape=(64,))`.",
                        "`keras.Sequential([keras.Input(shape=(64,)), layers.Dense(32, "
                        "activation='relu'), layers.Dense(10, activation='softmax')])`",
                    ),
                ),
                Check(
                    "loss", _digit_loss,
                    description="compiled with a cross-entropy for integer labels",
                    hints=(
                        "The labels are single integers, not one-hot vectors; the loss must "
                        "read them that way.",
                        "`loss='sparse_categorical_crossentropy'` in `compile`.",
                        "`digit_model.compile(optimizer='adam', "
                        "loss='sparse_categorical_crossentropy', metrics=['accuracy'])`",
                    ),
                ),
                Check(
                    "test_accuracy", _digit_accuracy, hidden=True,
                    description=f"digits test accuracy at least {MIN_DIGITS_ACCURACY}",
                ),
            ),
        ),
        Task(
            "ex02_2", "target", "a screening threshold",
            {"model": "model", "threshold": "scalar"},
            (
                Check(
                    "recall", _recall_bar,
                    description=f"malignant recall at least {MIN_RECALL} on the validation rows",
                    hints=(
                        "A tumour is called benign when its score reaches the threshold; "
                        "raising the threshold sends more tumours to 'malignant'.",
                        "`threshold_metrics(y_val, val_scores, t)` has the malignant `.recall` "
                        "and `.precision` at threshold t, the slider's numbers; try a few t.",
                        "`[t for t in candidates if threshold_metrics(y_val, val_scores, t)"
                        ".recall >= MIN_RECALL]`",
                    ),
                ),
                Check(
                    "best_precision", _best_precision, points=2,
                    description=f"no threshold with recall >= {MIN_RECALL} has better "
                    "malignant precision",
                    hints=(
                        "Every extra tumour called malignant is a possible false alarm: "
                        "raise the threshold no further than the bar needs.",
                        "Among the thresholds that meet the bar, keep the one with the "
                        "highest precision.",
                        "`max(ok, key=lambda t: threshold_metrics(y_val, val_scores, t).precision)`"
                        " where `ok` lists the thresholds meeting the bar",
                    ),
                ),
                Check(
                    "holdout_screen", _holdout_screen, hidden=True,
                    description=f"on unseen patients: malignant recall >= {MIN_HOLDOUT_RECALL} "
                    f"and benign recall >= {MIN_HOLDOUT_BENIGN}",
                ),
            ),
        ),
        Task(
            "ex02_3", "debug", "repair the cell that turns scores into decisions",
            {"model": "model", "test_predictions": "array"},
            (
                Check(
                    "beats_baseline", _beats_baseline, points=2,
                    description=f"the decisions right for at least {MIN_TEST_ACCURACY} of the "
                    "test tumours",
                    hints=(
                        "Worse than always guessing means the decisions are upside down: which "
                        "label does a high score stand for?",
                        "`model.predict` returns the probability of label 1, and label 1 is "
                        "benign.",
                        "`test_predictions = (test_scores >= 0.5).astype(int)`",
                    ),
                ),
                Check(
                    "raw_inputs", _raw_inputs, points=2,
                    description="the model's own decisions on the raw test measurements",
                    hints=(
                        "The model scales its inputs itself, in its first layer: what happens "
                        "to measurements that were scaled before they reached it?",
                        "Hand `cancer.x_test` to `model.predict` exactly as it was loaded.",
                        "`test_scores = model.predict(cancer.x_test, verbose=0).ravel()`",
                    ),
                ),
                Check(
                    "holdout_accuracy", _holdout_accuracy, hidden=True,
                    description=f"the model, fed raw measurements of patients the notebook "
                    f"never saw, right for at least {MIN_HOLDOUT_ACCURACY}",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _model(units: int, activation: str, adapt=None, loss="binary_crossentropy", inputs=10):
    import keras

    layers = [keras.Input(shape=(inputs,))]
    if adapt is not None:
        norm = keras.layers.Normalization()
        norm.adapt(adapt)
        layers.append(norm)
    model = keras.Sequential([*layers, keras.layers.Dense(units, activation=activation)])
    model.compile(optimizer="adam", loss=loss)
    return model


def _logistic():
    """A sigmoid unit with logistic-regression weights: a model whose scores separate."""
    from sklearn.linear_model import LogisticRegression

    x_fit, y_fit = cancer_split()[:2]
    model = _model(1, "sigmoid", x_fit)
    scaled = np.asarray(model.layers[0](x_fit))
    fitted = LogisticRegression(max_iter=1000).fit(scaled, y_fit)
    model.layers[-1].set_weights([fitted.coef_.T.astype("float32"), fitted.intercept_])
    return model


FAILING = {
    "ex02_1.shape": lambda p: {"digit_model": _model(10, "relu", inputs=64)},
    "ex02_1.loss": lambda p: {"digit_model": _model(10, "softmax", inputs=64)},
    "ex02_1.test_accuracy": lambda p: {
        "digit_model": _model(10, "softmax", loss="sparse_categorical_crossentropy", inputs=64)
    },
    "ex02_2.recall": lambda p: {"model": _logistic(), "threshold": 0.0},
    "ex02_2.best_precision": lambda p: {"model": _logistic(), "threshold": 0.999},
    "ex02_2.holdout_screen": lambda p: {"model": _logistic(), "threshold": 0.0},
    "ex02_3.beats_baseline": lambda p: {  # decisions upside down
        "model": _logistic(),
        "test_predictions": (binary_scores(_logistic(), dataset("breast_cancer").x_test) < 0.5),
    },
    "ex02_3.raw_inputs": lambda p: {  # always "benign"
        "model": _logistic(),
        "test_predictions": np.ones(len(dataset("breast_cancer").y_test), dtype=int),
    },
    "ex02_3.holdout_accuracy": lambda p: {
        "model": _model(1, "softmax", cancer_split()[0]),
        "test_predictions": np.ones(len(dataset("breast_cancer").y_test), dtype=int),
    },
}  # fmt: skip
