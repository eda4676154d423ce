"""Exercises that grade themselves: ``check(...)`` in a notebook, ``forge-course grade``.

A learner calls ``check("ex02_1", model=model)`` and sees at once which public checks
pass, ``hint("ex02_1")`` for more help one tier at a time, and ``show_bar(...)`` for how
the exercise is graded. Under ``forge-course grade`` the same call only submits the
values as artifacts; the grader scores them in its own process (see
:mod:`forge_course.grading.channel`).
"""

from __future__ import annotations

from forge_course.grading.feedback import (
    Bar,
    CheckResult,
    HintResult,
    TaskResult,
    check,
    hint,
    run_checks,
    show_bar,
)
from forge_course.grading.spec import Check, Exercise, Task, exercise, exercises

__all__ = [
    "Bar",
    "Check",
    "CheckResult",
    "Exercise",
    "HintResult",
    "Task",
    "TaskResult",
    "check",
    "exercise",
    "exercises",
    "hint",
    "run_checks",
    "show_bar",
]
