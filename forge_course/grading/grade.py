"""``forge-course grade``: run submissions with papermill and score their artifacts.

The recipe, per submission, in a worker process:

1. read the notebook and find its exercise (notebook metadata written by ``assign``);
2. start a :class:`~forge_course.grading.channel.Collector` and a watchdog;
3. execute the notebook with papermill, injecting the exercise's grading parameters;
4. save the executed notebook, marked where it stopped;
5. load the received artifacts in this process and run every check, hidden ones too.

The batch always finishes: whatever a submission does, it gets one row per check.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat

from forge_course.errors import GradingError
from forge_course.grading.feedback import CheckResult, run_checks
from forge_course.grading.spec import Exercise, exercise, exercises, load_checks

__all__ = ["Submission", "discover", "grade", "grade_one"]

NOTEBOOK_ROW = "(notebook)"


@dataclasses.dataclass
class Submission:
    """One notebook handed in by one student."""

    student: str
    path: Path

    @property
    def notebook(self) -> str:
        return self.path.name


def discover(paths: list[Path]) -> list[Submission]:
    """Turn SUBMISSION arguments into submissions: files, folders, per-student folders."""
    found: list[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(Submission(path.stem, path))
        elif path.is_dir():
            for item in sorted(path.iterdir()):
                if item.name.startswith("."):
                    continue
                if item.is_file() and item.suffix == ".ipynb":
                    found.append(Submission(item.stem, item))
                elif item.is_dir():
                    for nb in sorted(item.rglob("*.ipynb")):
                        if ".ipynb_checkpoints" not in nb.parts:
                            found.append(Submission(item.name, nb))
        else:
            raise GradingError(f"submission {path} does not exist")
    if not found:
        raise GradingError(f"no notebooks found in {', '.join(map(str, paths))}")
    seen: dict[tuple[str, str], Path] = {}
    for sub in found:
        key = (sub.student, sub.notebook)
        if key in seen:
            raise GradingError(
                f"two submissions for student {sub.student!r} named {sub.notebook}: "
                f"{seen[key]} and {sub.path}; rename one or grade them separately"
            )
        seen[key] = sub.path
    return found


def _which_exercise(nb, path: Path) -> Exercise:
    name = nb.metadata.get("forge_course", {}).get("exercise")
    known = exercises()
    if name is None and path.stem in known:
        name = path.stem
    if name is None:
        raise GradingError(
            "this notebook does not say which exercise it answers; "
            "start from the exercise notebook in exercises/"
        )
    return exercise(name)


class _Watchdog:
    """Kill this process's children (the kernel) when a submission runs too long."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self._stop.wait(self.seconds):
            return
        import psutil

        from forge_course.grading import forkserver

        self.fired = True
        procs = psutil.Process().children(recursive=True)
        for pid in forkserver.SPAWNED:  # kernels forked for us are not our children
            try:
                kernel = psutil.Process(pid)
                procs += [kernel, *kernel.children(recursive=True)]
            except psutil.Error:
                pass
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's file descriptor 2 (and so a kernel's noise) to ``path``."""
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
    """Run the notebook; return (outcome, message) with outcome completed/error/timeout/crashed."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    with _Watchdog(timeout) as dog, _stderr_to(dest.with_suffix(".log")):
        try:
            papermill.execute_notebook(
                str(src), str(dest), parameters=params, kernel_name="python3",
                cwd=str(workdir), execution_timeout=timeout, start_timeout=60,
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            )  # fmt: skip
            return "completed", ""
        except papermill.PapermillExecutionError as exc:
            if dog.fired:
                return "timeout", f"stopped after the {timeout:g} s limit"
            where = f"In [{exc.exec_count}]" if exc.exec_count else f"cell {exc.cell_index}"
            return "error", f"the notebook stopped at {where}: {exc.ename}: {exc.evalue}"[:500]
        except CellTimeoutError:
            return "timeout", f"a cell ran past the {timeout:g} s limit"
        except DeadKernelError:
            if dog.fired:
                return "timeout", f"stopped after the {timeout:g} s limit"
            return "crashed", "the kernel died (killed, out of memory or crashed)"
        except Exception as exc:  # noqa: BLE001 - any failure becomes a status, not a crash
            if dog.fired:
                return "timeout", f"stopped after the {timeout:g} s limit"
            return "crashed", f"execution failed: {type(exc).__name__}: {exc}"[:500]


def _mark_stop(dest: Path, src: Path, outcome: str, message: str) -> None:
    """Make the executed notebook explain itself: a banner before the cell that stopped."""
    try:
        nb = nbformat.read(dest if dest.exists() else src, as_version=4)
    except Exception:  # noqa: BLE001 - a missing or broken output simply gets no banner
        return
    cells = nb.cells
    stop = next(
        (
            i
            for i, c in enumerate(cells)
            if c.cell_type == "code"
            and c.metadata.get("papermill", {}).get("status") in ("running", "failed", "pending")
        ),
        len(cells),
    )
    text = (
        f'<span style="color:red; font-size:1.3em">Grading stopped here ({outcome}): '
        f"{message}</span>"
    )
    cells.insert(stop, nbformat.v4.new_markdown_cell(text, metadata={"tags": ["forge-grader"]}))
    nbformat.write(nb, dest)


