"""Exercise 11: SQL over the registry, a promoted champion, and a load that is refused.

The ladder: a leaderboard query the grader runs on registries of its own (apply), a digits
model trained, registered with honest metrics and promoted so ``digits_mlp@champion``
loads (target), and a "fine-tune in place" cell whose load the registry refuses because
the champion's file no longer matches its SHA-256 (debug).

The learner's SQL runs read-only, in the grader's own SQLite file, under an authorizer
that allows reading and nothing else (no ATTACH, no writes, no PRAGMA) and a step limit.
"""

from __future__ import annotations

import atexit
import functools
import math
import re
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

import numpy as np

from forge_course.grading.checks import accuracy, flat_digits, not_a_model, validation_rows
from forge_course.grading.spec import Check, Exercise, Task

METRIC = "val_loss"  # task 1 ranks by it: lower is better
NAME = "digits_mlp"  # task 2's model name
DEBUG_NAME = "digits_tuned"  # task 3's model name
ALIAS = "champion"
VALIDATION_SPLIT = 0.2
MIN_VAL_ACCURACY = 0.93  # task 2's bar on the registered val_accuracy
MIN_TEST_ACCURACY = 0.90  # the champion on the test digits (the notebook never scores them)
MIN_TUNED_TEST_ACCURACY = 0.88  # task 3's fine-tuned champion on the test digits
HONEST = 0.011  # registered val_accuracy vs the model's own, on the validation rows
SQL_STEPS = 2_000_000  # SQLite virtual-machine steps a query may take
COLUMNS = ("name", "version", "score")
LOSSES = (0.12, 0.2, 0.35, 0.5, 0.8, 1.3, 2.1)  # the made-up registries' val_loss values


# ---------------------------------------------------------------- the grader's registries


