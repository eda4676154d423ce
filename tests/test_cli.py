"""The forge-course command as a user runs it: help, exit codes, clear errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

VERBS = ["doctor", "fetch-data", "assign", "grade", "gradebook", "serve", "registry"]


def test_the_verb_list_is_complete():
    from forge_course.cli import build_parser

    verbs = next(a for a in build_parser()._actions if a.dest == "verb")
    assert sorted(verbs.choices) == sorted(VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_with_exit_codes(verb):
    result = run_cli(verb, "--help")
    assert result.returncode == 0, result.stderr
    assert "exit codes" in result.stdout and "usage: forge-course " + verb in result.stdout


def test_no_verb_is_a_usage_error():
    result = run_cli()
    assert result.returncode == 2 and "usage:" in result.stderr


def test_doctor_json_and_exit_code(tmp_path):
    ok = run_cli("doctor", "--json", env={"KERAS_HOME": str(tmp_path)})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    bad = run_cli("doctor", "--kernel", "missing-kernel", env={"KERAS_HOME": str(tmp_path)})
    assert bad.returncode == 1
    assert "FAIL  Jupyter kernel" in bad.stdout and "1 problem(s) to fix" in bad.stdout


def test_fetch_data_unknown_name_exits_2_without_traceback():
    result = run_cli("fetch-data", "cifar")
    assert result.returncode == 2
    assert "unknown dataset 'cifar'" in result.stderr and "Traceback" not in result.stderr


def test_fetch_data_unwritable_cache_exits_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli("fetch-data", "mnist", env={"KERAS_HOME": str(blocker / "k")})
    assert result.returncode == 3
    assert "set KERAS_HOME to a writable folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_grade_into_a_path_under_a_file_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli("grade", "solutions", "--out", str(blocker / "grades"))
    assert result.returncode == 2, result.stderr
    assert "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr


def test_fetch_data_unknown_name_lists_only_downloadable_datasets():
    result = run_cli("fetch-data", "nope")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "fetch-data downloads: fashion_mnist, mnist" in result.stderr
    assert "digits and breast_cancer ship with scikit-learn" in result.stderr
