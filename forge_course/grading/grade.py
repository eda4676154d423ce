"""``forge-course grade``: grade a batch of submissions into a gradebook.

Submissions are graded in parallel worker processes (:mod:`.worker`), each kernel
forked by one shared fork server (:mod:`.forkserver`). The batch always finishes:
whatever a submission does, each student gets one row per check of each exercise.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nbformat

from forge_course.errors import GradingError
from forge_course.grading import worker
from forge_course.grading.feedback import CheckResult
from forge_course.grading.spec import exercises, load_checks

__all__ = ["Submission", "discover", "grade"]


@dataclasses.dataclass
class Submission:
    """One file handed in by one student (a notebook, one hopes)."""

    student: str
    path: Path
    name: str = ""  # the notebook as the student named it (inside their folder)

    @property
    def notebook(self) -> str:
        return self.name or self.path.name


def discover(paths: list[Path]) -> list[Submission]:
    """Turn SUBMISSION arguments into submissions.

    A file is one submission (student: its stem). In a folder, every visible file is
    one (so a stray ``bob.pdf`` is graded as "not a notebook" rather than lost), and
    every sub-folder is one student (its ``*.ipynb`` files; with none, one row saying so).
    """
    found: list[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(Submission(path.stem, path))
        elif path.is_dir():
            for item in sorted(path.iterdir()):
                if item.name.startswith(".") or item.name.startswith("__"):
                    continue
                if item.is_file():  # regular files only: no pipes, devices or sockets
                    found.append(Submission(item.stem, item))
                elif item.is_dir():
                    nbs = [
                        p for p in sorted(item.rglob("*.ipynb"))
                        if p.is_file() and ".ipynb_checkpoints" not in p.parts
                    ]  # fmt: skip
                    found += [
                        Submission(item.name, nb, nb.relative_to(item).as_posix()) for nb in nbs
                    ]
                    found += [] if nbs else [Submission(item.name, item)]
        else:
            raise GradingError(f"submission {path} does not exist")
    if not found:
        raise GradingError(f"no submissions found in {', '.join(map(str, paths))}")
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


def _check_overrides(overrides: dict[str, Any]) -> None:
    defaults = {name: v for ex in exercises().values() for name, v in ex.params.items()}
    for name, value in overrides.items():
        if name not in defaults:
            raise GradingError(
                f"-p {name}: no exercise has a parameter {name}; "
                f"known: {', '.join(sorted(defaults))}"
            )
        want = type(defaults[name])
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if not ok or isinstance(value, bool) != (want is bool):
            raise GradingError(f"-p {name} {value!r}: {name} takes a {want.__name__}")


def grade(
    paths: list[Path],
    out: Path,
    *,
    jobs: int | None = None,
    timeout: float | None = None,
    checks_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    only: list[str] | None = None,
) -> dict:
    """Grade every submission under ``paths`` into ``out`` and return the gradebook dict.

    With ``only`` (exercise names), notebooks answering another exercise get an error
    row, and every student gets ``missing`` rows for a named exercise they lack.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from forge_course.grading import report
    from forge_course.grading.forkserver import ForkServer

    overrides = overrides or {}
    _check_overrides(overrides)
    known = exercises()
    for name in only or []:
        if name not in known:
            raise GradingError(f"--exercise {name}: unknown; known: {', '.join(sorted(known))}")
    subs = discover(paths)
    if checks_dir is not None:
        load_checks(Path(checks_dir))  # fail fast on a broken checks folder
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise GradingError(f"--timeout {timeout}: give a positive, finite number of seconds")
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
    args = (out, overrides, timeout, str(checks_dir) if checks_dir else None, only)
    from forge_course.grading.forkserver import become_subreaper

    become_subreaper()  # orphans whose kernel and fork server died come to us: see _sweep
    server = ForkServer.start()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None  # like Ctrl-C
    try:
        results = _run_pool(subs, args, jobs, progress, server)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
        _sweep()
    kept, extra = _one_per_exercise(results)
    kept += _missing(kept, only or [], args[3])
    book = {
        "parameters": {
            "overrides": overrides,
            "timeout_s": timeout,
            "jobs": jobs,
            "fork_server": server is not None,
        },  # fmt: skip
        "environment": next((r["environment"] for r in results if "environment" in r), {}),
        "wall_s": round(time.perf_counter() - started, 2),
        "submissions": sorted(kept, key=lambda r: (r["student"], r["notebook"])),
        "not_counted": extra,
    }
    report.write(out, book)
    return book


