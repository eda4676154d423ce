"""The grader end to end: adversarial submissions, solutions, exercises, determinism.

One batch is graded once (module fixture) with real papermill kernels, and each test
reads what an instructor would read: the gradebook, the feedback, executed notebooks.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from forge_course.grading import exercise, forkserver
from forge_course.grading import exercises as exercise_names
from forge_course.grading.report import COLUMNS
from tests.conftest import ROOT, run_cli
from tests.grading import fixtures

TIMEOUT = 90  # seconds per notebook: every solution, on a busy shared machine too


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    subs = root / "submissions"
    fixtures.write_all(subs)
    for who, folder in (("solution", "solutions"), ("exercise", "exercises")):
        shutil.copytree(ROOT / folder, subs / who, ignore=shutil.ignore_patterns("*.md"))
    (subs / "erin").mkdir()  # a student folder, and a notebook named as the student liked
    shutil.copy(
        ROOT / "solutions" / "00_setup_and_environment.ipynb", subs / "erin" / "my hw.ipynb"
    )
    out = root / "out"
    result = run_cli(
        "grade", str(subs), "--out", str(out), "--jobs", "2", "--timeout", str(TIMEOUT), timeout=900
    )
    with (out / "gradebook.csv").open() as f:
        rows = list(csv.DictReader(f))
    book = json.loads((out / "gradebook.json").read_text())
    return {"result": result, "out": out, "rows": rows, "book": book}


def statuses(batch, student, notebook=None):
    notebook = notebook or f"{student}.ipynb"
    return {
        r["check"]: r["status"]
        for r in batch["rows"]
        if r["student"] == student and r["notebook"] == notebook
    }


def messages(batch, student):
    return {r["check"]: r["message"] for r in batch["rows"] if r["student"] == student}


EX02 = [c.id for c in exercise("02_sequential_api").checks]
EX02_1 = [c for c in EX02 if c.startswith("ex02_1")]  # apply: the digits classifier
EX02_2 = [c for c in EX02 if c.startswith("ex02_2")]  # target: the screening threshold
EX02_3 = [c for c in EX02 if c.startswith("ex02_3")]  # debug: the broken decisions
AFTER_1 = EX02_2 + EX02_3  # what a notebook that stops after check("ex02_1") never sends


def test_batch_finishes_with_exit_1_and_a_whole_gradebook(batch):
    result = batch["result"]
    assert result.returncode == 1, result.stderr[-2000:]  # some submissions fail checks
    assert "Traceback" not in result.stdout + result.stderr
    with (batch["out"] / "gradebook.csv").open() as f:
        assert next(csv.reader(f)) == COLUMNS
    keys = Counter((r["student"], r["notebook"], r["check"]) for r in batch["rows"])
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    by_sub = {}
    for r in batch["rows"]:
        by_sub.setdefault((r["student"], r["notebook"]), []).append(r["check"])
    n = len(exercise_names())  # each solution and each exercise, erin, 2 non-notebooks
    assert len(by_sub) == len(fixtures.FIXTURES) + 2 + 2 * n + 1
    for (student, _notebook), checks in by_sub.items():
        if student in fixtures.FIXTURES:
            assert checks == EX02, (student, checks)


def test_correct_submission_gets_full_marks(batch):
    assert set(statuses(batch, "correct").values()) == {"passed"}


def test_wrong_answer_fails_the_right_checks(batch):
    s = statuses(batch, "wrong_answer")  # its digits model ends in relu, not softmax
    assert s["ex02_1.shape"] == "failed" and s["ex02_1.loss"] == "passed"
    assert all(s[c] == "passed" for c in AFTER_1)
    assert "activation is relu" in messages(batch, "wrong_answer")["ex02_1.shape"]


def test_raises_in_cell_is_graded_as_far_as_it_got(batch):
    s = statuses(batch, "raises_in_cell")
    assert all(s[c] == "passed" for c in EX02_1)
    assert all(s[c] == "error" for c in AFTER_1)
    msg = messages(batch, "raises_in_cell")["ex02_3.beats_baseline"]
    assert "ZeroDivisionError" in msg and "In [" in msg


def test_infinite_loop_times_out_and_is_marked(batch):
    s = statuses(batch, "infinite_loop")
    assert all(s[c] == "passed" for c in EX02_1)
    assert all(s[c] == "timeout" for c in AFTER_1)
    executed = (batch["out"] / "executed" / "infinite_loop" / "infinite_loop.ipynb").read_text()
    assert "Grading stopped here (timeout)" in executed
    sub = next(x for x in batch["book"]["submissions"] if x["student"] == "infinite_loop")
    assert sub["duration_s"] < TIMEOUT + 20


def test_killed_kernel_is_crashed(batch):
    s = statuses(batch, "kills_its_kernel")
    assert all(s[c] == "passed" for c in EX02_1)
    assert all(s[c] == "crashed" for c in AFTER_1)


@pytest.mark.parametrize("student", ["prints_fake_results", "replaces_check"])
def test_printed_or_forged_success_counts_for_nothing(batch, student):
    assert set(statuses(batch, student).values()) == {"missing"}
    assert all(r["points"] == "0" for r in batch["rows"] if r["student"] == student)


def test_overwriting_artifacts_changes_nothing(batch):
    s = statuses(batch, "overwrites_its_artifacts")  # an untrained ex02_3, then a swap
    assert all(s[c] == "passed" for c in EX02_1 + EX02_2)
    # scored as submitted: the untrained model's own decisions (all benign), not the swap's
    assert s["ex02_3.beats_baseline"] == "failed" and s["ex02_3.raw_inputs"] == "passed"
    # it ran in a private folder: its forged gradebook.json is nowhere in the output
    assert [p.name for p in batch["out"].rglob("gradebook.json")] == ["gradebook.json"]


def test_missing_exercise_cells(batch):
    s = statuses(batch, "missing_exercise_cells")  # the cells of ex02_3 deleted
    assert all(s[c] == "passed" for c in EX02_1 + EX02_2)
    assert all(s[c] == "missing" for c in EX02_3)
    assert "never called" in messages(batch, "missing_exercise_cells")["ex02_3.beats_baseline"]


@pytest.mark.parametrize("student", ["not_a_notebook", "handed_in_a_pdf"])
def test_not_a_notebook_gets_one_clear_row(batch, student):
    rows = [r for r in batch["rows"] if r["student"] == student]
    assert len(rows) == 1 and rows[0]["status"] == "error"
    assert "not a readable notebook" in rows[0]["message"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreapers are Linux's")
def test_a_lingering_process_cannot_change_a_grade_and_is_killed(batch):
    import psutil

    s = statuses(batch, "lingers_and_tampers")  # an untrained ex02_3, then a detached swap
    assert all(s[c] == "passed" for c in EX02_1 + EX02_2)
    # scored as submitted: the untrained model's own decisions (all benign), not the swap's
    assert s["ex02_3.beats_baseline"] == "failed" and s["ex02_3.raw_inputs"] == "passed"
    pid_file = batch["out"].parent / "lingerer.pid"  # in its argv, so we can find it
    executed = batch["out"] / "executed" / "lingers_and_tampers" / "lingers_and_tampers.ipynb"
    assert "lingerer started" in executed.read_text(), "no background process was started"
    alive = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if str(pid_file) in (proc.info["cmdline"] or []):  # a zombie is dead: it only waits
            alive += [proc.pid] if proc.info["status"] != psutil.STATUS_ZOMBIE else []
    assert not alive


def test_killing_the_grader_costs_nobody_else_their_grade(batch):
    s = statuses(batch, "kills_the_grader")
    assert all(s[c] == "passed" for c in EX02_1)
    assert batch["book"]["parameters"]["fork_server"] is forkserver.enabled()
    others = [
        x for x in batch["book"]["submissions"] if x["student"] in ("correct", "solution", "erin")
    ]
    assert all(x["points"] == x["possible"] > 0 for x in others)


def test_every_solution_grades_to_full_marks(batch):
    subs = [s for s in batch["book"]["submissions"] if s["student"] in ("solution", "erin")]
    assert len(subs) == len(exercise_names()) + 1
    for sub in subs:
        assert sub["outcome"] == "completed", sub["message"]
        assert sub["points"] == sub["possible"] > 0, [
            r for r in sub["rows"] if r["status"] != "passed"
        ]


def test_every_exercise_runs_without_crashing_below_full_marks(batch):
    subs = [s for s in batch["book"]["submissions"] if s["student"] == "exercise"]
    assert len(subs) == len(exercise_names())
    for sub in subs:
        assert sub["outcome"] == "completed", sub["message"]
        assert sub["points"] == 0 < sub["possible"]
        # a placeholder submits nothing ("not answered yet"), starter code fails its checks
        assert all(r["status"] in ("failed", "error") and r["message"] for r in sub["rows"])
        assert "not answered yet" in {r["message"] for r in sub["rows"]}


def test_gradebook_json_records_parameters_durations_and_environment(batch):
    book = batch["book"]
    assert book["environment"]["tensorflow"].startswith("2.21")
    assert book["environment"]["keras"].startswith("3.")
    correct = next(s for s in book["submissions"] if s["student"] == "correct")
    assert correct["params"] == exercise("02_sequential_api").params
    assert correct["duration_s"] > 0 and correct["timeout_s"] == TIMEOUT


def test_feedback_per_student_without_hidden_check_sources(batch):
    folder = batch["out"] / "feedback"
    students = {r["student"] for r in batch["rows"]}
    assert {p.stem for p in folder.glob("*.md")} == students
    text = (folder / "wrong_answer.md").read_text()
    assert "hint:" in text and "FAILED" in text and "(hidden check)" in text
    for md in folder.glob("*.md"):
        body = md.read_text()
        assert "def " not in body and "grading_holdout" not in body
    sections = (folder / "solution.md").read_text().split("\n## ")
    assert len(sections) == len(exercise_names()) + 1  # a title, then one per notebook


def test_two_notebooks_for_one_exercise_count_once(tmp_path):
    import nbformat

    (tmp_path / "zoe").mkdir()
    nbformat.write(fixtures.correct(), tmp_path / "zoe" / "final.ipynb")
    nbformat.write(fixtures.wrong_answer(), tmp_path / "zoe" / "draft.ipynb")
    out = tmp_path / "out"
    result = run_cli("grade", str(tmp_path / "zoe"), str(tmp_path / "zoe"), "--out", str(out), "-q")
    assert result.returncode == 2  # the same folder twice is ambiguous
    # (graded without the sandbox: the gradebook says so, for the batch and each notebook)
    result = run_cli("grade", str(tmp_path), "--out", str(out), "-q", "--jobs", "1", "--no-sandbox")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert {r["notebook"] for r in rows} == {"final.ipynb"} and len(rows) == len(EX02)
    book = json.loads((out / "gradebook.json").read_text())
    assert book["parameters"]["sandbox"] is False
    assert not any(s["sandboxed"] for s in book["submissions"] + book["not_counted"])
    assert [s["notebook"] for s in book["not_counted"]] == ["draft.ipynb"]
    assert "also handed in draft.ipynb" in (out / "feedback" / "zoe.md").read_text()


def test_executed_notebooks_explain_where_they_stopped(batch):
    executed = batch["out"] / "executed"
    raised = (executed / "raises_in_cell" / "raises_in_cell.ipynb").read_text()
    assert "ZeroDivisionError" in raised and "An Exception was encountered" in raised
    crashed = (executed / "kills_its_kernel" / "kills_its_kernel.ipynb").read_text()
    assert "Grading stopped here (crashed)" in crashed
    assert (executed / "erin" / "my hw.ipynb").exists()


def test_grading_is_deterministic_with_overrides_and_hidden_checks(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    import nbformat

    for name in ("correct", "wrong_answer"):
        nbformat.write(fixtures.FIXTURES[name](), subs / f"{name}.ipynb")
    checks = tmp_path / "checks"
    checks.mkdir()
    import numpy as np

    from forge_course.grading.checks import flat_digits

    x, y = flat_digits("test")  # the instructor's own digits: a noisy copy
    noisy = np.clip(x + np.random.default_rng(7).normal(0, 0.05, x.shape), 0, 1)
    np.savez(checks / "private.npz", x=noisy.astype("float32"), y=y)
    (checks / "extra.py").write_text(
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from forge_course.grading import Check\n"
        "DATA = Path(__file__).parent / 'private.npz'\n"
        "def private_digits(values, params):\n"
        "    with np.load(DATA) as d:\n"
        "        p = np.asarray(values['digit_model'](d['x'], training=False))\n"
        "        acc = float(np.mean(p.argmax(axis=1) == d['y']))\n"
        "    if not np.allclose(p.sum(axis=1), 1, atol=1e-3):\n"
        "        return 'the outputs on private digits are not probabilities'\n"
        "    return None if acc >= 0.8 else f'accuracy on private digits is {acc:.3f}'\n"
        "CHECKS = {'ex02_1': [Check('instructor_private', private_digits, points=1)]}\n"
    )
    runs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        result = run_cli(
            "grade", str(subs), "--out", str(out), "--checks", str(checks),
            "-p", "EPOCHS", "3", "--json", "-q",
        )  # fmt: skip
        assert result.returncode == 1, result.stderr[-2000:]
        runs.append(json.loads(result.stdout))
    assert runs[0] == runs[1]
    extra = {r["student"]: r for r in runs[0] if r["check"] == "ex02_1.instructor_private"}
    assert extra["correct"]["status"] == "passed"
    assert extra["wrong_answer"]["status"] == "failed"  # relu outputs are no probabilities
    book = json.loads((tmp_path / "out0" / "gradebook.json").read_text())
    assert all(s["params"]["EPOCHS"] == 3 for s in book["submissions"])
    feedback = (tmp_path / "out0" / "feedback" / "correct.md").read_text()
    assert "instructor_private (hidden check)" in feedback and "private.npz" not in feedback


@pytest.mark.parametrize(
    "args, expect",
    [
        (["grade", "no/such/folder", "--out", "x"], "does not exist"),
        (["grade", "solutions", "--out", "x", "--checks", "no/such/checks"], "not a folder"),
    ],
)
def test_grade_usage_errors_exit_2(args, expect, tmp_path):
    result = run_cli(*args)
    assert result.returncode == 2 and expect in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_folder_is_a_usage_error(tmp_path):
    result = run_cli("grade", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "no submissions found" in result.stderr


@pytest.mark.parametrize(
    "param, expect",
    [
        (["-p", "SEED", "abc"], "SEED takes a int"),
        (["-p", "EPOCHS", "2.5"], "EPOCHS takes a int"),
        (["-p", "EPOHCS", "3"], "no exercise has"),
        (["--timeout", "nan"], "positive, finite"),
        (["--timeout", "-5"], "positive, finite"),
    ],
)
def test_bad_parameters_are_usage_errors(param, expect, tmp_path):
    result = run_cli("grade", "solutions", "--out", str(tmp_path), *param)
    assert result.returncode == 2 and expect in result.stderr


def test_unknown_exercise_metadata(tmp_path):
    import nbformat

    nb = fixtures.correct()
    nb.metadata["forge_course"]["exercise"] = "99_nothing"
    nbformat.write(nb, tmp_path / "odd.ipynb")
    result = run_cli("grade", str(tmp_path / "odd.ipynb"), "--out", str(tmp_path / "out"), "-q")
    assert result.returncode == 1
    rows = list(csv.DictReader((tmp_path / "out" / "gradebook.csv").open()))
    assert [r["status"] for r in rows] == ["error"] and "unknown exercise" in rows[0]["message"]
    assert Path(tmp_path / "out" / "feedback" / "odd.md").exists()


def test_discover_names_students_and_refuses_ambiguous_ones(tmp_path):
    from forge_course.errors import GradingError
    from forge_course.grading.grade import discover

    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "carol").mkdir(parents=True)
    (tmp_path / "b" / "dan").mkdir()
    for path in (tmp_path / "a" / "alice.ipynb", tmp_path / "b" / "alice.ipynb"):
        path.write_text("{}")
    (tmp_path / "b" / "carol" / "ex 2.ipynb").write_text("{}")
    (tmp_path / "b" / "carol" / "old").mkdir()
    (tmp_path / "b" / "carol" / "old" / "ex 2.ipynb").write_text("{}")
    os.mkfifo(tmp_path / "b" / "carol" / "pipe.ipynb")  # gets a row; read, it never blocks
    (tmp_path / "b" / "dan" / "answers.py").write_text("print(42)")
    (tmp_path / "b" / "bob.pdf").write_text("not a notebook, still bob's")
    found = discover([tmp_path / "b"])
    assert [(s.student, s.notebook) for s in found] == [
        ("alice", "alice.ipynb"), ("bob", "bob.pdf"), ("carol", "ex 2.ipynb"),
        ("carol", "old/ex 2.ipynb"), ("carol", "pipe.ipynb"), ("dan", "dan"),
    ]  # fmt: skip
    from forge_course.grading.worker import read_submission

    with pytest.raises(GradingError, match="not a regular file"):
        read_submission(tmp_path / "b" / "carol" / "pipe.ipynb")
    with pytest.raises(GradingError, match="two submissions for student 'alice'"):
        discover([tmp_path / "a", tmp_path / "b"])


def test_exercise_option_pins_the_batch(tmp_path):
    import nbformat

    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(fixtures.correct(), subs / "ann.ipynb")
    relabelled = fixtures.correct()
    relabelled.metadata["forge_course"]["exercise"] = "00_setup_and_environment"
    nbformat.write(relabelled, subs / "ben.ipynb")  # claims an easier exercise
    out = tmp_path / "out"
    result = run_cli(
        "grade", str(subs), "--out", str(out), "-q", "--exercise", "02_sequential_api"
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    ben = [r for r in rows if r["student"] == "ben"]
    (odd,) = [r for r in ben if r["check"] == "(notebook)"]
    assert "answers exercise 00_setup" in odd["message"]
    rest = [r for r in ben if r is not odd]
    assert [r["check"] for r in rest] == EX02 and {r["status"] for r in rest} == {"missing"}
    assert {r["status"] for r in rows if r["student"] == "ann"} == {"passed"}
    unknown = run_cli("grade", str(subs), "--out", str(out), "--exercise", "99_x")
    assert unknown.returncode == 2 and "--exercise 99_x: unknown" in unknown.stderr


def test_plain_kernels_grade_end_to_end(tmp_path):
    """FORGE_COURSE_FORK=0: Jupyter's usual kernel launch, scoring in the worker."""
    import nbformat

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("correct", "raises_in_cell", "kills_the_grader"):
        nbformat.write(fixtures.FIXTURES[name](), subs / f"{name}.ipynb")
    out = tmp_path / "out"
    result = run_cli(
        "grade", str(subs), "--out", str(out), "-q", "--jobs", "2", "--timeout", str(TIMEOUT),
        env={"FORGE_COURSE_FORK": "0"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    book = json.loads((out / "gradebook.json").read_text())
    assert book["parameters"]["fork_server"] is False
    by_student = {s["student"]: s for s in book["submissions"]}
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    status = {(r["student"], r["check"]): r["status"] for r in rows}
    assert {status["correct", c] for c in EX02} == {"passed"}
    later = [c for c in EX02 if not c.startswith("ex02_1")]
    assert {status["raises_in_cell", c] for c in EX02_1} == {"passed"}
    assert {status["raises_in_cell", c] for c in later} == {"error"}
    assert "ZeroDivisionError" in by_student["raises_in_cell"]["message"]
    # a plain kernel runs under bwrap too: its "parent" is the sandbox's own init, which
    # it cannot kill, so the worker lives, and the killer is graded like anyone else
    killer = by_student["kills_the_grader"]
    assert not killer["grader_failure"] and killer["sandboxed"]
    assert {status["kills_the_grader", c] for c in EX02} == {"passed"}
    assert by_student["correct"]["environment"]["tensorflow"].startswith("2.21")


def test_files_that_are_no_exercise_are_graded_without_a_kernel(tmp_path):
    import nbformat

    from forge_course.grading.results import GradeOptions, Submission
    from forge_course.grading.worker import grade_one

    (tmp_path / "essay.ipynb").write_text("My homework is in the attached PDF\n")
    (tmp_path / "dan").mkdir()
    relabelled = fixtures.correct()
    relabelled.metadata["forge_course"]["exercise"] = "00_setup_and_environment"
    nbformat.write(relabelled, tmp_path / "ben.ipynb")
    opts = GradeOptions(out=tmp_path / "out", only=("02_sequential_api",))
    cases = {
        "essay.ipynb": "not a readable notebook",
        "dan": "no notebook (*.ipynb) in the folder dan/",
        "ben.ipynb": "answers exercise 00_setup_and_environment, but this batch grades 02",
    }
    for name, why in cases.items():
        got = grade_one(Submission(Path(name).stem, tmp_path / name), opts)
        assert (got.exercise, got.outcome) == (None, "error") and why in got.message
        assert [(r.check, r.status) for r in got.rows] == [("(notebook)", "error")]
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_a_grader_failure_keeps_the_student_with_every_check_crashed(tmp_path):
    import nbformat

    from forge_course.grading.grade import _unscored
    from forge_course.grading.results import GradeOptions, Submission

    nbformat.write(fixtures.correct(), tmp_path / "ann.ipynb")
    (tmp_path / "bob.ipynb").write_text("{")
    opts = GradeOptions(out=tmp_path)
    ann = _unscored(Submission("ann", tmp_path / "ann.ipynb"), "RuntimeError: boom", opts)
    assert ann.exercise == "02_sequential_api" and ann.grader_failure
    assert [r.check for r in ann.rows] == EX02 and {r.status for r in ann.rows} == {"crashed"}
    assert ann.message == "the grader failed on this submission: RuntimeError: boom"
    bob = _unscored(Submission("bob", tmp_path / "bob.ipynb"), "boom", opts)
    assert [(r.check, r.status) for r in bob.rows] == [("(notebook)", "crashed")]


def test_no_jupyter_kernel_means_exit_3(tmp_path, monkeypatch, capsys):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from forge_course import cli

    def no_kernel(self, name):
        raise NoSuchKernel(name)

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", no_kernel)
    assert cli.main(["grade", str(ROOT / "solutions"), "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "no Jupyter kernel 'python3'" in err and "make install" in err
    assert not (tmp_path / "out").exists()


def test_sigterm_leaves_a_whole_gradebook_of_what_was_graded(tmp_path):
    import signal
    import subprocess
    import time

    import nbformat

    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(fixtures.infinite_loop(), subs / "looper.ipynb")
    (subs / "essay.ipynb").write_text("My homework is in the attached PDF\n")
    out = tmp_path / "out"
    grader = subprocess.Popen(
        [sys.executable, "-m", "forge_course.cli", "grade", str(subs), "--out", str(out), "-q",
         "--jobs", "2", "--timeout", "300"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240  # until the looper's kernel is forked (as 2 processes)
    while _forked(grader.pid) < 3 and grader.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    grader.send_signal(signal.SIGTERM)
    _, stderr = grader.communicate(timeout=120)
    assert grader.returncode == 130, stderr[-2000:]
    assert "holds what was graded" in stderr and "Traceback" not in stderr
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    essay = [r for r in rows if r["student"] == "essay"]
    assert [r["status"] for r in essay] == ["error"] and "not a readable" in essay[0]["message"]
    looper = {r["check"]: r for r in rows if r["student"] == "looper"}
    assert list(looper) == EX02 and {r["status"] for r in looper.values()} == {"cancelled"}
    assert all("stopped before this notebook was graded" in r["message"] for r in looper.values())
    book = json.loads((out / "gradebook.json").read_text())
    assert {s["student"]: s["outcome"] for s in book["submissions"]} == {
        "essay": "error", "looper": "cancelled",
    }  # fmt: skip
    assert "Not graded: the grading run was stopped" in (out / "feedback" / "looper.md").read_text()


def _forked(pid: int) -> int:
    """How many processes under ``pid`` run the fork server's code (server and kernels)."""
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    count = 0
    for proc in procs:
        try:
            count += "forge_course.grading.server" in " ".join(proc.cmdline())
        except psutil.Error:
            pass
    return count
