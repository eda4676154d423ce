"""LivePlot: one static figure without a front end, one widget redrawn in place with one."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from forge_course.callbacks import LivePlot  # noqa: E402
from forge_course.callbacks import live as live_module  # noqa: E402
from forge_course.errors import WidgetInputError  # noqa: E402

EPOCHS = 4


def _fit(callback, epochs: int = EPOCHS, validation: bool = True):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    split = 0.25 if validation else 0.0
    model.fit(x, y, validation_split=split, epochs=epochs, batch_size=16, verbose=0,
              callbacks=[callback])  # fmt: skip
    return model


@pytest.fixture
def shown(monkeypatch):
    """What LivePlot displays, in order, instead of a notebook's output area."""
    seen: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj, *a, **k: seen.append(obj))
    monkeypatch.setattr(live_module, "_in_kernel", lambda: True)
    return seen


def test_static_path_draws_exactly_one_figure_with_labelled_panels(shown):
    before = plt.get_fignums()
    plot = LivePlot(title="tiny", interactive=False)
    _fit(plot)
    assert plot.widget is None and plot.redraws == 0
    assert len(shown) == 1, "one picture, when training ends"
    assert type(shown[0]).__name__ == "Image" and shown[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == before, "no pyplot figure left behind"
    axes = plot.figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy"]
    assert {ax.get_xlabel() for ax in axes} == {"epoch"}
    assert plot.figure.texts[0].get_text() == "tiny"  # the suptitle
    for ax in axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert len(lines["train"].get_xdata()) == len(lines["validation"].get_xdata()) == EPOCHS
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
    assert set(plot.history) == {"accuracy", "loss", "val_accuracy", "val_loss"}


def test_live_path_updates_one_widget_in_place_across_epochs(shown):
    import ipywidgets

    figures_before = plt.get_fignums()
    pictures: list[bytes] = []
    plot = LivePlot("loss", interactive=True, min_interval=0)
    keras_callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: pictures.append(plot.widget.value)
    )
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], validation_split=0.25, epochs=EPOCHS, verbose=0,
              callbacks=[plot, keras_callback])  # fmt: skip
    assert len(shown) == 1 and shown[0] is plot.widget, "one widget, displayed once"
    assert isinstance(plot.widget, ipywidgets.Image)
    assert len(pictures) == EPOCHS and all(p[:4] == b"\x89PNG" for p in pictures)
    assert len(set(pictures)) == EPOCHS, "each epoch drew a new picture into the same widget"
    assert plot.redraws == EPOCHS + 1  # each epoch, and once more when training ends
    assert plot.figure is None
    assert plt.get_fignums() == figures_before, "no figure opened per epoch"


def test_live_path_skips_redraws_faster_than_min_interval_but_draws_the_last(shown):
    plot = LivePlot(interactive=True, min_interval=3600)
    _fit(plot)
    assert plot.redraws == 2  # the first epoch, then the end of training
    assert len(shown) == 1


def test_none_asks_live_frontend(shown, monkeypatch):
    monkeypatch.setattr(live_module, "live_frontend", lambda: False)
    plot = LivePlot()
    _fit(plot, epochs=2)
    assert plot.figure is not None and plot.widget is None
    monkeypatch.setattr(live_module, "live_frontend", lambda: True)
    _fit(plot, epochs=2)
    assert plot.figure is None and plot.widget is not None
    assert len(plot.history["loss"]) == 2, "a second fit() starts a fresh history"


def test_without_validation_the_panels_have_one_curve(shown):
    plot = LivePlot(interactive=False)
    _fit(plot, validation=False)
    assert [line.get_label() for line in plot.figure.axes[0].get_lines()] == ["train"]


def test_outside_a_kernel_nothing_is_shown_but_the_figure_is_kept(monkeypatch):
    seen: list = []
    monkeypatch.setattr("IPython.display.display", lambda obj, *a, **k: seen.append(obj))
    plot = LivePlot(interactive=False)
    _fit(plot, epochs=2)
    assert seen == [] and plot.figure is not None


def test_learning_rate_logs_are_not_curves(shown):
    plot = LivePlot(interactive=False)
    plot.history = {"loss": [1.0, 0.5], "learning_rate": [0.1, 0.1], "val_loss": [1.1, 0.7]}
    assert [ax.get_ylabel() for ax in plot.draw().axes] == ["loss"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": []}, "give metric names"),
        ({"metrics": [3]}, "give metric names"),
        ({"min_interval": -1}, "min_interval=-1"),
    ],
)
def test_bad_arguments_say_what_to_pass(kwargs, message):
    with pytest.raises(WidgetInputError, match=message):
        LivePlot(**kwargs)


def test_an_unknown_metric_names_the_logged_ones(shown):
    with pytest.raises(WidgetInputError, match=r"no metric 'auc'.*'loss'"):
        _fit(LivePlot("auc", interactive=False), epochs=1)
