"""Processes: adopt orphans, die with the parent, kill whole trees, stop on a signal once;
and every time limit.

The grader, its workers, the fork server and each kernel use these so that nothing a
submission starts outlives its batch. All are no-ops where Linux's ``prctl`` is absent.
The infrastructure's own time limits (not a notebook's, which its exercise sets) are
named in :data:`LIMITS`, so they can be read and changed in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path

__all__ = [
    "LIMITS",
    "Limits",
    "StopOnSignal",
    "become_subreaper",
    "die_with_parent",
    "kill_tree",
    "skip_slow_imports",
    "stderr_to",
    "sweep_children",
]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# Optional packages the grader's processes never need but would import: jsonschema (under
# nbformat, papermill and nbclient) imports rfc3987_syntax whenever it is installed
# (JupyterLab brings it), and that builds an IRI grammar at import time, about 1.1 s of
# CPU per process here; a notebook's schema checks no IRI.
SKIPPED_IMPORTS = ("rfc3987_syntax",)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Seconds the grading machinery waits for its own parts (never for a student)."""

    kernel_start: float = 60  # papermill waits this long for a kernel to answer
    request: float = 10  # a fork-server request, or a client that connects and says nothing
    kernel_fork: float = 60  # the fork server forks a kernel and says its pid
    score: float = 300  # a scorer loads a few small models and runs the checks
    reap: float = 2  # waiting for a killed child to be reaped
    server_poll: float = 1.0  # the fork server looks for orphans at least this often


LIMITS = Limits()


def _prctl(option: int, value: int) -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)
    except (OSError, AttributeError):  # not Linux: nothing to do
        pass


def skip_slow_imports() -> None:
    """Make importing :data:`SKIPPED_IMPORTS` fail at once in this process (their users
    treat them as optional); call it before nbformat is imported. Already imported: kept."""
    for name in SKIPPED_IMPORTS:
        sys.modules.setdefault(name, None)


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux), so that nothing a kernel starts escapes."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """Have the OS SIGKILL this process when its parent dies (Linux)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_tree(process, *, include_root: bool = True) -> None:
    """SIGKILL a process (a pid or a ``psutil.Process``) and all its living descendants."""
    import psutil

    try:
        root = process if isinstance(process, psutil.Process) else psutil.Process(process)
        if not root.is_running():  # gone, or its pid now belongs to someone else
            return
        procs = root.children(recursive=True) + ([root] if include_root else [])
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    for proc in procs:  # reap our own children, or they stay behind as zombies
        try:
            if proc.ppid() == os.getpid():
                proc.wait(timeout=LIMITS.reap)
        except (psutil.Error, psutil.TimeoutExpired, ChildProcessError):
            pass


def sweep_children(*, spare: set[int] = frozenset()) -> None:
    """Kill every child of this process (and their trees), except the pids in ``spare``."""
    import psutil

    for child in psutil.Process().children():
        if child.pid not in spare:
            kill_tree(child)


@contextlib.contextmanager
def stderr_to(path: Path):
    """Send this process's file descriptor 2 (and so a child's noise) to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class StopOnSignal:
    """SIGTERM and Ctrl-C stop the batch once (KeyboardInterrupt); any further one is
    ignored, and none interrupts the writing of the gradebook (:meth:`held`)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stopped = False
        self.holding = False
        self.saved: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.stopped or self.holding:
            self.stopped = True
            return
        self.stopped = True
        raise KeyboardInterrupt

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self.saved = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self.saved.items():
            signal.signal(s, previous)
        if self.stopped and exc[0] is None:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
