"""The gradebook: what a batch found, and the files an instructor reads.

A :class:`Gradebook` is made once from the batch's results (:meth:`Gradebook.assemble`)
and everything else comes from it: the flat rows, the terminal summary, the exit code
of ``forge-course grade``, and the files ``gradebook.csv``, ``gradebook.json`` and
``feedback/<student>.md``. Changing the gradebook's format means changing this module.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_course.grading.results import GradeOptions, SubmissionResult

if TYPE_CHECKING:
    from forge_course.grading.spec import Exercise

__all__ = ["COLUMNS", "EXIT_CANNOT_RUN", "EXIT_FAILED", "EXIT_OK", "Gradebook", "feedback"]

COLUMNS = ["student", "notebook", "check", "points", "possible", "status", "message"]
EXIT_OK, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 3


@dataclasses.dataclass
class Gradebook:
    """Every submission's result, and how the batch ran.

    Attributes:
        parameters: the batch's options (overrides, timeout, jobs, fork server or not,
            kernels sandboxed or not).
        environment: versions and device of the grader that scored.
        wall_s: seconds the whole batch took.
        submissions: one result per student and exercise (and per file that is none).
        not_counted: further notebooks for an exercise already counted (the lower score).
        stray_files: files found in ``--out`` that the grader did not write
            (:class:`~.outdir.OutDir`), each with what was done about it.
    """

    parameters: dict[str, Any]
    environment: dict[str, Any]
    wall_s: float
    submissions: list[SubmissionResult]
    not_counted: list[SubmissionResult] = dataclasses.field(default_factory=list)
    stray_files: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def assemble(
        cls,
        results: list[SubmissionResult],
        opts: GradeOptions,
        *,
        fork_server: bool,
        wall_s: float,
        sandbox: bool = False,
    ) -> Gradebook:
        """Make the gradebook of a batch: one notebook per student and exercise counts,
        and a student lacking an exercise of ``opts.only`` gets its ``missing`` rows."""
        kept, extra = one_per_exercise(results)
        kept += missing(kept, [opts.exercise(name) for name in opts.only])
        return cls(
            parameters={
                "overrides": opts.overrides,
                "timeout_s": opts.timeout,
                "jobs": opts.jobs,
                "fork_server": fork_server,
                "sandbox": sandbox,
            },  # fmt: skip
            environment=next((r.environment for r in results if r.environment), {}),
            wall_s=round(wall_s, 2),
            submissions=sorted(kept, key=lambda r: (r.student, r.notebook)),
            not_counted=extra,
        )

    # ------------------------------------------------------------------ what it says

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per student x notebook x check (the CSV's rows, numbers as numbers)."""
        return [
            {
                "student": s.student,
                "notebook": s.notebook,
                "check": r.check,
                "points": r.points,
                "possible": r.possible,
                "status": r.status,
                "message": r.message,
            }
            for s in self.submissions
            for r in s.rows
        ]

    @property
    def exit_code(self) -> int:
        """0: every check passed; 1: some did not; 3: the grader failed on every submission."""
        if self.submissions and all(s.grader_failure for s in self.submissions):
            return EXIT_CANNOT_RUN
        return EXIT_OK if all(s.passed for s in self.submissions) else EXIT_FAILED

    def summary(self) -> str:
        """A short table for the terminal."""
        lines = [f"{'student':<20} {'notebook':<28} {'points':>10}  outcome"]
        for s in self.submissions:
            pts = f"{s.points:g}/{s.possible:g}"
            lines.append(f"{s.student:<20} {s.notebook:<28} {pts:>10}  {s.outcome}")
        lines.append(f"{len(self.submissions)} submission(s) graded in {self.wall_s:.1f} s")
        return "\n".join(lines)

    def feedback_files(self) -> dict[str, str]:
        """Each student's feedback file name (``feedback/<name>.md``), unique per student."""
        return feedback_names(s.student for s in self.submissions)

    def to_dict(self) -> dict[str, Any]:
        """The gradebook as plain data (``gradebook.json``)."""
        files = self.feedback_files()
        return {
            "parameters": self.parameters,
            "environment": self.environment,
            "wall_s": self.wall_s,
            "submissions": [
                s.to_dict() | {"feedback": f"feedback/{files[s.student]}.md"}
                for s in self.submissions
            ],
            "not_counted": [s.to_dict() for s in self.not_counted],
            "stray_files": self.stray_files,
        }

    # ------------------------------------------------------------------ its files

    def write(self, out: Path, outdir=None) -> None:
        """Write ``gradebook.csv``, the feedback and ``gradebook.json``, each atomically
        (through ``outdir``, an :class:`~.outdir.OutDir` that records them, when given)."""
        out = Path(out)

        def put(rel: str, text: str) -> None:
            if outdir is not None:
                outdir.write(rel, text)
            else:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                _atomic(out / rel, text)

        put("gradebook.csv", self.csv())
        by_student: dict[str, list[SubmissionResult]] = defaultdict(list)
        for s in self.submissions:
            by_student[s.student].append(s)
        for student, name in self.feedback_files().items():
            put(f"feedback/{name}.md", feedback(student, by_student[student]))
        put("gradebook.json", json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    def csv(self) -> str:
        """``gradebook.csv``: :data:`COLUMNS`, points as ``2`` rather than ``2.0``."""
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        for row in self.rows():
            cells = {k: _cell(v) for k, v in row.items()}
            writer.writerow(cells | {k: f"{row[k]:g}" for k in ("points", "possible")})
        return table.getvalue()


# ---------------------------------------------------------------------- assembling


def one_per_exercise(
    results: list[SubmissionResult],
) -> tuple[list[SubmissionResult], list[SubmissionResult]]:
    """Keep one notebook per student and exercise (the best, the first on a tie).

    Returns the kept results (every result without an exercise among them) and the
    ones not counted; each kept result's message names the notebooks not counted.
    """
    best: dict[tuple[str, str], SubmissionResult] = {}
    kept, extra = [], []
    for r in results:
        if r.exercise is None:
            kept.append(r)
            continue
        key = (r.student, r.exercise)
        if key not in best:
            best[key] = r
        elif r.points > best[key].points:
            extra.append(best[key])
            best[key] = r
        else:
            extra.append(r)
    for r in extra:
        best[(r.student, r.exercise)].add_note(
            f"also handed in {r.notebook} ({r.points:g} points, not counted)"
        )
    return kept + list(best.values()), extra


def missing(kept: list[SubmissionResult], exercises: list[Exercise]) -> list[SubmissionResult]:
    """A ``missing`` result for each of ``exercises`` a student handed nothing in for."""
    have = {(r.student, r.exercise) for r in kept}
    return [
        SubmissionResult.missing(student, ex)
        for student in sorted({r.student for r in kept})
        for ex in exercises
        if (student, ex.name) not in have
    ]


def feedback_names(students: Iterable[str]) -> dict[str, str]:
    """A file name for each student: safe characters, and never two students in one file."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for student in sorted(set(students)):
        name, n = _safe(student), 1
        while name in used:  # "a b" and "a_b" must not share a file
            n += 1
            name = f"{_safe(student)}-{n}"
        used.add(name)
        names[student] = name
    return names


def feedback(student: str, subs: list[SubmissionResult]) -> str:
    """A student's feedback: what passed, what failed and why, hints; no check sources."""
    lines = [f"# Feedback for {student}", ""]
    for s in subs:
        title = s.exercise or "unknown exercise"
        lines += [f"## {title} ({s.notebook}): {s.points:g}/{s.possible:g} points", ""]
        if s.message:
            lead = {"completed": "Note", "missing": "Missing", "cancelled": "Not graded"}.get(
                s.outcome, "Your notebook did not run to the end"
            )
            lines += [f"{lead}: {s.message}", ""]
        for r in s.rows:
            mark = "passed" if r.status == "passed" else r.status.upper()
            label = f"{r.check} (hidden check)" if r.hidden else r.check
            lines.append(f"- **{mark}** `{label}`: {r.points:g}/{r.possible:g}")
            if r.status != "passed":
                if r.message:
                    lines.append(f"  - {r.message}")
                if r.hint:
                    lines.append(f"  - hint: {r.hint}")
        lines.append("")
    return "\n".join(lines)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run: one starting like a formula gets a ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and value != "-":
        return "'" + value
    return value


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _atomic(path: Path, text: str) -> None:
    """Write ``text`` to a fresh temporary file beside ``path``, then rename it over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
