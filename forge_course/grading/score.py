"""Scoring: run every check on what a submission sent, in a grader process.

This runs either in a scorer forked by the fork server (TensorFlow preloaded) or, when
the server is gone, in a fresh ``python -I -m forge_course.grading.score`` process
(:func:`score_in_subprocess`); never in the learner's kernel, never in the grading
worker. Either way it runs under a wall-clock limit equal to the notebook's own limit
(``--timeout``, else the exercise's), with a memory limit, and models are loaded only
up to :data:`~.channel.MAX_UNPACKED` bytes unpacked. Between processes a request and
its answer travel as JSON (:meth:`ScoreRequest.to_dict`, :meth:`Scored.to_dict`), and
the worker accepts an answer only if its rows are exactly the exercise's checks
(:func:`checked_rows`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import platform
from pathlib import Path
from typing import Any

from forge_course.grading.feedback import CheckResult, run_checks
from forge_course.grading.spec import Exercise, exercise, load_checks

__all__ = ["ScoreRequest", "Scored", "environment", "score", "score_request", "with_extra"]

_EXTRA: dict[str, list] = {}


def with_extra(name: str, checks_dir: str | None) -> Exercise:
    """The exercise ``name``, plus the instructor's checks from ``checks_dir``."""
    ex = exercise(name)
    if checks_dir:
        if checks_dir not in _EXTRA:
            _EXTRA[checks_dir] = load_checks(Path(checks_dir))
        ex = ex.with_extra(_EXTRA[checks_dir])
    return ex


Artifacts = dict[str, dict[str, tuple[str, bytes]]]  # task -> value name -> (kind, bytes)


