"""check(), hint() and show_bar() in a learner's notebook: instant, kind, never a traceback."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from forge_course.grading import check, feedback, hint, show_bar, spec
from forge_course.grading.feedback import run_checks


def digit_model(last="softmax", loss="sparse_categorical_crossentropy"):
    model = keras.Sequential(
        [keras.Input(shape=(64,)), layers.Dense(8, activation="relu"), layers.Dense(10, last)]
    )
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.fixture
def shown(monkeypatch):
    """Capture what check() and hint() display, and start from a fresh hint state."""
    seen = []
    monkeypatch.setattr(feedback, "_display", seen.append)
    monkeypatch.setattr(feedback, "_LAST_FAILED", {})
    monkeypatch.setattr(feedback, "_HINT_LEVEL", {})
    return seen


def test_correct_answer_passes_public_checks_and_counts_hidden_ones(shown):
    check("ex02_1", digit_model=digit_model())
    result = shown[-1]
    assert [r.status for r in result.results] == ["passed", "passed"]
    assert result.points == result.possible == 2
    text = str(result)
    assert "ex02_1: 2/2 points" in text and "1 more check(s) run at grading time" in text
    assert "hint(" not in text  # nothing failed: no offer of help


def test_a_failure_shows_the_gentlest_hint_only(shown):
    check("ex02_1", digit_model=digit_model(last="relu"))
    shape = shown[-1].results[0]
    tiers = spec.exercise("02_sequential_api").task("ex02_1").check("shape").hints
    assert shape.status == "failed" and "activation is relu" in shape.message
    text = str(shown[-1])
    assert tiers[0] in text and tiers[1] not in text and tiers[2] not in text
    assert "hint('ex02_1')" in text and "&#10060;" in shown[-1]._repr_html_()


def test_hint_climbs_one_tier_per_call_and_stops_at_the_last(shown):
    check("ex02_1", digit_model=digit_model(last="relu"))
    tiers = spec.exercise("02_sequential_api").task("ex02_1").check("shape").hints
    second = hint("ex02_1")
    assert second.level == 2 and second.hints == {"ex02_1.shape": list(tiers[:2])}
    third = hint("ex02_1")
    assert third.level == 3 and third.hints["ex02_1.shape"][-1] == tiers[2]
    assert "the last one" in third.note
    assert hint("ex02_1").level == 3  # no further
    assert hint("ex02_1", level=1).hints == {"ex02_1.shape": [tiers[0]]}


def test_hints_cover_only_the_checks_that_failed_and_restart_on_a_new_problem(shown):
    check("ex02_1", digit_model=digit_model(loss="mse"))  # the shape is right, the loss not
    assert list(hint("ex02_1").hints) == ["ex02_1.loss"]
    check("ex02_1", digit_model=digit_model(last="relu"))  # a new problem: back to tier 1
    assert hint("ex02_1").level == 2
    check("ex02_1", digit_model=digit_model())
    assert "every public check passed" in hint("ex02_1").note


def test_hint_before_any_check_covers_every_public_check(shown):
    result = hint("ex02_2")
    public = [c.id for c in spec.exercise("02_sequential_api").task("ex02_2").public]
    assert list(result.hints) == public and result.level == 1
    assert "unknown exercise task" in hint("ex09_9").note


def test_unanswered_says_so_and_offers_no_hint(shown):
    check("ex02_1", digit_model=...)
    result = shown[-1]
    assert result.note == "not answered yet"
    assert {r.message for r in result.results} == {"not answered yet"}
    assert "hint(" not in str(result)


def test_wrong_type_is_a_failure_not_a_traceback(shown):
    check("ex02_1", digit_model="my model")
    results = shown[-1].results
    assert "digit_model should be a Keras model, got str" in results[0].message
    assert all(r.status == "failed" for r in results)


@pytest.mark.parametrize(
    "task, values, note",
    [
        ("ex02_9", {"model": 1}, "unknown exercise task 'ex02_9'"),
        ("ex02_1", {"modle": 1}, "call it as check('ex02_1', digit_model=...)"),
    ],
)
def test_misuse_explains_itself(shown, task, values, note):
    check(task, **values)
    assert note in shown[-1].note and shown[-1].results == []


def test_a_check_that_raises_becomes_an_error_row():
    def explodes(values, params):
        raise ValueError("boom")

    task = spec.Task("ex99_1", "apply", "demo", {"x": "scalar"}, (spec.Check("x", explodes),))
    (result,) = run_checks(task, {"x": 1}, {})
    assert result.check == "ex99_1.x"  # the task gave the check its id
    assert result.status == "error" and "ValueError: boom" in result.message


def test_checks_are_the_same_when_a_cell_runs_twice(shown):
    """A check reads only the values it is given: re-running a check cell changes nothing."""
    model = digit_model()
    check("ex02_1", digit_model=model)
    first = [(r.check, r.status, r.message) for r in shown[-1].results]
    check("ex02_1", digit_model=model)
    assert [(r.check, r.status, r.message) for r in shown[-1].results] == first


def test_the_bar_is_computed_from_the_definition():
    ex = spec.exercise("02_sequential_api")
    bar = show_bar(ex.name)
    text = str(bar)
    for name, value in ex.params.items():
        assert f"{name}={value!r}" in text
    assert f"{ex.points:g} points" in text and f"{ex.timeout:g} s" in text
    for c in ex.checks:
        assert c.description in text
    assert len(bar.rows()) == len(ex.checks)
    assert sum(1 for row in bar.rows() if row[-1] == "at grading time") == sum(
        c.hidden for c in ex.checks
    )
    assert "<table>" in bar._repr_html_()


def test_checks_read_parameters_from_the_learners_notebook():
    from IPython.core.interactiveshell import InteractiveShell

    ex = spec.exercise("00_setup_and_environment")
    assert feedback._notebook_params(ex)["DATASET"] == "fashion_mnist"  # no notebook: defaults
    shell = InteractiveShell.instance()
    try:
        shell.user_ns["DATASET"] = "mnist"
        assert feedback._notebook_params(ex) == ex.params | {"DATASET": "mnist"}
    finally:
        InteractiveShell.clear_instance()


@pytest.mark.parametrize(
    "build, problem",
    [
        (lambda: spec.Task("ex2_1", "apply", "t", {}, ()), "exNN_K"),
        (lambda: spec.Task("ex02_1", "copy", "t", {}, ()), "rung 'copy'"),
        (lambda: spec.Task("ex02_1", "apply", "t", {"x": "pickle"}, ()), "unknown kind"),
        (lambda: spec.Task("ex02_1", "apply", "t", {"hint": "scalar"}, ()), "may not be called"),
        (
            lambda: spec.Exercise(
                "02_demo", (spec.Task("ex03_1", "apply", "t", {}, ()),), {"SEED": 0}
            ),
            "belongs to another lesson",
        ),
    ],
)
def test_definitions_refuse_what_would_confuse_a_learner(build, problem):
    with pytest.raises(spec.GradingError, match=problem):
        build()


def test_screen_counts_the_positive_class_below_the_threshold():
    from forge_course.grading.checks import screen

    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.7, 0.6, 0.9])
    assert screen(y, scores, 0.5) == (2 / 3, 1.0)  # two of three malignant caught, no alarm
    assert screen(y, scores, 0.8) == (1.0, 0.75)  # all caught, one benign called malignant


def test_a_numpy_scalar_gets_the_verdict_it_will_get_from_the_grader(shown):
    """Scalars reach the checks through JSON in the notebook too, as under the grader."""
    check("ex02_2", model=digit_model(), threshold=np.float32(0.5))
    messages = " ".join(r.message for r in shown[-1].results)
    assert "threshold should be" not in messages


@pytest.mark.parametrize(
    "last, loss",
    [
        ("linear", keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        (None, keras.losses.sparse_categorical_crossentropy),  # a Softmax layer, a function loss
    ],
)
def test_other_correct_digit_models_pass(shown, last, loss):
    if last is None:
        model = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(10), layers.Softmax()])
    else:
        model = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(10, last)])
    model.compile(optimizer="adam", loss=loss)
    check("ex02_1", digit_model=model)
    assert [r.status for r in shown[-1].results] == ["passed", "passed"], shown[-1]


def test_an_uncompiled_model_is_told_to_compile(shown):
    model = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(10, "softmax")])
    check("ex02_1", digit_model=model)
    assert "compile the model" in shown[-1].results[1].message


def test_a_model_of_the_wrong_shape_gets_one_plain_line(shown):
    check("ex02_2", model=digit_model(), threshold=0.5)  # 64 inputs where 10 belong
    for r in shown[-1].results:
        assert r.status in ("failed", "error") and "\n" not in r.message
        assert "\x1b[" not in r.message and "inputs shaped (None, 64)" in r.message


def test_an_exception_becomes_one_line_without_colour_codes():
    def explodes(values, params):
        raise ValueError("\x1b[31mfirst line\x1b[0m\n  second line\n  third line")

    task = spec.Task("ex99_1", "apply", "demo", {"x": "scalar"}, (spec.Check("x", explodes),))
    (result,) = run_checks(task, {"x": 1}, {})
    assert result.message == "checking raised ValueError: first line"
