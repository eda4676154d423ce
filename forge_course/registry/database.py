"""Where the registry's database is and how we talk to it: URLs, engines, error messages."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from forge_course import config
from forge_course.errors import RegistryError, RegistryUnavailableError

__all__ = [
    "ARTIFACTS_VAR",
    "URL_VAR",
    "default_url",
    "error_reason",
    "make_engine",
    "runs_dir",
    "translate_errors",
]

URL_VAR = "FORGE_REGISTRY_URL"
ARTIFACTS_VAR = "FORGE_REGISTRY_ARTIFACTS"


def runs_dir() -> Path:
    """The course's ``runs/`` folder: in the checkout when run from one, else under home()."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "forge_course").is_dir():
        return root / "runs"
    return config.home() / "forge-course" / "runs"


def default_url() -> str:
    """``$FORGE_REGISTRY_URL``, else a SQLite file ``runs/registry.db``."""
    return os.environ.get(URL_VAR, "").strip() or f"sqlite:///{runs_dir() / 'registry.db'}"


def error_reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def make_engine(url: sa.URL) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            dbapi_conn.execute("PRAGMA foreign_keys = ON")
            dbapi_conn.execute("PRAGMA busy_timeout = 60000")

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Take the write lock at the start: two registers never both read max(version).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")  # psycopg 3, which the course ships
        return sa.create_engine(url, connect_args={"connect_timeout": 5}, pool_pre_ping=True)
    return sa.create_engine(url)


@contextlib.contextmanager
def translate_errors(url: str, doing: str):
    """Turn driver errors into RegistryErrors naming the database ``url`` and what we did."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        raise RegistryError(
            f"the registry database {url} refused to {doing}: {error_reason(exc)}; "
            "nothing was changed"
        ) from exc
    except (sa_exc.OperationalError, sa_exc.DatabaseError, sa_exc.InterfaceError) as exc:
        reason = error_reason(exc)
        advice = "check the URL, that the server runs, and " + URL_VAR
        if "not a database" in reason or "malformed" in reason:
            advice = (
                "the file is corrupt or not a SQLite database; move it aside and start "
                f"a new registry, or point {URL_VAR} at another database"
            )
        raise RegistryUnavailableError(
            f"cannot {doing}: registry database {url} failed ({reason}); nothing "
            f"was changed; {advice}"
        ) from exc
