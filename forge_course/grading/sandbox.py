"""Each submission's kernel in Linux namespaces of its own, with resource limits.

What a kernel sees (:func:`view`): the system (``/usr``, a few files of ``/etc``,
``/sys``), Python, the course and its virtualenv, all read-only, less ``--out``, the
submissions and ``--checks`` wherever they lie (covered by empty ones); a private ``/tmp`` and
``/dev/shm`` (tmpfs, size-capped); its own job folder (its copy of the submission, its
Jupyter connection file and ``ipc`` sockets, the artifact channel's socket). Not the
grader's ``--out``, other submissions or jobs, anyone's connection file, the fork
server's socket, ``--checks``, home folders, or the network. Its PID namespace holds
only itself and what it starts (the kernel is PID 1 there: when it ends, all of it
ends); IPC and UTS are its own too.

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
  own job, becomes PID 1 of its namespace with a fresh ``/proc``, then enters one more
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
refuses unless given ``--no-sandbox``. This module imports only the standard library:
the plain-kernel launcher (``python -m forge_course.grading.sandbox``) runs it alone.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = [
    "Limits", "Sandbox", "enter", "kernel_command", "kernel_env", "set_limits", "unavailable",
    "view",
]  # fmt: skip

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 24, 38, 1
SYS_CAPSET = 126 if os.uname().machine == "x86_64" else 91  # aarch64: 91

ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
    "localtime", "timezone", "fonts", "mime.types", "alternatives", "ssl", "hosts",
    "matplotlibrc", "os-release", "lsb-release", "debian_version",
)  # fmt: skip
# What a kernel's environment keeps of the grader's (anything else may be a secret).
ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "TZ", "KERAS_BACKEND", "PYTHONHASHSEED", "MPLBACKEND")
ENV_PREFIXES = ("LC_", "TF_", "OMP_", "FORGE_COURSE_", "JPY_", "CUDA_", "NVIDIA_", "XLA_")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one kernel may use. Memory counts on top of the preloaded kernel's own.

    The defaults suit the course's small models; change them here (one place).
    """

    memory_mb: int = 4096
    processes: int = 512  # processes and threads (TensorFlow starts a few dozen)
    file_mb: int = 512  # any one file it writes
    tmp_mb: int = 1024  # its private /tmp
    cpu_s: int = 600  # CPU seconds, all threads together

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def for_timeout(self, seconds: float) -> Limits:
        """These limits with CPU time to match a wall-clock limit on every core."""
        cores = os.cpu_count() or 1
        return dataclasses.replace(self, cpu_s=int(seconds * cores) + 30)


LIMITS = Limits()


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


def _loopback_up() -> None:
    """Bring up ``lo`` in a new network namespace (a kernel may serve itself on 127.0.0.1)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, 0x8913, ifreq))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS UP


def _bwrap_server(base: Path, checks: str | None, private: list[str] = ()) -> list[str]:
    """bwrap for the fork server: the view less ``private``, the batch folder, no network."""
    args = [
        shutil.which("bwrap") or "bwrap", "--unshare-user", "--unshare-ipc",
        "--unshare-net", "--unshare-uts", "--die-with-parent", *view(), *_hidden(private),
        "--bind", "/proc", "/proc",  # the server's own; each kernel mounts a fresh one
        "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(base), str(base),
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
        "--new-session", *view(), *_hidden(private), "--proc", "/proc", "--dev", "/dev",
        "--tmpfs", "/tmp", "--bind", job, job, "--chdir", f"{job}/work",
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


# ---------------------------------------------------------------- entering it (forked kernel)


_libc = None


def _call(name: str, *args) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{args[:2]}: {os.strerror(err)}")


def _mount(src, target: str, fstype, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _call("mount", enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def _unshare(flags: int, uid: int, gid: int) -> None:
    """New namespaces (a new user namespace among them), mapping ``uid``/``gid`` to 0."""
    _call("unshare", ctypes.c_int(flags))
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def _drop_capabilities() -> None:
    """No capability left, none to gain (bounding set emptied, no new privileges)."""
    for cap in range(64):
        try:
            _call("prctl", PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0)
        except OSError:
            break  # past the last capability this Linux knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_CAPSET, header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    _call("prctl", PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0)


def set_limits(limits: Limits) -> None:
    """Apply ``limits`` to this process (memory on top of what it holds already)."""
    import resource

    data = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            data = int(line.split()[1]) * 1024
    mb = 1024 * 1024
    for rlimit, value in (
        (resource.RLIMIT_DATA, data + limits.memory_mb * mb),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_CORE, 0),
    ):
        soft, hard = resource.getrlimit(rlimit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(rlimit, (value, value))


def enter(job: str, hide: list[str], limits: Limits, report) -> None:
    """Make this (forked, single-threaded) process a sandboxed kernel-to-be.

    Returns in a new process, PID 1 of its own namespace, with the view described in
    the module docstring, no capabilities and ``limits`` applied, its folder
    ``job/work``. The calling process stays behind: it calls ``report(pid)`` with that
    process's pid (as the caller's PID namespace sees it), waits for it and exits with it.
    """
    import signal

    _call("prctl", PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)  # with the server
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET
    _unshare(flags | CLONE_NEWUTS, uid, gid)
    _loopback_up()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    fd = os.open(job, os.O_PATH | os.O_DIRECTORY)  # in the new mount namespace: bind it back
    tmpfs = f"size={limits.tmp_mb}m,mode=1777"
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    for path in hide:  # the batch folder (other jobs, the server's socket), --checks
        if os.path.isdir(path) and not path.startswith("/tmp/"):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.makedirs(job, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", job, None, MS_BIND)
    os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid:  # stay behind: say who the kernel is, wait for it, end with it
        code = 1
        try:
            report(pid)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status) & 0xFF
        finally:
            os._exit(code)
    _call("prctl", PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:  # Linux >= 6.14 counts pids per namespace: a cap on processes, root or not
        Path("/proc/sys/kernel/pid_max").write_text(str(max(limits.processes, 64)))
    except OSError:
        pass
    _unshare(CLONE_NEWUSER | CLONE_NEWNS, 0, 0)  # locks every mount made above
    _drop_capabilities()
    set_limits(limits)
    os.chdir(os.path.join(job, "work"))


# ---------------------------------------------------------------- command line


def _probe(job: str, base: str) -> int:
    """Inside the server's bwrap: enter a kernel sandbox and look around."""
    results = []

    def report(pid):
        results.append(pid)

    enter(job, [base], LIMITS, report)
    assert os.getpid() == 1, os.getpid()
    assert not os.path.exists(os.path.join(base, "server")), "the batch folder shows"
    assert sorted(p for p in os.listdir("/proc") if p.isdigit()) == ["1"], "other pids show"
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
