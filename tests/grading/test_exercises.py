"""Every exercise, one module and one notebook pair: the ladder, its checks, its solution.

Each test is parametrized over the exercises found in forge_course/grading/catalog/, so
a new lesson's exercise is tested by adding its module and notebooks, nothing else.
"""

from __future__ import annotations

import ast
import re

import nbformat
import numpy as np
import pytest

from forge_course.grading import exercises, run_checks
from forge_course.grading.spec import RUNGS
from tests.conftest import ROOT

EXERCISES = exercises()
NAMES = sorted(EXERCISES)


def _module(name: str):
    import importlib

    return importlib.import_module(f"forge_course.grading.catalog.ex{name}")


def _solution(name: str):
    return nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)


def _parameters(nb) -> dict:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(cell.source).body}


def _check_calls(nb) -> list[tuple[str, list[str]]]:
    calls = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check":
                calls.append((node.args[0].value, [k.arg for k in node.keywords]))
    return calls


def test_every_solution_has_a_module_and_every_module_a_solution():
    solutions = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    assert solutions == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_ladder_climbs(name):
    ex = EXERCISES[name]
    rungs = [t.rung for t in ex.tasks]
    assert len(ex.tasks) >= 3 and set(RUNGS) <= set(rungs), rungs
    assert rungs == sorted(rungs, key=RUNGS.index), "apply, then target, then debug"
    points = [t.points for t in ex.tasks]
    assert points == sorted(points) and len(set(points)) == len(points), points
    assert [t.id for t in ex.tasks] == [f"ex{name[:2]}_{k}" for k in range(1, len(ex.tasks) + 1)]


@pytest.mark.parametrize("name", NAMES)
def test_hints_nudge_before_they_tell(name):
    for c in EXERCISES[name].checks:
        assert c.description, f"{c.id} needs a description: the bar states it"
        if c.hidden:
            continue
        assert len(c.hints) >= 3, f"{c.id}: give the concept, the API and a fragment"
        assert "`" not in c.hints[0], f"{c.id}: the first hint names the idea, not code"


@pytest.mark.parametrize("name", NAMES)
def test_grading_parameters_are_in_the_solutions_parameters_cell(name):
    params = _parameters(_solution(name))
    for key, value in EXERCISES[name].params.items():
        assert key in params, f"the grader injects {key}, which the notebook does not define"
        assert params[key] == value and type(params[key]) is type(value), (
            f"{key}: the notebook says {params[key]!r}, the grader injects {value!r}; a learner "
            "should practise with the values they are graded on"
        )


@pytest.mark.parametrize("name", NAMES)
def test_check_calls_match_the_tasks(name):
    ex = EXERCISES[name]
    calls = _check_calls(_solution(name))
    assert [task for task, _ in calls] == [t.id for t in ex.tasks]
    for (task_id, keywords), t in zip(calls, ex.tasks, strict=True):
        assert sorted(keywords) == sorted(t.values), task_id


@pytest.mark.parametrize("name", NAMES)
def test_the_exercise_states_its_bar_and_its_tasks(name):
    exercise_nb = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    sources = "\n".join(c.source for c in exercise_nb.cells)
    assert f'show_bar("{name}")' in sources
    for t in EXERCISES[name].tasks:
        assert re.search(rf"## Task \d+ \({t.rung}\).*`{t.id}`", sources), t.id


@pytest.mark.parametrize("name", NAMES)
def test_every_check_has_a_failing_case(name):
    ex, failing = EXERCISES[name], _module(name).FAILING
    assert sorted(failing) == sorted(c.id for c in ex.checks)
    for c in ex.checks:
        task = ex.task(c.task)
        (result,) = run_checks(task, failing[c.id](ex.params), ex.params, (c,))
        assert result.status == "failed" and result.message, (c.id, result)


JUNK = {"model": "my model", "array": np.array([0.5, 1.5]), "scalar": "six"}


@pytest.mark.parametrize("name", NAMES)
def test_no_check_crashes_on_junk(name):
    """A wrong kind of answer fails every check with a message; none raises."""
    ex = EXERCISES[name]
    for t in ex.tasks:
        values = {n: JUNK[kind] for n, kind in t.values.items()}
        for result in run_checks(t, values, ex.params, t.checks):
            assert result.status == "failed" and result.message, result


def _task_cells(nb) -> list[list]:
    """The cells of each task: from its '## Task' heading to the next '## ' heading."""
    tasks, current = [], None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            current = [] if cell.source.startswith("## Task") else None
            if current is not None:
                tasks.append(current)
        if current is not None and cell.cell_type == "code":
            current.append(cell)
    return tasks


@pytest.mark.parametrize("name", NAMES)
def test_checks_survive_cells_rerun_out_of_order(name, tmp_path):
    """Run the solution, then every task's cells again, last task first: all still pass."""
    import copy

    import papermill

    nb = _solution(name)
    again = [copy.deepcopy(c) for cells in reversed(_task_cells(nb)) for c in cells]
    for k, cell in enumerate(again):
        cell["id"] = f"again-{k}"
    assert len(again) >= 2 * len(EXERCISES[name].tasks)
    nb.cells += again
    src, out = tmp_path / "twice.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(
        str(src), str(out), kernel_name="python3", cwd=str(tmp_path), progress_bar=False
    )
    shown = [
        o["data"]["text/plain"]
        for c in nbformat.read(out, as_version=4).cells
        if c.cell_type == "code" and c.source.startswith("check(")
        for o in c.outputs
        if "text/plain" in o.get("data", {})
    ]
    assert len(shown) == 2 * len(EXERCISES[name].tasks)
    for text in shown:
        assert "FAIL" not in text and "PASS" in text, text
