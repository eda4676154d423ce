"""The registry's contract, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import sqlalchemy as sa

from forge_course.errors import ArtifactError, RegistryError
from forge_course.registry import ModelRegistry, parse_ref


def test_register_get_list_by_version_alias_and_latest(registry, keras_file):
    v1 = registry.register(keras_file, "digits", metrics={"accuracy": 0.81, "loss": 12.5},
                           params={"epochs": np.int64(3), "units": 32})  # fmt: skip
    v2 = registry.register(keras_file, "digits", metrics={"accuracy": 0.93, "loss": 0.2})
    other = registry.register(keras_file, "iris", metrics={"accuracy": 0.9})
    assert (v1, v2, other) == (1, 2, 1)  # integer versions, per name

    first = registry.get("digits/1")
    assert first.metrics == {"accuracy": 0.81, "loss": 12.5}  # a loss DECIMAL(5,4) could not hold
    assert first.params == {"epochs": 3, "units": 32}
    assert registry.get("digits").version == 2  # latest
    assert len(first.sha256) == 64 and first.size == keras_file.stat().st_size
    assert first.keras_version[0] == "3" and first.tensorflow_version.startswith("2.")
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.timezone.utc) - first.created_at) < dt.timedelta(minutes=5)

    assert [r.ref for r in registry.list()] == ["digits/1", "digits/2", "iris/1"]
    assert [r.ref for r in registry.list("iris")] == ["iris/1"]
    assert registry.names() == ["digits", "iris"]

    registry.set_alias("digits", 1, "champion")
    assert registry.get("digits@champion").version == 1
    assert registry.get("digits/1").aliases == ("champion",)


def test_one_version_per_alias_moves_only_when_asked(registry, keras_file):
    for _ in range(2):
        registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    registry.set_alias("digits", 1, "champion")
    with pytest.raises(RegistryError, match=r"'champion' of 'digits' already points at version 1"):
        registry.set_alias("digits", 2, "champion")
    assert registry.get("digits@champion").version == 1  # nothing changed
    registry.set_alias("digits", 1, "champion")  # same version again: fine
    registry.set_alias("digits", 2, "champion", move=True)
    assert registry.get("digits@champion").version == 2
    assert registry.get("digits/1").aliases == ()
    with registry.engine.connect() as conn:  # the database itself holds one row per alias
        count = conn.execute(sa.text("SELECT count(*) FROM aliases WHERE alias = :a"),
                             {"a": "champion"}).scalar()  # fmt: skip
    assert count == 1


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", r"no model 'nope' in .*have: digits\)"),
        ("digits/7", r"no model 'digits' version 7 .*\(have 1\)"),
        ("digits@prod", r"no alias 'prod' .*aliases: champion=v1"),
        ("digits/0", r"not a whole number >= 1"),
        ("digits@", r"alias '' is not valid"),
        ("", r"write NAME \(latest\)"),
    ],
)
def test_unknown_refs_name_what_was_asked_and_what_exists(registry, keras_file, ref, message):
    registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    registry.set_alias("digits", 1, "champion")
    with pytest.raises(RegistryError, match=message):
        registry.get(ref)
    with pytest.raises(RegistryError):
        registry.load(ref)


def test_set_alias_on_a_missing_version_names_the_versions(registry, keras_file):
    registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    with pytest.raises(RegistryError, match=r"version 5 .*\(have 1\)"):
        registry.set_alias("digits", 5, "champion")
    with pytest.raises(RegistryError, match="alias '3rd' is not valid"):
        registry.set_alias("digits", 1, "3rd")  # would read like a version


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"accuracy": float("nan")}, "not a finite number"),
        ({"loss": float("inf")}, "not a finite number"),
        ({"accuracy": 1.5}, r"ratio and must lie in \[0, 1\]"),
        ({"val_loss": -0.1}, "cannot be negative"),
        ({"accuracy": "high"}, "not a number"),
        ({}, "non-empty dict"),
    ],
)
def test_metric_sanity_checks(registry, keras_file, metrics, message):
    with pytest.raises(RegistryError, match=message):
        registry.register(keras_file, "digits", metrics=metrics)
    assert not list(registry.artifacts.rglob("*"))  # refused before any file was written


def test_database_constraints_hold_without_the_python_checks(registry, keras_file, monkeypatch):
    """The CHECK constraints refuse what the Python checks would: the database defends itself."""
    import forge_course.registry.core as core

    monkeypatch.setattr(core, "check_metrics", lambda m: {k: float(v) for k, v in m.items()})
    for bad in ({"accuracy": 1.5}, {"loss": -1.0}, {"loss": float("inf")}):
        with pytest.raises(RegistryError, match="refused to register"):
            registry.register(keras_file, "digits", metrics=bad)
    assert registry.names() == []
    assert not list(registry.artifacts.rglob("*.keras"))


def test_values_travel_as_parameters_never_as_sql(registry, keras_file):
    hostile = "x'); DROP TABLE model_versions; --"
    registry.register(keras_file, "digits", metrics={hostile: 0.5}, params={hostile: hostile})
    record = registry.get("digits/1")
    assert record.metrics == {hostile: 0.5} and record.params == {hostile: hostile}
    with pytest.raises(RegistryError, match="is not valid"):
        registry.register(keras_file, "a'; DROP TABLE metrics; --", metrics={"accuracy": 0.5})
    assert len(registry.list()) == 1


def test_load_checks_the_sha256_and_names_both_hashes(registry, keras_file):
    import keras

    registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    model = registry.load("digits")
    assert isinstance(model, keras.Model) and model.output_shape == (None, 3)
    record = registry.get("digits")
    with open(record.artifact_path, "ab") as f:
        f.write(b"tampered")
    from forge_course.registry.artifacts import file_sha256

    actual = file_sha256(record.artifact_path)
    with pytest.raises(ArtifactError) as info:
        registry.load("digits")
    assert record.sha256 in str(info.value) and actual in str(info.value)
    report = registry.verify()
    assert not report.ok and report.failed[0].actual_sha256 == actual


def test_missing_artifact_is_refused_and_reported(registry, keras_file):
    from pathlib import Path

    registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    registry.register(keras_file, "digits", metrics={"accuracy": 0.9})
    Path(registry.get("digits/1").artifact_path).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        registry.load("digits/1")
    report = registry.verify()
    assert [r.ok for r in report.results] == [False, True]
    assert registry.verify("digits/2").ok


def test_registers_a_live_keras_model_and_loads_it_in_safe_mode(registry):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    registry.register(model, "line", metrics={"loss": 0.5})
    x = np.array([[1.0, 2.0]], "float32")
    np.testing.assert_allclose(registry.load("line")(x), model(x), rtol=1e-6)


def test_schema_after_migrations_matches_the_metadata(registry, db_url):
    """Alembic builds, from an empty database, exactly the tables schema.py declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from forge_course.registry import migrate
    from forge_course.registry.schema import metadata

    assert registry.names() == []  # first use migrates
    with registry.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision() == migrate.HEAD
        assert migrate.is_current(conn)
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        tables = set(sa.inspect(conn).get_table_names())
    assert diff == []
    assert {"registered_models", "model_versions", "metrics", "aliases"} <= tables
    again = ModelRegistry(db_url, artifacts=registry.artifacts)  # a second first use: no-op
    assert again.names() == []
    again.close()


@pytest.mark.parametrize("ref", ["digits", "digits/3", "digits@champion", " digits/12 "])
def test_parse_ref(ref):
    r = parse_ref(ref)
    assert r.name == "digits" and str(r) == ref.strip()


def test_default_url_is_a_sqlite_file_under_runs(monkeypatch, tmp_path):
    from forge_course.registry import default_url, runs_dir

    assert default_url() == f"sqlite:///{runs_dir() / 'registry.db'}"
    assert runs_dir().name == "runs"
    monkeypatch.setenv("FORGE_REGISTRY_URL", f"sqlite:///{tmp_path / 'x.db'}")
    with ModelRegistry() as reg:
        assert reg.url.endswith("x.db") and reg.artifacts == tmp_path / "x-artifacts"
