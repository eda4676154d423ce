"""Grading a big cohort as shards, and merging the shards into one gradebook.

``forge-course grade SUBMISSIONS --shard K/N`` grades shard ``K`` (counting from 0, as a
Kubernetes Indexed Job counts its completions) of ``N``: the students whose stable hash
(SHA-256 of the name, never Python's salted ``hash()``) is ``K`` modulo ``N``. A student is
one unit, so their notebooks never split across shards, and every machine that sees the
same folder of submissions computes the same split.

Each shard's ``gradebook.json`` records, under ``"parameters"`` → ``"shard"``, what makes
shards mergeable:

- ``index``, ``count`` and ``spec`` (``"K/N"``);
- ``students``: every student of the whole cohort (so a merge knows who is missing) and
  ``graded``: those of this shard;
- ``grading``: what identifies the grading (the injected parameters, each exercise's
  parameters, the timeout, the exercises graded, and a SHA-256 digest of the check set,
  the instructor's extra checks included).

``forge-course gradebook merge DIR... --out DIR`` (:func:`merge`) refuses shards graded
differently, twice the same shard, or a student graded in two shards; it writes one
gradebook (csv, json, feedback, executed notebooks) equal, row for row, to the one a
single run would have written, and lists the students missing from every shard given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forge_course.errors import GradingError
from forge_course.grading.feedback import CheckResult
from forge_course.grading.results import GradeOptions, Submission, SubmissionResult

__all__ = ["MergeResult", "Shard", "grading_identity", "merge", "record", "select", "shard_of"]

EXIT_COMPLETE, EXIT_STUDENTS_MISSING = 0, 1


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``index`` counts from 0)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str | Shard) -> Shard:
        """``"K/N"`` as a shard; a :class:`GradingError` that says how to write it otherwise."""
        if isinstance(text, Shard):
            return text
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise GradingError(
                f"--shard {text}: write it as K/N, e.g. 0/3 for the first of three shards"
            )
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise GradingError(
                f"--shard {text}: K counts from 0 to N-1 (the completion index of a "
                f"Kubernetes Indexed Job), so with N={count} give "
                + (", ".join(f"{k}/{count}" for k in range(min(count, 3))) or "N >= 1")
                + (", ..." if count > 3 else "")
            )
        return cls(index, count)

    @property
    def spec(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(student: str, count: int) -> int:
    """The shard of ``student`` among ``count``: SHA-256 of the name, modulo ``count``.

    Stable across processes, machines and Python versions (unlike ``hash()``).
    """
    digest = hashlib.sha256(student.encode("utf-8")).hexdigest()
    return int(digest, 16) % count


def select(subs: list[Submission], shard: Shard) -> list[Submission]:
    """The submissions of ``shard``'s students, in their original order."""
    return [s for s in subs if shard_of(s.student, shard.count) == shard.index]


def grading_identity(opts: GradeOptions) -> dict[str, Any]:
    """What must be equal for two shards to belong to one gradebook."""
    from forge_course.grading.spec import exercises

    graded = sorted(opts.only or exercises())
    checks = {name: _check_digest(opts.exercise(name)) for name in graded}
    return {
        "overrides": opts.overrides,
        "timeout_s": opts.timeout,
        "exercises": graded,
        "params": {name: exercises()[name].params for name in graded},
        "checks_sha256": hashlib.sha256(json.dumps(checks, sort_keys=True).encode()).hexdigest(),
    }


def _check_digest(ex) -> list[list[Any]]:
    """Each check of ``ex`` as id, points, hidden, description and the source of its code."""

    def source(fn) -> str:
        try:
            return inspect.getsource(fn)
        except (OSError, TypeError):
            return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"

    return [[c.id, c.points, c.hidden, c.description, source(c.fn)] for c in ex.checks]


def record(shard: Shard, everyone: Iterable[Submission], opts: GradeOptions) -> dict[str, Any]:
    """What a shard's gradebook records as ``parameters["shard"]`` (see the module docstring)."""
    students = sorted({s.student for s in everyone})
    return {
        "index": shard.index,
        "count": shard.count,
        "spec": shard.spec,
        "students": students,
        "graded": [s for s in students if shard_of(s, shard.count) == shard.index],
        "grading": grading_identity(opts),
    }


# ---------------------------------------------------------------------- merging


@dataclasses.dataclass
class MergeResult:
    """What :func:`merge` wrote, and who is missing from every shard given."""

    out: Path
    shards: list[str]
    students: int
    missing_students: list[str]
    missing_shards: list[str]
    book: Any  # the merged Gradebook

    @property
    def exit_code(self) -> int:
        return EXIT_STUDENTS_MISSING if self.missing_students else EXIT_COMPLETE

    def summary(self) -> str:
        lines = [
            f"merged shards {', '.join(self.shards)}: {len(self.book.submissions)} "
            f"submission(s) of {self.students - len(self.missing_students)} of "
            f"{self.students} students into {self.out}"
        ]
        if self.missing_students:
            lines.append(
                f"missing from every shard given (shards {', '.join(self.missing_shards)} were "
                f"not given): {', '.join(self.missing_students)}"
            )
        return "\n".join(lines)


