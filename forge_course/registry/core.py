"""The model registry: register, look up, promote, verify and load model versions by SQL.

A recipe of named steps, each in one transaction::

    reg = ModelRegistry()                       # FORGE_REGISTRY_URL, else runs/registry.db
    v = reg.register(model, "digits", metrics={"accuracy": 0.93}, params={"epochs": 5})
    reg.set_alias("digits", v, "champion")      # one version per alias
    model = reg.load("digits@champion")         # refuses a file whose SHA-256 changed

Every statement goes through SQLAlchemy Core with bound parameters; no value is ever
pasted into SQL text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from forge_course.errors import RegistryError, RegistryUnavailableError
from forge_course.registry import artifacts as files
from forge_course.registry import migrate
from forge_course.registry.database import (
    ARTIFACTS_VAR,
    default_url,
    error_reason,
    make_engine,
    runs_dir,
    translate_errors,
)
from forge_course.registry.records import (
    ModelRecord,
    VerifyReport,
    VerifyResult,
    check_alias,
    check_metrics,
    check_name,
    check_params,
    parse_ref,
)
from forge_course.registry.schema import aliases, metrics, model_versions, models

__all__ = ["ModelRegistry", "default_url", "runs_dir"]

RETRIES = 8  # register attempts when another process took the same version first


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ModelRegistry:
    """A SQL registry of model versions and the files that hold them.

    Args:
        url: any SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user@host/db``);
            default ``$FORGE_REGISTRY_URL``, else ``sqlite:///<course>/runs/registry.db``.
        artifacts: folder for the ``.keras`` files; default ``$FORGE_REGISTRY_ARTIFACTS``,
            else ``<db name>-artifacts`` next to a SQLite file, else ``runs/registry-artifacts``.

    The schema is created or upgraded (Alembic) on first use.

    Raises:
        RegistryUnavailableError: the URL cannot be parsed or names no installed driver.
    """

    def __init__(self, url: str | None = None, *, artifacts: str | os.PathLike | None = None):
        text = str(url).strip() if url is not None else default_url()
        try:
            self._url = sa.make_url(text)
            self.engine = make_engine(self._url)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise RegistryUnavailableError(
                f"registry URL {text!r} is not usable ({error_reason(exc)}); write e.g. "
                "sqlite:///runs/registry.db or postgresql://user@localhost:5432/registry"
            ) from exc
        self.url = self._url.render_as_string(hide_password=True)
        self.artifacts = Path(artifacts or os.environ.get(ARTIFACTS_VAR) or self._default_folder())
        self._migrated = False

    def _default_folder(self) -> Path:
        db = self._url.database
        if self._url.get_backend_name() == "sqlite" and db and db != ":memory:":
            path = Path(db).expanduser()
            return path.with_name(f"{path.stem}-artifacts")
        return runs_dir() / "registry-artifacts"

    def __repr__(self) -> str:
        return f"ModelRegistry({self.url!r}, artifacts={str(self.artifacts)!r})"

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connections (the registry reopens them when used again)."""
        self.engine.dispose()

    # -- plumbing ---------------------------------------------------------------------

    def _ready(self) -> None:
        """Create or upgrade the schema once per registry object (Alembic, in one transaction)."""
        if not self._migrated:
            with self.engine.begin() as conn:
                if not migrate.is_current(conn):  # Alembic only when there is work to do
                    migrate.upgrade(conn)
            self._migrated = True

    def _guard(self, doing: str):
        """Turn driver errors into messages naming the database and what we were doing."""
        return translate_errors(self.url, doing)

    @contextlib.contextmanager
    def _session(self, doing: str):
        """One transaction (committed on success), with errors translated."""
        with self._guard(doing):
            self._ready()
            with self.engine.begin() as conn:
                yield conn

    def _step(self, name: str) -> None:
        """A named point in :meth:`register` (tests inject failures here)."""

    # -- lookups ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every registered model name, sorted."""
        with self._session("list model names") as conn:
            return self._names(conn)

    @staticmethod
    def _names(conn) -> list[str]:
        return list(conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars())

    def _model_id(self, conn, name: str, *, asked: str) -> uuid.UUID:
        model_id = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if model_id is None:
            have = ", ".join(self._names(conn)) or "none registered yet"
            raise RegistryError(
                f"no model {name!r} in {self.url} (asked for {asked!r}; have: {have}); "
                "register it first"
            )
        return model_id

    def _records(self, conn, rows) -> list[ModelRecord]:
        ids = [row.id for row in rows]
        if not ids:
            return []
        scores: dict[Any, dict[str, float]] = {i: {} for i in ids}
        q = sa.select(metrics).where(metrics.c.version_id.in_(ids))
        for m in conn.execute(q):
            scores[m.version_id][m.key] = m.value
        tags: dict[Any, list[str]] = {i: [] for i in ids}
        q = sa.select(aliases.c.version_id, aliases.c.alias).where(aliases.c.version_id.in_(ids))
        for a in conn.execute(q.order_by(aliases.c.alias)):
            tags[a.version_id].append(a.alias)
        return [
            ModelRecord(
                name=row.name, version=row.version, artifact_path=row.artifact_path,
                sha256=row.sha256, size=row.artifact_size, metrics=scores[row.id],
                params=dict(row.params or {}), created_at=row.created_at,
                keras_version=row.keras_version, tensorflow_version=row.tensorflow_version,
                aliases=tuple(tags[row.id]), id=str(row.id),
            )
            for row in rows
        ]  # fmt: skip

    @staticmethod
    def _versions_query():
        return sa.select(model_versions, models.c.name).join(
            models, models.c.id == model_versions.c.model_id
        )

    def list(self, name: str | None = None) -> list[ModelRecord]:
        """Every registered version (of ``name`` only, when given), by name then version."""
        query = self._versions_query().order_by(models.c.name, model_versions.c.version)
        with self._session("list models") as conn:
            if name is not None:
                check_name(name)
                self._model_id(conn, name, asked=name)
                query = query.where(models.c.name == name)
            return self._records(conn, conn.execute(query).all())

    def get(self, ref: str) -> ModelRecord:
        """The record ``ref`` names: ``name`` (latest), ``name/3`` or ``name@alias``.

        Raises:
            RegistryError: no such model, version or alias (the message lists what exists).
        """
        r = parse_ref(ref)
        with self._session(f"look up {ref!r}") as conn:
            model_id = self._model_id(conn, r.name, asked=ref)
            query = self._versions_query().where(model_versions.c.model_id == model_id)
            if r.alias is not None:
                version_id = conn.execute(
                    sa.select(aliases.c.version_id).where(
                        aliases.c.model_id == model_id, aliases.c.alias == r.alias
                    )
                ).scalar()
                if version_id is None:
                    have = self._alias_list(conn, model_id)
                    raise RegistryError(
                        f"model {r.name!r} has no alias {r.alias!r} in {self.url} (aliases: "
                        f"{have}); promote a version first: forge-course registry promote "
                        f"{r.name} VERSION --alias {r.alias}"
                    )
                query = query.where(model_versions.c.id == version_id)
            elif r.version is not None:
                query = query.where(model_versions.c.version == r.version)
            else:
                query = query.order_by(model_versions.c.version.desc()).limit(1)
            row = conn.execute(query).first()
            if row is None:
                have = ", ".join(map(str, self._version_numbers(conn, model_id))) or "none"
                raise RegistryError(
                    f"no model {r.name!r} version {r.version} in {self.url} (have {have}); "
                    "register it first"
                )
            return self._records(conn, [row])[0]

    @staticmethod
    def _version_numbers(conn, model_id) -> list[int]:
        q = sa.select(model_versions.c.version).where(model_versions.c.model_id == model_id)
        return list(conn.execute(q.order_by(model_versions.c.version)).scalars())

    @staticmethod
    def _alias_list(conn, model_id) -> str:
        q = (
            sa.select(aliases.c.alias, model_versions.c.version)
            .join(model_versions, model_versions.c.id == aliases.c.version_id)
            .where(aliases.c.model_id == model_id)
            .order_by(aliases.c.alias)
        )
        return ", ".join(f"{a}=v{v}" for a, v in conn.execute(q)) or "none"

    # -- writes -----------------------------------------------------------------------

    def register(
        self,
        model: Any,
        name: str,
        *,
        metrics: dict[str, float],
        params: dict[str, Any] | None = None,
    ) -> int:
        """Store ``model`` as the next version of ``name``; return that version number.

        The model is saved under a temporary name, flushed and hashed, then moved into
        place and its rows committed in one transaction. If any step fails, the file is
        removed and no row remains. Concurrent calls (processes, machines) get distinct
        versions: SQLite takes its write lock first (``BEGIN IMMEDIATE``); PostgreSQL
        locks the model's row and retries when two processes create a new name at once.

        Args:
            model: a Keras model, or the path of a ``.keras`` file.
            name: the model's name (letters, digits, ``_.-``).
            metrics: final scores, e.g. ``{"accuracy": 0.93, "loss": 0.21}``.
            params: training parameters (JSON-safe), e.g. ``{"epochs": 5}``.
        """
        check_name(name)
        scores = check_metrics(metrics)
        settings = check_params(params)
        keras_version, tf_version = files.library_versions()
        with self._guard(f"register {name!r}"):
            self._ready()
        staged = files.stage(model, self.artifacts / name)
        try:
            self._step("staged")
            with self._guard(f"register {name!r}"):
                for attempt in range(1, RETRIES + 1):
                    try:
                        return self._commit(name, staged, scores, settings, keras_version,
                                            tf_version)  # fmt: skip
                    except sa_exc.IntegrityError as exc:
                        if attempt == RETRIES or "unique" not in error_reason(exc).lower():
                            raise
                        time.sleep(random.uniform(0.01, 0.05) * attempt)  # another one won
        finally:
            staged.path.unlink(missing_ok=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit(self, name, staged, scores, settings, keras_version, tf_version) -> int:
        version_id, now, final = uuid.uuid4(), _now(), None
        with self.engine.connect() as conn:
            transaction = conn.begin()
            try:
                model_id = self._lock_model(conn, name, now)
                top = sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id
                )
                version = (conn.execute(top).scalar() or 0) + 1
                target = staged.path.with_name(f"v{version}-{version_id.hex[:8]}.keras")
                conn.execute(
                    sa.insert(model_versions).values(
                        id=version_id, model_id=model_id, version=version,
                        artifact_path=str(target.resolve()), artifact_size=staged.size,
                        sha256=staged.sha256, params=settings, keras_version=keras_version,
                        tensorflow_version=tf_version, created_at=now,
                    )
                )  # fmt: skip
                conn.execute(
                    sa.insert(metrics),
                    [{"version_id": version_id, "key": k, "value": v} for k, v in scores.items()],
                )
                self._step("inserted")
                os.replace(staged.path, target)
                final = target
                self._step("moved")
                transaction.commit()
                return version
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                if final is not None:
                    final.unlink(missing_ok=True)
                raise

    @staticmethod
    def _lock_model(conn, name: str, now: dt.datetime):
        """The model's id, its row locked until commit (created when new)."""
        q = sa.select(models.c.id).where(models.c.name == name).with_for_update()
        model_id = conn.execute(q).scalar()
        if model_id is None:
            model_id = uuid.uuid4()
            conn.execute(sa.insert(models).values(id=model_id, name=name, created_at=now))
        return model_id

    def set_alias(self, name: str, version: int, alias: str, *, move: bool = False) -> ModelRecord:
        """Point ``name@alias`` at ``version``; one version holds an alias at a time.

        Args:
            move: take the alias from the version holding it now. Without it, an alias
                already on another version is refused (a production pointer moves only
                when asked).

        Raises:
            RegistryError: unknown model or version, bad alias, or the alias is taken.
        """
        check_name(name)
        check_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RegistryError(f"version {version!r} of {name!r}: give a whole number >= 1")
        ref = f"{name}/{version}"
        with self._session(f"promote {ref} to {alias!r}") as conn:
            model_id = self._model_id(conn, name, asked=ref)
            conn.execute(sa.select(models.c.id).where(models.c.id == model_id).with_for_update())
            q = sa.select(model_versions.c.id).where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
            version_id = conn.execute(q).scalar()
            if version_id is None:
                have = ", ".join(map(str, self._version_numbers(conn, model_id)))
                raise RegistryError(
                    f"no model {name!r} version {version} in {self.url} (have {have}); "
                    f"cannot point alias {alias!r} at it"
                )
            key = (aliases.c.model_id == model_id) & (aliases.c.alias == alias)
            holder = conn.execute(
                sa.select(model_versions.c.version)
                .join(aliases, aliases.c.version_id == model_versions.c.id)
                .where(key)
            ).scalar()
            if holder is None:
                conn.execute(
                    sa.insert(aliases).values(
                        model_id=model_id, alias=alias, version_id=version_id, updated_at=_now()
                    )
                )
            elif holder != version:
                if not move:
                    raise RegistryError(
                        f"alias {alias!r} of {name!r} already points at version {holder}; "
                        f"asked for version {version}. Move it explicitly: set_alias(..., "
                        f"move=True), or forge-course registry promote {name} {version} "
                        f"--alias {alias} --move"
                    )
                conn.execute(
                    sa.update(aliases).where(key).values(version_id=version_id, updated_at=_now())
                )
        return self.get(f"{name}@{alias}")

    # -- artifacts --------------------------------------------------------------------

    def load(self, ref: str):
        """Load the Keras model ``ref`` names, in safe mode, after checking its SHA-256.

        The bytes that are hashed are the bytes that are loaded (read once, loaded from a
        private copy), so the file cannot change between the check and the load.

        Raises:
            RegistryError: unknown reference. ArtifactError: file missing or changed.
        """
        import keras

        record = self.get(ref)
        data = files.read_verified(record)
        with tempfile.TemporaryDirectory(prefix="forge-registry-") as tmp:
            copy = Path(tmp) / "model.keras"
            copy.write_bytes(data)
            return keras.saving.load_model(copy, safe_mode=True)

    def verify(self, ref: str | None = None) -> VerifyReport:
        """Check the SHA-256 of ``ref``'s artifact, or of every registered version.

        Checking every version also lists the ``.keras`` files of the artifacts folder that
        no version names (a register killed between its move and its commit leaves one).
        """
        records = [self.get(ref)] if ref is not None else self.list()
        results = []
        for record in records:
            path = Path(record.artifact_path)
            if not path.is_file():
                results.append(VerifyResult(record, False, None, f"missing file {path}"))
                continue
            actual = files.file_sha256(path)
            ok = actual == record.sha256
            problem = "" if ok else f"{path} has SHA-256 {actual}, registered {record.sha256}"
            results.append(VerifyResult(record, ok, actual, problem))
        strays: tuple[str, ...] = ()
        if ref is None and self.artifacts.is_dir():
            named = {str(Path(r.artifact_path).resolve()) for r in records}
            found = (str(f.resolve()) for f in self.artifacts.glob("*/*.keras"))
            strays = tuple(sorted(f for f in found if f not in named))
        return VerifyReport(tuple(results), strays)
