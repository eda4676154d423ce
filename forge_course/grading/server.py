"""The fork server itself (see :mod:`.forkserver` for the design): preload, then fork.

Run as ``python -I -m forge_course.grading.server SOCKET CONFIG`` by
:class:`~.forkserver.ForkServer`, under bubblewrap when the batch is sandboxed. The
main loop reads only a request's one-line header (:func:`_read_header`); the forked
child reads the request itself and becomes a kernel (entering its sandbox first,
:func:`.sandbox.enter`) or a scorer (:func:`_score`, under limits).
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import signal
import socket
import sys

from forge_course.grading import sandbox as sb
from forge_course.grading.procs import LIMITS, become_subreaper, die_with_parent, kill_tree

PRELOAD = (
    "numpy",
    "tensorflow",
    "keras",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",  # what every kernel imports as it starts (debugpy, pydevd) ...
    "sqlite3",  # ... and IPython's history
    "IPython",
    "matplotlib",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "ipywidgets",
    "sklearn.datasets",
    "sklearn.model_selection",
    "forge_course.data",
    "forge_course.env",
    "forge_course.grading",
    "forge_course.grading.score",
    "forge_course.grading.catalog",
    "forge_course.plots",
    "forge_course.widgets",
    "psutil",
)
HEADER_MAX = 4096  # the one line the server's main loop reads of a request


def _become_kernel(request: dict, conn: socket.socket, config: dict) -> None:
    """In a forked child: become the kernel (in a sandbox of its own, when asked)."""

    def report(pid: int) -> None:
        conn.sendall(f"{pid}\n".encode())
        conn.shutdown(socket.SHUT_RDWR)  # the kernel holds a copy: end the answer here
        conn.close()

    if config["sandbox"]:
        sb.enter(request["job"], config["hide"], sb.Limits(**request["limits"]), report)
        conn.close()  # the kernel's copy of it
        env = sb.kernel_env(request["env"], request["job"])
    else:
        report(os.getpid())
        os.chdir(request["cwd"])
        env = request["env"]
    os.setsid()
    become_subreaper()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.path.join(request["job"], "kernel.log")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.clear()
    os.environ.update(env)
    argv = request["argv"]
    args = argv[argv.index("ipykernel_launcher") + 1 :]
    sys.argv = [argv[0], *args]
    del request, argv
    from ipykernel.kernelapp import launch_new_instance

    try:  # no SQLite history (nor its thread): a graded notebook's In/Out live in memory
        launch_new_instance(argv=[*args, "--HistoryManager.enabled=False"])
    finally:
        kill_tree(os.getpid(), include_root=False)  # what the notebook left running


def _score(conn: socket.socket, request: dict) -> None:
    """In a forked child: score within the request's seconds (CPU and wall clock)."""
    from forge_course.grading.score import score_request

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    seconds = max(1, int(request.get("seconds") or LIMITS.score))
    cores = os.cpu_count() or 1
    sb.set_limits(sb.Limits(cpu_s=seconds * cores + 5))
    signal.alarm(seconds)  # past it, SIGALRM ends the scorer: the worker says "timeout"
    conn.sendall(json.dumps(score_request(request["args"]), default=str).encode())


def _peer_ok(conn: socket.socket, config: dict) -> bool:
    """Sandboxed: only a process of the server's own PID namespace (a grading worker,
    never a kernel, which has a namespace of its own) may ask."""
    if not config["sandbox"]:
        return True
    from forge_course.grading.channel import _peer_pid

    pid = _peer_pid(conn)
    return pid is not None and _ns_depth(pid) == _ns_depth(os.getpid())


def _ns_depth(pid: int) -> int | None:
    """How many PID namespaces deep ``pid`` lives (its ``NSpid`` entries; world-readable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return len(line.split()) - 1
    except OSError:
        pass
    return None


def _read_header(rfile, secret: list[str]) -> str | None:
    """Read a request's one-line header, check its token; return its kind, or None."""
    try:
        header = json.loads(rfile.readline(HEADER_MAX))
        token, kind = str(header.get("token", "")), str(header.get("kind", ""))
    except (OSError, ValueError, AttributeError):
        return None
    if kind not in ("kernel", "score") or not secrets.compare_digest(token, secret[0]):
        return None
    return kind


def _reap_orphans(forked: set[int]) -> None:
    """Kill children this server did not fork: leftovers of kernels that ended."""
    import psutil

    for child in psutil.Process().children():
        if child.pid not in forked:
            kill_tree(child.pid)
    forked.intersection_update(p.pid for p in psutil.Process().children())


def _child(conn: socket.socket, rfile, kind: str, config: dict) -> None:
    """A forked child: read the request itself, then serve it."""
    conn.settimeout(LIMITS.request)
    rfile.close()  # unbuffered: it read the header and nothing more; read the rest buffered
    with conn.makefile("rb") as body:
        request = json.loads(body.readline())
    conn.settimeout(None)
    if kind == "kernel":
        _become_kernel(request, conn, config)
    else:
        _score(conn, request)
        conn.close()


def serve(path: str, config: dict) -> None:
    """The server's loop: preload, then fork one child per request."""
    import importlib

    die_with_parent()  # with the grader, whatever kills it
    become_subreaper()
    secret = [sys.stdin.readline().strip()]  # a list, emptied in every child
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the OS reaps finished children
    for name in PRELOAD:
        importlib.import_module(name)
    importlib.import_module("forge_course.data").warm()  # NumPy and files only, no TF op
    # What was preloaded lives as long as the server: out of the garbage collector's sight,
    # a child's full collection no longer walks its ~400,000 objects (0.37 s each time).
    gc.freeze()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(64)
    server.settimeout(LIMITS.server_poll)
    forked: set[int] = set()
    print("ready", flush=True)
    while True:
        _reap_orphans(forked)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(LIMITS.request)  # a client that connects and says nothing cannot block us
        rfile = conn.makefile("rb", buffering=0)  # unbuffered: the child reads the rest
        kind = _read_header(rfile, secret) if _peer_ok(conn, config) else None
        if kind is None:
            rfile.close()
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            secret.clear()  # a notebook must not find the token in its own memory
            code = 0
            try:
                server.close()
                _child(conn, rfile, kind, config)
            except BaseException:  # noqa: BLE001 - a child must never return into the loop
                code = 1
            finally:
                os._exit(code)
        forked.add(pid)
        rfile.close()
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(sys.argv[2]))
