"""`forge-course registry ...` as a user runs it: output, exit codes, and nothing lost."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


@pytest.fixture
def filled(tmp_path, keras_file):
    """A SQLite registry with digits/1, digits/2 (champion) and iris/1."""
    from forge_course.registry import ModelRegistry

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with ModelRegistry(url) as reg:
        reg.register(keras_file, "digits", metrics={"accuracy": 0.81, "loss": 12.5})
        reg.register(keras_file, "digits", metrics={"accuracy": 0.93, "loss": 0.2})
        reg.register(keras_file, "iris", metrics={"accuracy": 0.9})
        reg.set_alias("digits", 2, "champion")
    return url


def _cli(*args, url):
    return run_cli("registry", *args, env={"FORGE_REGISTRY_URL": url, "FORGE_COURSE_OFFLINE": "1"})


def test_list_show_promote_verify(filled):
    done = _cli("list", url=filled)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["digits/1", "digits/2", "iris/1"]
    assert "@champion" in lines[1] and "loss=12.5" in lines[0]

    done = _cli("show", "digits@champion", "--json", url=filled)
    shown = json.loads(done.stdout)
    assert (shown["version"], shown["aliases"], len(shown["sha256"])) == (2, ["champion"], 64)

    done = _cli("promote", "digits", "1", "--alias", "champion", "--move", url=filled)
    assert done.returncode == 0 and "digits@champion -> version 1 (was version 2)" in done.stdout

    done = _cli("verify", url=filled)
    assert done.returncode == 0 and "3 of 3 artifacts match" in done.stdout


def _records(url):
    from forge_course.registry import ModelRegistry

    with ModelRegistry(url) as reg:
        return [r.to_dict() for r in reg.list()]


def test_bad_input_exits_non_zero_and_loses_nothing(filled, tmp_path):
    before = _records(filled)

    done = _cli("show", "digits/9", url=filled)
    assert done.returncode == 2
    assert "no model 'digits' version 9" in done.stderr and "(have 1, 2)" in done.stderr
    assert "Traceback" not in done.stderr

    done = _cli("show", "mnist@champion", url=filled)
    assert done.returncode == 2 and "have: digits, iris" in done.stderr

    done = _cli("promote", "digits", "1", "--alias", "champion", url=filled)
    assert done.returncode == 2 and "already points at version 2" in done.stderr

    iris = next(r for r in before if r["name"] == "iris")
    with open(iris["artifact_path"], "r+b") as f:
        f.write(b"XX")
    done = _cli("verify", url=filled)
    assert done.returncode == 1
    assert "FAILED  iris/1" in done.stdout and iris["sha256"] in done.stdout

    assert _records(filled) == before


def test_unreachable_and_corrupt_databases(tmp_path):
    done = _cli("list", url="postgresql://learner:s3cret@127.0.0.1:1/registry")
    assert done.returncode == 3
    assert "127.0.0.1:1/registry" in done.stderr and "s3cret" not in done.stderr

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not SQLite" * 100)
    done = _cli("list", url=f"sqlite:///{corrupt}")
    assert done.returncode == 3 and "not a SQLite database" in done.stderr
    assert corrupt.read_bytes() == b"this is not SQLite" * 100  # untouched

    done = _cli("list", url="nosuchdb://x")
    assert done.returncode == 3 and "is not usable" in done.stderr


def test_help_documents_the_actions_and_exit_codes():
    done = run_cli("registry", "--help")
    assert done.returncode == 0
    for word in ("list", "show", "promote", "verify", "exit codes", "FORGE_REGISTRY_URL"):
        assert word in done.stdout
