"""One submission, in a grading worker process: run it, then have it scored.

:func:`grade_one` is the recipe:

1. find the submission's exercise (notebook metadata written by ``assign``);
2. run a copy in a kernel of its own (in its own sandbox, :mod:`.sandbox`), in a job
   folder of its own, with the grading parameters injected, while a
   :class:`~forge_course.grading.channel.Collector` receives what its ``check(...)``
   calls submit and a watchdog enforces the time limit; then kill whatever the
   notebook left running;
3. mark the executed notebook where it stopped; keep it (outputs capped, :mod:`.engine`)
   and the kernel's log in memory: only the grader writes ``--out``, at the end;
4. score what the collector received, in a grader process (:mod:`.score`), and accept
   the scorer's answer only if it fits the exercise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path

from forge_course.errors import GradingError
from forge_course.grading import forkserver, procs
from forge_course.grading import sandbox as sb
from forge_course.grading.forkserver import Client
from forge_course.grading.results import GradeOptions, Submission, SubmissionResult
from forge_course.grading.spec import Exercise, exercise, exercises

__all__ = ["grade_one", "init", "read_submission", "which_exercise"]

MAX_NOTEBOOK = 64 * 1024 * 1024  # bytes of a handed-in notebook
LOG_TAIL = 64 * 1024  # bytes of a kernel's log kept
JOBS: str | None = None  # the sandbox's job folder, or None: no sandbox

# What a submission's kernel and scorer see in their environment.
GRADING_ENV = {
    "FORGE_COURSE_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
    "TF_DETERMINISTIC_OPS": "1",
    "MPLBACKEND": "Agg",
}


def init(threads: int, address: tuple[str, str] | None, jobs: str | None = None) -> None:
    """Worker start-up: its share of the cores, the fork server, the sandbox's job
    folder (None: no sandbox), adoption of orphans."""
    global JOBS
    JOBS = jobs
    private = sb.Sandbox.private_of(jobs) if jobs is not None else []
    forkserver.WORKER = Client(address, sandboxed=jobs is not None, private=private)
    os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] = forkserver.PROVISIONER
    from forge_course.grading import engine  # papermill: here, not in the grader's own process

    engine.register()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    procs.become_subreaper()  # what a usual kernel leaves behind comes back to us
    procs.die_with_parent()  # and no worker outlives its grader
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle


def warm() -> None:
    """Import what grading a notebook needs, so the first submission does not wait for it."""
    import nbclient  # noqa: F401
    import papermill  # noqa: F401


def grade_one(sub: Submission, opts: GradeOptions) -> SubmissionResult:
    """Grade one submission: run it in a kernel of its own, then score what it submitted.

    Meant for a grading worker (started with :func:`init`): after the run it kills every
    child of this process, since a usual kernel and whatever it started are among them.
    """
    started = time.perf_counter()
    client = forkserver.WORKER or Client()
    try:
        raw = read_submission(sub.path)
        ex = _exercise_of(sub, raw, opts)
    except GradingError as why:  # not JSON, not a notebook, unknown or unwanted exercise
        return SubmissionResult.not_gradable(sub, str(why), _since(started))
    params = ex.params | opts.overrides
    limit = opts.timeout or ex.timeout
    run = _run(raw, ex, params, limit, client)
    scored_at = time.perf_counter()
    rows, environment = _score(client, opts.exercise(ex.name), opts, run, params, limit)
    return SubmissionResult.for_submission(
        sub,
        exercise=ex.name,
        outcome=run.outcome,
        message=run.message,
        params=params,
        rows=rows,
        timeout_s=limit,
        duration_s=_since(started),
        execute_s=run.seconds,
        score_s=_since(scored_at),
        environment=environment,
        sandboxed=client.sandboxed,
        executed=run.executed,
        log=run.log,
    )


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 2)


# ---------------------------------------------------------------- 1. which exercise


def which_exercise(nb, path: Path) -> Exercise:
    """The exercise a notebook answers: its metadata, else a file named like one."""
    name = nb.metadata.get("forge_course", {}).get("exercise")
    if name is None and path.stem in exercises():
        name = path.stem
    if name is None:
        raise GradingError(
            "this notebook does not say which exercise it answers; "
            "start from the exercise notebook in exercises/"
        )
    return exercise(name)


def read_submission(path: Path) -> bytes:
    """A handed-in file's bytes, never through a symbolic link; GradingError says why not."""
    if path.is_symlink():
        raise GradingError("this is a symbolic link, not a file; hand in the notebook itself")
    if path.is_dir():
        raise GradingError(f"no notebook (*.ipynb) in the folder {path.name}/")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise GradingError(f"could not read this file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise GradingError("this is not a regular file; hand in the notebook itself")
        raw = f.read(MAX_NOTEBOOK + 1)
    if len(raw) > MAX_NOTEBOOK:
        raise GradingError(
            f"this file is over {MAX_NOTEBOOK // (1024 * 1024)} MB; clear the notebook's "
            "outputs (Edit > Clear Outputs of All Cells) and hand it in again"
        )
    return raw


def _exercise_of(sub: Submission, raw: bytes, opts: GradeOptions) -> Exercise:
    """The exercise ``sub`` answers, as this batch grades it; GradingError says why not."""
    import nbformat

    try:
        name = which_exercise(nbformat.reads(raw.decode(), as_version=4), sub.path).name
    except GradingError:
        raise
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook, odd metadata
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise GradingError(
            f"not a readable notebook ({detail}); hand in the .ipynb file itself"
        ) from None
    ex = opts.exercise(name)
    if opts.only and ex.name not in opts.only:
        raise GradingError(
            f"this notebook answers exercise {ex.name}, but this batch grades "
            f"{', '.join(opts.only)}; hand in the notebook of that exercise"
        )
    return ex


# ---------------------------------------------------------------- 2. run it


@dataclasses.dataclass
class Run:
    """How a notebook ran, what its ``check(...)`` calls submitted (or had refused), and
    the executed notebook and kernel log, kept in memory for the grader to write."""

    outcome: str  # completed, error, timeout or crashed
    message: str
    artifacts: dict[str, dict[str, tuple[str, bytes]]]
    seconds: float
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    executed: str | None = None
    log: str = ""


def _new_job(client: Client) -> Path:
    """A fresh folder for one kernel: in the sandbox's, else a private temporary one."""
    if JOBS is not None:
        job = Path(JOBS) / os.urandom(8).hex()
        (job / "work").mkdir(parents=True)
        return job
    job = Path(tempfile.mkdtemp(prefix="forge-grade-"))
    (job / "work").mkdir()
    return job


def _run(raw: bytes, ex: Exercise, params: dict, limit: float, client: Client) -> Run:
    """Run a copy of the notebook in a job folder; collect what it submits; clean up after."""
    from forge_course.grading.channel import Collector

    job = _new_job(client)
    private = Path(tempfile.mkdtemp(prefix="forge-worker-"))  # no kernel ever sees it
    copy, executed = job / "work" / "submission.ipynb", private / "executed.ipynb"
    copy.write_bytes(raw)
    client.new_submission(str(job), sb.LIMITS.for_timeout(limit))
    allowed = {t.id: dict(t.values) for t in ex.tasks}
    started = time.perf_counter()
    try:
        sender_ok = lambda pid: _ours(client, pid)  # noqa: E731
        with (
            Collector(allowed, sender_ok=sender_ok, folder=str(job)) as collector,
            _env(collector.address),
        ):
            try:
                outcome, message = _execute(copy, executed, params, limit, client, private)
            finally:
                _kill_leftovers(client)
        if outcome != "completed":
            _mark_stop(executed, raw, outcome, message)
        return Run(
            outcome, message, collector.artifacts(), _since(started), dict(collector.refused),
            _read(executed, None), _tail(job / "kernel.log") + _tail(private / "kernel.log"),
        )  # fmt: skip
    finally:
        shutil.rmtree(job, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


def _read(path: Path, default):
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return default


def _tail(path: Path) -> str:
    """The last :data:`LOG_TAIL` bytes of a log, as text."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - LOG_TAIL))
            return f.read(LOG_TAIL).decode(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def _env(address: str):
    """The environment a submission's kernel starts with; this worker's is restored after."""
    from forge_course.grading.channel import ENV_VAR

    changes = GRADING_ENV | {ENV_VAR: address}
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Watchdog:
    """Call ``kill`` (the kernel and all it started) when a submission runs too long."""

    def __init__(self, seconds: float, kill):
        self.seconds = seconds
        self.kill = kill
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if not self._stop.wait(self.seconds):
            self.fired = True
            self.kill()

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


def _ours(client: Client, pid: int) -> bool:
    """Whether ``pid`` is this submission's kernel or runs under it.

    A forked kernel is one the client spawned; a usual kernel is this worker's child.
    """
    import psutil

    ours = {p.pid for p in client.spawned} | {os.getpid()}
    try:
        proc = psutil.Process(pid)
        return any(p.pid in ours for p in [proc, *proc.parents()])
    except psutil.Error:
        return False


def _kill_leftovers(client: Client) -> None:
    """Kill this submission's kernel and everything it started, wherever it runs."""
    for proc in client.spawned:  # kernels forked for us are the fork server's children
        procs.kill_tree(proc)
    procs.kill_tree(os.getpid(), include_root=False)  # a usual kernel is ours


def _execute(
    src: Path, dest: Path, params: dict, limit: float, client: Client, private: Path
) -> tuple[str, str]:
    """Run the notebook; return (outcome, message), outcome completed/error/timeout/crashed."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from forge_course.grading import engine

    late = f"stopped after the {limit:g} s limit"
    kill = lambda: _kill_leftovers(client)  # noqa: E731
    with _Watchdog(limit, kill) as dog, procs.stderr_to(private / "kernel.log"):
        try:
            papermill.execute_notebook(
                str(src), str(dest), parameters=params, kernel_name="python3",
                engine_name=engine.ENGINE, km=engine.kernel_manager(client.job),
                cwd=str(src.parent), execution_timeout=math.ceil(limit),
                start_timeout=procs.LIMITS.kernel_start, progress_bar=False, log_output=False,
                request_save_on_cell_execute=False,
            )  # fmt: skip
            return "completed", ""
        except papermill.PapermillExecutionError as exc:
            if dog.fired:
                return "timeout", late
            where = f"In [{exc.exec_count}]" if exc.exec_count else f"cell {exc.cell_index}"
            return "error", f"the notebook stopped at {where}: {exc.ename}: {exc.evalue}"[:500]
        except CellTimeoutError:
            return "timeout", f"a cell ran past the {limit:g} s limit"
        except DeadKernelError:
            if dog.fired:
                return "timeout", late
            return "crashed", "the kernel died (killed, out of memory or crashed)"
        except Exception as exc:  # noqa: BLE001 - any failure becomes a status, not a crash
            if dog.fired:
                return "timeout", late
            return "crashed", f"execution failed: {type(exc).__name__}: {exc}"[:500]


# ---------------------------------------------------------------- 3. mark where it stopped


def _mark_stop(dest: Path, raw: bytes, outcome: str, message: str) -> None:
    """Make the executed notebook explain itself: a banner before the cell that stopped."""
    import nbformat

    try:
        nb = nbformat.reads(dest.read_text() if dest.exists() else raw.decode(), as_version=4)
    except Exception:  # noqa: BLE001 - a missing or broken output simply gets no banner
        return
    status = [c.metadata.get("papermill", {}).get("status") for c in nb.cells]
    stop = next(
        (i for i, s in enumerate(status) if s in ("running", "failed", "pending")), len(nb.cells)
    )
    text = (
        f'<span style="color:red; font-size:1.3em">Grading stopped here ({outcome}): '
        f"{message}</span>"
    )
    nb.cells.insert(stop, nbformat.v4.new_markdown_cell(text, metadata={"tags": ["forge-grader"]}))
    nbformat.write(nb, dest)


# ---------------------------------------------------------------- 4. score it


def _score(client: Client, ex: Exercise, opts: GradeOptions, run: Run, params: dict, limit):
    """Score in a process forked by the fork server (TensorFlow preloaded), else in a
    fresh one; within ``limit`` seconds. Returns (rows, the scorer's environment)."""
    from forge_course.grading import score
    from forge_course.grading.feedback import CheckResult

    request = score.ScoreRequest(
        exercise=ex.name, checks_dir=opts.checks, artifacts=run.artifacts, params=params,
        outcome=run.outcome, message=run.message, refused=run.refused,
    )  # fmt: skip
    try:
        try:
            if client.address is None:
                raise ConnectionError("no fork server")
            scored = score.Scored.from_dict(client.score(request.to_dict(), limit))
        except TimeoutError:
            raise
        except OSError:  # the server is gone: a fresh process, same limits
            scored = score.score_in_subprocess(request, limit)
        return score.checked_rows(scored.rows, ex), scored.environment
    except TimeoutError:
        status = "timeout"
        why = f"scoring what you submitted took longer than the {limit:g} s limit"
    except RuntimeError:
        status = "crashed"
        why = "scoring what you submitted crashed or ran out of memory (is a model too big?)"
    except (ValueError, KeyError, TypeError) as bad:
        status, why = "error", f"the grader refused its scorer's answer: {bad}"
    return [CheckResult.zero(c, status, why) for c in ex.checks], {}
