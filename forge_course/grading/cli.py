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
DIR/feedback/<student>.md and DIR/executed/<student>/<notebook>. Each kernel runs in a
sandbox of its own (Linux namespaces through bubblewrap: no network, a private /tmp,
read-only course, no view of other students or DIR; memory, process, file-size and CPU
limits); where that cannot work, grade refuses unless given --no-sandbox. Entries named
.ipynb_checkpoints, __pycache__, .DS_Store or Thumbs.db are never submissions (grade
says when it passes one over); every other entry, hidden names included, gets a row."""

GRADE_EXIT = """exit codes:
  0  gradebook written; every submission passed every check
  1  gradebook written; some checks did not pass (see the gradebook)
  2  usage error (no submissions, bad option, broken --checks folder, no sandbox
     possible here without --no-sandbox)
  3  could not execute (no Jupyter kernel, output folder not writable, every
     submission failed inside the grader itself)
  130  stopped by Ctrl-C or SIGTERM; the gradebook holds what was graded so far,
       every other submission with status 'cancelled'"""


GRADEBOOK_HELP = """Work on gradebooks that `forge-course grade` wrote."""

MERGE_HELP = """Merge the gradebooks of shards (each graded with `grade --shard K/N`) into one
gradebook: DIR/gradebook.csv, gradebook.json, feedback/ and executed/, the same rows a
single run would have written. Refuses shards graded with different parameters, checks
or submissions, a shard given twice and a student in two shards; lists the students
missing from every shard given."""

MERGE_EXIT = """exit codes:
  0  merged; every student of the cohort is in it
  1  merged; some students are missing from every shard given (listed)
  2  refused: not shard gradebooks, graded differently, or overlapping"""


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
            sandbox=not args.no_sandbox,
            **({"shard": args.shard} if args.shard else {}),
        )
    except KeyboardInterrupt:
        if (Path(args.out) / "gradebook.csv").exists():
            print(
                f"stopped: {Path(args.out) / 'gradebook.csv'} holds what was graded; "
                "the rest is marked 'cancelled'",
                file=sys.stderr,
            )
        raise
    if args.json:
        print(json.dumps(book.rows(), indent=2))
    else:
        print(book.summary())
        print(f"gradebook: {Path(args.out) / 'gradebook.csv'}")
    return book.exit_code


def _merge(args: argparse.Namespace) -> int:
    from forge_course.grading.shards import merge

    result = merge([Path(d) for d in args.shards], Path(args.out))
    print(result.summary())
    print(f"gradebook: {Path(args.out) / 'gradebook.csv'}")
    return result.exit_code


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
    p.add_argument("--shard", metavar="K/N",
                   help="grade only shard K of N (K from 0 to N-1): the students whose name "
                   "hashes to K; merge the shards with `forge-course gradebook merge`")  # fmt: skip
    p.add_argument("--no-sandbox", action="store_true",
                   help="run kernels without namespaces of their own (students can then "
                   "reach each other and the grader: only for trusted notebooks)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the gradebook rows as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_grade)

    p = verbs.add_parser(
        "gradebook", help="work on gradebooks (merge shards)", description=GRADEBOOK_HELP,
        epilog=epilog, formatter_class=fmt,
    )  # fmt: skip
    books = p.add_subparsers(dest="gradebook_verb", metavar="VERB", required=True)
    m = books.add_parser(
        "merge", help="merge shard gradebooks into one", description=MERGE_HELP,
        epilog=MERGE_EXIT, formatter_class=fmt,
    )  # fmt: skip
    m.add_argument("shards", nargs="+", metavar="DIR", help="the --out folder of a shard")
    m.add_argument("--out", required=True, metavar="DIR", help="where the merged gradebook goes")
    m.set_defaults(func=_merge)
