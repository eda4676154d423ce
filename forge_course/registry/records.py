"""What the registry hands back: records of model versions, parsed references, check results."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from forge_course.errors import RegistryError

__all__ = [
    "ModelRecord",
    "Ref",
    "VerifyReport",
    "VerifyResult",
    "check_alias",
    "check_metrics",
    "check_name",
    "check_params",
    "parse_ref",
]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
REF_FORMS = "NAME (latest), NAME/VERSION (e.g. digits/3) or NAME@ALIAS (e.g. digits@champion)"
UNIT_METRICS = ("accuracy", "auc", "precision", "recall")  # a ratio: between 0 and 1


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """One registered version of a model: where its file is, what it scored, how it was made."""

    name: str
    version: int
    artifact_path: str
    sha256: str
    size: int
    metrics: dict[str, float]
    params: dict[str, Any]
    created_at: dt.datetime
    keras_version: str
    tensorflow_version: str
    aliases: tuple[str, ...] = ()
    id: str = ""

    @property
    def ref(self) -> str:
        """The reference that names exactly this version (``digits/3``)."""
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["aliases"] = list(self.aliases)
        return out

    def to_json(self) -> str:
        """The record as JSON text (what an exercise's ``check`` takes as a scalar)."""
        import json

        return json.dumps(self.to_dict(), sort_keys=True)

    def summary(self) -> str:
        """One line: ``digits/3 @champion accuracy=0.9412 loss=0.2031 sha256=1f2e3d4c5b6a``."""
        tags = "".join(f" @{a}" for a in self.aliases)
        scores = " ".join(f"{k}={v:.4g}" for k, v in sorted(self.metrics.items()))
        return f"{self.ref}{tags} {scores} sha256={self.sha256[:12]}".replace("  ", " ")

    def __str__(self) -> str:
        lines = [
            f"{self.ref}" + (f"  (aliases: {', '.join(self.aliases)})" if self.aliases else ""),
            f"  artifact   {self.artifact_path} ({self.size} bytes)",
            f"  sha256     {self.sha256}",
            f"  created    {self.created_at.isoformat(timespec='seconds')}",
            f"  keras {self.keras_version}, tensorflow {self.tensorflow_version}",
            "  metrics    " + (", ".join(f"{k}={v:.6g}" for k, v in sorted(self.metrics.items()))
                               or "none"),
            "  params     " + (", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
                               or "none"),
        ]  # fmt: skip
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Ref:
    """A parsed reference: a name and at most one of a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(ref: str) -> Ref:
    """Parse ``name``, ``name/3`` or ``name@alias``; raise RegistryError saying the forms."""
    if not isinstance(ref, str) or not ref.strip():
        raise RegistryError(f"model reference {ref!r}: write {REF_FORMS}")
    text = ref.strip()
    name, version, alias = text, None, None
    if "@" in text:
        name, alias = text.split("@", 1)
        if not ALIAS.fullmatch(alias):
            raise RegistryError(f"model reference {ref!r}: alias {alias!r} is not valid; "
                                f"write {REF_FORMS}")  # fmt: skip
    elif "/" in text:
        name, number = text.split("/", 1)
        if not number.isdigit() or int(number) < 1:
            raise RegistryError(f"model reference {ref!r}: version {number!r} is not a whole "
                                f"number >= 1; write {REF_FORMS}")  # fmt: skip
        version = int(number)
    check_name(name, what=f"model reference {ref!r}")
    return Ref(name, version, alias)


def check_name(name: Any, *, what: str = "model name") -> str:
    """Return ``name`` if it is a usable model name, else raise RegistryError."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise RegistryError(
            f"{what}: name {name!r} is not valid; use 1-100 letters, digits, '_', '.', '-', "
            "starting with a letter or digit (e.g. digits_mlp)"
        )
    return name


def check_alias(alias: Any) -> str:
    """Return ``alias`` if it is a usable alias (a letter first, so never a version)."""
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias):
        raise RegistryError(
            f"alias {alias!r} is not valid; use 1-64 letters, digits, '_', '-', starting "
            "with a letter (e.g. champion)"
        )
    return alias


def check_metrics(metrics: Any) -> dict[str, float]:
    """Return ``metrics`` as ``{name: float}``, refusing values no training run produces.

    Every value must be a finite number; a name ending in ``accuracy``, ``auc``,
    ``precision`` or ``recall`` must lie in [0, 1], one ending in ``loss`` must be >= 0.
    A loss of 12.5 is fine (the seed's ``DECIMAL(5,4)`` could not hold it).
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise RegistryError(
            f"metrics {metrics!r}: give a non-empty dict of numbers, e.g. "
            "{'accuracy': 0.93, 'loss': 0.21}"
        )
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not 0 < len(key) <= 100:
            raise RegistryError(f"metric name {key!r}: use a string of 1-100 characters")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RegistryError(f"metric {key}={value!r} is not a number") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise RegistryError(f"metric {key}={value!r} is not a finite number; "
                                "a diverged run is not worth registering")  # fmt: skip
        if key.endswith(UNIT_METRICS) and not 0.0 <= number <= 1.0:
            raise RegistryError(f"metric {key}={number!r} is a ratio and must lie in [0, 1]")
        if key.endswith("loss") and number < 0.0:
            raise RegistryError(f"metric {key}={number!r}: a loss cannot be negative")
        out[key] = number
    return out


def check_params(params: Any) -> dict[str, Any]:
    """Return ``params`` as a JSON-safe dict (NumPy scalars become Python numbers)."""
    import json

    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise RegistryError(f"params {params!r}: give a dict such as {{'epochs': 5}}")

    def plain(value):
        if hasattr(value, "item") and callable(value.item):  # NumPy scalar
            return value.item()
        raise TypeError

    out = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise RegistryError(f"param name {key!r}: use a string")
        try:
            out[key] = json.loads(json.dumps(value, default=plain, allow_nan=False))
        except (TypeError, ValueError):
            raise RegistryError(f"param {key}={value!r} cannot be stored as JSON; give a "
                                "number, string, bool, list or dict") from None  # fmt: skip
    return out


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """Whether one registered artifact is still the file that was registered."""

    record: ModelRecord
    ok: bool
    actual_sha256: str | None  # None when the file is missing
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"ok      {self.record.ref}  sha256 {self.record.sha256[:16]}"
        return f"FAILED  {self.record.ref}  {self.problem}"


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """The results of :meth:`ModelRegistry.verify`, one per version checked."""

    results: tuple[VerifyResult, ...]
    # .keras files in the artifacts folder that no version names: left by a register that
    # died before its commit; nothing loads them, so they are safe to delete
    unregistered: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[VerifyResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "results": [
                {"ref": r.record.ref, "ok": r.ok, "expected_sha256": r.record.sha256,
                 "actual_sha256": r.actual_sha256, "problem": r.problem}
                for r in self.results
            ],
            "unregistered": list(self.unregistered),
        }  # fmt: skip

    def __str__(self) -> str:
        lines = [str(r) for r in self.results]
        lines.append(f"{len(self.results) - len(self.failed)} of {len(self.results)} "
                     "artifacts match their SHA-256")  # fmt: skip
        if self.unregistered:
            lines.append(f"{len(self.unregistered)} file(s) no version names (a register that "
                         "died before its commit; safe to delete):")  # fmt: skip
            lines.extend(f"  {path}" for path in self.unregistered)
        return "\n".join(lines)
