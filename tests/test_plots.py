"""Lesson figures: the right panels, curves and titles, and clear errors."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from forge_course import plots
from forge_course.errors import WidgetInputError

matplotlib.use("Agg")

HISTORY = {
    "loss": [0.9, 0.6, 0.4, 0.3],
    "accuracy": [0.5, 0.7, 0.8, 0.9],
    "val_loss": [0.8, 0.5, 0.55, 0.6],
    "val_accuracy": [0.6, 0.75, 0.74, 0.73],
}


def test_history_draws_one_panel_per_metric_with_train_and_validation():
    fig = plots.plot_history(HISTORY, title="run 1")
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy"]
    labels = [
        line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")
    ]
    assert labels == ["train", "validation"]
    # the best validation loss is at epoch 2, and the plot marks it
    assert any("best 0.500" in t.get_text() for t in axes[0].texts)
    assert fig._suptitle.get_text() == "run 1"


def test_history_accepts_a_keras_history_object():
    class FakeHistory:  # the only attribute plot_history reads from keras.callbacks.History
        history = {"loss": [1.0, 0.5]}

    fig = plots.plot_history(FakeHistory())
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1


def test_history_errors_say_what_was_wrong():
    with pytest.raises(TypeError, match="History that model.fit"):
        plots.plot_history([1, 2, 3])
    with pytest.raises(KeyError, match="no metric 'auc'"):
        plots.plot_history(HISTORY, metrics=["auc"])


def test_show_images_marks_wrong_predictions_in_red():
    images = np.zeros((3, 8, 8, 1))
    fig = plots.show_images(images, [0, 1, 2], ["a", "b", "c"], predictions=[0, 2, 2])
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes[:3]]
    assert titles[0] == ("a", "black")
    assert titles[1][0].startswith("c") and titles[1][1] == "red"
    with pytest.raises(ValueError, match=r"shaped \(n, h, w\)"):
        plots.show_images(np.zeros((4, 4)))


def test_history_takes_a_single_metric_name():
    fig = plots.plot_history(HISTORY, metrics="loss")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss"]
    with pytest.raises(KeyError, match="no metric 'auc'"):
        plots.plot_history(HISTORY, metrics="auc")


def titles(fig, n=3):
    return [(ax.get_title(), ax.title.get_color()) for ax in fig.axes[:n]]


def test_show_images_takes_probabilities_as_predictions():
    images = np.zeros((3, 8, 8))
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.2, 0.1, 0.7]], dtype="float32")
    fig = plots.show_images(images, [0, 1, 2], ["a", "b", "c"], predictions=probs)
    assert titles(fig) == titles(
        plots.show_images(images, [0, 1, 2], ["a", "b", "c"], predictions=[0, 2, 2])
    )
    binary = plots.show_images(images, [0, 1, 1], predictions=np.array([[0.2], [0.8], [0.3]]))
    assert [t for t, _ in titles(binary)] == ["0", "1", "0\n(true 1)"]
    assert titles(binary)[2][1] == "red"


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"cols": 0}, "cols=0; give a whole number, 1 or more"),
        ({"cols": -2}, "cols=-2"),
        ({"predictions": [0.5, 1.5, 2.5]}, "not whole numbers; pass class numbers"),
        ({"predictions": np.zeros((3, 2, 2))}, r"predictions shaped \(3, 2, 2\)"),
        ({"predictions": ["a", "b", "c"]}, "predictions shaped"),
        ({"predictions": [0, 1]}, "2 predictions for 3 images"),
    ],
)
def test_show_images_says_what_it_expects(kwargs, problem):
    with pytest.raises(WidgetInputError, match=problem):
        plots.show_images(np.zeros((3, 8, 8)), [0, 1, 2], **kwargs)
    with pytest.raises(WidgetInputError, match="2 labels for 3 images"):
        plots.show_images(np.zeros((3, 8, 8)), [0, 1])


def test_confusion_matrix_shows_counts_and_row_shares():
    fig = plots.plot_confusion_matrix([[8, 2], [0, 5]], ["cat", "dog"], title="test split")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["8\n80%", "2\n20%", "0\n0%", "5\n100%"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "test split")


def test_confusion_matrix_draws_into_a_given_axes_and_checks_its_input():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plots.plot_confusion_matrix(np.zeros((3, 3)), "abc", ax=ax) is fig
    assert [t.get_text() for t in ax.texts][:2] == ["0\n0%", "0\n0%"]  # empty rows: no NaN
    with pytest.raises(ValueError, match=r"square counts shaped \(k, k\), got \(2, 3\)"):
        plots.plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="2 classes but class_names has 3"):
        plots.plot_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"])
