"""``forge-course assign``: write exercise notebooks from the solution notebooks.

Inside a solution's code cells, the lines from ``### BEGIN SOLUTION`` to
``### END SOLUTION`` are the answer. The exercise copy replaces them with a
placeholder: each name the answer assigns becomes ``name = ...`` (which ``check``
reports as "not answered yet"), under a comment saying what to write. The text after
``### BEGIN SOLUTION:`` is that comment.

Some tasks hand the learner code to change instead of a placeholder: a *debug* task's
broken cell, or a *target* task's starting point. Such a region holds the answer, then
a ``### GIVEN`` line, then the code the learner starts from, commented out with ``# ``
(so the solution runs the answer and shows the starting point beside it); the exercise
gets that code, uncommented, under a ``# CHANGE THIS CODE:`` comment.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import os
import re
from pathlib import Path

import nbformat

from forge_course.errors import GradingError

__all__ = ["AssignResult", "assign", "make_exercise"]

BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION:?\s*(.*)$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
GIVEN = re.compile(r"^\s*### GIVEN\s*$")
README = """# exercises/ (generated, do not edit)

Every notebook here is written by `forge-course assign` from the notebook of the same
name in `solutions/`, with the answers replaced by placeholders. Edit the solution and
run `forge-course assign` (or `make assign`); `make test` fails when this folder is stale.
"""


def _assigned_names(code: str, where: str, first_line: int) -> list[str]:
    """The names an answer region assigns; an answer that is not Python is refused.

    Without parsing the answer, the exercise would silently lose its ``name = ...``
    placeholders, so ``check`` could never say "not answered yet".
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        line = first_line + (exc.lineno or 1) - 1
        raise GradingError(
            f"{where}: the answer region is not Python ({exc.msg}, line {line} of the cell); "
            "fix the solution so it runs, then run forge-course assign again"
        ) from None
    names: list[str] = []
    for stmt in tree.body:
        targets = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
            targets = [stmt.target]
        for t in targets:
            for node in ast.walk(t):
                if isinstance(node, ast.Name) and node.id not in names:
                    names.append(node.id)
    return names


def _uncomment(lines: list[str], indent: str, where: str) -> list[str]:
    """The starting code of a ``### GIVEN`` block: each line loses its leading ``# ``."""
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif line.startswith(f"{indent}# ") or line.strip() == "#":
            out.append(line.replace("# ", "", 1) if "# " in line else "")
        else:
            raise GradingError(f"{where}: comment every line after ### GIVEN with '# '")
    if not any(line.strip() for line in out):
        raise GradingError(f"{where}: ### GIVEN has no code after it")
    try:
        ast.parse("\n".join(line[len(indent) :] for line in out))
    except SyntaxError as exc:
        raise GradingError(f"{where}: the code after ### GIVEN is not Python: {exc}") from None
    return out


def _strip_cell(source: str, where: str) -> str:
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if not m:
            if END.match(lines[i]):
                raise GradingError(f"{where}: ### END SOLUTION without a BEGIN")
            out.append(lines[i])
            i += 1
            continue
        indent, hint = m.group(1), m.group(2).strip() or "write your answer here"
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise GradingError(f"{where}: nested ### BEGIN SOLUTION")
            j += 1
        if j == len(lines):
            raise GradingError(f"{where}: ### BEGIN SOLUTION without an END")
        region = lines[i + 1 : j]
        split = [k for k, line in enumerate(region) if GIVEN.match(line)]
        if split:
            out.append(f"{indent}# CHANGE THIS CODE: {hint}")
            out += _uncomment(region[split[0] + 1 :], indent, where)
            i = j + 1
            continue
        body = "\n".join(line[len(indent) :] for line in region)
        out.append(f"{indent}# YOUR CODE HERE: {hint}")
        names = _assigned_names(body, where, i + 2)
        out += [f"{indent}{n} = ..." for n in names] or [f"{indent}pass"]
        i = j + 1
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode, where: str = "") -> nbformat.NotebookNode:
    """Return the exercise version of a solution notebook."""
    nb = copy.deepcopy(solution)
    found = False
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code" and any(
            BEGIN.match(line) or END.match(line) or GIVEN.match(line)
            for line in cell.source.splitlines()
        ):
            raise GradingError(
                f"{where} cell {k}: a ### BEGIN SOLUTION / ### END SOLUTION / ### GIVEN line in "
                f"a {cell.cell_type} cell would be copied into the exercise, answer included; "
                "answer regions belong in code cells (move the answer into a code cell, or "
                "reword the line so it does not start with the marker)"
            )
        if cell.cell_type == "code" and (
            "### BEGIN SOLUTION" in cell.source or "### END" in cell.source
        ):
            cell.source = _strip_cell(cell.source, f"{where} cell {k}")
            found = True
    if not found:
        raise GradingError(
            f"{where}: no ### BEGIN SOLUTION region; nothing to turn into an exercise"
        )
    meta = nb.metadata.get("forge_course", {})
    if "exercise" not in meta:
        raise GradingError(f"{where}: metadata.forge_course.exercise is missing")
    return nb


@dataclasses.dataclass
class AssignResult:
    written: list[Path]
    stale: list[str]  # files that differ from what assign would write (or extra/missing)


def _folder(path: Path, flag: str, what: str) -> None:
    """Refuse a path that is a file where a folder is wanted, saying so plainly."""
    if path.exists() and not path.is_dir():
        kind = "a notebook" if path.suffix == ".ipynb" else "a file"
        raise GradingError(
            f"{flag} {path}: is {kind}, not a folder; give the folder {what} "
            f"(for example {flag} {path.parent if path.suffix == '.ipynb' else flag[2:]})"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GradingError(f"{flag} {path}: {parent} is a file, not a folder")
            break


def _write_all(files: dict[Path, str]) -> list[Path]:
    """Write every file or none: each goes to a temporary file first, then all are renamed."""
    temps: dict[Path, Path] = {}
    try:
        for dest, text in files.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.assign-tmp")
            temps[dest] = tmp
            tmp.write_text(text)
    except OSError as exc:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise GradingError(
            f"cannot write {exc.filename}: {exc.strerror}; nothing was written"
        ) from None
    for dest, tmp in temps.items():
        os.replace(tmp, dest)
    return list(files)


def assign(solutions: Path, exercises: Path, *, check: bool = False) -> AssignResult:
    """Write (or with ``check=True`` only compare) ``exercises/`` from ``solutions/``.

    Every exercise is built before any is written, so a broken solution leaves
    ``exercises/`` as it was rather than half rewritten.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    _folder(solutions, "--solutions", "that holds the solution notebooks")
    _folder(exercises, "--exercises", "the exercise notebooks go in")
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise GradingError(f"no solution notebooks in {solutions}/")
    files: dict[Path, str] = {}
    stale: list[str] = []
    for src in sources:
        try:
            nb = nbformat.read(src, as_version=4)
        except Exception as exc:
            raise GradingError(f"{src}: not a readable notebook ({exc})") from None
        text = nbformat.writes(make_exercise(nb, str(src))) + "\n"
        dest = exercises / src.name
        current = dest.read_text() if dest.is_file() else None
        if current != text:
            stale.append(str(dest))
            files[dest] = text
    for extra in sorted(set(exercises.glob("*.ipynb")) - {exercises / s.name for s in sources}):
        stale.append(f"{extra} (no solution of that name)")
    readme = exercises / "README.md"
    if not readme.is_file() or readme.read_text() != README:
        stale.append(str(readme))
        files[readme] = README
    written = [] if check else _write_all(files)
    return AssignResult(written, stale)
