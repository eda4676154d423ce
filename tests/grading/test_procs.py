"""Process helpers: whole trees die, adopted orphans are swept, stderr goes to a log."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from forge_course.grading import procs

TREE = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "time.sleep(60)"
)


def _tree() -> tuple[subprocess.Popen, psutil.Process]:
    """A child that has started a grandchild of its own."""
    child = subprocess.Popen([sys.executable, "-c", TREE])
    deadline = time.monotonic() + 30
    while not psutil.Process(child.pid).children():
        assert time.monotonic() < deadline, "the child never started its grandchild"
        time.sleep(0.05)
    return child, psutil.Process(child.pid).children()[0]


def _dead(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _gone_soon(proc: psutil.Process) -> bool:
    try:
        proc.wait(timeout=5)  # reaps it when it is ours; else waits for it to vanish
    except psutil.TimeoutExpired:
        return _dead(proc)
    except (psutil.NoSuchProcess, ChildProcessError):
        pass
    return True


def test_kill_tree_kills_a_process_and_its_descendants():
    child, grandchild = _tree()
    root = psutil.Process(child.pid)
    procs.kill_tree(child.pid)
    assert _gone_soon(root) and _gone_soon(grandchild)


def test_kill_tree_can_spare_the_root():
    child, grandchild = _tree()
    try:
        procs.kill_tree(child.pid, include_root=False)
        assert _gone_soon(grandchild)
        assert child.poll() is None  # still running
    finally:
        child.kill()
        child.wait()


def test_kill_tree_of_a_gone_process_is_quiet():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    procs.kill_tree(child.pid)  # no error, nothing else killed


def test_sweep_children_spares_whom_it_is_told():
    keep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    drop = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    spare = {keep.pid} | {p.pid for p in psutil.Process().children() if p.pid != drop.pid}
    try:
        dropped = psutil.Process(drop.pid)
        procs.sweep_children(spare=spare)
        assert _gone_soon(dropped) and keep.poll() is None
    finally:
        keep.kill()
        keep.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_subreaper_adopts_its_orphans():
    code = (
        "import os, subprocess, sys, time\n"
        "from forge_course.grading import procs\n"
        "procs.become_subreaper()\n"
        "mid = subprocess.Popen([sys.executable, '-c', 'import subprocess, sys; "
        'print(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]).pid)\'],'
        " stdout=subprocess.PIPE, text=True)\n"
        "orphan = int(mid.stdout.readline()); mid.wait()\n"
        "import psutil\n"
        "print(psutil.Process(orphan).ppid() == os.getpid())\n"
        "procs.sweep_children()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


def test_stderr_to_sends_file_descriptor_2_to_a_log(tmp_path):
    log = tmp_path / "kernel.log"
    with procs.stderr_to(log):
        os.write(2, b"noise from a kernel\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child noise')"])
    assert log.read_text() == "noise from a kernel\nchild noise"


def test_every_limit_is_a_positive_number_of_seconds():
    import dataclasses

    limits = dataclasses.asdict(procs.LIMITS)
    assert {"kernel_start", "request", "score"} <= set(limits)
    assert all(isinstance(v, (int, float)) and v > 0 for v in limits.values())
