"""forge-course grade refuses bad options before it runs anything (exit 2, saying why)."""

from __future__ import annotations

import pytest

from forge_course.errors import GradingError
from forge_course.grading import grade as grading
from forge_course.grading.params import RULES
from forge_course.grading.spec import exercises
from tests.conftest import ROOT, run_cli

SUBMISSION = str(ROOT / "solutions" / "02_sequential_api.ipynb")


def options(tmp_path, jobs=None, overrides=None, out=None):
    return grading._options(out or tmp_path / "out", jobs, None, None, overrides, False, None)


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_is_a_usage_error(tmp_path, jobs):
    result = run_cli("grade", SUBMISSION, "--out", str(tmp_path / "out"), "--jobs", jobs)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--jobs {jobs}" in result.stderr and "1 or more" in result.stderr
    assert not (tmp_path / "out").exists()


def test_jobs_given_is_jobs_used(tmp_path):
    assert options(tmp_path, jobs=3).jobs == 3
    assert options(tmp_path).jobs >= 1


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("BATCH_SIZE", 0, "a positive whole number"),
        ("EPOCHS", -2, "a positive whole number"),
        ("TRAIN_ROWS", 0, "a positive whole number"),
        ("SEED", -1, "a whole number >= 0"),
        ("LEARNING_RATE", 0, "a positive number"),
        ("LEARNING_RATE", -0.1, "a positive number"),
        ("LEARNING_RATE", float("inf"), "a positive number"),
        ("L2", -0.001, "a number >= 0"),
        ("DATASET", "imagenet", "one of .*mnist"),
    ],
)
def test_out_of_range_parameters_are_refused(tmp_path, name, value, problem):
    if not any(name in ex.params for ex in exercises().values()):
        pytest.skip(f"no exercise has {name}")
    with pytest.raises(GradingError, match=rf"-p {name} {value!r}: {name} takes {problem}"):
        options(tmp_path, overrides={name: value})


def test_in_range_parameters_are_accepted(tmp_path):
    fine = {"SEED": 0, "EPOCHS": 1, "BATCH_SIZE": 8, "LEARNING_RATE": 0.01, "L2": 0}
    known = {n for ex in exercises().values() for n in ex.params}
    fine = {k: v for k, v in fine.items() if k in known}
    assert options(tmp_path, overrides=fine).overrides == fine


def test_every_exercise_default_passes_its_rule(tmp_path):
    for ex in exercises().values():
        for name, value in ex.params.items():
            if name in RULES:
                options(tmp_path, overrides={name: value})


def test_batch_size_zero_is_a_usage_error_on_the_command_line(tmp_path):
    result = run_cli("grade", SUBMISSION, "--out", str(tmp_path / "out"), "-p", "BATCH_SIZE", "0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "-p BATCH_SIZE 0: BATCH_SIZE takes a positive whole number" in result.stderr


def test_out_that_is_a_file_is_a_usage_error(tmp_path):
    a_file = tmp_path / "gradebook.csv"
    a_file.write_text("")
    result = run_cli("grade", SUBMISSION, "--out", str(a_file))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is a file, not a folder" in result.stderr
    with pytest.raises(GradingError, match="gradebook.csv is a file, not a folder"):
        options(tmp_path, out=a_file / "inner")
