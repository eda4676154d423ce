"""The ``serve`` verb of ``forge-course``: parse options, load the model, run the service."""

from __future__ import annotations

import argparse

from forge_course.errors import ServingError

SERVE_HELP = """Serve a model over TensorFlow Serving's REST API v1 (port 8501 by default):
GET /v1/models/NAME[/versions/V][/metadata], POST /v1/models/NAME[/versions/V]:predict with
{"instances": [...]} or {"inputs": ...}, GET /healthz. MODEL is a .keras file (loaded with
safe_mode) or a version folder written by model.export() (models/NAME/VERSION/); --registry
serves a registered model after checking its SHA-256. Concurrent requests share one call of
the compiled model (--max-batch-size, --batch-wait-ms). SIGTERM or Ctrl-C drains in-flight
requests and exits 0."""

SERVE_EXIT = """exit codes:
  0  stopped by SIGTERM or Ctrl-C after answering in-flight requests
  2  usage error (no such model, a model that is not servable, a hash mismatch,
     a Lambda layer refused by safe_mode)
  3  could not execute (the port is taken or cannot be bound)"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, not {value}")
    return value


def _serve(args: argparse.Namespace) -> int:
    from forge_course.serving.servable import load_servable
    from forge_course.serving.server import ServeConfig, run_server

    if (args.model is None) == (args.registry is None):
        raise ServingError("give either MODEL (a .keras file or export folder) or --registry REF")
    config = ServeConfig(
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        batch_wait_ms=args.batch_wait_ms,
        max_body_bytes=args.max_body_bytes,
        model_thread=args.model_thread,
    )
    if args.registry is not None:
        from forge_course.registry import ModelRegistry

        registry = ModelRegistry()
        record = registry.get(args.registry)
        model = registry.load(args.registry)  # checks the SHA-256, loads with safe_mode
        servable = load_servable(
            record.artifact_path,
            name=args.name or record.name,
            version=args.version or record.version,
            max_batch_size=args.max_batch_size,
            jit_compile=not args.no_xla,
            model=model,
        )
    else:
        if not args.name:
            raise ServingError("--name is required with MODEL: the name clients put in the URL")
        servable = load_servable(
            args.model,
            name=args.name,
            version=args.version,
            max_batch_size=args.max_batch_size,
            sha256=args.sha256,
            jit_compile=not args.no_xla,
        )
    try:
        return run_server(servable, config)
    except OSError as exc:
        from forge_course.errors import ExecutionError

        raise ExecutionError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "pick another --port (0 picks a free one)"
        ) from exc


def add_verbs(verbs, fmt, epilog) -> None:
    """Add ``serve`` to the ``forge-course`` command."""
    p = verbs.add_parser(
        "serve", help="serve a model over TF Serving's REST API", description=SERVE_HELP,
        epilog=SERVE_EXIT, formatter_class=fmt,
    )  # fmt: skip
    p.add_argument("model", nargs="?", metavar="MODEL", help=".keras file or export folder")
    p.add_argument("--name", help="model name in the URL (default with --registry: its name)")
    p.add_argument("--registry", metavar="REF",
                   help="serve a registered model (e.g. digits@champion) after checking "
                   "its SHA-256")  # fmt: skip
    p.add_argument("--version", help="version to report (default: the folder's number, or 1)")
    p.add_argument("--sha256", metavar="HEX", help="refuse a .keras file whose hash differs")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8501, help="port (8501; 0 = a free one)")
    p.add_argument("--max-batch-size", type=_positive_int, default=32, metavar="N",
                   help="most rows in one model call (32)")  # fmt: skip
    p.add_argument("--batch-wait-ms", type=_non_negative, default=0.0, metavar="MS",
                   help="longest a request waits for others to share its model call "
                   "(0: only those that arrive together or while the model runs)")  # fmt: skip
    p.add_argument("--max-body-bytes", type=_positive_int, default=4 * 1024 * 1024,
                   metavar="BYTES", help="larger bodies get 413 (4 MiB)")  # fmt: skip
    p.add_argument("--model-thread", action="store_true",
                   help="run the model in a worker thread, so HTTP parsing overlaps model "
                   "calls (for slower models)")  # fmt: skip
    p.add_argument("--no-xla", action="store_true",
                   help="compile without XLA (plain tf.function graph)")  # fmt: skip
    p.set_defaults(func=_serve)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m forge_course.serving`` (the ``serve`` verb alone: the serving image's
    entry point, which needs only the serving dependencies)."""
    import sys

    from forge_course.errors import ForgeError

    parser = argparse.ArgumentParser(prog="python -m forge_course.serving")
    verbs = parser.add_subparsers(dest="verb")
    add_verbs(verbs, argparse.RawDescriptionHelpFormatter, SERVE_EXIT)
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ForgeError as exc:
        print(f"forge-course serve: error: {exc}", file=sys.stderr)
        return exc.exit_code
