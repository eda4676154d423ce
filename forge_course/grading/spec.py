"""What an exercise is: a ladder of tasks, the values each takes, and the checks that score them.

An *exercise* is one notebook (``02_sequential_api``) and one module of its own under
:mod:`forge_course.grading.catalog` that exports ``EXERCISE``. Its *tasks* form a
ladder (``apply`` the lesson's idea to something new, ``target``: change a model until
it reaches a bar the learner can see, ``debug``: repair a given broken cell), worth more
points the higher the rung. The learner answers a task by calling
``check("ex02_1", model=model)``. Each task has *checks*, each worth points; public
checks run at once in the notebook, hidden checks only in the grader's process.

A check function takes the task's values (a dict) and the grading parameters, and
returns ``None`` when it passes or a short message saying what is wrong. Its hints come
in tiers: the concept first, then the API to use, then a worked fragment; the learner
sees the first with a failure and asks for the others with ``hint("ex02_1")``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from forge_course.errors import GradingError

__all__ = [
    "Check",
    "Exercise",
    "KINDS",
    "RUNGS",
    "Task",
    "exercise",
    "exercises",
    "load_checks",
    "task",
]

KINDS = ("model", "array", "scalar")  # .keras, .npy, JSON
RUNGS = ("apply", "target", "debug")  # the ladder, in order
TASK_ID = re.compile(r"ex(\d\d)_(\d+)")
RESERVED = {"hint"}  # names a task's values may not take

CheckFn = Callable[[dict[str, Any], dict[str, Any]], "str | None"]


@dataclasses.dataclass(frozen=True)
class Check:
    """One scored assertion about a task's answer.

    Args:
        name: short and unique within its task (``"architecture"``).
        fn: ``fn(values, params)`` returns ``None`` on a pass, else what is wrong.
        points: what passing earns.
        hidden: run only by the grader, never shown in the notebook.
        hints: tiers of help, gentlest first: the concept, the API, a fragment.
        description: what is checked, bar included, as the exercise states it.
        task: the task id; the :class:`Task` holding the check fills it in.
    """

    name: str
    fn: CheckFn
    points: float = 1.0
    hidden: bool = False
    hints: tuple[str, ...] = ()
    description: str = ""
    task: str = ""

    @property
    def id(self) -> str:
        return f"{self.task}.{self.name}"

    @property
    def hint(self) -> str:
        """The first, gentlest hint (what a failure shows by itself)."""
        return self.hints[0] if self.hints else ""


@dataclasses.dataclass(frozen=True)
class Task:
    """One rung of an exercise: the values the learner submits, and their checks."""

    id: str
    rung: str  # one of RUNGS
    title: str
    values: Mapping[str, str]  # name -> kind
    checks: tuple[Check, ...]

    def __post_init__(self) -> None:
        if not TASK_ID.fullmatch(self.id):
            raise GradingError(f"task id {self.id!r}: write it as exNN_K, e.g. ex02_1")
        if self.rung not in RUNGS:
            raise GradingError(f"task {self.id}: rung {self.rung!r} is not one of {RUNGS}")
        for name, kind in self.values.items():
            if kind not in KINDS:
                raise GradingError(f"task {self.id}: value {name} has unknown kind {kind!r}")
            if name in RESERVED:
                raise GradingError(f"task {self.id}: a value may not be called {name!r}")
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise GradingError(f"task {self.id}: two checks share a name in {names}")
        own = tuple(dataclasses.replace(c, task=self.id) for c in self.checks)
        object.__setattr__(self, "checks", own)
        object.__setattr__(self, "values", dict(self.values))

    @property
    def public(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.hidden)

    @property
    def hidden(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.hidden)

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise GradingError(f"task {self.id} has no check {name!r}")


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise notebook: its ladder of tasks and the parameters the grader injects."""

    name: str  # NN_topic, as the notebooks are named
    tasks: tuple[Task, ...]
    params: dict[str, Any]  # injected by the grader; the solution's parameters cell has each
    timeout: float = 180.0  # seconds for the whole notebook when grading

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d\d_[a-z0-9_]+", self.name):
            raise GradingError(f"exercise name {self.name!r}: write it as NN_topic")
        ids = [t.id for t in self.tasks]
        if len(set(ids)) != len(ids):
            raise GradingError(f"exercise {self.name}: two tasks share an id in {ids}")
        for t in self.tasks:
            if TASK_ID.fullmatch(t.id).group(1) != self.name[:2]:
                raise GradingError(f"exercise {self.name}: task {t.id} belongs to another lesson")

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(c for t in self.tasks for c in t.checks)

    @property
    def points(self) -> float:
        return sum(t.points for t in self.tasks)

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise GradingError(f"exercise {self.name} has no task {task_id!r}")

    def with_extra(self, extra: Mapping[str, list[Check]] | list[Check]) -> Exercise:
        """This exercise with more (hidden) checks added to its tasks."""
        if not isinstance(extra, Mapping):  # already-bound checks, grouped by their task
            grouped: dict[str, list[Check]] = {}
            for c in extra:
                grouped.setdefault(c.task, []).append(c)
            extra = grouped
        tasks = tuple(
            dataclasses.replace(t, checks=t.checks + tuple(extra.get(t.id, ()))) for t in self.tasks
        )
        return dataclasses.replace(self, tasks=tasks)


# --------------------------------------------------------------------------- registry


def _discover() -> dict[str, Exercise]:
    """Every module of :mod:`forge_course.grading.catalog`, each exporting EXERCISE."""
    import forge_course.grading.catalog as package

    found: dict[str, Exercise] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        ex = getattr(module, "EXERCISE", None)
        if not isinstance(ex, Exercise):
            raise GradingError(f"{module.__name__} must define EXERCISE = Exercise(...)")
        if info.name != f"ex{ex.name}":
            raise GradingError(f"{module.__name__} defines {ex.name}; name the module ex{ex.name}")
        found[ex.name] = ex
    return found


_REGISTRY: dict[str, Exercise] = {}


def exercises() -> dict[str, Exercise]:
    """Every built-in exercise, by notebook name (one module each, found once)."""
    if not _REGISTRY:
        _REGISTRY.update(_discover())
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
    """Load the instructor's extra checks from every ``*.py`` in ``folder``.

    Each file defines ``CHECKS = {"ex02_2": [Check("name", fn), ...], ...}``: task id to
    the checks to add to that task. They are hidden and run in the grader's process.
    Returns them bound to their tasks.
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
        ok = isinstance(checks, dict) and all(
            isinstance(v, list) and all(isinstance(c, Check) for c in v) for v in checks.values()
        )
        if not ok:
            raise GradingError(
                f"--checks {path}: define CHECKS = {{'ex02_2': [Check('name', fn), ...]}}"
            )
        for task_id, listed in checks.items():
            if task_id not in known:
                raise GradingError(
                    f"--checks {path}: unknown task {task_id!r}; known: {', '.join(sorted(known))}"
                )
            found += [dataclasses.replace(c, task=task_id, hidden=True) for c in listed]
    if not found:
        raise GradingError(f"--checks {folder}: no *.py file with CHECKS in it")
    return found
