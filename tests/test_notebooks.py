"""Notebook hygiene (DESIGN.md contract 2): stripped, named, titled, parameterized."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from tests.conftest import ROOT

FOLDERS = ("notebooks", "solutions", "exercises")
NOTEBOOKS = sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.ipynb"))
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [f"{p.parent.name}/{p.name}" for p in NOTEBOOKS]
LAST_LESSON_PLUS_ONE = "13"  # DESIGN.md's course map ends with lesson 12


def test_every_exercise_has_its_lesson_and_the_course_starts_at_00():
    names = [p.stem for p in LESSONS]
    assert names and names[0].startswith("00_")
    solutions = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    assert solutions and set(solutions) <= set(names), set(solutions) - set(names)


@pytest.fixture(params=NOTEBOOKS, ids=IDS)
def notebook(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def test_name_is_nn_topic(notebook):
    path, _ = notebook
    assert re.fullmatch(r"\d\d_[a-z0-9]+(_[a-z0-9]+)*\.ipynb", path.name), path.name


def test_valid_and_stripped(notebook):
    path, nb = notebook
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs; strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata.kernelspec.name == "python3"
    assert set(nb.metadata) <= {"kernelspec", "language_info", "forge_course"}, nb.metadata.keys()


def test_title_cell_states_objective_and_run_time(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), path.name
    assert re.search(r"run time|runs in|minute|seconds", first.source, re.I), path.name
    assert re.search(r"prerequisite", first.source, re.I), path.name
    assert re.search(r"objective", first.source, re.I), path.name


def test_parameters_cell_holds_literals_only_and_comes_first(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assert code[0] is tagged[0], f"{path.name}: the parameters cell must be the first code cell"
    names = []
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, ast.dump(stmt)
        ast.literal_eval(stmt.value)  # raises unless the value is a literal
        names.append(stmt.targets[0].id)
    assert "SEED" in names, f"{path.name}: the parameters cell should define SEED"
    assert "setup(" in code[1].source, f"{path.name}: the cell after parameters seeds (setup)"


def test_parameters_are_not_overridden_later(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = {t.id for s in ast.parse(code[0].source).body for t in s.targets}
    for cell in code[1:]:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics; none of ours assign parameters
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    assert not (isinstance(t, ast.Name) and t.id in params), (
                        f"{path.name} reassigns parameter {t.id} after the parameters cell"
                    )


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lessons_have_sections_recap_and_going_further(path):
    nb = nbformat.read(path, as_version=4)
    heads = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()]
    sections = [h for h in heads if re.match(r"## \d", h)]
    assert 3 <= len(sections) <= 6, f"{path.name} has {len(sections)} numbered sections"
    assert any(h.startswith("## Recap") for h in heads)
    assert any(h.startswith("## Going further") for h in heads)


def _markdown(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def _first_cell_with_line(cells: list[str], pattern: str, name: str) -> int:
    found = [i for i, src in enumerate(cells) if re.search(pattern, src, re.M)]
    assert found, f"{name} has no markdown line matching {pattern!r}"
    return found[0]


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lessons_end_with_your_turn_recap_going_further_then_next(path):
    cells = _markdown(path)
    turn = _first_cell_with_line(cells, r"^## Your turn", path.name)
    recap = _first_cell_with_line(cells, r"^## Recap", path.name)
    further = _first_cell_with_line(cells, r"^## Going further", path.name)
    last_section = max(i for i, src in enumerate(cells) if re.search(r"^## \d", src, re.M))
    assert last_section < turn < recap < further, (
        f"{path.name}: after the numbered sections come Your turn, Recap, Going further"
    )
    nexts = [i for i, src in enumerate(cells) if re.search(r"^\*\*Next:?\*\*", src, re.M)]
    assert nexts and nexts[-1] > further, f"{path.name} needs a **Next:** line after Going further"
    assert nexts[-1] == len(cells) - 1, f"{path.name}: the Next line belongs in the last cell"


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_your_turn_says_where_the_exercise_is_and_what_it_asks(path):
    cells = _markdown(path)
    turn = cells[_first_cell_with_line(cells, r"^## Your turn", path.name)]
    exercise = f"exercises/{path.name}"
    assert exercise in turn, f"{path.name}: Your turn should name {exercise}"
    assert (ROOT / exercise).exists(), f"{path.name} points at {exercise}, which does not exist"
    assert f'check("ex{path.name[:2]}_' in turn, f"{path.name}: Your turn should say how to check"
    tasks = re.findall(r"^\d+\. ", turn, re.M)
    assert len(tasks) >= 3, f"{path.name}: Your turn lists {len(tasks)} tasks; a ladder has 3+"


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_next_line_names_the_following_lesson(path):
    cells = _markdown(path)
    lines = [ln for ln in cells[-1].splitlines() if re.match(r"\*\*Next:?\*\*", ln)]
    assert lines, f"{path.name}: the last markdown cell should hold the **Next:** line"
    line = lines[0]
    number = f"{int(path.name[:2]) + 1:02d}"
    following = [p.stem for p in LESSONS if p.name.startswith(f"{number}_")]
    if number == LAST_LESSON_PLUS_ONE:  # the course map ends at 12: say so, point back to 00
        assert re.search(r"course ends", line, re.I), f"{path.name}: say the course ends here"
        assert f"`{LESSONS[0].stem}`" in line, f"{path.name}: point back to {LESSONS[0].stem}"
    elif following:  # the next lesson exists: name it exactly
        assert f"`{following[0]}`" in line, f"{path.name}: Next should name {following[0]}"
    else:  # not written yet: name it by its number, and say it is coming
        assert re.search(rf"`{number}_[a-z0-9]+(_[a-z0-9]+)*`", line), line
        assert re.search(r"coming", line, re.I), f"{path.name}: say the next lesson is coming"