_EXTRA: dict[str, list] = {}


def grade_one(
    sub: Submission,
    out: Path,
    overrides: dict[str, Any],
    timeout: float | None,
    checks_dir: str | None,
) -> dict:
    """Grade one submission (in a worker process) and return its result as a dict."""
    started = time.perf_counter()
    result: dict[str, Any] = {
        "student": sub.student, "notebook": sub.notebook, "path": str(sub.path),
        "exercise": None, "outcome": "error", "message": "", "params": {}, "rows": [],
    }  # fmt: skip
    try:
        nb = nbformat.read(sub.path, as_version=4)
    except Exception as exc:  # noqa: BLE001
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        result["message"] = f"not a readable notebook ({why}); hand in the .ipynb file itself"
        result["rows"] = [CheckResult(NOTEBOOK_ROW, 0, 0, "error", result["message"]).to_dict()]
        return result | {"duration_s": round(time.perf_counter() - started, 2)}
    try:
        ex = _which_exercise(nb, sub.path)
    except GradingError as exc:
        result["message"] = str(exc)
        result["rows"] = [CheckResult(NOTEBOOK_ROW, 0, 0, "error", str(exc)).to_dict()]
        return result | {"duration_s": round(time.perf_counter() - started, 2)}
    ex = _with_extra(ex.name, checks_dir)
    params = ex.params | overrides
    limit = timeout or ex.timeout
    result.update(exercise=ex.name, params=params, timeout_s=limit)
    executed = out / "executed" / sub.student / sub.notebook
    executed.parent.mkdir(parents=True, exist_ok=True)
    from forge_course.grading.channel import ENV_VAR, Collector

    with tempfile.TemporaryDirectory(prefix="forge-grade-") as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        shutil.copy(sub.path, workdir / "submission.ipynb")
        with Collector() as collector:
            os.environ.update(
                {
                    ENV_VAR: collector.address,
                    "FORGE_COURSE_OFFLINE": "1",
                    "PYTHONHASHSEED": str(params.get("SEED", 0)),
                    "TF_DETERMINISTIC_OPS": "1",
                    "MPLBACKEND": "Agg",
                    "FORGE_COURSE_KERNEL_LOG": str(executed.with_suffix(".log")),
                }
            )
            ran = time.perf_counter()
            try:
                outcome, message = _execute(
                    workdir / "submission.ipynb", executed, params, limit, workdir
                )
            finally:
                os.environ.pop(ENV_VAR, None)
            result["execute_s"] = round(time.perf_counter() - ran, 2)
        if outcome != "completed":
            _mark_stop(executed, sub.path, outcome, message)
        result.update(outcome=outcome, message=message)
        scored = time.perf_counter()
        store = Path(tmp) / "received"
        args = {
            "exercise": ex.name, "checks_dir": checks_dir, "folder": str(store),
            "index": collector.dump(store), "params": params, "outcome": outcome,
            "message": message,
        }  # fmt: skip
        answer = _score_somewhere(args)
        result["rows"], result["environment"] = answer["rows"], answer["environment"]
        result["score_s"] = round(time.perf_counter() - scored, 2)
    result["duration_s"] = round(time.perf_counter() - started, 2)
    return result


def _score_somewhere(args: dict) -> dict:
    """Score in a process forked by the fork server (TensorFlow preloaded), else here."""
    from forge_course.grading import forkserver

    if forkserver.ADDRESS is not None:
        try:
            return forkserver.call_score(args)
        except (OSError, RuntimeError, ValueError):
            pass  # the server is gone or the scorer died: score here instead
    return score_folder(**args)


def _with_extra(name: str, checks_dir: str | None) -> Exercise:
    ex = exercise(name)
    if checks_dir:
        if checks_dir not in _EXTRA:
            _EXTRA[checks_dir] = load_checks(Path(checks_dir))
        ex = ex.with_extra(_EXTRA[checks_dir])
    return ex


