"""Settings read from the environment: where the course keeps its files, and offline mode.

Every other module may import this one; it imports no other ``forge_course`` module, so
it can never be part of an import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home", "offline"]

OFFLINE_VAR = "FORGE_COURSE_OFFLINE"
TRUE = frozenset({"1", "true", "yes", "on"})


def offline() -> bool:
    """Tell whether ``FORGE_COURSE_OFFLINE`` asks us never to touch the network."""
    return os.environ.get(OFFLINE_VAR, "").strip().lower() in TRUE


def home() -> Path:
    """Return the Keras home folder (``$KERAS_HOME`` or ``~/.keras``), where datasets are cached."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
