"""What grading works on and what it produces, as small typed records.

- :class:`Submission`: one file one student handed in;
- :class:`GradeOptions`: how a batch is graded (the same for every submission);
- :class:`SubmissionResult`: what grading one submission found, one
  :class:`~forge_course.grading.feedback.CheckResult` per check.

The gradebook that gathers the results is :class:`forge_course.grading.report.Gradebook`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_course.grading.feedback import CheckResult

if TYPE_CHECKING:
    from forge_course.grading.spec import Exercise

__all__ = ["NOTEBOOK_ROW", "GradeOptions", "Submission", "SubmissionResult"]

NOTEBOOK_ROW = "(notebook)"  # the check name of the row a file that is no exercise gets
OUTCOMES = ("completed", "error", "timeout", "crashed", "missing", "cancelled")


@dataclasses.dataclass(frozen=True)
class Submission:
    """One file handed in by one student (a notebook, one hopes)."""

    student: str
    path: Path
    name: str = ""  # the notebook as the student named it (inside their folder)

    @property
    def notebook(self) -> str:
        return self.name or self.path.name


@dataclasses.dataclass(frozen=True)
class GradeOptions:
    """How a batch is graded; every worker gets the same copy.

    Attributes:
        out: the folder the gradebook, feedback and executed notebooks go to.
        overrides: parameters injected instead of the exercises' defaults (``-p``).
        timeout: seconds per notebook (and per cell); None: each exercise's own.
        checks_dir: the instructor's extra hidden checks (``--checks``), or None.
        only: exercise names this batch grades (``--exercise``); empty: any.
        jobs: parallel grading workers.
        progress: show a progress bar on stderr.
    """

    out: Path
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    timeout: float | None = None
    checks_dir: Path | None = None
    only: tuple[str, ...] = ()
    jobs: int = 1
    progress: bool = True

    @property
    def checks(self) -> str | None:
        """``checks_dir`` as text (what crosses to a scorer process), or None."""
        return str(self.checks_dir) if self.checks_dir is not None else None

    def exercise(self, name: str) -> Exercise:
        """The exercise ``name`` as this batch grades it: with the instructor's checks."""
        from forge_course.grading.score import with_extra

        return with_extra(name, self.checks)

    def executed(self, sub: Submission) -> Path:
        """Where the executed copy of ``sub`` goes."""
        return self.out / "executed" / sub.student / sub.notebook


@dataclasses.dataclass
class SubmissionResult:
    """What grading one submission found: its outcome, one row per check, timings.

    ``outcome`` says how the notebook ran (``completed``, ``error``, ``timeout``,
    ``crashed``), or ``missing`` for an exercise a student handed nothing in for, or
    ``cancelled`` when the batch was stopped (SIGTERM, Ctrl-C) before it was graded.
    ``sandboxed`` says whether its kernel ran in a sandbox of its own; ``executed`` and
    ``log`` (the executed notebook and the kernel's log) travel to the grader, which
    writes them, and are not part of :meth:`to_dict`.
    """

    student: str
    notebook: str
    path: str
    exercise: str | None = None
    outcome: str = "error"
    message: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: list[CheckResult] = dataclasses.field(default_factory=list)
    timeout_s: float | None = None  # the limit the notebook ran under
    duration_s: float = 0.0  # all of it
    execute_s: float | None = None  # running the notebook
    score_s: float | None = None  # scoring what it submitted
    environment: dict[str, Any] = dataclasses.field(default_factory=dict)  # of the scorer
    grader_failure: bool = False  # the grader's own fault, not the student's
    sandboxed: bool = False  # its kernel ran in namespaces of its own
    executed: str | None = None  # the executed notebook (not in to_dict)
    log: str = ""  # the end of the kernel's log (not in to_dict)

    @property
    def points(self) -> float:
        return sum(r.points for r in self.rows)

    @property
    def possible(self) -> float:
        return sum(r.possible for r in self.rows)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(r.status == "passed" for r in self.rows)

    def add_note(self, note: str) -> None:
        """Append ``note`` to the message (with ``; `` when there is one already)."""
        self.message = "; ".join(filter(None, [self.message, note]))

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (what ``gradebook.json`` holds), points included."""
        fields = [f.name for f in dataclasses.fields(self) if f.name not in ("executed", "log")]
        data = {name: getattr(self, name) for name in fields}
        data["rows"] = [r.to_dict() for r in self.rows]
        return data | {"points": self.points, "possible": self.possible}

    @classmethod
    def for_submission(cls, sub: Submission, **fields: Any) -> SubmissionResult:
        """A result for ``sub`` (its student, notebook and path filled in)."""
        return cls(sub.student, sub.notebook, str(sub.path), **fields)

    @classmethod
    def not_gradable(cls, sub: Submission, why: str, duration_s: float) -> SubmissionResult:
        """A file that is no notebook of a gradable exercise: one error row saying why."""
        row = CheckResult(NOTEBOOK_ROW, 0, 0, "error", why)
        return cls.for_submission(sub, message=why, rows=[row], duration_s=duration_s)

    @classmethod
    def grader_failed(
        cls, sub: Submission, why: str, exercise: Exercise | None = None
    ) -> SubmissionResult:
        """The grader itself failed on ``sub``: every check ``crashed``."""
        return cls._unscored(sub, "crashed", "crashed", why, exercise) | {"grader_failure": True}

    @classmethod
    def cancelled(
        cls, sub: Submission, why: str, exercise: Exercise | None = None
    ) -> SubmissionResult:
        """Grading stopped (Ctrl-C, SIGTERM) before ``sub`` was graded: every check
        ``cancelled`` (graded again, it may well pass)."""
        return cls._unscored(sub, "cancelled", "cancelled", why, exercise)

    @classmethod
    def _unscored(cls, sub, outcome, status, why, exercise) -> SubmissionResult:
        if exercise is None:
            rows = [CheckResult(NOTEBOOK_ROW, 0, 0, status, why)]
        else:
            rows = [CheckResult.zero(c, status, why) for c in exercise.checks]
        name = exercise.name if exercise is not None else None
        return cls.for_submission(sub, exercise=name, outcome=outcome, message=why, rows=rows)

    def __or__(self, changes: dict[str, Any]) -> SubmissionResult:
        """A copy with ``changes`` (field name to value) made."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def missing(cls, student: str, exercise: Exercise) -> SubmissionResult:
        """Nothing handed in for ``exercise``: every check ``missing``."""
        why = f"no notebook for exercise {exercise.name} was handed in"
        rows = [CheckResult.zero(c, "missing", why) for c in exercise.checks]
        return cls(student, "-", "", exercise.name, "missing", why, rows=rows)
