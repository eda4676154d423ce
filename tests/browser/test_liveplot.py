"""LivePlot in a real JupyterLab: one image that redraws in place while fit() runs.

A scratch notebook trains a tiny model for a few slowed-down epochs with a LivePlot. While
it runs, the browser must show the learning-curve image and then a *different* picture in
the same place; when it ends there is still exactly one image in the cell's output (no
pile-up of figures), and the kernel reports a live widget, one redraw per epoch plus the
last, and no static figure.
"""

from __future__ import annotations

import json

import nbformat
import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the suite skips (see conftest.py)
    PlaywrightTimeout = TimeoutError

from tests.browser.conftest import failure_report
from tests.browser.page import _JS_RUN_ALL

EPOCHS = 6


def _liveplot_notebook() -> dict:
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = nbformat.v4.new_code_cell
    nb.cells = [
        code("from forge_course.widgets import live_frontend\n"
             "print('live frontend:', live_frontend())"),
        code("import time\n"
             "import keras\n"
             "import numpy as np\n"
             "from forge_course.callbacks import LivePlot\n\n"
             "keras.utils.set_random_seed(0)\n"
             "x = np.random.default_rng(0).normal(size=(64, 3)).astype('float32')\n"
             "y = (x[:, 0] > 0).astype('float32')\n"
             "model = keras.Sequential([keras.Input((3,)),\n"
             "                          keras.layers.Dense(1, activation='sigmoid')])\n"
             "model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])\n"
             "live = LivePlot(min_interval=0)\n"
             "slow = keras.callbacks.LambdaCallback(\n"
             "    on_epoch_end=lambda epoch, logs: time.sleep(1.5))  # time to look\n"
             f"model.fit(x, y, validation_split=0.25, epochs={EPOCHS}, verbose=0,\n"
             "          callbacks=[live, slow])\n"
             "None"),
        code("print('redraws:', live.redraws, '| widget:', type(live.widget).__name__,"
             " '| figure:', live.figure)"),
    ]  # fmt: skip
    return json.loads(nbformat.writes(nb))


def test_liveplot_redraws_one_image_in_place_during_fit(lab, open_notebook, tmp_path):
    name = lab.add_notebook("scratch_liveplot.ipynb", _liveplot_notebook())
    page = open_notebook(name)
    images = page.page.locator(f'[id="{page.panel_id}"] img.widget-image')
    page.page.evaluate(_JS_RUN_ALL, page.panel_id)  # Run All, without waiting for it
    try:
        images.first.wait_for(state="visible", timeout=180_000)  # kernel start, TensorFlow import
        first = page.image_fingerprint(images.first)
        page.page.wait_for_function(
            "([node, src]) => node.src !== src",
            arg=[images.first.element_handle(), first[0]],
            timeout=60_000,
        )
        second = page.image_fingerprint(images.first)
    except PlaywrightTimeout:
        pytest.fail(
            failure_report(
                page,
                ["the LivePlot image did not appear, or was not redrawn during fit()"],
                tmp_path,
            )
        )
    page.wait_idle(timeout=300)
    problems = page.problems()
    assert not problems, failure_report(page, problems, tmp_path)
    assert second[1:] != first[1:], "the picture was replaced by an identical one"
    assert images.count() == 1, f"{images.count()} images: figures piled up instead of redrawing"
    last = page.image_fingerprint(images.first)
    assert last[1:] != first[1:], "the final picture is still the first epoch's"
    outputs = [cell["outputs"] for cell in page.state()["cells"]]
    assert outputs[0][0]["text"] == "live frontend: True\n"
    assert outputs[2][0]["text"] == f"redraws: {EPOCHS + 1} | widget: Image | figure: None\n"
