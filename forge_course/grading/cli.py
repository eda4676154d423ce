"""The ``assign`` and ``grade`` verbs of ``forge-course``."""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ASSIGN_HELP = """Write exercises/ from solutions/: every ### BEGIN SOLUTION ... ### END SOLUTION
region becomes a placeholder. With --check, write nothing: exit 1 naming the stale files."""

GRADE_HELP = """Execute each submission with papermill (grading parameters injected), collect what
its check(...) calls submit, and score it in this process. A SUBMISSION is a notebook,
a folder of notebooks (student = file name), or a folder of per-student folders
(student = folder name). Writes DIR/gradebook.csv, DIR/gradebook.json,
DIR/feedback/<student>.md and DIR/executed/<student>/<notebook>."""

GRADE_EXIT = """exit codes:
  0  gradebook written; every submission passed every check
  1  gradebook written; some checks did not pass (see the gradebook)
  2  usage error (no submissions, bad option, broken --checks folder)
  3  could not execute (no Jupyter kernel, output folder not writable, every
     submission failed inside the grader itself)
  130  stopped by Ctrl-C or SIGTERM; the gradebook holds what was graded so far"""


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _assign(args: argparse.Namespace) -> int:
    from forge_course.grading.assign import assign

    result = assign(Path(args.solutions), Path(args.exercises), check=args.check)
    if args.check:
        if result.stale:
            print("exercises/ is stale; run `forge-course assign`:")
            for name in result.stale:
                print(f"  {name}")
            return 1
        print("exercises/ is up to date")
        return 0
    for path in result.written:
        print(f"wrote {path}")
    if not result.written:
        print("exercises/ was already up to date")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from forge_course.grading.grade import grade

    overrides = {name: _literal(value) for name, value in args.param or []}
    try:
        book = grade(
            [Path(p) for p in args.submissions],
            Path(args.out),
            jobs=args.jobs,
            timeout=args.timeout,
            checks_dir=Path(args.checks) if args.checks else None,
            overrides=overrides,
            progress=not args.quiet,
            only=args.exercise,
        )
    except KeyboardInterrupt:
        if (Path(args.out) / "gradebook.csv").exists():
            print(
                f"stopped: {Path(args.out) / 'gradebook.csv'} holds what was graded; "
                "the rest is marked 'interrupted'",
                file=sys.stderr,
            )
        raise
    if args.json:
        print(json.dumps(book.rows(), indent=2))
    else:
        print(book.summary())
        print(f"gradebook: {Path(args.out) / 'gradebook.csv'}")
    return book.exit_code


def add_verbs(verbs, fmt, epilog) -> None:
    """Add ``assign`` and ``grade`` to the ``forge-course`` command."""
    p = verbs.add_parser(
        "assign", help="write exercises/ from solutions/", description=ASSIGN_HELP,
        epilog=epilog, formatter_class=fmt,
    )  # fmt: skip
    p.add_argument("--solutions", default="solutions", help="solution notebooks (solutions)")
    p.add_argument("--exercises", default="exercises", help="where exercises go (exercises)")
    p.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    p.set_defaults(func=_assign)

    p = verbs.add_parser(
        "grade", help="grade a folder of submissions into a gradebook", description=GRADE_HELP,
        epilog=GRADE_EXIT, formatter_class=fmt,
    )  # fmt: skip
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebook or folder")
    p.add_argument("--out", required=True, metavar="DIR", help="where the gradebook goes")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                   help="parallel workers (default: the number of cores)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="limit per notebook, also per cell (default: the exercise's)")  # fmt: skip
    p.add_argument("--checks", metavar="DIR", help="extra hidden checks (*.py defining CHECKS)")
    p.add_argument("--exercise", action="append", metavar="NAME",
                   help="grade only this exercise (repeatable): other notebooks get an error "
                   "row, and students without it get missing rows")  # fmt: skip
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="inject a parameter (repeatable); VALUE is a Python literal")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the gradebook rows as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_grade)
