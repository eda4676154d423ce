"""Grading as shards: a stable split by student, and a merge equal to one run, row for row."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import nbformat
import pytest

from forge_course.cli import main
from forge_course.errors import GradingError
from forge_course.grading.feedback import CheckResult
from forge_course.grading.grade import discover, grade
from forge_course.grading.results import Submission, SubmissionResult
from forge_course.grading.shards import Shard, merge, select, shard_of

# With three shards these names fall two per shard: peggy, sybil | bob, dave | alice, carol
SHARD_OF = {"peggy": 0, "sybil": 0, "bob": 1, "dave": 1, "alice": 2, "carol": 2}
TIMINGS = ("duration_s", "execute_s", "score_s")


# ---------------------------------------------------------------- the split


@pytest.mark.parametrize(("text", "shard"), [("0/3", Shard(0, 3)), (" 2 / 3 ", Shard(2, 3))])
def test_a_shard_is_written_k_slash_n_counting_from_zero(text, shard):
    assert Shard.parse(text) == shard and shard.spec == text.replace(" ", "")


@pytest.mark.parametrize("text", ["3/3", "1/0", "-1/3", "a/b", "1", "1/3/4"])
def test_a_shard_outside_its_count_is_a_usage_error(text):
    with pytest.raises(GradingError, match="--shard"):
        Shard.parse(text)


def test_the_split_is_sha256_of_the_name_the_same_in_every_process():
    for name, index in SHARD_OF.items():
        assert shard_of(name, 3) == index
        assert index == int(hashlib.sha256(name.encode()).hexdigest(), 16) % 3
    code = "from forge_course.grading.shards import shard_of; print(shard_of('alice', 3))"
    for seed in ("1", "2"):  # Python's hash() would change with the seed
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == str(SHARD_OF["alice"]), out.stderr


def test_every_submission_falls_in_exactly_one_shard_with_all_of_its_students_notebooks(tmp_path):
    subs = [Submission(s, tmp_path / f"{s}-{k}.ipynb") for s in SHARD_OF for k in range(3)]
    parts = [select(subs, Shard(k, 3)) for k in range(3)]
    assert sorted(id(s) for part in parts for s in part) == sorted(id(s) for s in subs)
    for k, part in enumerate(parts):
        assert {s.student for s in part} == {n for n, i in SHARD_OF.items() if i == k}
        assert len(part) == 6  # two students, three notebooks each


# ---------------------------------------------------------------- six submissions


def _notebook(exercise: str | None, *sources: str):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SEED = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    if exercise:
        nb.metadata["forge_course"] = {"exercise": exercise}
    return nb


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six students: notebooks that run and fail fast, odd files, folders."""
    root = tmp_path_factory.mktemp("cohort")
    unfinished = _notebook("00_setup_and_environment", "raise RuntimeError('not done yet')")
    (root / "alice").mkdir()
    nbformat.write(unfinished, root / "alice" / "00_setup_and_environment.ipynb")
    nbformat.write(_notebook(None, "print('my notes')"), root / "alice" / "notes.ipynb")
    (root / "bob.txt").write_text("I could not open Jupyter\n")
    nbformat.write(unfinished, root / "carol.ipynb")
    (root / "dave").mkdir()
    (root / "peggy.ipynb").write_text("{ this is not JSON")
    (root / "sybil").mkdir()
    nbformat.write(unfinished, root / "sybil" / "ex00.ipynb")
    assert {s.student for s in discover([root])} == set(SHARD_OF)
    return root


@pytest.fixture(scope="module")
def graded(cohort, tmp_path_factory):
    """The cohort graded in one run, and as three shards (plain kernels: quicker here)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FORGE_COURSE_FORK", "0")
    out = tmp_path_factory.mktemp("graded")
    try:
        whole = grade([cohort], out / "whole", jobs=1, progress=False)
        shards = [
            grade([cohort], out / f"shard-{k}", jobs=1, progress=False, shard=f"{k}/3")
            for k in range(3)
        ]
    finally:
        mp.undo()
    return out, whole, shards


def _comparable(book: dict) -> list[dict]:
    """gradebook.json's submissions without what differs between any two runs (timings)."""
    subs = [{k: v for k, v in s.items() if k not in TIMINGS} for s in book["submissions"]]
    return sorted(subs, key=lambda s: (s["student"], s["notebook"]))


def test_each_shard_grades_only_its_students_and_records_the_cohort(graded):
    out, whole, shards = graded
    for k, book in enumerate(shards):
        assert {s.student for s in book.submissions} == {n for n, i in SHARD_OF.items() if i == k}
        record = json.loads((out / f"shard-{k}" / "gradebook.json").read_text())["parameters"]
        assert record["shard"]["spec"] == f"{k}/3"
        assert record["shard"]["students"] == sorted(SHARD_OF)
        assert len(record["shard"]["grading"]["checks_sha256"]) == 64


