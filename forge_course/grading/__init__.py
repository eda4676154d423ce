"""Exercises that grade themselves: ``check(...)`` in a notebook, ``forge-course grade``.

A learner calls ``check("ex02_1", model=model)`` and sees at once which public checks
pass. Under ``forge-course grade`` the same call only submits the values as artifacts;
the grader scores them in its own process (see :mod:`forge_course.grading.channel`).
"""

from __future__ import annotations

from forge_course.grading.feedback import CheckResult, TaskResult, check, run_checks
from forge_course.grading.spec import Check, Exercise, Task, exercise, exercises

__all__ = [
    "Check",
    "CheckResult",
    "Exercise",
    "Task",
    "TaskResult",
    "check",
    "exercise",
    "exercises",
    "run_checks",
]
