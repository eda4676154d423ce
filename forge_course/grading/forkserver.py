"""A pre-forking process server that makes grading fast.

Starting a kernel and importing TensorFlow cost most of a submission's time (seconds
each) while the model work is short. ``forge-course grade`` therefore starts one
*fork server*: a process that imports TensorFlow, Keras and ipykernel once, runs no
TensorFlow op, and then forks, on request from the grading workers,

- a fresh kernel for each submission (``kind: kernel``): every submission still gets a
  new process of its own, so nothing leaks from one student to the next; it only
  skips the imports. Jupyter launches it through the ``forge-fork`` provisioner below.
- a scorer for each submission (``kind: score``): grader code only, which loads the
  received artifacts and runs the checks, then writes the rows back and exits.

Requests arrive on a Unix socket in a private folder and must carry a token that only
the grader's processes hold (never a kernel's environment or memory). The server and
each kernel are child *subreapers*: whatever a notebook starts in the background is
re-parented to them and killed when its kernel ends. If the server dies (a notebook
may kill it), workers fall back to Jupyter's usual kernel launch and score in place
while the grader restarts it; ``FORGE_COURSE_FORK=0`` (or not Linux) always does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from forge_course.grading.procs import LIMITS, become_subreaper, die_with_parent, kill_tree

PRELOAD = (
    "numpy",
    "tensorflow",
    "keras",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
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
PROVISIONER = "forge-fork"


def enabled() -> bool:
    """Whether grading forks kernels from a server (Linux, unless ``FORGE_COURSE_FORK=0``)."""
    return sys.platform.startswith("linux") and os.environ.get("FORGE_COURSE_FORK", "1") != "0"


class ForkServer:
    """The grader's handle on the fork server process (start it, stop it)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="forge-fork-")
        self.path = os.path.join(self.folder, "server.sock")
        self.token = secrets.token_hex(16)
        self.proc = self._spawn()  # it imports TensorFlow now; wait_ready() waits for it
        self._ready: bool | None = None

    def _launch(self) -> subprocess.Popen:
        """Start a server and wait until it serves (a restart)."""
        proc = self._spawn()
        if not self._await(proc):
            raise RuntimeError("the fork server did not start")
        return proc

    @staticmethod
    def _await(proc: subprocess.Popen) -> bool:
        """Wait for a starting server's "ready" line; kill it if it says anything else."""
        if proc.stdout.readline().strip() == "ready":
            return True
        proc.kill()
        proc.wait()
        return False

    def wait_ready(self) -> bool:
        """Wait until the first server has preloaded (once); whether it serves."""
        if self._ready is None:
            self._ready = self._await(self.proc)
        return self._ready

    def _spawn(self) -> subprocess.Popen:
        env = os.environ | {
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
            "FORGE_COURSE_OFFLINE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
        }  # fmt: skip
        if os.path.exists(self.path):
            os.unlink(self.path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "forge_course.grading.forkserver", self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        proc.stdin.write(self.token + "\n")  # not argv or env: kernels must not see it
        proc.stdin.flush()
        return proc

    def ensure_running(self) -> None:
        """Restart the server at the same address if a notebook killed it."""
        if self.wait_ready() and self.proc.poll() is not None:
            try:
                self.proc = self._launch()
            except (OSError, RuntimeError):
                pass

    @classmethod
    def start(cls) -> ForkServer | None:
        """Start a server (call :meth:`wait_ready` before its first use), or return None
        when forking is off or the process cannot start."""
        if not enabled():
            return None
        try:
            return cls()
        except (OSError, RuntimeError):
            return None

    @property
    def address(self) -> tuple[str, str]:
        return self.path, self.token

    def close(self) -> None:
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclasses.dataclass
class Client:
    """A grading worker's link to the fork server, and the kernels it forked for it.

    ``address`` is the server's (socket path, token), or None when kernels start the
    usual way. ``spawned`` holds the kernels forked for the submission being graded
    (``psutil.Process`` objects: a pid alone may be reused), ``kernel_log`` where that
    kernel's stdout and stderr go.
    """

    address: tuple[str, str] | None = None
    spawned: list = dataclasses.field(default_factory=list)
    kernel_log: str = os.devnull

    def new_submission(self, kernel_log: str) -> None:
        """Forget the last submission's kernels; send the next kernel's output to a log."""
        self.spawned.clear()
        self.kernel_log = kernel_log

    def _request(self, request: dict, timeout: float) -> bytes:
        path, token = self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(LIMITS.request)
            sock.connect(path)
            sock.sendall(json.dumps(request | {"token": token}).encode() + b"\n")
            sock.settimeout(timeout)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def spawn_kernel(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        """Fork a kernel that runs ``ipykernel`` with ``argv``'s arguments; return its pid."""
        import psutil

        request = {"kind": "kernel", "argv": argv, "env": env, "cwd": cwd, "log": self.kernel_log}
        pid = int(self._request(request, LIMITS.kernel_fork))
        try:
            self.spawned.append(psutil.Process(pid))
        except psutil.Error:
            pass  # already gone: Jupyter will find out
        return pid

    def score(self, args: dict) -> dict:
        """Score in a forked grader process; return what :func:`.score.score_request` does."""
        raw = self._request({"kind": "score", "args": args}, LIMITS.score)
        if not raw:
            raise RuntimeError("the scoring process died before it answered")
        return json.loads(raw)


# The one process-level handle: Jupyter instantiates ForkProvisioner itself, so the
# provisioner cannot be handed the worker's client and finds it here. A grading worker
# sets it once at start-up (``worker.init``); everything else gets the client passed.
WORKER: Client | None = None


class _Forked:
    """Just enough of ``subprocess.Popen`` for Jupyter to manage a forked kernel."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        import psutil

        if self.returncode is None:
            try:  # a zombie is dead too (its parent may be gone and not reaping)
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    self.returncode = -1
            except psutil.NoSuchProcess:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):
    """Jupyter kernel provisioner that asks the fork server for the kernel process."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        client = WORKER
        if client is None or client.address is None or "ipykernel_launcher" not in cmd:
            return await super().launch_kernel(cmd, **kwargs)
        env = {str(k): str(v) for k, v in (kwargs.get("env") or os.environ).items()}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        try:
            pid = client.spawn_kernel(cmd, env, cwd)
        except (OSError, ValueError):  # the server is gone: launch the usual way
            return await super().launch_kernel(cmd, **kwargs)
        self.process = _Forked(pid)
        self.pid = self.pgid = pid
        self.cwd = cwd
        return self.connection_info


# --------------------------------------------------------------------------- server side


def _become_kernel(request: dict) -> None:
    os.setsid()
    become_subreaper()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    args = argv[argv.index("ipykernel_launcher") + 1 :]
    sys.argv = [argv[0], *args]
    from ipykernel.kernelapp import launch_new_instance

    try:
        launch_new_instance(argv=args)
    finally:
        kill_tree(os.getpid(), include_root=False)  # what the notebook left running


def _score(conn: socket.socket, request: dict) -> None:
    from forge_course.grading.score import score_request

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    conn.sendall(json.dumps(score_request(request["args"]), default=str).encode())


def _read_request(conn: socket.socket, secret: list[str]) -> dict | None:
    """Read one request and check its token; the raw line dies with this frame."""
    try:
        request = json.loads(conn.makefile("rb").readline())
        token = str(request.pop("token", ""))
    except (OSError, ValueError, AttributeError):
        return None
    return request if secret and secrets.compare_digest(token, secret[0]) else None


def _reap_orphans(forked: set[int]) -> None:
    """Kill children this server did not fork: leftovers of kernels that ended."""
    import psutil

    for child in psutil.Process().children():
        if child.pid not in forked:
            kill_tree(child.pid)
    forked.intersection_update(p.pid for p in psutil.Process().children())


def serve(path: str) -> None:
    """The server's loop: preload, then fork one child per request."""
    import importlib

    die_with_parent()  # with the grader, whatever kills it
    become_subreaper()
    secret = [sys.stdin.readline().strip()]  # a list, emptied in every child
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the OS reaps finished children
    for name in PRELOAD:
        importlib.import_module(name)
    importlib.import_module("forge_course.data").warm()  # NumPy and files only, no TF op
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
        request = _read_request(conn, secret)
        conn.settimeout(None)
        if request is None:
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            secret.clear()  # a notebook must not find the token in its own memory
            code = 0
            try:
                server.close()
                if request["kind"] == "kernel":
                    conn.close()
                    _become_kernel(request)
                else:
                    _score(conn, request)
                    conn.close()
            except BaseException:  # noqa: BLE001 - a child must never return into the loop
                code = 1
            finally:
                os._exit(code)
        forked.add(pid)
        if request["kind"] == "kernel":
            conn.sendall(f"{pid}\n".encode())
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
