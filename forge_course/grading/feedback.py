"""``check(...)``: instant feedback in the notebook, or a submission while grading."""

from __future__ import annotations

import dataclasses
import html
from typing import Any

from forge_course.errors import ForgeError
from forge_course.grading.spec import Check, Exercise, Task, task

__all__ = ["CheckResult", "TaskResult", "check", "run_checks"]

STATUSES = ("passed", "failed", "error", "timeout", "crashed", "missing")


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


@dataclasses.dataclass
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
        return more if self.hidden_count else "No further checks at grading time."

    def __str__(self) -> str:
        lines = [f"{self.task}: {self.note}"] if self.note else []
        if self.results:
            lines.append(f"{self.task}: {self.points:g}/{self.possible:g} points")
        for r in self.results:
            mark = "PASS" if r.status == "passed" else "FAIL"
            lines.append(f"  {mark} {r.check} ({r.points:g}/{r.possible:g})")
            if r.status != "passed":
                lines.append(f"       {r.message}")
                if r.hint:
                    lines.append(f"       hint: {r.hint}")
        lines.append(f"  {self._footer()}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for r in self.results:
            ok = r.status == "passed"
            detail = "" if ok else esc(r.message)
            if r.hint and not ok:
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
    for c in the_task.public if checks is None else checks:
        base = dict(check=c.id, possible=c.points, hint=c.hint, hidden=c.hidden)
        missing = [n for n, v in values.items() if v is Ellipsis] or [
            n for n in the_task.values if n not in values
        ]
        if missing:
            out.append(CheckResult(points=0, status="failed", message="not answered yet", **base))
            continue
        try:
            problem = c.fn(values, params)
        except Exception as exc:  # noqa: BLE001 - the learner sees a message, not a traceback
            out.append(
                CheckResult(
                    points=0,
                    status="error",
                    message=f"checking raised {type(exc).__name__}: {exc}",
                    **base,
                )
            )
            continue
        status = "passed" if problem is None else "failed"
        points = c.points if problem is None else 0.0
        out.append(CheckResult(points=points, status=status, message=problem or "", **base))
    return out


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
    results = run_checks(the_task, values, _notebook_params(ex))
    _display(TaskResult(task_id, results, hidden, note="" if answered else "not answered yet"))
