"""Scoring: run every check on what a submission sent, in a grader process.

This runs either in a scorer forked by the fork server (TensorFlow preloaded) or in the
grading worker itself; never in the learner's kernel.
"""

from __future__ import annotations

import base64
import os
import platform
from pathlib import Path

from forge_course.grading.feedback import CheckResult, run_checks
from forge_course.grading.spec import Exercise, exercise, load_checks

_EXTRA: dict[str, list] = {}


def with_extra(name: str, checks_dir: str | None) -> Exercise:
    """The exercise ``name``, plus the instructor's checks from ``checks_dir``."""
    ex = exercise(name)
    if checks_dir:
        if checks_dir not in _EXTRA:
            _EXTRA[checks_dir] = load_checks(Path(checks_dir))
        ex = ex.with_extra(_EXTRA[checks_dir])
    return ex


def pack(artifacts: dict[str, dict[str, tuple[str, bytes]]]) -> dict:
    """Artifacts as JSON-safe data, to send to a scorer process."""
    return {
        task: {name: [kind, base64.b64encode(data).decode()] for name, (kind, data) in v.items()}
        for task, v in artifacts.items()
    }


def score_request(args: dict) -> dict:
    """Entry point of a scorer process: unpack the artifacts and score them."""
    artifacts = {
        task: {name: (kind, base64.b64decode(data)) for name, (kind, data) in v.items()}
        for task, v in args.pop("artifacts").items()
    }
    return score(artifacts=artifacts, **args)


def score(
    *,
    exercise: str,
    checks_dir: str | None,
    artifacts: dict[str, dict[str, tuple[str, bytes]]],
    params: dict,
    outcome: str,
    message: str,
) -> dict:
    """Score one submission; returns ``{"rows": [...], "environment": {...}}``.

    A task missing from ``artifacts`` gets the status the run explains: ``missing``
    when the notebook finished without calling its check, else the run's own
    ``error``, ``timeout`` or ``crashed``.
    """
    from forge_course.env import setup
    from forge_course.grading.channel import decode

    os.environ["FORGE_COURSE_OFFLINE"] = "1"  # the kernel ran offline: so do its checks
    ex = with_extra(exercise, checks_dir)
    rows: list[CheckResult] = []
    for t in ex.tasks:
        if t.id not in artifacts:
            if outcome == "completed":
                status = "missing"
                why = (
                    f"check({t.id!r}, ...) was never called; answer the exercise and run its "
                    "check cell (deleted or replaced cells submit nothing)"
                )
            else:
                status, why = outcome, f"not submitted before the run ended: {message}"
            rows += [CheckResult.zero(c, status, why) for c in t.checks]
            continue
        setup(int(params.get("SEED", 0)), verbose=False)
        try:
            values = {name: decode(kind, data) for name, (kind, data) in artifacts[t.id].items()}
        except Exception as exc:  # noqa: BLE001
            why = f"could not load what you submitted for {t.id}: {type(exc).__name__}: {exc}"[:500]
            rows += [CheckResult.zero(c, "error", why) for c in t.checks]
            continue
        rows += run_checks(t, values, params, t.checks)
    return {"rows": [r.to_dict() for r in rows], "environment": environment()}


def environment() -> dict:
    """Versions and device of the process that scored (TensorFlow is loaded there)."""
    from forge_course.env import describe

    return describe() | {"platform": platform.platform(), "cpus": os.cpu_count()}
