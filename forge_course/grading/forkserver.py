"""A pre-forking kernel launcher that makes grading fast.

Starting a kernel and importing TensorFlow cost most of a submission's time (seconds
each) while the model work is short. The grader therefore keeps one *fork server* per
worker: a process that imports TensorFlow, Keras and ipykernel once, runs no
TensorFlow op, and forks a fresh kernel for each submission. Every submission still
gets a new process of its own (nothing leaks from one student to the next); it only
skips the imports. Jupyter launches kernels through the ``forge-fork`` provisioner
below; where forking is unavailable (not Linux, or ``FORGE_COURSE_FORK=0``) it falls
back to Jupyter's usual launch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

PRELOAD = (
    "numpy",
    "tensorflow",
    "keras",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "IPython",
    "matplotlib",
    "matplotlib_inline.backend_inline",
    "sklearn.datasets",
    "sklearn.model_selection",
    "forge_course.data",
    "forge_course.env",
    "forge_course.grading",
)
PROVISIONER = "forge-fork"


def enabled() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("FORGE_COURSE_FORK", "1") != "0"


class ForkServer:
    """Client of the fork server process (one per grading worker)."""

    _instance: ForkServer | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forge_course.grading.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the kernel fork server did not start")

    @classmethod
    def get(cls) -> ForkServer | None:
        """The running server, started on first use; None when forking is off or failed."""
        if not enabled():
            return None
        with cls._lock:
            if cls._instance is None or cls._instance.proc.poll() is not None:
                try:
                    cls._instance = cls()
                except (OSError, RuntimeError):
                    cls._instance = None
            return cls._instance

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str, log: str) -> int:
        """Fork a kernel running ``ipykernel`` with ``argv``'s arguments; return its pid."""
        with self._lock:
            request = {"argv": argv, "env": env, "cwd": cwd, "log": log}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            return int(self.proc.stdout.readline())

    @property
    def pid(self) -> int:
        return self.proc.pid


class _Forked:
    """Just enough of ``subprocess.Popen`` for Jupyter to manage a forked kernel."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

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
        server = ForkServer.get()
        if server is None or "ipykernel_launcher" not in cmd:
            return await super().launch_kernel(cmd, **kwargs)
        env = {str(k): str(v) for k, v in (kwargs.get("env") or os.environ).items()}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        pid = server.spawn(cmd, env, cwd, env.get("FORGE_COURSE_KERNEL_LOG", os.devnull))
        self.process = _Forked(pid)
        self.pid = self.pgid = pid
        self.cwd = cwd
        return self.connection_info


def _child(request: dict) -> None:
    """In the forked child: become the kernel that ``request`` describes."""
    os.setsid()
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

    launch_new_instance(argv=args)


def serve() -> None:
    """The fork server's loop: preload, then fork one kernel per request line."""
    import importlib

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the OS reaps finished kernels
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(request)
            except BaseException:  # noqa: BLE001 - a child must never return into the loop
                code = 1
            finally:
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    serve()
