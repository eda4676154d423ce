"""A hostile cohort (issue 12): each attack a student could hand in, graded as it would be.

One batch (``--jobs 2``, sandboxed, run from a folder of its own) holds every kernel
attack of :mod:`tests.grading.attacks`, the files that attacked the gradebook (a
symbolic link to the solution, hidden names, a formula as a name) and an honest
classmate; a second batch runs an attacker and its victim at the same time. Each test
reads what an instructor would read. The limits and checks that need no kernel are
tested on their own, below.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from forge_course.grading import channel, exercise
from forge_course.grading import sandbox as sb
from forge_course.grading.feedback import CheckResult, run_checks
from forge_course.grading.spec import Check, Task
from tests.conftest import ROOT
from tests.grading import attacks, fixtures

pytestmark = pytest.mark.skipif(
    sb.unavailable() is not None, reason=f"no sandbox here: {sb.unavailable()}"
)

TIMEOUT = 60
EX02 = [c.id for c in exercise("02_sequential_api").checks]
SOLUTION = ROOT / "solutions" / "02_sequential_api.ipynb"
FORMULA = '=HYPERLINK("evil.example","click")'


def _grade(subs: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "forge_course.cli", "grade", str(subs), "--out", str(out), "-q",
         "--jobs", "2", "--timeout", str(TIMEOUT)],
        cwd=cwd, capture_output=True, text=True, timeout=900,
        env=os.environ | {"FORGE_COURSE_OFFLINE": "1"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    subs, out = root / "submissions", root / "out"
    for name, build in attacks.KERNEL_ATTACKS.items():
        attacks.write(subs, name, build())
    attacks.write(subs, "writes_into_out", attacks.writes_into_out(str(out)))
    attacks.write(subs, "correct", fixtures.correct())
    (subs / "linked.ipynb").symlink_to(SOLUTION)  # 8. a link to the solution, flat ...
    (subs / "lazy").mkdir()
    (subs / "lazy" / "hw.ipynb").symlink_to(SOLUTION)  # ... and inside a student folder
    attacks.write(subs, ".hidden_student", fixtures.correct())  # 9. hidden names
    attacks.write(subs, "__dunder_student", fixtures.correct())
    attacks.write(subs, FORMULA, fixtures.correct())  # 10. a formula as a name
    result = _grade(subs, out, root / "grader-home")
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    book = json.loads((out / "gradebook.json").read_text())
    return {"root": root, "out": out, "result": result, "rows": rows, "book": book,
            "raw_csv": (out / "gradebook.csv").read_text()}  # fmt: skip


def statuses(batch, student):
    return {r["check"]: r["status"] for r in batch["rows"] if r["student"] == student}


def executed(batch, student) -> str:
    return (batch["out"] / "executed" / student / f"{student}.ipynb").read_text()


def test_the_batch_finishes_sandboxed_with_every_student(batch):
    result = batch["result"]
    assert result.returncode == 1, result.stderr[-3000:]  # 5. no abort: exit 1, not 130
    assert batch["book"]["parameters"]["sandbox"] is True
    subs = {s["student"]: s for s in batch["book"]["submissions"]}
    assert all(s["sandboxed"] for s in subs.values() if s["exercise"])
    want = set(attacks.KERNEL_ATTACKS) | {"writes_into_out", "correct", "linked", "lazy"}
    want |= {".hidden_student", "__dunder_student", FORMULA}
    assert set(subs) == want
    assert subs["correct"]["points"] == subs["correct"]["possible"] > 0


def test_1_2_3_a_kernel_finds_no_server_socket_and_no_token(batch):
    assert "SERVER_SOCKETS=0" in executed(batch, "impersonates_the_scorer")
    s = statuses(batch, "impersonates_the_scorer")  # a relu digits model: no full marks
    assert s["ex02_1.shape"] == "failed"
    assert "ACCEPTED=0" in executed(batch, "steals_the_token")


def test_4_nothing_is_planted_in_the_graders_folder_or_the_course(batch):
    # The attack ran; at most it wrote into its own job folder (private, thrown away):
    # nothing lands where the grader or a later batch would import it.
    assert "PLANTED=" in executed(batch, "plants_code_in_the_grader")
    assert not (batch["root"] / "grader-home" / "forge_course").exists()
    assert not (ROOT / ".planted-by-a-notebook").exists()
    assert statuses(batch, "plants_code_in_the_grader")["ex02_1.shape"] == "failed"


def test_5_a_kernel_cannot_signal_the_grader(batch):
    # The only process above a sandboxed kernel is its own init: a signal sent there
    # reaches the kernel itself (its row may say crashed), never the grader or a classmate.
    subs = {s["student"]: s for s in batch["book"]["submissions"]}
    assert subs["aborts_the_batch"]["outcome"] in ("completed", "crashed")
    if subs["aborts_the_batch"]["outcome"] == "completed":
        assert set(statuses(batch, "aborts_the_batch").values()) == {"passed"}
    assert batch["result"].returncode == 1 and subs["correct"]["outcome"] == "completed"


def test_6_nothing_a_kernel_writes_reaches_out(batch):
    assert "WROTE=" in executed(batch, "writes_into_out")  # it ran (into its own /tmp)
    out = batch["out"]
    assert "You copied" not in (out / "feedback" / "correct.md").read_text()
    assert not (out / "planted.txt").exists() and batch["book"]["stray_files"] == []
    assert json.loads(executed(batch, "correct"))["cells"]  # the grader's copy, whole


def test_8_links_to_a_solution_get_an_error_row(batch):
    for student in ("linked", "lazy"):
        rows = [r for r in batch["rows"] if r["student"] == student]
        assert [(r["check"], r["status"], r["points"]) for r in rows] == [
            ("(notebook)", "error", "0")
        ]
        assert "symbolic link" in rows[0]["message"]


def test_9_hidden_names_get_rows(batch):
    for student in (".hidden_student", "__dunder_student"):
        assert set(statuses(batch, student).values()) == {"passed"}


def test_10_a_formula_in_a_name_is_escaped_in_the_csv(batch):
    cells = [row[0] for row in csv.reader(io.StringIO(batch["raw_csv"]))]
    assert "'" + FORMULA in cells and FORMULA not in cells
    assert not any(c.startswith(("=", "+", "@")) for c in cells)


def test_11_printed_output_is_capped_with_a_marker(batch):
    text = executed(batch, "prints_too_much")
    assert len(text) < 4 * 1024 * 1024 and "output truncated here" in text
    assert set(statuses(batch, "prints_too_much").values()) == {"passed"}


def test_12_a_refused_array_says_why_and_no_token_shows(batch):
    rows = [r for r in batch["rows"] if r["student"] == "sends_a_huge_array"]
    ex02_3 = [r for r in rows if r["check"].startswith("ex02_3")]
    assert {r["status"] for r in ex02_3} == {"error"}
    assert all("refused" in r["message"] and "MB" in r["message"] for r in ex02_3)
    assert all("never called" not in r["message"] for r in ex02_3)
    assert not any("token" in r["message"] for r in batch["rows"])
    assert '"token"' not in executed(batch, "sends_a_huge_array")


def test_1_a_neighbour_running_at_the_same_time_is_out_of_reach(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    attacks.write(subs, "attacker", attacks.sabotages_a_neighbour())
    attacks.write(subs, "victim", attacks.victim_of_a_neighbour())
    result = _grade(subs, out, tmp_path / "home")
    assert result.returncode == 0, result.stderr[-3000:]  # both full marks
    text = (out / "executed" / "attacker" / "attacker.ipynb").read_text()
    assert "SABOTAGED=0 READ=0" in text
    book = json.loads((out / "gradebook.json").read_text())
    times = {s["student"]: s for s in book["submissions"]}
    assert all(s["points"] == s["possible"] for s in times.values())


# ------------------------------------------------------------------ without a kernel


def test_7_nan_and_infinity_fail_before_any_tolerance_check():
    def reported_accuracy(v, p):  # the pattern that let NaN through: abs(m - nan) > tol
        if abs(v["accuracy"] - 0.9) > 0.05:
            return "your reported accuracy is not the model's"

    task = Task("ex99_1", "apply", "t", {"accuracy": "scalar", "preds": "array"},
                (Check("honest", reported_accuracy, 1),))  # fmt: skip
    for bad in (math.nan, math.inf, -math.inf):
        (row,) = run_checks(task, {"accuracy": bad, "preds": np.zeros(2)}, {})
        assert row.status == "failed" and "finite" in row.message
    (row,) = run_checks(task, {"accuracy": 0.9, "preds": np.array([0.0, np.nan])}, {})
    assert row.status == "failed" and "NaN" in row.message
    (row,) = run_checks(task, {"accuracy": 0.91, "preds": np.zeros(2)}, {})
    assert row.status == "passed"


def test_11_a_model_that_unpacks_too_big_is_refused_in_words():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"\0" * (channel.MAX_UNPACKED + 1))
    assert len(buf.getvalue()) < 2 * 1024 * 1024  # small on the wire
    with pytest.raises(channel.Refused, match="unpacks to 512.0 MB"):
        channel.decode("model", buf.getvalue())


def test_2_a_scorers_answer_must_be_the_exercises_own_checks():
    from forge_course.grading.score import checked_rows

    ex = exercise("02_sequential_api")
    honest = [CheckResult.zero(c, "failed", "no") for c in ex.checks]
    assert checked_rows(honest, ex) == honest
    forged = [CheckResult(c.id, c.points * 10, c.points, "passed") for c in ex.checks]
    with pytest.raises(ValueError, match="impossible points"):
        checked_rows(forged, ex)
    with pytest.raises(ValueError, match="not this exercise's checks"):
        checked_rows(honest[1:], ex)


def test_11_scoring_has_a_wall_clock_limit():
    from forge_course.grading.score import ScoreRequest, score_in_subprocess

    slow = ScoreRequest("02_sequential_api", None, {}, {"SEED": 0}, "completed", "")
    with pytest.raises(TimeoutError, match="longer than 1 s"):
        score_in_subprocess(slow, 1)  # a fresh Python cannot even import TensorFlow in 1 s


def test_6_a_stray_file_in_out_is_removed_or_reported(tmp_path):
    from forge_course.grading.outdir import OutDir

    out = tmp_path / "out"
    (out / "feedback").mkdir(parents=True)
    (out / "notes.txt").write_text("the instructor's, from before")
    outdir = OutDir(out)
    (out / "feedback" / "zed.md").write_text("fake")  # someone else, during the batch
    (out / "executed").mkdir()
    (out / "executed" / "x.ipynb").symlink_to(SOLUTION)
    (out / "extra.txt").write_text("someone else's")
    outdir.write("feedback/amy.md", "# Feedback for amy")
    strays = {s["path"]: s["action"] for s in outdir.strays()}
    assert strays == {
        "feedback/zed.md": "removed", "executed/x.ipynb": "removed", "extra.txt": "left in place",
    }  # fmt: skip
    assert not (out / "feedback" / "zed.md").exists() and (out / "notes.txt").exists()
    assert SOLUTION.exists()  # a link is removed, never what it points to


def test_without_namespaces_grade_refuses_in_one_line_unless_told(tmp_path, monkeypatch):
    from forge_course.errors import GradingError
    from forge_course.grading.grade import grade

    monkeypatch.setattr(sb, "unavailable", lambda: "bwrap is not installed (test)")
    with pytest.raises(GradingError) as refused:
        grade([SOLUTION], tmp_path / "out", progress=False)
    assert len(str(refused.value).splitlines()) == 1  # exit 2 with this one line
    assert "bwrap is not installed (test)" in str(refused.value)
    assert "--no-sandbox" in str(refused.value) and not (tmp_path / "out").exists()
