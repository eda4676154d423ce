"""Scoring: run every check on what a submission sent, in a grader process.

This runs either in a scorer forked by the fork server (TensorFlow preloaded) or in the
grading worker itself; never in the learner's kernel. Between processes a request and
its answer travel as JSON (:meth:`ScoreRequest.to_dict`, :meth:`Scored.to_dict`).
"""

from __future__ import annotations

import base64
import dataclasses
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
    from forge_course.grading.channel import decode

    os.environ["FORGE_COURSE_OFFLINE"] = "1"  # the kernel ran offline: so do its checks
    ex = with_extra(request.exercise, request.checks_dir)
    rows: list[CheckResult] = []
    for t in ex.tasks:
        if t.id not in request.artifacts:
            if request.outcome == "completed":
                status = "missing"
                why = (
                    f"check({t.id!r}, ...) was never called; answer the exercise and run its "
                    "check cell (deleted or replaced cells submit nothing)"
                )
            else:
                status, why = (
                    request.outcome,
                    f"not submitted before the run ended: {request.message}",
                )
            rows += [CheckResult.zero(c, status, why) for c in t.checks]
            continue
        setup(int(request.params.get("SEED", 0)), verbose=False)
        try:
            sent = request.artifacts[t.id]
            values = {name: decode(kind, data) for name, (kind, data) in sent.items()}
        except Exception as exc:  # noqa: BLE001
            why = f"could not load what you submitted for {t.id}: {type(exc).__name__}: {exc}"[:500]
            rows += [CheckResult.zero(c, "error", why) for c in t.checks]
            continue
        rows += run_checks(t, values, request.params, t.checks)
    return Scored(rows, environment())


def environment() -> dict[str, Any]:
    """Versions and device of the process that scored (TensorFlow is loaded there)."""
    from forge_course.env import describe

    return describe() | {"platform": platform.platform(), "cpus": os.cpu_count()}
