"""Fixture submissions, each named for what it does, built from the real solution.

Building them from ``solutions/02_sequential_api.ipynb`` keeps them in step with the
exercise: a fixture differs from the solution only in the cells its name describes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from tests.conftest import ROOT

SOLUTION = ROOT / "solutions" / "02_sequential_api.ipynb"


def _solution():
    return nbformat.read(SOLUTION, as_version=4)


def _index(nb, text: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if text in c.source)


def _insert_after(nb, text: str, source: str):
    nb.cells.insert(_index(nb, text) + 1, nbformat.v4.new_code_cell(source))
    return nb


def correct():
    return _solution()


def wrong_answer():
    """Ends the digits model in a relu instead of a softmax (task ex02_1 only)."""
    nb = _solution()
    i = _index(nb, "### BEGIN SOLUTION: build, compile and train digit_model")
    softmax, relu = 'class_names), activation="softmax"', 'class_names), activation="relu"'
    nb.cells[i].source = nb.cells[i].source.replace(softmax, relu)
    return nb


def raises_in_cell():
    return _insert_after(_solution(), 'check("ex02_1"', "total = 10\ntotal / 0")


def infinite_loop():
    return _insert_after(_solution(), 'check("ex02_1"', "while True:\n    pass")


def kills_its_kernel():
    return _insert_after(
        _solution(), 'check("ex02_1"', "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    )


def prints_fake_results():
    nb = _solution()
    fake = (
        "from IPython.display import HTML, display\n"
        "print('ex02_1: 4/4 points\\n  PASS ex02_1.architecture (2/2)')\n"
        "display(HTML('<table><tr><td>&#9989;</td><td>ex02_2.test_accuracy</td>"
        "<td>2/2</td></tr></table>'))"
    )
    for c in nb.cells:
        if c.source.startswith("check("):
            c.source = fake
    return nb


def replaces_check():
    return _insert_after(
        _solution(),
        "setup(seed=SEED)",
        "def check(*args, **kwargs):\n    print('All checks passed! 10/10')\n    return True",
    )


# Keep the trained model on disk, and build an untrained twin (every score is 0.5, so it
# calls every tumour benign) to submit for ex02_3 instead, with its own decisions.
UNTRAINED_TWIN = (
    "model.save('trained.keras')\n"
    "untrained = keras.Sequential([keras.Input(shape=(x_fit.shape[1],)), model.layers[0],\n"
    "    layers.Dense(1, activation='sigmoid', kernel_initializer='zeros')])\n"
    "all_benign = np.ones(len(cancer.y_test), dtype=int)\n"
)


def overwrites_its_artifacts():
    """Submits an untrained model for ex02_3, then tries to swap in a trained one."""
    nb = _solution()
    i = _index(nb, 'check("ex02_3"')
    nb.cells[i].source = (
        "import glob, os, shutil, tempfile\n"
        + UNTRAINED_TWIN
        + "check('ex02_3', model=untrained, test_predictions=all_benign)\n"
        "# now overwrite every artifact we can find with the trained model\n"
        "for root in (os.getcwd(), tempfile.gettempdir()):\n"
        "    for path in glob.glob(os.path.join(root, '**', '*.keras'), recursive=True):\n"
        "        if not path.endswith('trained.keras'):\n"
        "            try:\n"
        "                shutil.copy('trained.keras', path)\n"
        "            except OSError:\n"
        "                pass\n"
        "open('gradebook.json', 'w').write('{\"score\": 100}')"
    )
    return nb


def kills_the_grader():
    """Kills its kernel's parent: the fork server, or a worker when kernels run usually."""
    return _insert_after(
        _solution(), 'check("ex02_1"', "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    )


LINGERER = """
import glob, os, shutil, sys, time
try:  # sandboxed, the pid file's folder is out of reach: carry on regardless
    open(sys.argv[1], "w").write(str(os.getpid()))
except OSError:
    pass
end = time.time() + 120
while time.time() < end:
    for path in glob.glob("/tmp/forge-*/**/*", recursive=True):
        try:
            if path.endswith(".keras"):
                shutil.copy(sys.argv[2], path)
            elif path.endswith(".json"):
                open(path, "w").write("1.0")
        except OSError:
            pass
    time.sleep(0.05)
"""


def lingers_and_tampers(pid_file: Path):
    """Submits an untrained model for ex02_3, then leaves a detached process to swap it."""
    nb = _solution()
    i = _index(nb, 'check("ex02_3"')
    nb.cells[i].source = (
        "import os, subprocess, sys\n" + UNTRAINED_TWIN + f"code = {LINGERER!r}\n"
        "subprocess.Popen([sys.executable, '-c', code, "
        f"{str(pid_file)!r}, os.path.abspath('trained.keras')], start_new_session=True,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print('lingerer started')\n"
        "check('ex02_3', model=untrained, test_predictions=all_benign)"
    )
    return nb


def missing_exercise_cells():
    """Deletes the cells of the last task, ex02_3."""
    nb = _solution()
    nb.cells = [
        c for c in nb.cells if "ex02_3" not in c.source and "test_predictions" not in c.source
    ]
    return nb


FIXTURES = {
    f.__name__: f
    for f in (
        correct, wrong_answer, raises_in_cell, infinite_loop, kills_its_kernel,
        kills_the_grader, prints_fake_results, replaces_check, overwrites_its_artifacts,
        lingers_and_tampers, missing_exercise_cells,
    )
}  # fmt: skip


def write_all(folder: Path) -> list[Path]:
    """Write every fixture (plus a file that is not a notebook) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in FIXTURES.items():
        path = folder / f"{name}.ipynb"
        nb = build(folder.parent / "lingerer.pid") if build is lingers_and_tampers else build()
        nbformat.write(copy.deepcopy(nb), path)
        paths.append(path)
    bad = folder / "not_a_notebook.ipynb"
    bad.write_text("My homework is in the attached PDF, sorry!\n")
    pdf = folder / "handed_in_a_pdf.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a notebook at all")
    paths += [bad, pdf]
    return paths
