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
    ├── ServingError        2  a model cannot be saved, exported or served as given
    │   └── ArtifactHashError 2  a model file's SHA-256 is not the one expected; not loaded
    ├── RegistryError       2  unknown model, version or alias; alias taken; bad metrics
    │   ├── RegistryUnavailableError  3  database unreachable, corrupt or not migratable
    │   └── ArtifactError   2  a registered artifact is missing or its SHA-256 changed
    └── ExecutionError      3  this machine cannot do the work (e.g. no Jupyter kernel)
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ArtifactHashError",
    "CacheError",
    "DatasetError",
    "DownloadError",
    "ExecutionError",
    "ForgeError",
    "GradingError",
    "RegistryError",
    "RegistryUnavailableError",
    "ServingError",
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


class RegistryError(ForgeError):
    """The model registry was asked for something it does not hold, or given bad values."""


class RegistryUnavailableError(RegistryError):
    """The registry's database cannot be reached, opened or brought up to date."""

    exit_code = 3


class ArtifactError(RegistryError):
    """A registered model file is missing, or its SHA-256 no longer matches its record.

    Exit code 2, as ``forge-course serve`` documents for a hash mismatch; ``registry verify``
    reports changed files itself and exits 1 ("checks failed").
    """


class ServingError(ForgeError):
    """A model cannot be saved, exported, converted or served as given."""


class ArtifactHashError(ServingError):
    """A model file's SHA-256 differs from the one expected, so it was not loaded."""


class ExecutionError(ForgeError):
    """The request is fine, but this machine cannot carry it out (a kernel is missing)."""

    exit_code = 3
