"""What an exercise is: tasks, the values each task takes, and the checks that score them.

An *exercise* is one notebook (``02_sequential_api``). It has *tasks* (``ex02_1``): the
learner answers a task by calling ``check("ex02_1", model=model)``. Each task has
*checks*, each worth points; public checks run at once in the notebook, hidden checks
run only in the grader's process, often on data the learner's kernel never saw.

A check function takes the task's values (a dict) and the grading parameters, and
returns ``None`` when it passes or a short message saying what is wrong.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_course.errors import GradingError

__all__ = ["Check", "Exercise", "KINDS", "Task", "exercise", "exercises", "load_checks", "task"]

KINDS = ("model", "array", "scalar")  # .keras, .npy, JSON


@dataclasses.dataclass(frozen=True)
class Check:
    """One scored assertion about a task's answer."""

    task: str
    name: str
    fn: Callable[[dict[str, Any], dict[str, Any]], str | None]
    points: float = 1.0
    hidden: bool = False
    hint: str = ""
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.task}.{self.name}"


@dataclasses.dataclass(frozen=True)
class Task:
    """One question of an exercise: the values the learner submits, and their checks."""

    id: str
    values: dict[str, str]  # name -> kind
    checks: tuple[Check, ...]

    @property
    def public(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.hidden)

    @property
    def hidden(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.hidden)


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise notebook: its tasks and the parameters the grader injects."""

    name: str
    tasks: tuple[Task, ...]
    params: dict[str, Any]
    timeout: float = 180.0  # seconds for the whole notebook when grading

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(c for t in self.tasks for c in t.checks)

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise GradingError(f"exercise {self.name} has no task {task_id!r}")

    def with_extra(self, extra: list[Check]) -> Exercise:
        """This exercise with more (hidden) checks added to its tasks."""
        tasks = tuple(
            dataclasses.replace(t, checks=t.checks + tuple(c for c in extra if c.task == t.id))
            for t in self.tasks
        )
        return dataclasses.replace(self, tasks=tasks)


_REGISTRY: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    for t in ex.tasks:
        for kind in t.values.values():
            if kind not in KINDS:
                raise GradingError(f"task {t.id}: unknown value kind {kind!r}; use one of {KINDS}")
    _REGISTRY[ex.name] = ex
    return ex


def exercises() -> dict[str, Exercise]:
    """Every built-in exercise, by notebook name."""
    from forge_course.grading import catalog  # noqa: F401 - registers them

    return dict(_REGISTRY)


def exercise(name: str) -> Exercise:
    """The exercise named ``name`` (``02_sequential_api``)."""
    known = exercises()
    if name not in known:
        raise GradingError(f"unknown exercise {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def task(task_id: str) -> tuple[Exercise, Task]:
    """Find a task (``ex02_1``) and its exercise."""
    for ex in exercises().values():
        for t in ex.tasks:
            if t.id == task_id:
                return ex, t
    ids = sorted(t.id for ex in exercises().values() for t in ex.tasks)
    raise GradingError(f"unknown exercise task {task_id!r}; known: {', '.join(ids)}")


def load_checks(folder: Path) -> list[Check]:
    """Load extra checks from every ``*.py`` in ``folder`` (each defines ``CHECKS``).

    These are the instructor's own hidden checks; they run in the grader's process.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"--checks {folder}: not a folder of check files")
    found: list[Check] = []
    known = {t.id for ex in exercises().values() for t in ex.tasks}
    for path in sorted(folder.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"forge_checks_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise GradingError(f"--checks {path}: could not load it: {exc}") from None
        checks = getattr(module, "CHECKS", None)
        if not isinstance(checks, list) or not all(isinstance(c, Check) for c in checks):
            raise GradingError(f"--checks {path}: define CHECKS = [Check(...), ...]")
        for c in checks:
            if c.task not in known:
                raise GradingError(
                    f"--checks {path}: check {c.name!r} names unknown task {c.task!r}"
                )
            found.append(dataclasses.replace(c, hidden=True))
    if not found:
        raise GradingError(f"--checks {folder}: no *.py file with CHECKS in it")
    return found