def merge(dirs: list[Path], out: Path) -> MergeResult:
    """Merge the gradebooks of shard folders ``dirs`` into one in ``out``.

    Raises:
        GradingError: a folder has no shard gradebook, two folders hold the same shard or
            the same student, or the shards were graded with different counts, cohorts,
            parameters or checks; nothing is written then.
    """
    from forge_course.grading.report import Gradebook

    books = [_read(Path(d)) for d in dirs]
    if not books:
        raise GradingError("gradebook merge: give at least one shard folder")
    first_dir, first = books[0]
    first_shard = first["parameters"]["shard"]
    seen_index: dict[int, Path] = {}
    seen_student: dict[str, Path] = {}
    for path, book in books:
        shard = book["parameters"]["shard"]
        for key in ("count", "students", "grading"):
            if shard[key] != first_shard[key]:
                what = _what(key, shard, first_shard)
                raise GradingError(
                    f"gradebook merge: {path} and {first_dir} differ in {what}; "
                    "grade every shard with the same submissions, options and checks"
                )
        if shard["index"] in seen_index:
            raise GradingError(
                f"gradebook merge: {path} and {seen_index[shard['index']]} are both shard "
                f"{shard['spec']}; give each shard once"
            )
        seen_index[shard["index"]] = path
        for sub in book["submissions"]:
            other = seen_student.get(sub["student"])
            if other is not None and other != path:
                raise GradingError(
                    f"gradebook merge: student {sub['student']!r} is graded in both {other} "
                    f"and {path}; shards must not overlap"
                )
            seen_student[sub["student"]] = path

    count = first_shard["count"]
    given = sorted(seen_index)
    missing_shards = [f"{k}/{count}" for k in range(count) if k not in seen_index]
    graded = {s for _, b in books for s in b["parameters"]["shard"]["graded"]}
    missing_students = [s for s in first_shard["students"] if s not in graded]

    merged_record = {
        "merged": [f"{k}/{count}" for k in given],
        "count": count,
        "students": first_shard["students"],
        "missing_students": missing_students,
        "grading": first_shard["grading"],
    }
    merged = Gradebook(
        parameters=first["parameters"] | {"shard": merged_record},
        environment=first["environment"],
        wall_s=max(b["wall_s"] for _, b in books),  # the shards ran side by side
        submissions=sorted(
            (_result(s) for _, b in books for s in b["submissions"]),
            key=lambda r: (r.student, r.notebook),
        ),
        not_counted=[_result(s) for _, b in books for s in b.get("not_counted", [])],
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged.write(out)
    for path, _ in books:
        if (path / "executed").is_dir():
            shutil.copytree(path / "executed", out / "executed", dirs_exist_ok=True)
    return MergeResult(
        out, [f"{k}/{count}" for k in given], len(first_shard["students"]),
        missing_students, missing_shards, merged,
    )  # fmt: skip


def _read(folder: Path) -> tuple[Path, dict[str, Any]]:
    path = folder / "gradebook.json"
    if not path.is_file():
        raise GradingError(f"gradebook merge: {folder} has no gradebook.json; give shard folders")
    try:
        book = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GradingError(f"gradebook merge: {path} is not readable JSON ({exc})") from None
    shard = book.get("parameters", {}).get("shard") if isinstance(book, dict) else None
    if not isinstance(shard, dict):
        raise GradingError(
            f"gradebook merge: {path} was not graded as a shard (no 'shard' record); "
            "grade with --shard K/N"
        )
    if "merged" in shard:
        raise GradingError(f"gradebook merge: {path} is already a merged gradebook")
    return folder, book


def _what(key: str, a: dict, b: dict) -> str:
    if key != "grading":
        return {"count": "the number of shards", "students": "the cohort (the students found)"}[key]
    diff = [k for k in sorted(set(a[key]) | set(b[key])) if a[key].get(k) != b[key].get(k)]
    return "how they were graded (" + ", ".join(diff) + ")"


def _result(data: dict[str, Any]) -> SubmissionResult:
    """A :class:`SubmissionResult` back from its ``gradebook.json`` form."""
    fields = {f.name for f in dataclasses.fields(SubmissionResult)}
    row_fields = {f.name for f in dataclasses.fields(CheckResult)}
    values = {k: v for k, v in data.items() if k in fields}
    values["rows"] = [
        CheckResult(**{k: v for k, v in r.items() if k in row_fields}) for r in data["rows"]
    ]
    return SubmissionResult(**values)
