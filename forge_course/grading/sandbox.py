"""Each submission's kernel in Linux namespaces of its own, with resource limits.

What a kernel sees (:func:`view`): the system (``/usr``, a few files of ``/etc``,
``/sys``), Python, the course and its virtualenv, all read-only, less ``--out``, the
submissions and ``--checks`` wherever they lie (covered by empty ones); a private ``/tmp`` and
``/dev/shm`` (tmpfs, size-capped); its own job folder (its copy of the submission, its
Jupyter connection file and ``ipc`` sockets, the artifact channel's socket). Not the
grader's ``--out``, other submissions or jobs, anyone's connection file, the fork
server's socket, ``--checks``, home folders, or the network. Its PID namespace holds
only itself and what it starts (under a small init, PID 1 there, which forwards
signals to the kernel and ends with it, taking all of it along); IPC and UTS are its
own too.

Which tools, and why:

- **bubblewrap** (``bwrap``, Debian ``bubblewrap``): the standard unprivileged sandbox
  (Flatpak's). It starts the *fork server* in new user, IPC, network and UTS namespaces
  with the read-only view above (plus the batch's private folder), and, where no fork
  server runs, each plain kernel in a complete sandbox of its own. It needs no root
  where unprivileged user namespaces are allowed, and dies with the grader.
- **unshare(2) and mount(2)** (through ``ctypes``) in each kernel the fork server forks:
  bwrap cannot sandbox a process that already runs, and the fork server's speed comes
  from forking a process that has imported TensorFlow. So each forked kernel enters a
  fresh user + mount + PID + IPC + network + UTS namespace itself (:func:`enter`),
  mounts its private ``/tmp``, hides the batch folder and ``--checks`` and binds back its
  own job, mounts a fresh ``/proc`` for its PID namespace, then enters one more
  user + mount namespace (which *locks* those mounts: they cannot be unmounted to
  reveal what lies under them) and drops every capability. The whole dance costs
  milliseconds.
- **setrlimit(2)** (what ``prlimit`` sets): memory (``RLIMIT_DATA``, counted on top of
  what the preloaded kernel already holds), processes and threads (``RLIMIT_NPROC``,
  and the PID namespace's ``pid_max`` where the running Linux namespaces it), file size
  (``RLIMIT_FSIZE``) and CPU time (``RLIMIT_CPU``). Not cgroups: they need a delegated
  cgroup tree (root or a systemd user session), which laptops and CI containers often
  lack, and the grader must run unprivileged. Note: Linux does not apply
  ``RLIMIT_NPROC`` to the real root user, so a grader run as root bounds processes
  only by ``pid_max`` (Linux >= 6.14), CPU time and memory.

Where user namespaces are unavailable (some distributions restrict them) or ``bwrap``
is missing, :func:`unavailable` says why in one line; ``forge-course grade`` then
refuses unless given ``--no-sandbox``. Entering the namespaces from a forked process
and the limits live in :mod:`.namespaces`; the plain-kernel launcher
(``python -m forge_course.grading.sandbox --exec``) applies the limits, then becomes
the kernel.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from forge_course.grading.namespaces import LIMITS, Limits, enter, set_limits

__all__ = [
    "Limits", "Sandbox", "enter", "kernel_command", "kernel_env", "set_limits", "unavailable",
    "view",
]  # fmt: skip

ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
    "localtime", "timezone", "fonts", "mime.types", "alternatives", "ssl", "hosts",
    "matplotlibrc", "os-release", "lsb-release", "debian_version",
)  # fmt: skip
# What a kernel's environment keeps of the grader's (anything else may be a secret).
ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "TZ", "KERAS_BACKEND", "PYTHONHASHSEED", "MPLBACKEND")
ENV_PREFIXES = ("LC_", "TF_", "OMP_", "FORGE_COURSE_", "JPY_", "CUDA_", "NVIDIA_", "XLA_")


# ---------------------------------------------------------------- is it available


@functools.cache
def unavailable() -> str | None:
    """Why kernels cannot be sandboxed here, in one line; None when they can."""
    if not sys.platform.startswith("linux"):
        return f"the kernel sandbox needs Linux namespaces (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    base = Path(tempfile.mkdtemp(prefix="forge-sandbox-probe-"))
    try:
        job = base / "jobs" / "probe"
        (job / "work").mkdir(parents=True)
        argv = [sys.executable, "-I", "-m", __name__, "--probe", str(job), str(base)]
        cmd = _bwrap_server(base, None) + ["--", *argv]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=_env())
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not start a sandbox: {exc}"
        if done.returncode == 0 and done.stdout.strip().endswith("sandboxed"):
            return None
        why = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"Linux refuses the namespaces the sandbox needs ({why[:200]})"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def describe() -> str:
    """One line: whether kernels are sandboxed here, and how."""
    why = unavailable()
    if why:
        return why
    return "kernels run in namespaces of their own (bubblewrap + unshare), with limits"


# ---------------------------------------------------------------- the view


def view() -> list[str]:
    """bwrap arguments for the read-only part of what a kernel sees."""
    args: list[str] = []
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind-try", "/sys", "/sys"]
    for path in _course_paths():
        args += ["--ro-bind", path, path]
    for dev in sorted(Path("/dev").glob("nvidia*")) + [Path("/dev/dri")]:
        args += ["--dev-bind-try", str(dev), str(dev)]  # a GPU, where there is one
    return args


def _course_paths() -> list[str]:
    """Python, the virtualenv, the course package and the dataset cache (real paths)."""
    import forge_course

    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    wanted.add(str(Path(forge_course.__file__).resolve().parents[1]))
    wanted.add(_keras_home())
    real = sorted({os.path.realpath(p) for p in wanted if os.path.isdir(p)})
    system = ("/usr", "/bin", "/sbin", "/lib", "/etc")
    out: list[str] = []
    for path in real:  # skip what the system binds or an outer folder already covers
        if path == "/" or path.startswith(system) or any(path.startswith(o + "/") for o in out):
            continue
        out.append(path)
    return out


def _hidden(paths: list[str]) -> list[str]:
    """bwrap arguments that cover ``paths`` (folders with an empty tmpfs, files with an
    empty file): the grader's own folders, where the view would otherwise show them."""
    args: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.exists(path):
            args += ["--ro-bind", "/dev/null", path]
    return args


