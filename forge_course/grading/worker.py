"""One submission, in a grading worker process: run it, then have it scored.

The recipe:

1. read the notebook and find its exercise (notebook metadata written by ``assign``);
2. start a :class:`~forge_course.grading.channel.Collector` and a watchdog;
3. execute a copy with papermill in a private folder, injecting grading parameters;
4. kill whatever the notebook left running, and mark the executed notebook where it
   stopped;
5. score what the collector received, in a grader process (:mod:`.score`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat

from forge_course.errors import GradingError
from forge_course.grading import forkserver
from forge_course.grading.feedback import CheckResult
from forge_course.grading.spec import Exercise, exercise, exercises

NOTEBOOK_ROW = "(notebook)"


def init(threads: int, address: tuple[str, str] | None) -> None:
    """Worker start-up: its share of the cores, the fork server, adoption of orphans."""
    forkserver.ADDRESS = address
    if address is not None:
        os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] = forkserver.PROVISIONER
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    forkserver.become_subreaper()  # what a usual kernel leaves behind comes back to us
    forkserver.die_with_parent()  # and no worker outlives its grader
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle


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


class _Watchdog:
    """Kill the kernel (and all it started) when a submission runs too long."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if not self._stop.wait(self.seconds):
            self.fired = True
            _kill_leftovers()

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


def _from_our_kernel(pid: int) -> bool:
    """Whether ``pid`` is this submission's kernel or runs under it.

    A forked kernel is one of ``forkserver.SPAWNED``; a usual kernel is our child.
    """
    import psutil

    ours = {p.pid for p in forkserver.SPAWNED} | {os.getpid()}
    try:
        proc = psutil.Process(pid)
        return any(p.pid in ours for p in [proc, *proc.parents()])
    except psutil.Error:
        return False


def _kill_leftovers() -> None:
    """Kill this submission's kernel and everything it started, wherever it runs."""
    for pid in forkserver.SPAWNED:  # kernels forked for us are the fork server's children
        forkserver.kill_tree(pid)
    forkserver.kill_tree(os.getpid(), include_root=False)  # a usual kernel is ours


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's file descriptor 2 (and so a usual kernel's noise) to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _execute(src: Path, dest: Path, params: dict, timeout: float, workdir: Path) -> tuple[str, str]:
    """Run the notebook; return (outcome, message), outcome completed/error/timeout/crashed."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    late = f"stopped after the {timeout:g} s limit"
    with _Watchdog(timeout) as dog, _stderr_to(dest.with_suffix(".log")):
        try:
            papermill.execute_notebook(
                str(src), str(dest), parameters=params, kernel_name="python3",
                cwd=str(workdir), execution_timeout=math.ceil(timeout), start_timeout=60,
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            )  # fmt: skip
            return "completed", ""
        except papermill.PapermillExecutionError as exc:
            if dog.fired:
                return "timeout", late
            where = f"In [{exc.exec_count}]" if exc.exec_count else f"cell {exc.cell_index}"
            return "error", f"the notebook stopped at {where}: {exc.ename}: {exc.evalue}"[:500]
        except CellTimeoutError:
            return "timeout", f"a cell ran past the {timeout:g} s limit"
        except DeadKernelError:
            if dog.fired:
                return "timeout", late
            return "crashed", "the kernel died (killed, out of memory or crashed)"
        except Exception as exc:  # noqa: BLE001 - any failure becomes a status, not a crash
            if dog.fired:
                return "timeout", late
            return "crashed", f"execution failed: {type(exc).__name__}: {exc}"[:500]


def _mark_stop(dest: Path, src: Path, outcome: str, message: str) -> None:
    """Make the executed notebook explain itself: a banner before the cell that stopped."""
    try:
        nb = nbformat.read(dest if dest.exists() else src, as_version=4)
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


def _score(args: dict) -> dict:
    """Score in a process forked by the fork server (TensorFlow preloaded), else here."""
    from forge_course.grading import score

    if forkserver.ADDRESS is not None:
        try:
            return forkserver.call_score(args | {"artifacts": score.pack(args["artifacts"])})
        except (OSError, RuntimeError, ValueError):
            pass  # the server is gone or the scorer died: score here instead
    return score.score(**args)


def grade_one(
    student: str,
    path: Path,
    out: Path,
    overrides: dict[str, Any],
    timeout: float | None,
    checks_dir: str | None,
    only: list[str] | None = None,
    name: str = "",
) -> dict:
    """Grade one submission and return its result as a dict (rows, outcome, timings)."""
    from forge_course.grading.channel import ENV_VAR, Collector
    from forge_course.grading.score import with_extra

    started = time.perf_counter()
    result: dict[str, Any] = {
        "student": student, "notebook": name or path.name, "path": str(path), "exercise": None,
        "outcome": "error", "message": "", "params": {}, "rows": [],
    }  # fmt: skip
    try:
        if path.is_dir():
            raise GradingError(f"no notebook (*.ipynb) in the folder {path.name}/")
        nb = nbformat.read(path, as_version=4)
        ex = with_extra(which_exercise(nb, path).name, checks_dir)
        if only and ex.name not in only:
            raise GradingError(
                f"this notebook answers exercise {ex.name}, but this batch grades "
                f"{', '.join(only)}; hand in the notebook of that exercise"
            )
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook, unknown exercise
        if isinstance(exc, GradingError):
            why = str(exc)
        else:
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            why = f"not a readable notebook ({detail}); hand in the .ipynb file itself"
        result["message"] = why
        result["rows"] = [CheckResult(NOTEBOOK_ROW, 0, 0, "error", why).to_dict()]
        return result | {"duration_s": round(time.perf_counter() - started, 2)}
    params = ex.params | overrides
    limit = timeout or ex.timeout
    result.update(exercise=ex.name, params=params, timeout_s=limit)
    executed = out / "executed" / student / (name or path.name)
    executed.parent.mkdir(parents=True, exist_ok=True)
    forkserver.SPAWNED.clear()
    forkserver.KERNEL_LOG = str(executed.with_suffix(".log"))
    with tempfile.TemporaryDirectory(prefix="forge-grade-") as tmp:
        shutil.copy(path, Path(tmp) / "submission.ipynb")
        allowed = {t.id: dict(t.values) for t in ex.tasks}
        with Collector(allowed, sender_ok=_from_our_kernel) as collector:
            os.environ.update(
                {
                    ENV_VAR: collector.address,
                    "FORGE_COURSE_OFFLINE": "1",
                    "PYTHONHASHSEED": "0",
                    "TF_DETERMINISTIC_OPS": "1",
                    "MPLBACKEND": "Agg",
                }
            )
            ran = time.perf_counter()
            try:
                outcome, message = _execute(
                    Path(tmp) / "submission.ipynb", executed, params, limit, Path(tmp)
                )
            finally:
                os.environ.pop(ENV_VAR, None)
                _kill_leftovers()
            result["execute_s"] = round(time.perf_counter() - ran, 2)
        artifacts = collector.artifacts()
    if outcome != "completed":
        _mark_stop(executed, path, outcome, message)
    result.update(outcome=outcome, message=message)
    scored = time.perf_counter()
    answer = _score(
        {
            "exercise": ex.name,
            "checks_dir": checks_dir,
            "artifacts": artifacts,
            "params": params,
            "outcome": outcome,
            "message": message,
        }  # fmt: skip
    )
    result["rows"], result["environment"] = answer["rows"], answer["environment"]
    result["score_s"] = round(time.perf_counter() - scored, 2)
    result["duration_s"] = round(time.perf_counter() - started, 2)
    return result
