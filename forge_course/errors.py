"""Exceptions raised by Forge Course.

Every error the package raises on purpose derives from :class:`ForgeError`, so a
caller (or the CLI) can catch one class and show its message without a traceback::

    ForgeError
    ├── DatasetError        unknown dataset name, unusable data
    │   └── CacheError      corrupt or unwritable dataset cache
    └── GradingError        exercise, submission or grading problems
"""

from __future__ import annotations

__all__ = ["ForgeError", "DatasetError", "CacheError", "GradingError"]


class ForgeError(Exception):
    """Root of every error Forge Course raises on purpose; its message says what to do."""


class DatasetError(ForgeError):
    """A dataset was asked for by a name we do not know, or could not be produced."""


class CacheError(DatasetError):
    """A dataset cache file is corrupt, or the cache directory cannot be written."""


class GradingError(ForgeError):
    """An exercise, a submission or a grading run is not usable as given."""