def _keras_home() -> str:
    return os.path.realpath(os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras"))


def _bwrap_server(base: Path, checks: str | None, private: list[str] = ()) -> list[str]:
    """bwrap for the fork server: the view less ``private``, the batch folder, no network."""
    args = [
        shutil.which("bwrap") or "bwrap", "--unshare-user", "--unshare-ipc",
        "--unshare-net", "--unshare-uts", "--die-with-parent",
        "--tmpfs", "/tmp",  # first: a course or virtualenv under /tmp is bound back into it
        *view(), *_hidden(private),
        "--bind", "/proc", "/proc",  # the server's own; each kernel mounts a fresh one
        "--dev", "/dev", "--bind", str(base), str(base),
    ]  # fmt: skip
    if checks:
        args += ["--ro-bind", checks, checks]
    return args + ["--chdir", str(base)]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: only what :data:`ENV_KEEP` names survives."""
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith(ENV_PREFIXES)}
    env |= {"HOME": "/tmp", "TMPDIR": "/tmp", "KERAS_HOME": _keras_home()}
    return env | (extra or {})


def kernel_env(env: dict[str, str], job: str) -> dict[str, str]:
    """A kernel's environment: what Jupyter set for it, less anything not on the list."""
    keep = {k: v for k, v in env.items() if k in ENV_KEEP or k.startswith(ENV_PREFIXES)}
    keep.pop("JPY_PARENT_PID", None)  # not in its PID namespace: it would think it orphaned
    keep["KERAS_HOME"] = _keras_home()  # the instructor's dataset cache, read-only
    return keep | {"HOME": "/tmp", "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp/.matplotlib"}


def kernel_command(cmd: list[str], job: str, limits: Limits, private: list[str] = ()) -> list[str]:
    """bwrap around a plain (not forked) kernel: the same view, every namespace."""
    args = [
        shutil.which("bwrap") or "bwrap", "--unshare-user", "--unshare-pid",
        "--unshare-ipc", "--unshare-net", "--unshare-uts", "--die-with-parent",
        "--new-session", "--tmpfs", "/tmp", *view(), *_hidden(private), "--proc", "/proc",
        "--dev", "/dev", "--bind", job, job, "--chdir", f"{job}/work",
    ]  # fmt: skip
    launcher = [sys.executable, "-I", "-m", __name__, "--exec", json.dumps(limits.to_dict())]
    return args + ["--", *launcher, "--", *cmd]


class Sandbox:
    """One batch's private folder (mode 0700): the fork server's socket, one job per kernel."""

    def __init__(
        self, checks: str | None = None, private: list = (), limits: Limits = LIMITS
    ) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="forge-sandbox-"))
        self.server_dir = self.base / "server"
        self.jobs = self.base / "jobs"
        self.server_dir.mkdir(mode=0o700)
        self.jobs.mkdir(mode=0o700)
        self.checks = os.path.realpath(checks) if checks else None
        # --out and the submissions: never in a kernel's view, even inside the course
        self.private = [os.path.realpath(p) for p in private]
        self.private += [self.checks] if self.checks else []
        (self.base / "private.json").write_text(json.dumps(self.private))
        self.limits = limits

    @property
    def hide(self) -> list[str]:
        """What a forked kernel must not see of the fork server's view."""
        return [str(self.base)] + ([self.checks] if self.checks else [])

    def server_command(self, argv: list[str]) -> list[str]:
        return _bwrap_server(self.base, self.checks, self.private) + ["--", *argv]

    def server_env(self, extra: dict[str, str]) -> dict[str, str]:
        return _env(extra)

    def new_job(self) -> Path:
        """A fresh folder for one kernel (its ``work/`` is the notebook's folder)."""
        job = self.jobs / secrets.token_hex(8)
        (job / "work").mkdir(parents=True)
        return job

    @staticmethod
    def private_of(jobs: str) -> list[str]:
        """The private paths of the sandbox whose job folder is ``jobs`` (for a worker)."""
        try:
            return json.loads((Path(jobs).parent / "private.json").read_text())
        except (OSError, ValueError):
            return []

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------- command line


def _probe(job: str, base: str) -> int:
    """Inside the server's bwrap: enter a kernel sandbox and look around."""
    results = []

    def report(pid):
        results.append(pid)

    enter(job, [base], LIMITS, report)
    assert os.getpid() == 2, os.getpid()  # under its namespace's init
    assert not os.path.exists(os.path.join(base, "server")), "the batch folder shows"
    assert sorted(p for p in os.listdir("/proc") if p.isdigit()) == ["1", "2"], "pids show"
    import socket

    with socket.create_server(("127.0.0.1", 0)) as srv:  # loopback works, nothing else
        socket.create_connection(srv.getsockname(), timeout=5).close()
    print("sandboxed", flush=True)
    return 0


def _exec(limits: str, cmd: list[str]) -> None:
    """Inside a plain kernel's bwrap: apply the limits, then become the kernel."""
    set_limits(Limits(**json.loads(limits)))
    os.environ.pop("JPY_PARENT_PID", None)  # its parent is outside its PID namespace
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    if sys.argv[1] == "--probe":
        sys.exit(_probe(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "--exec":
        _exec(sys.argv[2], sys.argv[sys.argv.index("--") + 1 :])
