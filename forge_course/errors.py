"""Exceptions raised by Forge Course.

Every error the package raises on purpose derives from :class:`ForgeError`, so a
caller (or the CLI) can catch one class and show its message without a traceback.
Each class carries the ``forge-course`` exit code it stands for (``exit_code``)::

    ForgeError              2  (usage: the input is wrong)
    ├── DatasetError        2  unknown dataset name, unusable data
    │   ├── CacheError      3  corrupt or unwritable dataset cache
    │   └── DownloadError   3  a download failed (network, proxy, checksum)
    ├── GradingError        2  exercise, submission or grading problems
    ├── WidgetInputError    2  a plot or widget got data it cannot draw (also a ValueError)
    └── ExecutionError      3  this machine cannot do the work (e.g. no Jupyter kernel)
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "DatasetError",
    "DownloadError",
    "ExecutionError",
    "ForgeError",
    "GradingError",
    "WidgetInputError",
]


class ForgeError(Exception):
    """Root of every error Forge Course raises on purpose; its message says what to do."""

    exit_code: int = 2  # usage error: what was asked for is not usable as given


class DatasetError(ForgeError):
    """A dataset was asked for by a name we do not know, or could not be produced."""


class CacheError(DatasetError):
    """A dataset cache file is corrupt, or the cache directory cannot be written."""

    exit_code = 3


class DownloadError(DatasetError):
    """A dataset could not be downloaded (network, proxy or checksum trouble)."""

    exit_code = 3


class GradingError(ForgeError):
    """An exercise, a submission or a grading run is not usable as given."""


class WidgetInputError(ForgeError, ValueError):
    """A widget got data it cannot use: wrong shape, mismatched lengths, out of range."""


class ExecutionError(ForgeError):
    """The request is fine, but this machine cannot carry it out (a kernel is missing)."""

    exit_code = 3
