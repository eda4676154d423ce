"""``check(...)``, ``hint(...)`` and ``show_bar(...)``: what a learner sees in the notebook.

``check`` gives instant feedback (or, under the grader, only submits); a failing check
shows what is wrong and the gentlest hint. ``hint`` gives the next tier of help for the
checks that failed last, one tier per call. ``show_bar`` states how an exercise is
graded, computed from its definition.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from typing import Any

from forge_course.errors import ForgeError
from forge_course.grading.spec import Check, Exercise, Task, exercise, task

__all__ = [
    "Bar",
    "CheckResult",
    "HintResult",
    "TaskResult",
    "check",
    "hint",
    "run_checks",
    "show_bar",
]

STATUSES = ("passed", "failed", "error", "timeout", "crashed", "missing", "cancelled")


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check on one answer."""

    check: str  # "ex02_1.architecture"
    points: float
    possible: float
    status: str  # one of STATUSES
    message: str = ""
    hint: str = ""
    hidden: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def zero(cls, check: Check, status: str, message: str) -> CheckResult:
        """No points for ``check``, with the status and message that say why."""
        return cls(check.id, 0, check.points, status, message, check.hint, check.hidden)


@dataclasses.dataclass(repr=False)
class TaskResult:
    """What ``check()`` shows: the public checks of one task, and how many are hidden."""

    task: str
    results: list[CheckResult]
    hidden_count: int = 0
    note: str = ""  # "not answered yet", "submitted for grading", a usage problem

    @property
    def points(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def possible(self) -> float:
        return sum(r.possible for r in self.results)

    def _footer(self) -> str:
        more = f"{self.hidden_count} more check(s) run at grading time."
        text = more if self.hidden_count else "No further checks at grading time."
        if any(r.status != "passed" and r.message != "not answered yet" for r in self.results):
            text += f" Stuck? hint({self.task!r}) gives more help, one step at a time."
        return text

    def __str__(self) -> str:
        lines = [f"{self.task}: {self.note}"] if self.note else []
        if self.results:
            lines.append(f"{self.task}: {self.points:g}/{self.possible:g} points")
        for r in self.results:
            mark = "PASS" if r.status == "passed" else "FAIL"
            lines.append(f"  {mark} {r.check} ({r.points:g}/{r.possible:g})")
            if r.status != "passed":
                lines.append(f"       {r.message}")
                if r.hint and r.message != "not answered yet":
                    lines.append(f"       hint: {r.hint}")
        lines.append(f"  {self._footer()}")
        return "\n".join(lines)

    __repr__ = __str__  # what a terminal or a papermill log shows

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for r in self.results:
            ok = r.status == "passed"
            detail = "" if ok else esc(r.message)
            if r.hint and not ok and r.message != "not answered yet":
                detail += f"<br><i>hint: {esc(r.hint)}</i>"
            mark = "&#9989;" if ok else "&#10060;"
            cells = [mark, f"<code>{esc(r.check)}</code>", f"{r.points:g}/{r.possible:g}", detail]
            rows.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells))
        note = f"<p><b>{esc(self.task)}</b>: {esc(self.note)}</p>" if self.note else ""
        head = "<tr><th></th><th>check</th><th>points</th><th>feedback</th></tr>"
        table = f"<table>{head}{''.join(rows)}</table>" if rows else ""
        return f"<div>{note}{table}<p><small>{esc(self._footer())}</small></p></div>"


def run_checks(
    the_task: Task,
    values: dict[str, Any],
    params: dict[str, Any],
    checks: tuple[Check, ...] | None = None,
) -> list[CheckResult]:
    """Score ``values`` with ``checks`` (default: the task's public checks).

    A check that raises is reported as an error with the exception's message, never a
    traceback, so a strange answer cannot break the feedback or the grader.
    """
    out = []
    missing = [n for n, v in values.items() if v is Ellipsis] or [
        n for n in the_task.values if n not in values
    ]
    wrong_kind = None if missing else _wrong_kind(the_task, values)
    for c in the_task.public if checks is None else checks:
        base = dict(check=c.id, possible=c.points, hint=c.hint, hidden=c.hidden)
        if missing or wrong_kind:
            why = wrong_kind or "not answered yet"
            out.append(CheckResult(points=0, status="failed", message=why, **base))
            continue
        try:
            problem = c.fn(values, params)
        except Exception as exc:  # noqa: BLE001 - the learner sees a message, not a traceback
            out.append(CheckResult(points=0, status="error", message=_plain(exc), **base))
            continue
        status = "passed" if problem is None else "failed"
        points = c.points if problem is None else 0.0
        out.append(CheckResult(points=points, status=status, message=problem or "", **base))
    return out


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _plain(exc: Exception) -> str:
    """One readable line for an exception a check raised: no colour codes, no stack."""
    text = ANSI.sub("", str(exc)).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first if len(first) <= 300 else first[:297] + "..."
    return f"checking raised {type(exc).__name__}: {first}" if first else type(exc).__name__


