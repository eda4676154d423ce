"""The ``forge-course`` command: each verb parses its options and calls one library function.

Exit codes (all verbs): 0 success; 1 checks failed (doctor found problems, a grade or
``assign --check`` found failures); 2 usage error (bad option, unknown name, unreadable
input); 3 could not execute (e.g. the cache folder cannot be written). A
:class:`~forge_course.errors.ForgeError` says which through its class's ``exit_code``.
"""

from __future__ import annotations

import argparse
import json
import sys

from forge_course.errors import ForgeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3

EXIT_CODES = """exit codes:
  0  success
  1  checks failed (problems found, stale files, failed checks)
  2  usage error (bad option, unknown name, unreadable input)
  3  could not execute (unwritable folder, missing kernel, grader crash)"""


def _doctor(args: argparse.Namespace) -> int:
    from forge_course.doctor import doctor

    report = doctor(kernel_name=args.kernel)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _fetch_data(args: argparse.Namespace) -> int:
    from forge_course import data

    names = args.names or list(data.DOWNLOADABLE)
    for name in names:
        print(f"{name}: fetching ...", flush=True)
        path = data.fetch(name)
        print(f"{name}: cached in {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``forge-course`` and its verbs."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="forge-course",
        description="Forge Course: a Keras-on-TensorFlow course with self-grading exercises.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=_version())
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    p = verbs.add_parser(
        "doctor",
        help="check this machine for the course",
        description="Check Python, package versions, TensorFlow, GPU, dataset cache and "
        "the Jupyter kernel. A CPU-only machine is healthy.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("--kernel", default="python3", help="Jupyter kernel to check (python3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_doctor)

    from forge_course.data import DOWNLOADABLE

    p = verbs.add_parser(
        "fetch-data",
        help="download datasets into the Keras cache before a workshop",
        description="Download datasets into $KERAS_HOME/datasets (default ~/.keras/datasets) "
        "so lessons run offline with the real data.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument(
        "names", nargs="*", metavar="NAME", help=f"datasets (default: {' '.join(DOWNLOADABLE)})"
    )
    p.set_defaults(func=_fetch_data)

    from forge_course.grading import cli as grading_cli

    grading_cli.add_verbs(verbs, fmt, EXIT_CODES)

    from forge_course.serving import cli as serving_cli

    serving_cli.add_verbs(verbs, fmt, EXIT_CODES)

    from forge_course.registry import cli as registry_cli

    registry_cli.add_verbs(verbs, fmt, EXIT_CODES)
    return parser


def _version() -> str:
    from forge_course import __version__

    return f"forge-course {__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run ``forge-course``; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ForgeError as exc:
        print(f"forge-course {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a folder we cannot write, a disk that is full, ...
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(
            f"forge-course {args.verb}: error: {exc.strerror or exc}{where}; "
            "check the path and its permissions",
            file=sys.stderr,
        )
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print(f"forge-course {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
