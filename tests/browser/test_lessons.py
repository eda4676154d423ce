"""Every lesson, opened in a real JupyterLab 4 in headless Chromium, runs without an error.

This is what a learner does: open the notebook, Run All, look. A lesson passes when
every code cell ran, no output is an error and no stderr output holds a traceback
(TensorFlow's start-up lines on stderr are fine). Lessons that show the threshold
explorer must also redraw its confusion matrix when the slider moves: in a browser,
not just in the kernel.
"""

from __future__ import annotations

import json

import nbformat
import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the suite skips (see conftest.py)
    PlaywrightTimeout = TimeoutError

from tests.browser.conftest import LESSONS, failure_report
from tests.browser.page import ACTION_TIMEOUT_S

# Lesson 02 must show the explorer; any other lesson that calls it is checked too.
SLIDER_LESSONS = sorted(
    {"02_sequential_api.ipynb"}
    | {p.name for p in LESSONS if "threshold_explorer(" in p.read_text()}
)


@pytest.mark.parametrize("name", [p.name for p in LESSONS])
def test_lesson_runs_in_jupyterlab_without_errors(name, open_notebook, tmp_path):
    page = open_notebook(name, keep=name in SLIDER_LESSONS)  # its slider is tested next
    page.run_all()
    problems = page.problems()
    assert not problems, failure_report(page, problems, tmp_path)


def _move_threshold_slider(page, tmp_path, presses: int = 15) -> None:
    """Press ArrowRight on the slider; assert that value and matrix image both change."""
    handles = page.widget_slider("threshold")
    if handles.count() == 0:
        pytest.fail(
            failure_report(
                page,
                [
                    "no slider labelled 'threshold' in its outputs; the lesson should end a "
                    "cell with forge_course.widgets.threshold_explorer(...)"
                ],
                tmp_path,
            )
        )
    handle = handles.first
    # the Image next to the slider in the explorer's box
    image = page.page.locator(f'[id="{page.panel_id}"] .widget-vbox:has(.widget-slider) img')
    image = image.first
    before_value = float(handle.get_attribute("aria-valuenow"))
    before = page.image_fingerprint(image)
    handle.focus()
    for _ in range(presses):
        page.page.keyboard.press("ArrowRight")
    page.wait_idle()
    try:
        page.page.wait_for_function(
            "([node, src]) => node.src !== src", arg=[image.element_handle(), before[0]]
        )
    except PlaywrightTimeout:
        value = handle.get_attribute("aria-valuenow")
        pytest.fail(
            failure_report(
                page,
                [f"the slider moved from {before_value} to {value} but the confusion-matrix "
                 f"image was not redrawn within {ACTION_TIMEOUT_S} s"],
                tmp_path,
            )
        )  # fmt: skip
    page.wait_idle()
    after_value = float(handle.get_attribute("aria-valuenow"))
    after = page.image_fingerprint(image)
    assert after_value > before_value, f"the slider stayed at {before_value} after ArrowRight"
    assert after[1:] != before[1:], "the slider moved but the confusion-matrix image did not change"


@pytest.mark.parametrize("name", SLIDER_LESSONS)
def test_threshold_slider_redraws_the_confusion_matrix(name, open_notebook, kept_pages, tmp_path):
    page = kept_pages.pop(name, None)  # already run by the lesson test above
    if page is None:
        page = open_notebook(name)
        page.run_all()
    try:
        problems = page.problems()
        assert not problems, failure_report(page, problems, tmp_path)
        _move_threshold_slider(page, tmp_path)
    finally:
        page.close()


def _scratch_notebook() -> dict:
    """A notebook that shows the explorer, then 40 cells, then an error in its last cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = nbformat.v4.new_code_cell
    nb.cells = [
        code("from forge_course.widgets import live_frontend, threshold_explorer\n"
             "print('live frontend:', live_frontend())"),
        code("import numpy as np\n"
             "rng = np.random.default_rng(0)\n"
             "y = rng.integers(0, 2, 300)\n"
             "scores = np.clip(0.35 * y + 0.65 * rng.random(300), 0, 1)\n"
             "threshold_explorer(y, scores, ('malignant', 'benign'), positive=0)"),
        *(code(f"print('filler {i}')") for i in range(40)),
        code("raise ValueError('the last cell fails on purpose')"),
    ]  # fmt: skip
    return json.loads(nbformat.writes(nb))


def test_the_harness_sees_widgets_far_cells_and_errors(lab, open_notebook, tmp_path):
    """On a scratch notebook: live widget, every cell on the page, the error reported."""
    name = lab.add_notebook("scratch_threshold_explorer.ipynb", _scratch_notebook())
    page = open_notebook(name)
    page.run_all()
    state = page.state()
    assert state["cells"][0]["outputs"][0]["text"] == "live frontend: True\n"
    assert state["windowing"] == "none"  # overrides.json was read
    assert state["shown"] == state["total"] == 43
    problems = page.problems()
    assert len(problems) == 1 and "cell 42" in problems[0], problems
    assert "ValueError: the last cell fails on purpose" in problems[0]
    _move_threshold_slider(page, tmp_path)
