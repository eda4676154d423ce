"""A student's feedback file: what passed, what failed and why, hints, no check sources."""

from __future__ import annotations

from forge_course.grading.feedback import CheckResult
from forge_course.grading.report import feedback
from forge_course.grading.results import SubmissionResult


def sub(outcome="completed", message="", rows=(), exercise="02_sequential_api"):
    return SubmissionResult(
        "amy", "hw.ipynb", "/x/hw.ipynb", exercise, outcome, message, rows=list(rows)
    )


PASSED = CheckResult("ex02_1.shape", 1, 1, "passed", hint="look at the output layer")
FAILED = CheckResult("ex02_1.loss", 0, 2, "failed", "loss is mse", hint="a binary loss")
HIDDEN = CheckResult("ex02_3.holdout", 0, 2, "failed", "accuracy 0.61", hidden=True)


def test_a_failed_check_says_why_and_hints_a_passed_one_does_not():
    text = feedback("amy", [sub(rows=[PASSED, FAILED])])
    assert text.startswith("# Feedback for amy\n")
    assert "## 02_sequential_api (hw.ipynb): 1/3 points" in text
    assert "- **passed** `ex02_1.shape`: 1/1" in text
    assert "- **FAILED** `ex02_1.loss`: 0/2\n  - loss is mse\n  - hint: a binary loss" in text
    assert "look at the output layer" not in text  # no hint where nothing is wrong


def test_hidden_checks_are_named_as_such():
    text = feedback("amy", [sub(rows=[HIDDEN])])
    assert "`ex02_3.holdout (hidden check)`: 0/2" in text and "accuracy 0.61" in text


def test_the_lead_line_says_how_the_notebook_ended():
    stopped = feedback("amy", [sub("timeout", "stopped after the 30 s limit", [FAILED])])
    assert "Your notebook did not run to the end: stopped after the 30 s limit" in stopped
    note = feedback("amy", [sub("completed", "also handed in draft.ipynb", [PASSED])])
    assert "Note: also handed in draft.ipynb" in note
    gone = feedback("amy", [sub("missing", "no notebook for exercise 02 was handed in")])
    assert "Missing: no notebook for exercise 02 was handed in" in gone
    stopped = feedback("amy", [sub("cancelled", "the grading run was stopped", [FAILED])])
    assert "Not graded: the grading run was stopped" in stopped
    clean = feedback("amy", [sub(rows=[PASSED])])
    assert "Note:" not in clean and "did not run" not in clean


def test_one_section_per_notebook_and_a_title_for_an_unknown_exercise():
    odd = sub("error", "not a readable notebook", [], exercise=None)
    text = feedback("amy", [sub(rows=[PASSED]), odd])
    assert text.count("\n## ") == 2 and "## unknown exercise (hw.ipynb): 0/0 points" in text
