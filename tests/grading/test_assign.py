"""forge-course assign: exercises generated from solutions, and staleness detection."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from forge_course.errors import GradingError
from forge_course.grading.assign import assign, make_exercise
from tests.conftest import ROOT, run_cli


def notebook(*sources: str, exercise: str = "02_sequential_api"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["forge_course"] = {"exercise": exercise}
    return nb


def test_regions_become_placeholders_that_keep_indentation_and_hint():
    nb = notebook(
        "x = 1\n### BEGIN SOLUTION: build the model\nmodel = make()\nacc, loss = 1, 2\n"
        "### END SOLUTION\nprint(x)",
        "def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
    )
    ex = make_exercise(nb, "demo")
    assert ex.cells[0].source == (
        "x = 1\n# YOUR CODE HERE: build the model\nmodel = ...\nacc = ...\nloss = ...\nprint(x)"
    )
    assert ex.cells[1].source == "def f():\n    # YOUR CODE HERE: write your answer here\n    pass"
    written = "".join(c.source for c in nbformat.reads(nbformat.writes(ex), as_version=4).cells)
    assert "make()" not in written and "42" not in written  # (cell ids are random hex)
    assert ex.metadata["forge_course"] == {"exercise": "02_sequential_api"}


def test_given_blocks_hand_the_learner_code_to_change():
    nb = notebook(
        "def step(x):\n"
        "    ### BEGIN SOLUTION: add the penalty\n"
        "    loss = f(x) + penalty\n"
        "    ### GIVEN\n"
        "    # loss = f(x)\n"
        "    #\n"
        "    # print(loss)\n"
        "    ### END SOLUTION\n"
        "    return loss"
    )
    ex = make_exercise(nb, "demo")
    assert ex.cells[0].source == (
        "def step(x):\n    # CHANGE THIS CODE: add the penalty\n    loss = f(x)\n\n"
        "    print(loss)\n    return loss"
    )
    assert "penalty\n" not in ex.cells[0].source.replace("add the penalty\n", "")


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1\n### GIVEN\nx = 2\n### END SOLUTION", "comment every line"),
        ("### BEGIN SOLUTION\nx = 1\n### GIVEN\n### END SOLUTION", "no code after it"),
        ("### BEGIN SOLUTION\nx = 1\n### GIVEN\n# x = (\n### END SOLUTION", "not Python"),
    ],
)
def test_broken_given_blocks_name_the_cell(source, problem):
    with pytest.raises(GradingError, match=problem):
        make_exercise(notebook(source), "solutions/demo.ipynb")


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1", "without an END"),
        ("x = 1\n### END SOLUTION", "without a BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
        ("x = 1", "no ### BEGIN SOLUTION region"),
    ],
)
def test_broken_markers_name_the_cell(source, problem):
    with pytest.raises(GradingError, match=problem):
        make_exercise(notebook(source), "solutions/demo.ipynb")


def test_exercise_metadata_is_required():
    nb = notebook("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    del nb.metadata["forge_course"]
    with pytest.raises(GradingError, match="metadata.forge_course.exercise"):
        make_exercise(nb, "demo")


def test_committed_exercises_are_up_to_date():
    result = run_cli("assign", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_stale_files_and_assign_fixes_them(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", sol)
    shutil.copytree(ROOT / "exercises", ex)
    nb = nbformat.read(sol / "02_sequential_api.ipynb", as_version=4)
    nb.cells[0].source += "\n\nA new sentence."
    nbformat.write(nb, sol / "02_sequential_api.ipynb")
    (ex / "99_orphan.ipynb").write_text("{}")
    stale = run_cli("assign", "--check", "--solutions", str(sol), "--exercises", str(ex))
    assert stale.returncode == 1
    assert "02_sequential_api.ipynb" in stale.stdout and "99_orphan.ipynb" in stale.stdout
    assert "00_setup" not in stale.stdout
    assert assign(sol, ex).written == [ex / "02_sequential_api.ipynb"]
    assert "A new sentence." in (ex / "02_sequential_api.ipynb").read_text()


def test_missing_solutions_folder_is_a_usage_error(tmp_path):
    result = run_cli("assign", "--solutions", str(tmp_path / "none"))
    assert result.returncode == 2 and "no solution notebooks" in result.stderr


def test_an_answer_that_is_not_python_is_refused_with_its_cell():
    nb = notebook("x = 1", "y = 2\n### BEGIN SOLUTION\nmodel = make(\nacc = 1\n### END SOLUTION")
    with pytest.raises(GradingError, match=r"solutions/demo.ipynb cell 1: the answer region is"):
        make_exercise(nb, "solutions/demo.ipynb")


def test_answers_inside_functions_still_parse():
    nb = notebook("for i in x:\n    ### BEGIN SOLUTION\n    total = i\n    continue\n"
                  "    ### END SOLUTION")  # fmt: skip
    assert "total = ..." in make_exercise(nb, "demo").cells[0].source


@pytest.mark.parametrize("marker", ["### BEGIN SOLUTION", "### END SOLUTION", "### GIVEN"])
def test_markers_in_markdown_cells_are_refused(marker):
    nb = notebook("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    nb.cells.append(nbformat.v4.new_markdown_cell(f"Answer:\n{marker}\nThe secret is 42."))
    with pytest.raises(GradingError, match=r"demo.ipynb cell 1: .* markdown cell"):
        make_exercise(nb, "solutions/demo.ipynb")
    nb.cells[1].source = "Mark answers with `### BEGIN SOLUTION` in code cells."
    make_exercise(nb, "solutions/demo.ipynb")  # a mention inside the text is fine


def test_a_broken_solution_leaves_every_exercise_unwritten(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    good = notebook("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    nbformat.write(good, sol / "01_good.ipynb")
    nbformat.write(notebook("### BEGIN SOLUTION\nx = (\n### END SOLUTION"), sol / "02_bad.ipynb")
    with pytest.raises(GradingError, match="02_bad.ipynb cell 0"):
        assign(sol, ex)
    assert not ex.exists() or not list(ex.iterdir())
    (sol / "02_bad.ipynb").unlink()
    assert assign(sol, ex).written == [ex / "01_good.ipynb", ex / "README.md"]
    assert sorted(p.name for p in ex.iterdir()) == ["01_good.ipynb", "README.md"]


def test_folders_given_as_files_are_usage_errors(tmp_path):
    notebook_file = tmp_path / "02_sequential_api.ipynb"
    shutil.copy(ROOT / "solutions" / "02_sequential_api.ipynb", notebook_file)
    result = run_cli("assign", "--solutions", str(notebook_file))
    assert result.returncode == 2
    assert "is a notebook, not a folder" in result.stderr and "--solutions" in result.stderr
    a_file = tmp_path / "exercises.txt"
    a_file.write_text("")
    with pytest.raises(GradingError, match=r"--exercises .*exercises.txt: is a file, not a folder"):
        assign(ROOT / "solutions", a_file)
    with pytest.raises(GradingError, match="is a file, not a folder"):
        assign(ROOT / "solutions", a_file / "sub")
