"""What each grading parameter may be, so ``grade -p NAME VALUE`` refuses nonsense early.

An exercise declares its parameters and their defaults in ``EXERCISE.params``; the
default fixes the type. This table adds the range a value must fall in: a batch size of
0 or a negative seed would otherwise be injected and fail (or mislead) inside every
student's kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["RULES", "problem"]


def _int(low: int) -> tuple[str, Callable[[Any], bool]]:
    word = "a positive whole number" if low == 1 else "a whole number >= 0"
    return word, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(positive: bool) -> tuple[str, Callable[[Any], bool]]:
    word = "a positive number" if positive else "a number >= 0"

    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return False
        return v > 0 if positive else v >= 0

    return word, ok


def _dataset() -> tuple[str, Callable[[Any], bool]]:
    from forge_course.data import names

    return f"one of {', '.join(names())}", lambda v: isinstance(v, str) and v in names()


# name -> (what a value must be, in words; the test of a value)
RULES: dict[str, Callable[[], tuple[str, Callable[[Any], bool]]]] = {
    "SEED": lambda: _int(0),
    "EPOCHS": lambda: _int(1),
    "BATCH_SIZE": lambda: _int(1),
    "STEPS": lambda: _int(1),
    "TRAIN_ROWS": lambda: _int(1),
    "LEARNING_RATE": lambda: _number(positive=True),
    "L2": lambda: _number(positive=False),
    "DATASET": _dataset,
}


def problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the parameter ``name`` (None when it is fine)."""
    rule = RULES.get(name)
    if rule is None:
        return None
    want, ok = rule()
    return None if ok(value) else f"{name} takes {want}"
