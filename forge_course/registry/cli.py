"""The ``registry`` verb of ``forge-course``: list, show, promote, verify."""

from __future__ import annotations

import argparse
import json

REGISTRY_HELP = """Inspect and manage the SQL model registry (lesson 11). The database is --url,
else $FORGE_REGISTRY_URL, else the SQLite file runs/registry.db of the course.
A REF is NAME (its latest version), NAME/VERSION (digits/3) or NAME@ALIAS (digits@champion)."""

REGISTRY_EXIT = """exit codes:
  0  success
  1  verify found an artifact missing or changed (SHA-256 mismatch)
  2  usage error (unknown model, version or alias; alias already taken; bad option)
  3  the database cannot be reached, opened (corrupt file) or migrated"""


def _registry(args: argparse.Namespace):
    from forge_course.registry import ModelRegistry

    return ModelRegistry(args.url)


def _list(args: argparse.Namespace) -> int:
    with _registry(args) as reg:
        records = reg.list(args.name)
        if args.json:
            print(json.dumps([r.to_dict() for r in records], indent=2))
            return 0
        if not records:
            print(f"no models registered in {reg.url}")
        for record in records:
            print(record.summary())
    return 0


def _show(args: argparse.Namespace) -> int:
    with _registry(args) as reg:
        record = reg.get(args.ref)
    print(json.dumps(record.to_dict(), indent=2) if args.json else record)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from forge_course.errors import RegistryError

    with _registry(args) as reg:
        try:
            before = reg.get(f"{args.name}@{args.alias}").version
        except RegistryError:  # no such alias yet (or no such model: set_alias says so)
            before = None
        record = reg.set_alias(args.name, args.version, args.alias, move=args.move)
    moved = f" (was version {before})" if before not in (None, record.version) else ""
    print(f"{args.name}@{args.alias} -> version {record.version}{moved}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _registry(args) as reg:
        report = reg.verify(args.ref)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.ok else 1


def add_verbs(verbs, fmt, epilog) -> None:
    """Add ``registry`` (with ``list``, ``show``, ``promote``, ``verify``) to ``forge-course``."""
    del epilog  # the registry documents its own exit codes
    p = verbs.add_parser(
        "registry", help="list, show, promote and verify registered models",
        description=REGISTRY_HELP, epilog=REGISTRY_EXIT, formatter_class=fmt,
    )  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def action(name: str, help: str, func):
        sub = actions.add_parser(
            name, help=help, description=f"{help}.\n\n{REGISTRY_HELP}",
            epilog=REGISTRY_EXIT, formatter_class=fmt,
        )  # fmt: skip
        sub.add_argument("--url", default=None, help="database URL (default: "
                         "$FORGE_REGISTRY_URL, else sqlite:///runs/registry.db)")  # fmt: skip
        sub.set_defaults(func=func)
        return sub

    sub = action("list", "list registered versions, of NAME only when given", _list)
    sub.add_argument("name", nargs="?", metavar="NAME", help="a model name")
    sub.add_argument("--json", action="store_true", help="print the records as JSON")

    sub = action("show", "show one version: file, SHA-256, metrics, params, aliases", _show)
    sub.add_argument("ref", metavar="REF", help="NAME, NAME/VERSION or NAME@ALIAS")
    sub.add_argument("--json", action="store_true", help="print the record as JSON")

    sub = action("promote", "point NAME@ALIAS at VERSION (one version per alias)", _promote)
    sub.add_argument("name", metavar="NAME", help="a model name")
    sub.add_argument("version", type=int, metavar="VERSION", help="a version number")
    sub.add_argument("--alias", required=True, help="e.g. champion")
    sub.add_argument("--move", action="store_true",
                     help="take the alias from the version that holds it now")  # fmt: skip

    sub = action("verify", "check artifacts against their SHA-256 (all, or REF's)", _verify)
    sub.add_argument("ref", nargs="?", metavar="REF", help="NAME, NAME/VERSION or NAME@ALIAS")
    sub.add_argument("--json", action="store_true", help="print the results as JSON")