def _wrong_kind(the_task: Task, values: dict[str, Any]) -> str | None:
    """What is wrong when a value is not of its task's kind (model, array, scalar), or None.

    Every check of the task fails with this message, so no check has to guard against
    a string where a model belongs.
    """
    import numpy as np

    for name, kind in the_task.values.items():
        value = values[name]
        if kind == "model":
            import keras

            if not isinstance(value, keras.Model):
                return f"{name} should be a Keras model, got {type(value).__name__}"
        elif kind == "array":
            try:
                arr = np.asarray(value)
            except Exception:  # noqa: BLE001 - ragged lists and the like
                arr = np.asarray([object()])
            if arr.dtype == object or not (
                np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
            ):
                return f"{name} should be an array of numbers, got {type(value).__name__}"
            if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
                return f"{name} holds NaN or infinite values; every number must be finite"
        elif kind == "scalar":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                return f"{name} should be a number or a text, got {type(value).__name__}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"{name} is {value!r}, not a finite number"
    return None


def _as_submitted(the_task: Task, values: dict[str, Any]) -> dict[str, Any]:
    """The values as the grader will see them: arrays and scalars through the very
    encoding that carries them to the grader (models stay as they are).

    So a check gives the same verdict in the notebook as at grading time (a NumPy
    float32 threshold is a plain float in both).
    """
    from forge_course.grading import channel

    out = dict(values)
    for name, kind in the_task.values.items():
        value = values.get(name, Ellipsis)
        if value is Ellipsis or kind == "model":
            continue
        try:
            out[name] = channel.decode(kind, channel.encode(kind, value))
        except (ForgeError, TypeError, ValueError):
            pass  # left as it is: _wrong_kind explains what is wrong with it
    return out


_LAST_FAILED: dict[str, list[str]] = {}  # task -> check names that failed at its last check()
_HINT_LEVEL: dict[str, int] = {}  # task -> hint tiers shown so far (the first comes free)


def _remember(task_id: str, results: list[CheckResult]) -> None:
    failed = [r.check.split(".", 1)[1] for r in results if r.status != "passed"]
    if failed != _LAST_FAILED.get(task_id):
        _HINT_LEVEL[task_id] = 1  # a new problem starts again from the gentlest hint
    _LAST_FAILED[task_id] = failed


def _notebook_params(ex: Exercise) -> dict[str, Any]:
    """The exercise's parameters as the learner's notebook has them (else the defaults)."""
    params = dict(ex.params)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        params.update({k: shell.user_ns[k] for k in ex.params if k in shell.user_ns})
    return params


def _display(result: TaskResult) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(result)
            return
    except ImportError:
        pass
    print(result)


def check(task_id: str, **values: Any) -> None:
    """Check your answer to ``task_id`` and show which checks pass, with hints.

    Example: ``check("ex02_1", model=model)``. Under the grader this submits the values
    instead; the grader scores them in its own process.
    """
    from forge_course.grading import channel

    try:
        ex, the_task = task(task_id)
    except ForgeError as exc:
        _display(TaskResult(task_id, [], note=str(exc)))
        return
    unknown = sorted(set(values) - set(the_task.values))
    absent = [n for n in the_task.values if n not in values]
    if unknown or absent:
        wanted = ", ".join(f"{n}=..." for n in the_task.values)
        _display(TaskResult(task_id, [], note=f"call it as check({task_id!r}, {wanted})"))
        return
    hidden = len(the_task.hidden)
    if channel.grading_address() is not None:
        try:
            channel.submit(task_id, {n: (the_task.values[n], v) for n, v in values.items()})
            note = "submitted for grading"
        except Exception as exc:  # noqa: BLE001 - the learner sees why, never a traceback
            note = f"could not submit: {exc}"
        _display(TaskResult(task_id, [], hidden, note=note))
        return
    answered = all(v is not Ellipsis for v in values.values())
    results = run_checks(the_task, _as_submitted(the_task, values), _notebook_params(ex))
    if answered:
        _remember(task_id, results)
    _display(TaskResult(task_id, results, hidden, note="" if answered else "not answered yet"))


