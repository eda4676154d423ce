"""Fixtures for the registry's tests: each test gets an empty registry on SQLite and on a
real PostgreSQL server started for the session (skipped, naming the package, when
PostgreSQL is not installed). ``FORGE_TEST_POSTGRES_URL`` points them at a server of yours
instead (each test creates a database of its own on it)."""

from __future__ import annotations

import os

import pytest

from tests.registry import pg

BACKENDS = ["sqlite", "postgresql"]


class ExternalServer:
    def __init__(self, url: str):
        self.base = url

    def new_database(self) -> str:
        import uuid

        import psycopg
        import sqlalchemy as sa

        url = sa.make_url(self.base)
        name = f"reg_{uuid.uuid4().hex[:12]}"
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, not user input
        return url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this test session (one per xdist worker)."""
    external = os.environ.get("FORGE_TEST_POSTGRES_URL")
    if external:
        yield ExternalServer(external)
        return
    bindir = pg.find_bin()
    if bindir is None:
        pytest.skip(f"PostgreSQL not installed (no initdb/pg_ctl); install it: {pg.INSTALL}")
    server = pg.PostgresServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_url(request, tmp_path):
    """An empty database URL on the backend the test is parametrized with."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def registry(db_url, tmp_path):
    from forge_course.registry import ModelRegistry

    reg = ModelRegistry(db_url, artifacts=tmp_path / "artifacts")
    yield reg
    reg.close()


def pytest_generate_tests(metafunc):
    if "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory):
    """A small saved Keras model (a .keras file) to register."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(autouse=True)
def _no_registry_env(monkeypatch):
    monkeypatch.delenv("FORGE_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FORGE_REGISTRY_ARTIFACTS", raising=False)
