"""``forge-course grade``: grade a batch of submissions into a gradebook.

:func:`grade` is the recipe: check the options, find the submissions, make sure a kernel
can run, grade them in parallel worker processes (:mod:`.worker`), each kernel forked by
one shared fork server (:mod:`.forkserver`), then write the gradebook (:mod:`.report`).
The batch always finishes: whatever a submission does, each student gets one row per
check of each exercise.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
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

from forge_course.errors import ExecutionError, GradingError
from forge_course.grading import params, procs, shards, worker
from forge_course.grading.report import Gradebook
from forge_course.grading.results import GradeOptions, Submission, SubmissionResult
from forge_course.grading.spec import exercises, load_checks

__all__ = ["GradeOptions", "Submission", "discover", "grade"]


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
    shard: str | None = None,
) -> Gradebook:
    """Grade every submission under ``paths`` into the folder ``out``; return the gradebook.

    With ``only`` (exercise names), notebooks answering another exercise get an error
    row, and every student gets ``missing`` rows for a named exercise they lack.

    Raises:
        GradingError: an option or a submission path is not usable (exit code 2).
        ExecutionError: no Jupyter kernel to run the notebooks in (exit code 3).
    """
    opts = _options(out, jobs, timeout, checks_dir, overrides, progress, only)
    subs = everyone = discover(paths)
    if shard is not None:  # only shard K's students: grading.shards
        shard = shards.Shard.parse(shard)
        subs = shards.select(everyone, shard)
    _load_instructor_checks(opts)
    _require_kernel()
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    batch = _Batch(subs, opts)
    try:
        with _batch_processes() as server:
            batch.run(server)
    finally:  # after Ctrl-C or SIGTERM too: what was graded so far, the rest marked as such
        book = Gradebook.assemble(
            batch.results(), opts, fork_server=batch.forked, wall_s=time.perf_counter() - started
        )
        if shard is not None:
            book.parameters["shard"] = shards.record(shard, everyone, opts)
        book.write(opts.out)
    return book


# ---------------------------------------------------------------- options and inputs


def _options(out, jobs, timeout, checks_dir, overrides, progress, only) -> GradeOptions:
    """The batch's options, checked: each bad one is a GradingError naming it."""
    overrides = overrides or {}
    _check_overrides(overrides)
    known = exercises()
    for name in only or []:
        if name not in known:
            raise GradingError(f"--exercise {name}: unknown; known: {', '.join(sorted(known))}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise GradingError(f"--timeout {timeout}: give a positive, finite number of seconds")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise GradingError(
            f"--jobs {jobs}: give a whole number of workers, 1 or more "
            f"(or leave --jobs out to use one per core, {os.cpu_count() or 1} here)"
        )
    _check_out(Path(out))
    return GradeOptions(
        out=Path(out),
        overrides=overrides,
        timeout=timeout,
        checks_dir=Path(checks_dir) if checks_dir is not None else None,
        only=tuple(only or ()),
        jobs=jobs or os.cpu_count() or 1,
        progress=progress,
    )


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
        wrong = params.problem(name, value)
        if wrong:
            raise GradingError(f"-p {name} {value!r}: {wrong}")


def _check_out(out: Path) -> None:
    """``--out`` must be a folder, or a path where one can be made."""
    if out.exists() and not out.is_dir():
        raise GradingError(
            f"--out {out}: is a file, not a folder; give a folder for the gradebook "
            "(it is created if missing)"
        )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GradingError(f"--out {out}: {parent} is a file, not a folder")
            break


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
            found += _in_folder(path)
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


def _in_folder(folder: Path) -> list[Submission]:
    found: list[Submission] = []
    for item in sorted(folder.iterdir()):
        if item.name.startswith(".") or item.name.startswith("__"):
            continue
        if item.is_file():  # regular files only: no pipes, devices or sockets
            found.append(Submission(item.stem, item))
        elif item.is_dir():
            nbs = [
                p for p in sorted(item.rglob("*.ipynb"))
                if p.is_file() and ".ipynb_checkpoints" not in p.parts
            ]  # fmt: skip
            found += [Submission(item.name, nb, nb.relative_to(item).as_posix()) for nb in nbs]
            found += [] if nbs else [Submission(item.name, item)]
    return found


def _load_instructor_checks(opts: GradeOptions) -> None:
    """Fail fast on a broken ``--checks`` folder, before any notebook runs."""
    if opts.checks_dir is not None:
        load_checks(opts.checks_dir)


def _require_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        raise ExecutionError(
            "no Jupyter kernel 'python3'; run `make install` (see forge-course doctor)"
        ) from None


# ---------------------------------------------------------------- the batch's processes