def _one_per_exercise(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """Keep one notebook per student and exercise (the best), so each check counts once."""
    best: dict[tuple[str, str], dict] = {}
    kept, extra = [], []
    for r in results:
        if r["exercise"] is None:
            kept.append(r)
            continue
        r["points"] = sum(row["points"] for row in r["rows"])
        key = (r["student"], r["exercise"])
        if key not in best:
            best[key] = r
        elif r["points"] > best[key]["points"]:
            extra.append(best[key])
            best[key] = r
        else:
            extra.append(r)
    for r in extra:
        keep = best[(r["student"], r["exercise"])]
        note = f"also handed in {r['notebook']} ({r['points']:g} points, not counted)"
        keep["message"] = "; ".join(filter(None, [keep["message"], note]))
    return kept + list(best.values()), extra


def _missing(kept: list[dict], only: list[str], checks_dir: str | None) -> list[dict]:
    """Rows for each named exercise a student handed nothing in for."""
    from forge_course.grading.score import with_extra

    have = {(r["student"], r["exercise"]) for r in kept}
    rows = []
    for student in sorted({r["student"] for r in kept}):
        for name in only:
            if (student, name) in have:
                continue
            why = f"no notebook for exercise {name} was handed in"
            checks = with_extra(name, checks_dir).checks
            rows.append(
                {
                    "student": student,
                    "notebook": "-",
                    "path": "",
                    "exercise": name,
                    "outcome": "missing",
                    "message": why,
                    "params": {},
                    "duration_s": 0.0,
                    "rows": [CheckResult.zero(c, "missing", why).to_dict() for c in checks],
                }  # fmt: skip
            )
    return rows


def _run_pool(subs: list[Submission], args: tuple, jobs: int, progress: bool, server) -> list[dict]:
    """Grade in a pool of workers; a worker that dies costs only its own submission."""
    from tqdm import tqdm

    results: dict[int, dict] = {}
    bar = tqdm(total=len(subs), desc="grading", unit="nb", file=sys.stderr, disable=not progress)
    # First all together; if a worker dies (a notebook may kill it), the pool is broken
    # and we cannot tell whose fault it was: redo the rest one per fresh pool.
    batches = [list(range(len(subs)))]
    while batches:
        todo = [i for i in batches.pop(0) if i not in results]
        if not todo:
            continue
        broken = _pool_pass(subs, todo, args, jobs if len(todo) > 1 else 1, server, results, bar)
        if broken and len(todo) > 1:
            batches += [[i] for i in todo if i not in results]
        elif broken:
            i = todo[0]
            results[i] = _grader_failure(subs[i], RuntimeError("its grading worker died"), args[3])
            bar.update(1)
    bar.close()
    return [results[i] for i in range(len(subs))]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _sweep() -> None:
    """At the end of a batch, kill every child but multiprocessing's resource tracker.

    As a subreaper, this process adopts whatever a notebook started in the background
    once the processes above it are gone; nothing a submission starts outlives its batch.
    (Not during the batch: adopted processes may be other students' running kernels.)
    """
    from multiprocessing import resource_tracker

    import psutil

    from forge_course.grading.forkserver import kill_tree

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    for child in psutil.Process().children():
        if child.pid != tracker:
            kill_tree(child)


def _pool_pass(subs, todo, args, jobs, server, results, bar) -> bool:
    """Grade ``todo`` in one pool; return True if the pool broke."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    address = server.address if server is not None else None
    ctx = multiprocessing.get_context("spawn")
    broken = False
    pool = futures.ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=worker.init, initargs=(threads, address)
    )
    try:
        running = {
            pool.submit(
                worker.grade_one, subs[i].student, subs[i].path, *args, name=subs[i].name
            ): i
            for i in todo
        }
        for fut in futures.as_completed(running):
            i = running[fut]
            if server is not None:
                server.ensure_running()  # a notebook may have killed it
            try:
                results[i] = fut.result()
            except futures.process.BrokenProcessPool:
                broken = True
                continue
            except Exception as exc:  # noqa: BLE001 - the grader's own bug: keep the student
                results[i] = _grader_failure(subs[i], exc, args[3])
            bar.update(1)
    except KeyboardInterrupt:  # stop now: drop queued work, kill the workers and their kernels
        from forge_course.grading.forkserver import kill_tree

        for pid in list(getattr(pool, "_processes", None) or {}):
            kill_tree(pid)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return broken


def _grader_failure(sub: Submission, exc: BaseException, checks_dir: str | None) -> dict:
    from forge_course.grading.score import with_extra

    msg = f"the grader failed on this submission: {type(exc).__name__}: {exc}"[:500]
    rows = [CheckResult(worker.NOTEBOOK_ROW, 0, 0, "crashed", msg).to_dict()]
    name = None
    try:
        nb = nbformat.read(sub.path, as_version=4)
        ex = with_extra(worker.which_exercise(nb, sub.path).name, checks_dir)
        name = ex.name
        rows = [CheckResult.zero(c, "crashed", msg).to_dict() for c in ex.checks]
    except Exception:  # noqa: BLE001
        pass
    return {
        "student": sub.student, "notebook": sub.notebook, "path": str(sub.path),
        "exercise": name, "outcome": "crashed", "message": msg, "params": {},
        "rows": rows, "duration_s": 0.0, "grader_failure": True,
    }  # fmt: skip
