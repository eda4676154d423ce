"""``forge-course grade``: grade a batch of submissions into a gradebook.

:func:`grade` is the recipe: check the options, make sure kernels can be sandboxed
(:mod:`.sandbox`; else refuse unless ``--no-sandbox``), find the submissions, make sure
a kernel can run, grade them in parallel worker processes (:mod:`.worker`), each kernel
forked by one shared fork server (:mod:`.forkserver`) into a sandbox of its own, then
write the gradebook (:mod:`.report`) and the executed notebooks (:mod:`.outdir`). The
batch always finishes: whatever a submission does, each student gets one row per check
of each exercise. SIGTERM or Ctrl-C stops it: the gradebook then holds what was graded,
every other submission ``cancelled``, and ``grade`` raises KeyboardInterrupt (exit 130).
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import dataclasses
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from forge_course.errors import ExecutionError, GradingError
from forge_course.grading import params, procs, shards, worker
from forge_course.grading import sandbox as sb
from forge_course.grading.outdir import OutDir
from forge_course.grading.report import Gradebook
from forge_course.grading.results import GradeOptions, Submission, SubmissionResult
from forge_course.grading.spec import exercises, load_checks

__all__ = ["NEVER_SUBMISSIONS", "GradeOptions", "Submission", "discover", "grade"]

# Names in a submissions folder that are never a submission (said on stderr when found).
NEVER_SUBMISSIONS = frozenset({".ipynb_checkpoints", "__pycache__", ".DS_Store", "Thumbs.db"})


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
    sandbox: bool = True,
) -> Gradebook:
    """Grade every submission under ``paths`` into the folder ``out``; return the gradebook.

    With ``only`` (exercise names), notebooks answering another exercise get an error
    row, and every student gets ``missing`` rows for a named exercise they lack. With
    ``sandbox`` (the default) every kernel runs in namespaces of its own.

    Raises:
        GradingError: an option or a submission path is not usable, or the sandbox
            cannot work here and ``sandbox`` was not turned off (exit code 2).
        ExecutionError: no Jupyter kernel to run the notebooks in (exit code 3).
        KeyboardInterrupt: SIGTERM or Ctrl-C, after the gradebook was written.
    """
    procs.skip_slow_imports()  # before anything imports nbformat
    opts = _options(out, jobs, timeout, checks_dir, overrides, progress, only)
    if sandbox and sb.unavailable():
        raise GradingError(
            f"cannot sandbox kernels here: {sb.unavailable()}; "
            "fix that, or pass --no-sandbox to grade without isolating students"
        )
    skipped: list[Path] = []
    subs = discover(paths, skipped)
    everyone, record = subs, None
    if shard is not None:  # only shard K's students: grading.shards
        shard = shards.Shard.parse(shard)
        subs, record = shards.select(everyone, shard), shards.record(shard, everyone, opts)
    if skipped:
        names = ", ".join(sorted({p.name for p in skipped}))
        print(f"grade: not submissions, never graded: {len(skipped)} entries named {names}",
              file=sys.stderr)  # fmt: skip
    _load_instructor_checks(opts)
    _require_kernel()
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    private = [opts.out, *paths]  # the grades and every submission: no kernel sees them
    box = sb.Sandbox(opts.checks, private) if sandbox else None
    outdir = OutDir(opts.out)
    batch = _Batch(subs, opts, box=box, outdir=outdir)
    stop = procs.StopOnSignal()
    try:
        with stop:
            try:
                with _batch_processes(box) as server:
                    batch.run(server)
            finally:  # after Ctrl-C or SIGTERM too: what was graded so far, the rest cancelled
                with stop.held():
                    book = _write(batch, opts, outdir, time.perf_counter() - started, box, record)
    finally:
        outdir.close()
        if box is not None:
            box.close()
    return book


def _write(
    batch: _Batch, opts: GradeOptions, outdir: OutDir, wall_s: float, box, shard=None
) -> Gradebook:
    """Write the gradebook, feedback and executed notebooks; then deal with stray files."""
    book = Gradebook.assemble(
        batch.results(), opts, fork_server=batch.forked, wall_s=wall_s, sandbox=box is not None
    )
    if shard is not None:  # --shard: what grading.shards.merge needs
        book.parameters["shard"] = shard
    outdir.publish()
    book.write(opts.out, outdir)
    book.stray_files = outdir.strays()
    for stray in book.stray_files:
        print(f"grade: {stray['path']} in --out was not written by the grader "
              f"({stray['action']})", file=sys.stderr)  # fmt: skip
    if book.stray_files:
        book.write(opts.out, outdir)
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


def discover(paths: list[Path], skipped: list[Path] | None = None) -> list[Submission]:
    """Turn SUBMISSION arguments into submissions.

    A file is one submission (student: its stem). In a folder, every entry is one, hidden
    names included (so a stray ``bob.pdf`` is graded as "not a notebook" rather than
    lost), and every sub-folder is one student (its ``*.ipynb`` files, hidden ones
    included; with none, one row saying so). Symbolic links and anything not a regular
    file get a row that refuses them. Only the names in :data:`NEVER_SUBMISSIONS` are
    passed over; they are added to ``skipped`` for the caller to say so.
    """
    skipped = skipped if skipped is not None else []
    found: list[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_symlink() or path.is_file():
            found.append(Submission(_stem(path), path))
        elif path.is_dir():
            found += _in_folder(path, skipped)
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


def _stem(path: Path) -> str:
    return path.stem or path.name  # ".ipynb" alone has no stem


def _in_folder(folder: Path, skipped: list[Path]) -> list[Submission]:
    found: list[Submission] = []
    for item in sorted(folder.iterdir()):
        if item.name in NEVER_SUBMISSIONS:
            skipped.append(item)
        elif item.is_dir() and not item.is_symlink():
            nbs = _notebooks(item, skipped)
            found += [Submission(item.name, nb, nb.relative_to(item).as_posix()) for nb in nbs]
            found += [] if nbs else [Submission(item.name, item)]
        else:  # files, and what only looks like one: links, pipes, devices get their row
            found.append(Submission(_stem(item), item))
    return found


def _notebooks(student: Path, skipped: list[Path]) -> list[Path]:
    """Every ``*.ipynb`` under a student's folder (links too: they get a refusing row)."""
    found = []
    for root, dirs, files in os.walk(student):  # never follows a link
        for name in list(dirs):
            if name in NEVER_SUBMISSIONS:
                skipped.append(Path(root) / name)
                dirs.remove(name)
            elif os.path.islink(os.path.join(root, name)):
                found.append(Path(root) / name)
        found += [Path(root) / n for n in files if n.lower().endswith(".ipynb")]
    return sorted(found)


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
def _batch_processes(box: sb.Sandbox | None):
    """Adopt orphans, start the fork server (None: plain kernels), in ``box`` if given;
    afterwards stop the server and kill whatever a submission left behind."""
    from forge_course.grading.forkserver import ForkServer

    procs.become_subreaper()  # orphans whose kernel and fork server died come to us
    server = ForkServer.start(box)
    try:
        yield server
    finally:
        if server is not None:
            server.close()
        _sweep()


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
    box: sb.Sandbox | None = None  # the batch's sandbox, or None: kernels not isolated
    outdir: OutDir | None = None  # where executed notebooks wait for the end
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
            self.done.get(i) or _unscored(sub, why, self.opts, cancelled=True)
            for i, sub in enumerate(self.subs)
        ]

    def _done(self, i: int, result: SubmissionResult) -> None:
        if self.outdir is not None and (result.executed or result.log):
            self.outdir.keep(result.student, result.notebook, result.executed, result.log)
        self.done[i] = result | {"executed": None, "log": ""}
        self.bar.update(1)

    def _pool(self, todo: list[int], jobs: int) -> bool:
        """Grade ``todo`` in one pool; return True if the pool broke."""
        threads = max(1, (os.cpu_count() or 1) // jobs)
        address = self.server.address if self.server is not None else None
        jobs_dir = str(self.box.jobs) if self.box is not None else None
        pool = futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init, initargs=(threads, address, jobs_dir),
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
    sub: Submission, what: str, opts: GradeOptions, *, cancelled: bool = False
) -> SubmissionResult:
    """The result of a submission that was never scored: the grader failed on it (every
    check ``crashed``), or the batch was stopped before it (every check ``cancelled``)."""
    import nbformat

    try:
        nb = nbformat.reads(worker.read_submission(sub.path).decode(), as_version=4)
        ex = opts.exercise(worker.which_exercise(nb, sub.path).name)
    except Exception:  # noqa: BLE001 - then one row for the notebook says it
        ex = None
    if cancelled:
        return SubmissionResult.cancelled(sub, what, ex)
    return SubmissionResult.grader_failed(
        sub, f"the grader failed on this submission: {what}"[:500], ex
    )