def test_three_merged_shards_give_the_gradebook_of_one_run_row_for_row(graded):
    out, whole, _ = graded
    result = merge([out / f"shard-{k}" for k in (2, 0, 1)], out / "merged")
    assert result.exit_code == 0 and result.missing_students == []
    merged, one = out / "merged", out / "whole"
    assert (merged / "gradebook.csv").read_text() == (one / "gradebook.csv").read_text()
    assert result.book.rows() == whole.rows()
    books = [json.loads((d / "gradebook.json").read_text()) for d in (merged, one)]
    assert _comparable(books[0]) == _comparable(books[1])
    feedback = [sorted(p.name for p in (d / "feedback").iterdir()) for d in (merged, one)]
    assert feedback[0] == feedback[1] and len(feedback[0]) == len(SHARD_OF)
    for name in feedback[0]:
        assert (merged / "feedback" / name).read_text() == (one / "feedback" / name).read_text()
    executed = [
        sorted(p.relative_to(d) for p in (d / "executed").rglob("*")) for d in (merged, one)
    ]
    assert executed[0] == executed[1]


def test_merge_lists_the_students_of_a_missing_shard_and_exits_1(graded, capsys):
    out, _, _ = graded
    code = main(["gradebook", "merge", str(out / "shard-0"), str(out / "shard-2"),
                 "--out", str(out / "partial")])  # fmt: skip
    said = capsys.readouterr().out
    assert code == 1 and "bob, dave" in said and "1/3" in said
    book = json.loads((out / "partial" / "gradebook.json").read_text())
    assert book["parameters"]["shard"]["missing_students"] == ["bob", "dave"]


def test_merge_refuses_a_shard_given_twice(graded):
    out, _, _ = graded
    with pytest.raises(GradingError, match="both shard 1/3"):
        merge([out / "shard-1", out / "shard-0", out / "shard-1"], out / "twice")
    assert not (out / "twice").exists()


# ---------------------------------------------------------------- refusals, no kernels


def _shard_book(folder, index, *, students=("ann", "ben"), graded=None, **grading):
    """A shard gradebook.json written by hand: one completed row per graded student."""
    graded = graded if graded is not None else [s for s in students if shard_of(s, 2) == index]
    subs = [
        SubmissionResult(s, "ex.ipynb", f"/in/{s}.ipynb", "00_setup_and_environment",
                         "completed", rows=[CheckResult("ex00_1.count", 1, 1, "passed")]).to_dict()
        for s in graded
    ]  # fmt: skip
    identity = {"overrides": {}, "timeout_s": None, "exercises": ["00_setup_and_environment"],
                "params": {}, "checks_sha256": "0" * 64} | grading  # fmt: skip
    record = {"index": index, "count": 2, "spec": f"{index}/2", "students": sorted(students),
              "graded": graded, "grading": identity}  # fmt: skip
    folder.mkdir(parents=True)
    book = {"parameters": {"shard": record}, "environment": {}, "wall_s": 1.0,
            "submissions": subs, "not_counted": []}  # fmt: skip
    (folder / "gradebook.json").write_text(json.dumps(book))
    return folder


def test_merge_refuses_shards_graded_with_other_parameters_or_checks(tmp_path):
    zero = _shard_book(tmp_path / "a", 0)
    other_params = _shard_book(tmp_path / "b", 1, overrides={"SEED": 3})
    with pytest.raises(GradingError, match="overrides"):
        merge([zero, other_params], tmp_path / "out")
    other_checks = _shard_book(tmp_path / "c", 1, checks_sha256="1" * 64)
    with pytest.raises(GradingError, match="checks_sha256"):
        merge([zero, other_checks], tmp_path / "out")
    other_cohort = _shard_book(tmp_path / "d", 1, students=("ann", "ben", "cid"))
    with pytest.raises(GradingError, match="cohort"):
        merge([zero, other_cohort], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_merge_refuses_a_student_graded_in_two_shards(tmp_path):
    zero = _shard_book(tmp_path / "a", 0, graded=["ann", "ben"])
    one = _shard_book(tmp_path / "b", 1, graded=["ben"])
    with pytest.raises(GradingError, match="'ben' is graded in both"):
        merge([zero, one], tmp_path / "out")


def test_merge_refuses_a_whole_run_and_a_folder_without_a_gradebook(tmp_path):
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "gradebook.json").write_text(json.dumps({"parameters": {}, "submissions": []}))
    with pytest.raises(GradingError, match="--shard K/N"):
        merge([whole], tmp_path / "out")
    with pytest.raises(GradingError, match="no gradebook.json"):
        merge([tmp_path / "nothing"], tmp_path / "out")
