"""The gradebook without a kernel: which notebook counts, missing rows, files, exit code."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from forge_course.grading import exercise
from forge_course.grading.feedback import CheckResult
from forge_course.grading.report import (
    COLUMNS,
    Gradebook,
    feedback_names,
    missing,
    one_per_exercise,
)
from forge_course.grading.results import GradeOptions, Submission, SubmissionResult

EX = "02_sequential_api"


def result(student, notebook, statuses, exercise=EX, **kw) -> SubmissionResult:
    """A graded notebook: one 1-point row per status given."""
    rows = [
        CheckResult(f"ex02_1.c{i}", 1 if s == "passed" else 0, 1, s, "" if s == "passed" else "no")
        for i, s in enumerate(statuses)
    ]
    kw = {"outcome": "completed"} | kw
    return SubmissionResult(student, notebook, f"/subs/{notebook}", exercise, rows=rows, **kw)


def book(*results, only=(), tmp=Path("/nonexistent")) -> Gradebook:
    opts = GradeOptions(out=tmp, only=tuple(only), jobs=2)
    return Gradebook.assemble(list(results), opts, fork_server=True, wall_s=1.234)


def test_the_best_notebook_per_student_and_exercise_counts():
    draft = result("zoe", "draft.ipynb", ["passed", "failed"])
    final = result("zoe", "final.ipynb", ["passed", "passed"])
    kept, extra = one_per_exercise([draft, final])
    assert kept == [final] and extra == [draft]
    assert final.message == "also handed in draft.ipynb (1 points, not counted)"


def test_on_a_tie_the_first_notebook_counts_and_odd_files_always_do():
    first = result("zoe", "a.ipynb", ["passed"])
    second = result("zoe", "b.ipynb", ["passed"])
    odd = result("zoe", "notes.pdf", ["error"], exercise=None)
    other = result("yan", "a.ipynb", ["failed"])
    kept, extra = one_per_exercise([first, second, odd, other])
    assert kept == [odd, first, other] and extra == [second]


def test_a_student_without_a_named_exercise_gets_its_missing_rows():
    ex = exercise(EX)
    ann = result("ann", "ann.ipynb", ["passed"])
    ben = result("ben", "ben.pdf", ["error"], exercise=None)
    (gap,) = missing([ann, ben], [ex])
    assert (gap.student, gap.notebook, gap.exercise, gap.outcome) == ("ben", "-", EX, "missing")
    assert [r.check for r in gap.rows] == [c.id for c in ex.checks]
    assert {r.status for r in gap.rows} == {"missing"} and gap.points == 0
    assert gap.possible == sum(c.points for c in ex.checks) > 0
    assert "no notebook for exercise 02_sequential_api" in gap.message


def test_assemble_sorts_records_parameters_and_the_scorers_environment():
    b = book(
        result("bob", "b.ipynb", ["passed"]),
        result("amy", "a.ipynb", ["failed"], environment={"tensorflow": "2.21.0"}),
        only=[EX],
    )
    assert [s.student for s in b.submissions] == ["amy", "bob"]
    assert b.parameters == {
        "overrides": {},
        "timeout_s": None,
        "jobs": 2,
        "fork_server": True,
        "sandbox": False,
    }
    assert b.environment == {"tensorflow": "2.21.0"} and b.wall_s == 1.23


@pytest.mark.parametrize(
    "results, code",
    [
        ([["passed", "passed"], ["passed"]], 0),
        ([["passed", "failed"], ["passed"]], 1),
        ([["passed"], ["timeout"]], 1),
    ],
)
def test_exit_code_says_whether_everyone_passed(results, code):
    subs = [result(f"s{i}", "n.ipynb", statuses) for i, statuses in enumerate(results)]
    assert book(*subs).exit_code == code


def test_exit_code_3_when_the_grader_failed_on_every_submission():
    sub = Submission("ann", Path("ann.ipynb"))
    failed = SubmissionResult.grader_failed(sub, "the grader failed on this submission: boom")
    assert failed.rows[0].status == "crashed" and failed.grader_failure
    assert book(failed).exit_code == 3
    assert book(failed, result("ben", "b.ipynb", ["passed"])).exit_code == 1


def test_write_gives_the_csv_json_and_feedback_an_instructor_reads(tmp_path):
    b = book(
        result("amy", "a.ipynb", ["passed", "failed"]),
        result("amy", "old.ipynb", ["failed", "failed"]),
    )
    b.write(tmp_path)
    with (tmp_path / "gradebook.csv").open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == COLUMNS
        rows = list(reader)
    assert rows == [
        ["amy", "a.ipynb", "ex02_1.c0", "1", "1", "passed", ""],
        ["amy", "a.ipynb", "ex02_1.c1", "0", "1", "failed", "no"],
    ]  # points print as 1, not 1.0
    data = json.loads((tmp_path / "gradebook.json").read_text())
    assert set(data) == {
        "parameters",
        "environment",
        "wall_s",
        "submissions",
        "not_counted",
        "stray_files",
    }
    (amy,) = data["submissions"]
    assert (amy["points"], amy["possible"], amy["feedback"]) == (1, 2, "feedback/amy.md")
    assert amy["rows"][1] == CheckResult("ex02_1.c1", 0, 1, "failed", "no").to_dict()
    assert [s["notebook"] for s in data["not_counted"]] == ["old.ipynb"]
    text = (tmp_path / "feedback" / "amy.md").read_text()
    assert "## 02_sequential_api (a.ipynb): 1/2 points" in text
    assert "also handed in old.ipynb" in text


def test_write_replaces_each_file_whole(tmp_path, monkeypatch):
    book(result("amy", "a.ipynb", ["passed"])).write(tmp_path)
    before = (tmp_path / "gradebook.json").read_text()
    real_replace = os.replace

    def fail_on_json(src, dst):
        if str(dst).endswith("gradebook.json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_json)
    with pytest.raises(OSError, match="No space"):
        book(result("amy", "a.ipynb", ["failed"])).write(tmp_path)
    assert (tmp_path / "gradebook.json").read_text() == before  # the old book, intact
    assert "failed" in (tmp_path / "gradebook.csv").read_text()  # written before it
    assert not list(tmp_path.glob(".gradebook*")), "a temporary file was left behind"


def test_students_whose_names_look_alike_get_their_own_feedback_file(tmp_path):
    assert feedback_names(["a_b", "a b", "a/b", "zoë"]) == {
        "a b": "a_b", "a/b": "a_b-2", "a_b": "a_b-3", "zoë": "zoë",
    }  # fmt: skip
    b = book(result("a b", "x.ipynb", ["passed"]), result("a_b", "y.ipynb", ["failed"]))
    b.write(tmp_path)
    assert (tmp_path / "feedback" / "a_b.md").read_text().startswith("# Feedback for a b\n")
    assert (tmp_path / "feedback" / "a_b-2.md").read_text().startswith("# Feedback for a_b\n")
    data = json.loads((tmp_path / "gradebook.json").read_text())
    assert [s["feedback"] for s in data["submissions"]] == ["feedback/a_b.md", "feedback/a_b-2.md"]


def test_summary_and_rows_come_from_the_same_results():
    odd = result("bob", "b.pdf", ["error"], exercise=None, outcome="error")
    b = book(result("amy", "a.ipynb", ["passed", "failed"]), odd)
    lines = b.summary().splitlines()
    assert lines[1].split() == ["amy", "a.ipynb", "1/2", "completed"]
    assert lines[2].split() == ["bob", "b.pdf", "0/1", "error"]
    assert lines[-1] == "2 submission(s) graded in 1.2 s"
    assert [(r["student"], r["check"], r["status"]) for r in b.rows()] == [
        ("amy", "ex02_1.c0", "passed"), ("amy", "ex02_1.c1", "failed"),
        ("bob", "ex02_1.c0", "error"),
    ]  # fmt: skip


def test_a_score_request_and_its_answer_survive_the_trip_to_a_scorer():
    from forge_course.grading.score import Scored, ScoreRequest

    request = ScoreRequest(
        EX, None, {"ex02_1": {"model": ("model", b"\x00\xffzip")}}, {}, "completed", ""
    )
    assert ScoreRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    scored = Scored([CheckResult("ex02_1.c0", 1, 1, "passed", hidden=True)], {"keras": "3"})
    assert Scored.from_dict(json.loads(json.dumps(scored.to_dict()))) == scored


def test_a_submission_the_batch_never_reached_is_marked_not_lost():
    sub = Submission("ann", Path("ann.ipynb"))
    ex = exercise(EX)
    stopped = SubmissionResult.cancelled(sub, "the grading run was stopped", ex)
    assert (stopped.outcome, stopped.exercise, stopped.grader_failure) == ("cancelled", EX, False)
    assert [r.check for r in stopped.rows] == [c.id for c in ex.checks]
    assert {r.status for r in stopped.rows} == {"cancelled"} and stopped.possible > 0
    assert book(stopped).exit_code == 1
