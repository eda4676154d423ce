"""The kernel sandbox on its own: what a forked kernel sees and may do (no Jupyter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from forge_course.grading import sandbox as sb
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    sb.unavailable() is not None, reason=f"no sandbox here: {sb.unavailable()}"
)

LOOK_AROUND = """
import json, os, resource, sys
from forge_course.grading.namespaces import LIMITS, enter
job, other, base, private, inside = sys.argv[1:6]
def report(pid):
    print(json.dumps({"reported": pid}), flush=True)
enter(job, [base], LIMITS, report)
seen = {
    "pid": os.getpid(),
    "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()),
    "own_job": os.path.isdir(job),
    "other_job": os.path.exists(other),
    "server_socket_folder": os.path.exists(os.path.join(base, "server")),
    "private": os.listdir(private) if os.path.isdir(private) else None,
    "inside": os.listdir(inside),
    "cwd": os.getcwd(),
    "caps": [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0],
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
}
for name, path in (("course", os.path.join(sys.argv[6], ".sandbox-write-test")),
                   ("tmp", "/tmp/x")):
    try:
        open(path, "w").write("x")
        seen["write_" + name] = "ok"
    except OSError as exc:
        seen["write_" + name] = exc.strerror
import ctypes
seen["umount_tmp"] = ctypes.CDLL(None, use_errno=True).umount2(b"/tmp", 2)
print(json.dumps(seen), flush=True)
"""


def test_a_forked_kernel_sees_only_itself_and_its_job(tmp_path):
    private = tmp_path / "grades"  # stands for --out: the kernel's view must not show it
    private.mkdir()
    (private / "gradebook.csv").write_text("secret")
    inside = ROOT / "solutions"  # stands for --out inside the course folder: covered too
    box = sb.Sandbox(None, [str(private), str(inside)])
    try:
        job, other = box.new_job(), box.new_job()
        argv = [sys.executable, "-I", "-c", LOOK_AROUND, str(job), str(other), str(box.base),
                str(private), str(inside), str(ROOT)]  # fmt: skip
        done = subprocess.run(
            box.server_command(argv), capture_output=True, text=True, timeout=60,
            env=box.server_env({}),
        )  # fmt: skip
    finally:
        box.close()
    assert done.returncode == 0, done.stderr[-2000:]
    reported, seen = (json.loads(line) for line in done.stdout.splitlines())
    assert reported["reported"] > 1  # its pid as the server sees it
    assert seen["pid"] == 2 and seen["pids"] == ["1", "2"]  # alone with its init
    assert seen["own_job"] and not seen["other_job"] and not seen["server_socket_folder"]
    assert seen["private"] is None and seen["inside"] == []  # under its own /tmp; covered
    assert seen["cwd"] == str(job / "work")
    assert int(seen["caps"], 16) == 0 and seen["umount_tmp"] == -1  # mounts stay put
    assert seen["write_course"] == "Read-only file system" and seen["write_tmp"] == "ok"
    assert seen["nproc"] == sb.LIMITS.processes
    assert seen["fsize"] == sb.LIMITS.file_mb * 1024 * 1024
    assert not (ROOT / ".sandbox-write-test").exists()


def test_a_kernels_environment_keeps_no_secret():
    env = {"PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "x", "JPY_PARENT_PID": "12",
           "FORGE_COURSE_SUBMIT": "/job/c.sock:t", "TF_NUM_INTRAOP_THREADS": "1"}  # fmt: skip
    kept = sb.kernel_env(env, "/job")
    assert "AWS_SECRET_ACCESS_KEY" not in kept and "JPY_PARENT_PID" not in kept
    assert kept["FORGE_COURSE_SUBMIT"] == "/job/c.sock:t" and kept["HOME"] == "/tmp"


def test_the_probe_explains_a_missing_bwrap(monkeypatch):
    monkeypatch.setattr(sb.shutil, "which", lambda name: None)
    sb.unavailable.cache_clear()
    try:
        why = sb.unavailable()
        assert "bubblewrap (bwrap) is not installed" in why and "\n" not in why
    finally:
        sb.unavailable.cache_clear()
