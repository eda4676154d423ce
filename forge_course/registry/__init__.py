"""The SQL model registry (lesson 11): versions, metrics, aliases and checksums.

    from forge_course.registry import ModelRegistry
    reg = ModelRegistry()               # $FORGE_REGISTRY_URL, else sqlite:///runs/registry.db
    v = reg.register(model, "digits", metrics={"accuracy": 0.93}, params={"epochs": 5})
    reg.set_alias("digits", v, "champion")
    rec = reg.get("digits@champion")    # .name .version .artifact_path .sha256 .metrics ...
    model = reg.load("digits@champion") # safe mode; ArtifactError if the SHA-256 changed

Modules: ``core`` (the registry), ``records`` (what it returns, input checks), ``database``
(URLs, engines, error messages),
``schema`` (tables), ``migrate`` + ``migrations/`` (Alembic), ``artifacts`` (files), ``cli``.
"""

from __future__ import annotations

from forge_course.registry.core import ModelRegistry, default_url, runs_dir
from forge_course.registry.records import ModelRecord, Ref, VerifyReport, VerifyResult, parse_ref

__all__ = [
    "ModelRecord",
    "ModelRegistry",
    "Ref",
    "VerifyReport",
    "VerifyResult",
    "default_url",
    "parse_ref",
    "runs_dir",
]
