"""A pre-forking process server that makes grading fast: the grader's side of it.

Starting a kernel and importing TensorFlow cost most of a submission's time (seconds
each) while the model work is short. ``forge-course grade`` therefore starts one
*fork server*: a process that imports TensorFlow, Keras and ipykernel once, runs no
TensorFlow op, and then forks, on request from the grading workers,

- a fresh kernel for each submission (``kind: kernel``): every submission still gets a
  new process of its own, so nothing leaks from one student to the next; it only
  skips the imports. Jupyter launches it through the ``forge-fork`` provisioner below.
- a scorer for each submission (``kind: score``): grader code only, which loads the
  received artifacts and runs the checks, then writes the rows back and exits.

With the sandbox (:mod:`.sandbox`, the default) the server runs under bubblewrap with a
read-only view of the course and a minimal environment, started with ``python -I`` (the
grader's working folder, ``PYTHONPATH`` and user site-packages are never imported from),
and each kernel it forks enters namespaces of its own before any student code runs: no
kernel can see the server, its socket or another kernel. The server then needs no
secret: requests arrive on a Unix socket in the batch's private folder, which no kernel
can see, and only from processes of the grader's own PID namespace. Without the
sandbox (``--no-sandbox``) requests must also carry a token; a kernel forked from the
server could find it in its memory, which is why that mode is not safe for a hostile
cohort. The server's main loop reads only a one-line header of each request; the
request itself (another student's environment, artifacts) is read by the forked child,
so nothing of one student stays in the memory the next kernel is forked from.

The server and each kernel are child *subreapers*: whatever a notebook starts in the
background is re-parented to them and killed when its kernel ends (a sandboxed kernel
runs under its namespace's own init: everything in it ends with it). If the server dies, workers
fall back to Jupyter's usual kernel launch (sandboxed by bwrap) and score in a
subprocess while the grader restarts it; ``FORGE_COURSE_FORK=0`` (or not Linux) always does.
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

from forge_course.grading import sandbox as sb
from forge_course.grading.procs import LIMITS, kill_tree

PROVISIONER = "forge-fork"


def enabled() -> bool:
    """Whether grading forks kernels from a server (Linux, unless ``FORGE_COURSE_FORK=0``)."""
    return sys.platform.startswith("linux") and os.environ.get("FORGE_COURSE_FORK", "1") != "0"


class ForkServer:
    """The grader's handle on the fork server process (start it, stop it).

    With a :class:`~.sandbox.Sandbox`, the server runs under bwrap, its socket sits in
    the sandbox's private folder and it takes no token; without, a token guards it.
    """

    def __init__(self, box: sb.Sandbox | None = None) -> None:
        self.box = box
        self.folder = str(box.server_dir) if box else tempfile.mkdtemp(prefix="forge-fork-")
        self.path = os.path.join(self.folder, "server.sock")
        self.token = "" if box else secrets.token_hex(16)
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
        kill_tree(proc.pid)
        proc.wait()
        return False

    def wait_ready(self) -> bool:
        """Wait until the first server has preloaded (once); whether it serves."""
        if self._ready is None:
            self._ready = self._await(self.proc)
        return self._ready

    def _spawn(self) -> subprocess.Popen:
        settings = {
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
            "FORGE_COURSE_OFFLINE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
        }  # fmt: skip
        hide = self.box.hide if self.box else []
        config = json.dumps({"sandbox": self.box is not None, "hide": hide})
        argv = [sys.executable, "-I", "-m", "forge_course.grading.server", self.path, config]
        if self.box is not None:
            argv, env = self.box.server_command(argv), self.box.server_env(settings)
        else:
            env = os.environ | settings
        if os.path.exists(self.path):
            os.unlink(self.path)
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, cwd=self.folder,
        )  # fmt: skip
        proc.stdin.write(self.token + "\n")  # not argv or env: kernels must not see it
        proc.stdin.flush()
        return proc

    def ensure_running(self) -> None:
        """Restart the server at the same address if it died."""
        if self.wait_ready() and self.proc.poll() is not None:
            try:
                self.proc = self._launch()
            except (OSError, RuntimeError):
                pass

    @classmethod
    def start(cls, box: sb.Sandbox | None = None) -> ForkServer | None:
        """Start a server (call :meth:`wait_ready` before its first use), or return None
        when forking is off or the process cannot start."""
        if not enabled():
            return None
        try:
            return cls(box)
        except (OSError, RuntimeError):
            return None

    @property
    def address(self) -> tuple[str, str]:
        return self.path, self.token

    def close(self) -> None:
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
            self.proc.wait()
        if self.box is None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclasses.dataclass
class Client:
    """A grading worker's link to the fork server, and the kernels it forked for it.

    ``address`` is the server's (socket path, token), or None when kernels start the
    usual way. ``spawned`` holds the kernels forked for the submission being graded
    (``psutil.Process`` objects: a pid alone may be reused); ``job`` is that
    submission's folder, ``limits`` its kernel's limits; ``sandboxed`` whether kernels
    run in the sandbox (a plain kernel then runs under bwrap).
    """

    address: tuple[str, str] | None = None
    sandboxed: bool = False
    spawned: list = dataclasses.field(default_factory=list)
    job: str = ""
    limits: sb.Limits = sb.LIMITS
    private: list = dataclasses.field(default_factory=list)  # paths no kernel may see

    def new_submission(self, job: str, limits: sb.Limits) -> None:
        """Forget the last submission's kernels; the next kernel works in ``job``."""
        self.spawned.clear()
        self.job, self.limits = job, limits

    def _request(self, kind: str, body: dict, timeout: float) -> bytes:
        path, token = self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(LIMITS.request)
            sock.connect(path)
            header = json.dumps({"kind": kind, "token": token}).encode() + b"\n"
            sock.sendall(header + json.dumps(body).encode() + b"\n")
            sock.settimeout(timeout)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def spawn_kernel(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        """Fork a kernel that runs ``ipykernel`` with ``argv``'s arguments; return its pid."""
        request = {
            "argv": argv, "env": env, "cwd": cwd, "job": self.job,
            "limits": self.limits.to_dict(),
        }  # fmt: skip
        pid = int(self._request("kernel", request, LIMITS.kernel_fork))
        self.track(pid)
        return pid

    def track(self, pid: int) -> None:
        """Count ``pid`` among this submission's kernels."""
        import psutil

        try:
            self.spawned.append(psutil.Process(pid))
        except psutil.Error:
            pass  # already gone: Jupyter will find out

    def score(self, args: dict, seconds: float) -> dict:
        """Score in a forked grader process within ``seconds``; return what
        :func:`.score.score_request` does. TimeoutError when it takes longer."""
        raw = self._request("score", {"args": args, "seconds": seconds}, seconds + 5)
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
    """Jupyter kernel provisioner: a kernel forked by the fork server, else the usual
    launch (under bwrap when the batch is sandboxed)."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        client = WORKER
        if client is None or "ipykernel_launcher" not in cmd:
            return await super().launch_kernel(cmd, **kwargs)
        env = {str(k): str(v) for k, v in (kwargs.get("env") or os.environ).items()}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        if client.address is not None:
            try:
                pid = client.spawn_kernel(cmd, env, cwd)
            except (OSError, ValueError):  # the server is gone: launch the usual way
                pass
            else:
                self.process = _Forked(pid)
                self.pid = self.pgid = pid
                self.cwd = cwd
                return self.connection_info
        if client.sandboxed:
            cmd = sb.kernel_command(cmd, client.job, client.limits, client.private)
            kwargs = kwargs | {"env": sb.kernel_env(env, client.job), "cwd": f"{client.job}/work"}
        info = await super().launch_kernel(cmd, **kwargs)
        client.track(self.pid)
        return info