@dataclasses.dataclass(repr=False)
class HintResult:
    """Hints for one task, up to a tier: what ``hint(...)`` shows."""

    task: str
    level: int
    hints: dict[str, list[str]]  # check id -> the tiers shown
    note: str = ""

    def __str__(self) -> str:
        lines = [f"{self.task}: {self.note}"] if self.note else []
        for check_id, tiers in self.hints.items():
            lines.append(f"  {check_id}")
            lines += [f"    {k}. {text}" for k, text in enumerate(tiers, start=1)]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<p><b>{esc(self.task)}</b>: {esc(self.note)}</p>"] if self.note else []
        for check_id, tiers in self.hints.items():
            items = "".join(f"<li>{esc(t)}</li>" for t in tiers)
            parts.append(f"<p><code>{esc(check_id)}</code></p><ol>{items}</ol>")
        return "<div>" + "".join(parts) + "</div>"


def hint(task_id: str, level: int | None = None) -> HintResult:
    """Show more help for the checks of ``task_id`` that failed at its last ``check``.

    Each call reveals one more tier (the concept, then the API to use, then a worked
    fragment); ``level`` jumps to a tier. Before any ``check`` it covers every public
    check of the task.
    """
    try:
        _, the_task = task(task_id)
    except ForgeError as exc:
        result = HintResult(task_id, 0, {}, note=str(exc))
        _display(result)
        return result
    names = _LAST_FAILED.get(task_id)
    if names is not None and not names:
        result = HintResult(task_id, 0, {}, note="every public check passed at your last check()")
        _display(result)
        return result
    checks = [c for c in the_task.public if names is None or c.name in names and c.hints]
    deepest = max((len(c.hints) for c in checks), default=0)
    if level is None:
        level = min(_HINT_LEVEL.get(task_id, 0) + 1, deepest)
    level = max(1, min(int(level), deepest or 1))
    _HINT_LEVEL[task_id] = level
    shown = {c.id: list(c.hints[:level]) for c in checks if c.hints}
    note = f"hint {level} of {deepest}" if shown else "no hints for this task"
    if shown and level == deepest:
        note += " (the last one)"
    result = HintResult(task_id, level, shown, note=note)
    _display(result)
    return result


@dataclasses.dataclass(repr=False)
class Bar:
    """How an exercise is graded, as its definition says: tasks, checks, parameters."""

    exercise: Exercise

    def _params(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.exercise.params.items())

    def _lead(self) -> str:
        ex = self.exercise
        return (
            f"Exercise {ex.name}: {ex.points:g} points. The grader runs this notebook from "
            f"the top with {self._params()} (replacing your parameters cell), stops it after "
            f"{ex.timeout:g} s, and scores what your check(...) calls submit."
        )

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(task, rung, what is checked, points, when) per check."""
        return [
            (t.id, t.rung, c.description or c.name, f"{c.points:g}",
             "at grading time" if c.hidden else "now and at grading")
            for t in self.exercise.tasks for c in t.checks
        ]  # fmt: skip

    def __str__(self) -> str:
        lines = [self._lead()]
        for t in self.exercise.tasks:
            lines.append(f"  {t.id} ({t.rung}, {t.points:g} points): {t.title}")
            for c in t.checks:
                when = " [at grading time]" if c.hidden else ""
                lines.append(f"    - {c.description or c.name} ({c.points:g}){when}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{h}</th>" for h in ("task", "rung", "checked", "points", "when"))
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{esc(x)}</td>" for x in row) + "</tr>"
            for row in self.rows()
        )
        return f"<div><p>{esc(self._lead())}</p><table><tr>{head}</tr>{body}</table></div>"


def show_bar(name: str) -> Bar:
    """Return how exercise ``name`` is graded (a notebook displays it as a table)."""
    return Bar(exercise(name))
