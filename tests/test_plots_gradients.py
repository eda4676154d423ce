"""plot_gradient_norms: one heatmap per model, layers by epochs, one shared log scale."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import LogNorm

from forge_course import plots
from forge_course.errors import WidgetInputError

matplotlib.use("Agg")

SIGMOID = {
    "layer_names": ["dense", "dense_1", "dense_2"],
    "epochs": [0, 1],
    "norms": [[1e-6, 1e-3, 0.5], [2e-6, 2e-3, 0.4]],
}
RELU = {
    "layer_names": ["dense_3", "dense_4", "dense_5"],
    "epochs": [0, 1],
    "norms": [[0.3, 0.4, 0.5], [0.2, 0.3, 0.1]],
}


class FakeLogger:  # the attributes plot_gradient_norms reads from a GradientNormLogger
    def __init__(self, record):
        self.layer_names, self.epochs = record["layer_names"], record["epochs"]
        self.norms = np.asarray(record["norms"])


def _images(fig):
    return [im for ax in fig.axes for im in ax.get_images()]


def test_one_panel_per_model_sharing_one_log_scale():
    fig = plots.plot_gradient_norms({"sigmoid": SIGMOID, "relu": FakeLogger(RELU)}, title="t")
    images = _images(fig)
    assert len(images) == 2
    for im in images:
        assert isinstance(im.norm, LogNorm)
        assert im.norm.vmin == pytest.approx(1e-6) and im.norm.vmax == pytest.approx(0.5)
    # rows are layers (first at the top), columns are epochs
    assert images[0].get_array().shape == (3, 2)
    assert images[0].get_array()[0, 1] == pytest.approx(2e-6)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles[0].startswith("sigmoid") and "first/last 5.0e-06" in titles[0]
    assert "first/last 2.0e+00" in titles[1]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["1", "2", "3"]
    assert any("log scale" in ax.get_ylabel() for ax in fig.axes)  # the colour bar
    assert fig._suptitle.get_text() == "t"


def test_a_single_logger_or_its_dict_draws_one_panel_and_zero_is_masked():
    record = dict(SIGMOID, norms=[[0.0, 1e-3, 0.5], [2e-6, 2e-3, 0.4]])
    for source in (record, FakeLogger(record)):
        fig = plots.plot_gradient_norms(source)
        (image,) = _images(fig)
        assert np.ma.is_masked(image.get_array()[0, 0])
        assert image.norm.vmin == pytest.approx(2e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({}, "at least one"),
        ({"a": "text"}, "expected a GradientNormLogger"),
        ({"a": {"norms": [1.0, 2.0]}}, "records x layers"),
        ({"a": {"norms": [[-1.0, 2.0]]}}, "non-negative"),
        ({"a": {"norms": [[0.0, 0.0]]}}, "every gradient norm is zero"),
        ({"a": dict(SIGMOID, layer_names=["one"])}, "3 layers of norms but 1 layer names"),
    ],
)
def test_what_it_cannot_draw_is_a_clear_error(bad, message):
    with pytest.raises(WidgetInputError, match=message):
        plots.plot_gradient_norms(bad)
