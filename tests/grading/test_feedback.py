"""check() in a learner's notebook: instant, kind, never a traceback."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from forge_course.grading import check, feedback, spec
from forge_course.grading.feedback import run_checks


def classifier(first_units=64):
    model = keras.Sequential(
        [
            keras.Input(shape=(10,)),
            layers.Dense(first_units, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(32, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def shown(monkeypatch):
    """Capture what check() displays."""
    seen = []
    monkeypatch.setattr(feedback, "_display", seen.append)
    return seen


def test_correct_answer_passes_public_checks_and_counts_hidden_ones(shown):
    check("ex02_1", model=classifier())
    result = shown[-1]
    assert [r.status for r in result.results] == ["passed"] * 3
    assert result.points == result.possible == 4
    text = str(result)
    assert "ex02_1: 4/4 points" in text and "No further checks" in text
    check("ex02_2", model=classifier(), test_accuracy=0.5)
    assert "1 more check(s) run at grading time" in str(shown[-1])


def test_wrong_answer_fails_with_message_and_hint(shown):
    check("ex02_1", model=classifier(first_units=16))
    result = shown[-1]
    arch = result.results[0]
    assert arch.status == "failed" and "layer 1" in arch.message and "Dense(64" in arch.hint
    assert "hint:" in str(result) and "&#10060;" in result._repr_html_()


def test_unanswered_says_so(shown):
    check("ex02_1", model=...)
    result = shown[-1]
    assert result.note == "not answered yet"
    assert {r.message for r in result.results} == {"not answered yet"}


def test_wrong_type_is_a_failure_not_a_traceback(shown):
    check("ex02_1", model="my model")
    results = shown[-1].results
    assert results[0].status == "failed" and "expected a Keras model, got str" in results[0].message
    assert all(r.status in ("failed", "error") for r in results)


@pytest.mark.parametrize(
    "task, values, note",
    [
        ("ex02_9", {"model": 1}, "unknown exercise task 'ex02_9'"),
        ("ex02_1", {"modle": 1}, "call it as check('ex02_1', model=...)"),
    ],
)
def test_misuse_explains_itself(shown, task, values, note):
    check(task, **values)
    assert note in shown[-1].note and shown[-1].results == []


def test_a_check_that_raises_becomes_an_error_row():
    def explodes(values, params):
        raise ValueError("boom")

    task = spec.Task("ex99_1", {"x": "scalar"}, (spec.Check("ex99_1", "x", explodes),))
    (result,) = run_checks(task, {"x": 1}, {})
    assert result.status == "error" and "ValueError: boom" in result.message


def test_checks_read_parameters_from_the_learners_notebook():
    from IPython.core.interactiveshell import InteractiveShell

    ex = spec.exercise("00_setup_and_environment")
    assert feedback._notebook_params(ex)["DATASET"] == "fashion_mnist"  # no notebook: defaults
    shell = InteractiveShell.instance()
    try:
        shell.user_ns["DATASET"] = "mnist"
        assert feedback._notebook_params(ex) == {"SEED": 0, "DATASET": "mnist"}
    finally:
        InteractiveShell.clear_instance()