@dataclasses.dataclass
class ScoreRequest:
    """What to score: a submission's artifacts, and how its notebook ran."""

    exercise: str
    checks_dir: str | None
    artifacts: Artifacts
    params: dict[str, Any]
    outcome: str  # completed, error, timeout or crashed
    message: str
    refused: dict[str, str] = dataclasses.field(default_factory=dict)  # task -> why

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (artifacts in base64), to send to a scorer process."""
        packed = {
            task: {
                name: [kind, base64.b64encode(data).decode()] for name, (kind, data) in v.items()
            }
            for task, v in self.artifacts.items()
        }
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return fields | {"artifacts": packed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreRequest:
        artifacts = {
            task: {name: (kind, base64.b64decode(raw)) for name, (kind, raw) in v.items()}
            for task, v in data["artifacts"].items()
        }
        return cls(**(data | {"artifacts": artifacts}))


@dataclasses.dataclass
class Scored:
    """One row per check, and the environment of the process that scored."""

    rows: list[CheckResult]
    environment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "environment": self.environment}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scored:
        names = {f.name for f in dataclasses.fields(CheckResult) if f.init}
        rows = [CheckResult(**{k: v for k, v in r.items() if k in names}) for r in data["rows"]]
        return cls(rows, data["environment"])


def score_request(data: dict[str, Any]) -> dict[str, Any]:
    """Entry point of a scorer process: score a request sent as JSON, answer as JSON."""
    return score(ScoreRequest.from_dict(data)).to_dict()


def score(request: ScoreRequest) -> Scored:
    """Score one submission.

    A task missing from the artifacts gets the status the run explains: ``missing``
    when the notebook finished without calling its check, else the run's own
    ``error``, ``timeout`` or ``crashed``.
    """
    from forge_course.env import setup

    os.environ["FORGE_COURSE_OFFLINE"] = "1"  # the kernel ran offline: so do its checks
    ex = with_extra(request.exercise, request.checks_dir)
    rows: list[CheckResult] = []
    loaded: dict[str, Any] = {}  # SHA-256 of a model file -> the model: one load each
    for t in ex.tasks:
        if t.id not in request.artifacts or t.id in request.refused:  # a task is sent whole
            status, why = _not_received(t.id, request)
            rows += [CheckResult.zero(c, status, why) for c in t.checks]
            continue
        setup(int(request.params.get("SEED", 0)), verbose=False)
        try:
            sent = request.artifacts[t.id]
            values = {name: _decode(kind, data, loaded) for name, (kind, data) in sent.items()}
        except Exception as exc:  # noqa: BLE001
            why = f"could not load what you submitted for {t.id}: {_in_words(exc)}"[:500]
            rows += [CheckResult.zero(c, "error", why) for c in t.checks]
            continue
        rows += run_checks(t, values, request.params, t.checks)
    return Scored(rows, environment())


def _decode(kind: str, data: bytes, loaded: dict[str, Any]):
    """Decode an artifact; a model sent again byte for byte (one model answering two
    tasks) is loaded once. Checks only read a model, as the checks of one task share it."""
    from forge_course.grading.channel import decode

    if kind != "model":
        return decode(kind, data)
    key = hashlib.sha256(data).hexdigest()
    if key not in loaded:
        loaded[key] = decode(kind, data)
    return loaded[key]


def _not_received(task_id: str, request: ScoreRequest) -> tuple[str, str]:
    """The status and message of a task the grader holds no answer for."""
    if task_id in request.refused:
        why = request.refused[task_id]
        return "error", f"the grader refused what you submitted for {task_id}: {why}"
    if request.outcome == "completed":
        return "missing", (
            f"check({task_id!r}, ...) was never called; answer the exercise and run its "
            "check cell (deleted or replaced cells submit nothing)"
        )
    return request.outcome, f"not submitted before the run ended: {request.message}"


def _in_words(exc: Exception) -> str:
    """Why an artifact did not load, as a student would understand it."""
    from forge_course.grading.channel import Refused

    text = str(exc)
    if isinstance(exc, Refused):
        return text
    if "safe_mode" in text or "unsafe" in text.lower() or "lambda" in text.lower():
        return (
            "your model holds Python code (a Lambda layer or a custom class), which the "
            "grader does not run (Keras safe mode); build it from Keras's own layers"
        )
    if "Could not locate class" in text or "custom" in text.lower():
        return (
            "your model uses a class defined in your notebook, which the grader cannot "
            "import; build it from Keras's own layers"
        )
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def checked_rows(rows: list[CheckResult], ex: Exercise) -> list[CheckResult]:
    """``rows`` if they are exactly ``ex``'s checks, in order, each within its points.

    A scorer process is grader code, but it loads what a student sent: its answer is
    accepted only when it could be a true one. Raises ValueError saying what is wrong.
    """
    from forge_course.grading.feedback import STATUSES

    want = ex.checks
    if [r.check for r in rows] != [c.id for c in want]:
        raise ValueError("the scorer's rows are not this exercise's checks")
    for r, c in zip(rows, want, strict=True):
        points = float(r.points)
        if r.possible != c.points or r.hidden != c.hidden or r.status not in STATUSES:
            raise ValueError(f"the scorer's row for {c.id} does not match the check")
        if not (0 <= points <= c.points) or (r.status != "passed" and points):
            raise ValueError(f"the scorer's row for {c.id} has impossible points")
    return rows


def score_in_subprocess(request: ScoreRequest, seconds: float) -> Scored:
    """Score in a fresh Python process within ``seconds`` (TimeoutError past them)."""
    import json
    import subprocess
    import sys

    argv = [sys.executable, "-I", "-m", __name__, str(int(seconds))]
    try:
        done = subprocess.run(
            argv, input=json.dumps(request.to_dict()), capture_output=True, text=True,
            timeout=seconds, env=os.environ | {"FORGE_COURSE_OFFLINE": "1"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"scoring took longer than {seconds:g} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError("the scoring process died before it answered")
    return Scored.from_dict(json.loads(done.stdout))


def environment() -> dict[str, Any]:
    """Versions and device of the process that scored (TensorFlow is loaded there)."""
    from forge_course.env import describe

    return describe() | {"platform": platform.platform(), "cpus": os.cpu_count()}


if __name__ == "__main__":  # score_in_subprocess's process: request on stdin, answer on stdout
    import json
    import sys

    from forge_course.grading.sandbox import Limits, set_limits

    set_limits(Limits(cpu_s=int(sys.argv[1]) * (os.cpu_count() or 1) + 5))
    print(json.dumps(score_request(json.load(sys.stdin)), default=str))