@functools.lru_cache(maxsize=8)
def grading_registry(seed: int) -> tuple[str, tuple[tuple[str, int, float], ...]]:
    """A registry database of made-up versions, and its expected leaderboard by METRIC.

    The database has the registry's real schema (migrated by Alembic); its versions have
    random metrics, some share a score (ties), and some lack ``val_loss`` entirely.
    """
    import datetime as dt

    import sqlalchemy as sa

    from forge_course.registry import ModelRegistry
    from forge_course.registry.schema import metrics, model_versions, models

    rng = np.random.default_rng(seed)
    folder = Path(tempfile.mkdtemp(prefix=f"forge-ex11-{seed}-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "registry.db"
    reg = ModelRegistry(f"sqlite:///{path}", artifacts=folder / "artifacts")
    reg.names()  # migrate
    now = dt.datetime.now(dt.timezone.utc)
    names = [f"{w}_{seed % 97}" for w in ("cnn", "mlp", "linear", "wide")]
    expected = []
    with reg.engine.begin() as conn:
        for name in names:
            model_id = uuid.uuid4()
            conn.execute(sa.insert(models).values(id=model_id, name=name, created_at=now))
            for version in range(1, int(rng.integers(3, 6)) + 1):
                vid = uuid.uuid4()
                conn.execute(
                    sa.insert(model_versions).values(
                        id=vid, model_id=model_id, version=version,
                        artifact_path=f"/nowhere/{name}/v{version}.keras", artifact_size=1,
                        sha256="0" * 64, params={"epochs": int(rng.integers(1, 30))},
                        keras_version="3", tensorflow_version="2", created_at=now,
                    )
                )  # fmt: skip
                loss = float(rng.choice(LOSSES))  # 8+ versions, 7 values: ties for sure
                scores = {"loss": loss * 0.9, "val_accuracy": float(rng.uniform(0.5, 1.0))}
                if version <= 2 or rng.random() > 0.4:  # some versions never logged val_loss
                    scores[METRIC] = loss
                    expected.append((name, version, loss))
                conn.execute(
                    sa.insert(metrics),
                    [{"version_id": vid, "key": k, "value": v} for k, v in scores.items()],
                )
    reg.close()
    expected.sort(key=lambda row: (row[2], row[0], row[1]))
    return str(path), tuple(expected)


READING = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
           getattr(sqlite3, "SQLITE_RECURSIVE", 33)}  # fmt: skip


def _allow_reading(action, *args):
    if action in READING:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def run_query(sql, path: str) -> tuple[list[tuple] | None, str | None]:
    """The rows ``sql`` returns on the registry at ``path`` (read-only), or what went wrong."""
    if not isinstance(sql, str) or not sql.strip():
        return None, f"leaderboard_sql should be the text of a SELECT query, got {sql!r}"
    if not re.match(r"\s*(select|with)\b", sql, re.I):
        return None, "leaderboard_sql should be one SELECT query (it may start with WITH)"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    steps = {"n": 0}

    def budget():
        steps["n"] += 1
        return 1 if steps["n"] > SQL_STEPS // 1000 else 0

    try:
        conn.set_authorizer(_allow_reading)
        conn.set_progress_handler(budget, 1000)
        bind = {"metric": METRIC} if re.search(r":metric\b", sql) else {}
        cursor = conn.execute(sql, bind)
        return [tuple(r) for r in cursor.fetchall()], None
    except sqlite3.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "interrupted" in first:
            first = "it ran too long; join each version to its metric once, no cross joins"
        return None, f"the query failed on a registry database: {first}"
    finally:
        conn.close()


def _compare(rows, expected) -> str | None:
    if not rows:
        return "the query returned no rows; every version with a val_loss belongs on the board"
    if len(rows[0]) != len(COLUMNS):
        return f"each row should have {len(COLUMNS)} columns {COLUMNS}, got {len(rows[0])}"
    got = [(r[0], r[1], r[2]) for r in rows]
    if len(got) != len(expected):
        return (
            f"the board has {len(got)} rows; there are {len(expected)} versions with a "
            f"{METRIC} (versions without one are left out, each version appears once)"
        )
    if sorted(got, key=repr) != sorted(expected, key=repr):
        return f"the rows are not (name, version, {METRIC}) of every version that has one"
    if got != list(expected):
        for i, (have, want) in enumerate(zip(got, expected, strict=True)):
            if have != want:
                return (
                    f"row {i + 1} is {have}, expected {want}: lowest {METRIC} first, ties "
                    "broken by name, then by version"
                )
    return None


def _leaderboard(seed: int):
    def fn(v, p):
        path, expected = grading_registry(seed)
        rows, bad = run_query(v["leaderboard_sql"], path)
        return bad or _compare(rows, expected)

    return fn


def _runs(v, p):
    path, _ = grading_registry(int(p.get("SEED", 0)))
    rows, bad = run_query(v["leaderboard_sql"], path)
    if bad:
        return bad
    if rows and len(rows[0]) != len(COLUMNS):
        return f"each row should have {len(COLUMNS)} columns {COLUMNS}, got {len(rows[0])}"


def _public_board(v, p):
    return _leaderboard(int(p.get("SEED", 0)))(v, p)


def _hidden_board(v, p):
    return _leaderboard(int(p.get("SEED", 0)) + 1000)(v, p)


# ---------------------------------------------------------------- tasks 2 and 3: records


def _parse(value) -> tuple[dict | None, str | None]:
    """A record handed in as JSON text (``reg.get(ref).to_json()``), as a dict."""
    import json

    if isinstance(value, dict):
        return value, None
    try:
        record = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return None, f"expected the record as JSON text, reg.get(ref).to_json(); got {value!r:.60}"
    return record, None


def _record(value, name: str, *, min_version: int = 1) -> str | None:
    """What is wrong with a record (``reg.get(ref).to_json()``), else None."""
    value, bad = _parse(value)
    if bad:
        return bad
    if value.get("name") != name:
        return f"the record is of model {value.get('name')!r}; the task registers {name!r}"
    version = value.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < min_version:
        if isinstance(version, int) and version >= 1:
            return (
                f"the alias points at version {version}, whose file was changed in place; "
                "register the fine-tuned model as a new version and move the alias to it"
            )
        return f"the record's version is {version!r}, not a registered version number"
    if ALIAS not in (value.get("aliases") or []):
        return f"the record has aliases {value.get('aliases')!r}; promote it to {ALIAS!r}"
    sha = value.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        return "the record has no SHA-256 of its artifact; hand in reg.get(ref).to_json()"
    scores = value.get("metrics")
    if not isinstance(scores, dict) or not _number(scores.get("val_accuracy")):
        return "the record's metrics have no val_accuracy: train with validation_split"
    if not isinstance(value.get("params"), dict) or "epochs" not in value["params"]:
        return "the record's params do not say how many epochs it was trained for"
    return None


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _validation_rows():
    x, y = flat_digits("train")
    n_val = validation_rows(len(x), VALIDATION_SPLIT)
    return x[-n_val:], y[-n_val:]


def _accuracy(model, x, y) -> tuple[float | None, str | None]:
    if bad := not_a_model(model):
        return None, bad
    try:
        return accuracy(model, x, y), None
    except ValueError as exc:
        return None, str(exc).splitlines()[0]


def _honest(record_key: str, model_key: str, name: str):
    def fn(v, p):
        if bad := _record(v[record_key], name):
            return bad
        own, bad = _accuracy(v[model_key], *_validation_rows())
        if bad:
            return bad
        claimed = _parse(v[record_key])[0]["metrics"]["val_accuracy"]
        if abs(own - claimed) > HONEST:
            return (
                f"the record says val_accuracy {claimed:.4f}, but this model scores {own:.4f} "
                "on the validation rows: register the model with its own final metrics"
            )

    return fn


def _champion_record(v, p):
    return _record(v["champion"], NAME)


def _val_bar(v, p):
    if bad := _record(v["champion"], NAME):
        return bad
    score = _parse(v["champion"])[0]["metrics"]["val_accuracy"]
    if score < MIN_VAL_ACCURACY:
        return f"the champion's val_accuracy is {score:.4f}; the bar is {MIN_VAL_ACCURACY}"


def _test_bar(minimum: float, record_key: str, model_key: str, name: str, min_version=1):
    def fn(v, p):
        if bad := _record(v[record_key], name, min_version=min_version):
            return bad
        x, y = flat_digits("test")
        score, bad = _accuracy(v[model_key], x, y)
        if bad:
            return bad
        if score < minimum:
            return f"on the test digits the model is right for {score:.3f}; needs {minimum}"

    return fn


def _new_version(v, p):
    return _record(v["champion"], DEBUG_NAME, min_version=2)


EXERCISE = Exercise(
    name="11_sql_model_versioning",
    params={"SEED": 0, "EPOCHS": 20},
    timeout=240.0,
    tasks=(
        Task(
            "ex11_1", "apply", "a leaderboard in SQL",
            {"leaderboard_sql": "scalar"},
            (
                Check(
                    "runs", _runs,
                    description=f"one read-only SELECT returning {COLUMNS}",
                    hints=(
                        "A version's name lives in one table, its metrics in another: the "
                        "query joins them, and keeps only the metric the board ranks by.",
                        "FROM model_versions JOIN registered_models ON ... JOIN metrics ON "
                        "metrics.version_id = model_versions.id AND metrics.key = 'val_loss'",
                        "`SELECT m.name, v.version, s.value AS score FROM model_versions AS v "
                        "JOIN registered_models AS m ON m.id = v.model_id JOIN metrics AS s ON "
                        "s.version_id = v.id AND s.key = 'val_loss'`",
                    ),
                ),
                Check(
                    "order", _public_board,
                    description=f"every version with a {METRIC}, lowest first, ties by name "
                    "then version, on the exercise's registry",
                    hints=(
                        "A loss is best when it is small, unlike an accuracy; equal scores "
                        "need a rule too, or the order depends on the database.",
                        "ORDER BY with several keys: the score ascending, then the name, then "
                        "the version.",
                        "`... ORDER BY s.value, m.name, v.version`",
                    ),
                ),
                Check(
                    "unseen", _hidden_board, hidden=True,
                    description="the same query, right on a registry the notebook never saw",
                ),
            ),
        ),
        Task(
            "ex11_2", "target", f"train, register and promote {NAME}@{ALIAS}",
            {"champion": "scalar", "model": "model"},
            (
                Check(
                    "record", _champion_record,
                    description=f"{NAME}@{ALIAS} names a registered version with its "
                    "val_accuracy, epochs and SHA-256",
                    hints=(
                        "A version gets an alias only when you promote it; the record "
                        "reports the aliases it holds.",
                        "`reg.register(model, NAME, metrics=..., params=...)` returns the "
                        "version; `reg.set_alias(NAME, version, ALIAS)` promotes it.",
                        "`champion = reg.get(f'{NAME}@{ALIAS}').to_json()`",
                    ),
                ),
                Check(
                    "bar", _val_bar,
                    description=f"registered val_accuracy at least {MIN_VAL_ACCURACY}",
                    hints=(
                        "A model with a hidden layer and enough epochs beats a linear one on "
                        "the digits.",
                        "A `Dense` hidden layer of 64 ReLU units, trained for `EPOCHS` epochs "
                        "with `validation_split=VALIDATION_SPLIT`.",
                        "`RegistryCallback(NAME, registry=reg, params={'units': 64})` in "
                        "`fit(callbacks=[...])` registers the final metrics for you",
                    ),
                ),
                Check(
                    "honest", _honest("champion", "model", NAME), points=1,
                    description="the registered val_accuracy is what the loaded model scores "
                    "on the validation rows",
                    hints=(
                        "The metrics you register should belong to the very weights you "
                        "register, measured on the rows fit() held out.",
                        "`fit(..., validation_split=VALIDATION_SPLIT)`, then register "
                        "`history.history`'s last values.",
                        "`metrics={k: v[-1] for k, v in history.history.items()}`",
                    ),
                ),
                Check(
                    "test_digits", _test_bar(MIN_TEST_ACCURACY, "champion", "model", NAME),
                    hidden=True,
                    description=f"the champion right for at least {MIN_TEST_ACCURACY} of the "
                    "test digits",
                ),
            ),
        ),
        Task(
            "ex11_3", "debug", "a champion whose load is refused",
            {"champion": "scalar", "served": "model"},
            (
                Check(
                    "new_version", _new_version, points=2,
                    description=f"{DEBUG_NAME}@{ALIAS} is a new version (2 or later) that "
                    "loads",
                    hints=(
                        "The registry refuses a file whose bytes changed since it was "
                        "registered: the message names both hashes. Never rewrite a "
                        "registered file.",
                        "`reg.register(...)` the fine-tuned model as a new version, then "
                        "`reg.set_alias(..., move=True)`.",
                        "`version = reg.register(base, DEBUG_NAME, metrics=final, params=...)`"
                        "; `reg.set_alias(DEBUG_NAME, version, ALIAS, move=True)`",
                    ),
                ),
                Check(
                    "honest", _honest("champion", "served", DEBUG_NAME), points=1,
                    description="the new version's val_accuracy is the fine-tuned model's own",
                    hints=(
                        "The old version's metrics describe the old weights.",
                        "Take the metrics from the fine-tuning run's history.",
                        "`final = {k: v[-1] for k, v in history.history.items()}`",
                    ),
                ),
                Check(
                    "fine_tuned", _test_bar(MIN_TUNED_TEST_ACCURACY, "champion", "served",
                                            DEBUG_NAME, min_version=2),  # fmt: skip
                    points=2, hidden=True,
                    description=f"the served model is the fine-tuned one: right for at least "
                    f"{MIN_TUNED_TEST_ACCURACY} of the test digits",
                ),
            ),
        ),
    ),
)  # fmt: skip


# ---------------------------------------------------------------- values each check rejects


def _untrained():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _fake_record(name=NAME, version=1, val_accuracy=0.95, aliases=(ALIAS,)):
    import json

    return json.dumps({
        "name": name, "version": version, "artifact_path": "/x.keras", "sha256": "a" * 64,
        "size": 1, "metrics": {"val_accuracy": val_accuracy, "loss": 0.1},
        "params": {"epochs": 20}, "created_at": "2026-01-01T00:00:00+00:00",
        "keras_version": "3", "tensorflow_version": "2", "aliases": list(aliases), "id": "x",
    })  # fmt: skip


DESCENDING = (
    "SELECT m.name, v.version, s.value FROM model_versions v JOIN registered_models m "
    "ON m.id = v.model_id JOIN metrics s ON s.version_id = v.id AND s.key = 'val_loss' "
    "ORDER BY s.value DESC"
)
NO_TIEBREAK = (
    "SELECT m.name, v.version, s.value FROM model_versions v JOIN registered_models m "
    "ON m.id = v.model_id JOIN metrics s ON s.version_id = v.id AND s.key = 'val_loss' "
    "ORDER BY s.value, m.name DESC, v.version DESC"
)

FAILING = {
    "ex11_1.runs": lambda p: {"leaderboard_sql": "DELETE FROM metrics"},
    "ex11_1.order": lambda p: {"leaderboard_sql": DESCENDING},
    "ex11_1.unseen": lambda p: {"leaderboard_sql": NO_TIEBREAK},
    "ex11_2.record": lambda p: {"champion": _fake_record(aliases=()), "model": _untrained()},
    "ex11_2.bar": lambda p: {"champion": _fake_record(val_accuracy=0.5), "model": _untrained()},
    "ex11_2.honest": lambda p: {"champion": _fake_record(), "model": _untrained()},
    "ex11_2.test_digits": lambda p: {"champion": _fake_record(), "model": _untrained()},
    "ex11_3.new_version": lambda p: {
        "champion": _fake_record(DEBUG_NAME, version=1), "served": _untrained()
    },
    "ex11_3.honest": lambda p: {
        "champion": _fake_record(DEBUG_NAME, version=2), "served": _untrained()
    },
    "ex11_3.fine_tuned": lambda p: {
        "champion": _fake_record(DEBUG_NAME, version=2), "served": _untrained()
    },
}  # fmt: skip
