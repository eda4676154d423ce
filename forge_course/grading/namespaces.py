"""Entering a kernel's namespaces from a forked process, and its resource limits.

The fork server's children call :func:`enter` (see :mod:`.sandbox` for what the view is
and why these tools): ``unshare(2)`` and ``mount(2)`` through ``ctypes``, then
``setrlimit(2)`` (:func:`set_limits`). Standard library only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from pathlib import Path

__all__ = ["LIMITS", "Limits", "enter", "set_limits"]

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 24, 38, 1
SYS_CAPSET = 126 if os.uname().machine == "x86_64" else 91  # aarch64: 91


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


def _loopback_up() -> None:
    """Bring up ``lo`` in a new network namespace (a kernel may serve itself on 127.0.0.1)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, 0x8913, ifreq))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS UP


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

    Returns in a new process, PID 2 of its own namespace (under a small init,
    :func:`_init`), with the view described in :mod:`.sandbox`, no capabilities and
    ``limits`` applied, its folder ``job/work``. The calling process stays behind: it
    calls ``report(pid)`` with the init's pid (as the caller's PID namespace sees it:
    signals sent there reach the kernel, SIGKILL ends the whole namespace), waits for
    it and exits with it.
    """
    import signal

    _call("prctl", PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)  # with the server
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET
    _unshare(flags | CLONE_NEWUTS, uid, gid)
    _loopback_up()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    fd = os.open(job, os.O_PATH | os.O_DIRECTORY)  # in the new mount namespace: bind it back
    # The course and its virtualenv may live under /tmp (a CI checkout): bind them back
    # into the private /tmp, read-only as the server sees them (submounts included).
    from forge_course.grading.sandbox import _course_paths

    under_tmp = [p for p in _course_paths() if p.startswith("/tmp/")]
    kept = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in under_tmp}
    tmpfs = f"size={limits.tmp_mb}m,mode=1777"
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    for path, kept_fd in kept.items():
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{kept_fd}", path, None, MS_BIND | MS_REC)
        os.close(kept_fd)
    for path in hide:  # the batch folder (other jobs, the server's socket), --checks
        if os.path.isdir(path):
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
    _init()


FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _init() -> None:
    """Stay behind as the namespace's PID 1 (which Linux shields from its own
    namespace's signals): forward signals to the kernel, reap orphans, end with it.

    Returns in the kernel, PID 2, which can be killed like any process (a notebook
    that kills its own kernel crashes, as it would anywhere).
    """
    import signal

    kernel = os.fork()
    if kernel == 0:
        return
    for name in FORWARDED:  # Jupyter interrupts and stops the kernel through us
        signal.signal(getattr(signal, name), lambda signum, _: _forward(kernel, signum))
    code = 1
    try:
        while True:
            pid, status = os.wait()
            if pid == kernel:
                code = os.waitstatus_to_exitcode(status) & 0xFF
                break
    except ChildProcessError:
        pass
    finally:
        os._exit(code)  # PID 1 ends: Linux kills whatever else runs in the namespace


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