def score_folder(
    *,
    exercise: str,
    checks_dir: str | None,
    folder: str,
    index: dict[str, dict[str, str]],
    params: dict,
    outcome: str,
    message: str,
) -> dict:
    """Run every check on the artifacts filed under ``folder``, in a grader process.

    ``index`` maps each task that was submitted to its values' names and kinds; a task
    missing from it gets the status the run explains (missing, error, timeout, crashed).
    """
    from forge_course.env import setup
    from forge_course.grading.channel import EXTENSIONS, decode

    ex = _with_extra(exercise, checks_dir)
    rows: list[CheckResult] = []
    for t in ex.tasks:
        if t.id not in index:
            if outcome == "completed":
                status = "missing"
                why = (
                    f"check({t.id!r}, ...) was never called; answer the exercise and run its "
                    "check cell (deleted or replaced cells submit nothing)"
                )
            else:
                status, why = outcome, f"not submitted before the run ended: {message}"
            rows += [
                CheckResult(c.id, 0, c.points, status, why, c.hint, c.hidden) for c in t.checks
            ]
            continue
        setup(int(params.get("SEED", 0)), verbose=False)
        try:
            values = {
                name: decode(kind, Path(folder) / t.id / (name + EXTENSIONS[kind]))
                for name, kind in index[t.id].items()
            }
        except Exception as exc:  # noqa: BLE001
            why = f"could not load what you submitted for {t.id}: {type(exc).__name__}: {exc}"[:500]
            rows += [
                CheckResult(c.id, 0, c.points, "error", why, c.hint, c.hidden) for c in t.checks
            ]
            continue
        rows += run_checks(t, values, params, t.checks)
    return {"rows": [r.to_dict() for r in rows], "environment": _environment()}


def _environment() -> dict:
    """Versions and device of the process that scored (a worker, TensorFlow loaded)."""
    import platform

    from forge_course.env import describe

    return describe() | {"platform": platform.platform(), "cpus": os.cpu_count()}


def _worker_init(threads: int, address: tuple[str, str] | None) -> None:
    """Give each worker (and the kernels it starts) its share of the cores."""
    from forge_course.grading import forkserver

    forkserver.ADDRESS = address
    if address is not None:
        os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] = forkserver.PROVISIONER
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)


def grade(
    paths: list[Path],
    out: Path,
    *,
    jobs: int | None = None,
    timeout: float | None = None,
    checks_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict:
    """Grade every submission under ``paths`` into ``out`` and return the gradebook dict."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from forge_course.grading import report

    subs = discover(paths)
    if checks_dir is not None:
        load_checks(Path(checks_dir))  # fail fast on a broken checks folder
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        err = GradingError(
            "no Jupyter kernel 'python3'; run `make install` (see forge-course doctor)"
        )
        err.exit_code = 3
        raise err from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = max(1, jobs or os.cpu_count() or 1)
    started = time.perf_counter()
    args = (out, overrides or {}, timeout, str(checks_dir) if checks_dir else None)
    from forge_course.grading.forkserver import ForkServer

    server = ForkServer.start()
    try:
        results = _run_pool(subs, args, jobs, progress, server.address if server else None)
    finally:
        if server is not None:
            server.close()
    book = {
        "parameters": {
            "overrides": overrides or {},
            "timeout_s": timeout,
            "jobs": jobs,
            "fork_server": server is not None,
        },  # fmt: skip
        "environment": next((r["environment"] for r in results if "environment" in r), {}),
        "wall_s": round(time.perf_counter() - started, 2),
        "submissions": sorted(results, key=lambda r: (r["student"], r["notebook"])),
    }
    report.write(out, book)
    return book


def _run_pool(
    subs: list[Submission], args: tuple, jobs: int, progress: bool, address
) -> list[dict]:
    from tqdm import tqdm

    results: dict[int, dict] = {}
    pending = list(range(len(subs)))
    bar = tqdm(total=len(subs), desc="grading", unit="nb", file=sys.stderr, disable=not progress)
    for attempt in range(2):  # a worker that dies takes its pool down: retry the rest once
        if not pending:
            break
        ctx = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with futures.ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, address)
        ) as pool:
            todo = {pool.submit(grade_one, subs[i], *args): i for i in pending}
            for fut in futures.as_completed(todo):
                i = todo[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # noqa: BLE001
                    if attempt == 0 and isinstance(exc, futures.process.BrokenProcessPool):
                        continue
                    results[i] = _grader_failure(subs[i], exc)
                bar.update(1)
        pending = [i for i in pending if i not in results]
    for i in pending:
        results[i] = _grader_failure(subs[i], RuntimeError("the grading worker died twice"))
        bar.update(1)
    bar.close()
    return [results[i] for i in range(len(subs))]


def _grader_failure(sub: Submission, exc: BaseException) -> dict:
    msg = f"the grader failed on this submission: {type(exc).__name__}: {exc}"[:500]
    rows = [CheckResult(NOTEBOOK_ROW, 0, 0, "crashed", msg).to_dict()]
    try:
        nb = nbformat.read(sub.path, as_version=4)
        ex = _which_exercise(nb, sub.path)
        rows = [
            CheckResult(c.id, 0, c.points, "crashed", msg, c.hint, c.hidden).to_dict()
            for c in ex.checks
        ]
    except Exception:  # noqa: BLE001
        pass
    return {
        "student": sub.student, "notebook": sub.notebook, "path": str(sub.path),
        "exercise": None, "outcome": "crashed", "message": msg, "params": {},
        "rows": rows, "duration_s": 0.0,
    }  # fmt: skip