@contextlib.contextmanager
def _batch_processes():
    """Adopt orphans, start the fork server (None: plain kernels), treat SIGTERM as Ctrl-C;
    afterwards stop the server and kill whatever a submission left behind."""
    from forge_course.grading.forkserver import ForkServer

    procs.become_subreaper()  # orphans whose kernel and fork server died come to us
    server = ForkServer.start()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        yield server
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
        _sweep()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _sweep() -> None:
    """At the end of a batch, kill every child but multiprocessing's resource tracker.

    As a subreaper, this process adopts whatever a notebook started in the background
    once the processes above it are gone; nothing a submission starts outlives its batch.
    (Not during the batch: adopted processes may be other students' running kernels.)
    """
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    procs.sweep_children(spare={tracker} if tracker else set())


@dataclasses.dataclass
class _Batch:
    """Grading in pools of workers; a worker that dies costs only its own submission."""

    subs: list[Submission]
    opts: GradeOptions
    server: Any = None  # the ForkServer, or None: plain kernels
    forked: bool = False  # whether the fork server ran
    done: dict[int, SubmissionResult] = dataclasses.field(default_factory=dict)
    bar: Any = None  # the progress bar (tqdm)

    def run(self, server) -> None:
        """Grade every submission, with ``server`` forking the kernels (None: plain ones)."""
        from tqdm import tqdm

        self.server, self.forked = server, server is not None
        self.bar = tqdm(
            total=len(self.subs), desc="grading", unit="nb", file=sys.stderr,
            disable=not self.opts.progress,
        )  # fmt: skip
        try:
            # First all together; if a worker dies (a notebook may kill it), the pool is
            # broken and we cannot tell whose fault it was: redo the rest one per fresh pool.
            batches = [list(range(len(self.subs)))]
            while batches:
                todo = [i for i in batches.pop(0) if i not in self.done]
                if not todo:
                    continue
                broken = self._pool(todo, self.opts.jobs if len(todo) > 1 else 1)
                if broken and len(todo) > 1:
                    batches += [[i] for i in todo if i not in self.done]
                elif broken:
                    sub = self.subs[todo[0]]
                    self._done(todo[0], _unscored(sub, "its grading worker died", self.opts))
        finally:
            self.bar.close()

    def results(self) -> list[SubmissionResult]:
        """Every submission's result in the order of ``subs``; those not graded say so."""
        why = "the grading run was stopped before this notebook was graded; grade it again"
        return [
            self.done.get(i) or _unscored(sub, why, self.opts, interrupted=True)
            for i, sub in enumerate(self.subs)
        ]

    def _done(self, i: int, result: SubmissionResult) -> None:
        self.done[i] = result
        self.bar.update(1)

    def _pool(self, todo: list[int], jobs: int) -> bool:
        """Grade ``todo`` in one pool; return True if the pool broke."""
        threads = max(1, (os.cpu_count() or 1) // jobs)
        address = self.server.address if self.server is not None else None
        pool = futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init, initargs=(threads, address),
        )  # fmt: skip
        broken = False
        try:
            # the workers start and import while the fork server preloads TensorFlow
            warming = [pool.submit(worker.warm) for _ in range(jobs)]
            if self.server is not None and not self.server.wait_ready():
                self.server, self.forked = None, False  # workers fall back to plain kernels
            futures.wait(warming)
            running = {pool.submit(worker.grade_one, self.subs[i], self.opts): i for i in todo}
            for fut in futures.as_completed(running):
                i = running[fut]
                if self.server is not None:
                    self.server.ensure_running()  # a notebook may have killed it
                try:
                    self._done(i, fut.result())
                except futures.process.BrokenProcessPool:
                    broken = True
                except Exception as exc:  # noqa: BLE001 - the grader's own bug: keep the student
                    what = f"{type(exc).__name__}: {exc}"
                    self._done(i, _unscored(self.subs[i], what, self.opts))
        except KeyboardInterrupt:  # stop now: drop queued work, kill the workers and kernels
            for pid in list(getattr(pool, "_processes", None) or {}):
                procs.kill_tree(pid)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return broken


def _unscored(
    sub: Submission, what: str, opts: GradeOptions, *, interrupted: bool = False
) -> SubmissionResult:
    """The result of a submission that was never scored: the grader failed on it (every
    check ``crashed``), or the batch was stopped before it (every check ``error``)."""
    try:
        nb = nbformat.read(sub.path, as_version=4)
        ex = opts.exercise(worker.which_exercise(nb, sub.path).name)
    except Exception:  # noqa: BLE001 - then one row for the notebook says it
        ex = None
    if interrupted:
        return SubmissionResult.interrupted(sub, what, ex)
    return SubmissionResult.grader_failed(
        sub, f"the grader failed on this submission: {what}"[:500], ex
    )
