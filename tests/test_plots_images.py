"""Figures of an image classifier's mistakes: the panels, titles, bars and labels they must have."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from forge_course import plots
from forge_course.errors import WidgetInputError

matplotlib.use("Agg")

NAMES = ["zero", "one", "two"]


def test_show_mistakes_shows_only_the_wrong_ones_titled_pred_over_true():
    images = np.arange(5 * 4 * 4).reshape(5, 4, 4)
    labels = [0, 1, 2, 1, 0]
    fig = plots.show_mistakes(images, labels, [0, 2, 2, 0, 0], NAMES)
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == ["pred two\ntrue one", "pred zero\ntrue one"]
    assert all(ax.title.get_color() == "red" for ax in drawn)
    # the panels hold the misclassified images themselves, in the order given
    assert np.array_equal(drawn[0].images[0].get_array(), images[1])
    assert np.array_equal(drawn[1].images[0].get_array(), images[3])
    assert fig._suptitle.get_text() == "2 of 5 misclassified"


def test_show_mistakes_takes_probabilities_limits_n_and_says_how_many_it_left_out():
    labels = np.zeros(6, dtype=int)
    probs = np.tile([0.1, 0.9, 0.0], (6, 1))  # every example predicted as class 1
    fig = plots.show_mistakes(np.zeros((6, 8, 8, 1)), labels, probs, n=4, cols=2)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    assert fig._suptitle.get_text() == "6 of 6 misclassified (the first 4 shown)"
    assert fig.axes[0].get_title() == "pred 1\ntrue 0"  # class numbers without names


def test_show_mistakes_with_no_mistakes_says_so():
    fig = plots.show_mistakes(np.zeros((3, 4, 4)), [0, 1, 2], [0, 1, 2], NAMES)
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == ["no mistakes"]
    assert fig._suptitle.get_text() == "0 of 3 misclassified"


@pytest.mark.parametrize(
    "args, problem",
    [
        ((np.zeros((3, 4)), [0, 1, 2], [0, 1, 2]), r"shaped \(n, h, w\)"),
        ((np.zeros((3, 4, 4)), [0, 1], [0, 1, 2]), "2 labels for 3 examples"),
        ((np.zeros((3, 4, 4)), [0.5, 1, 2], [0, 1, 2]), "one class number per example"),
        ((np.zeros((3, 4, 4)), [0, 1, 2], [0, 1]), "2 predictions for 3 images"),
    ],
)
def test_show_mistakes_says_what_it_expects(args, problem):
    with pytest.raises(WidgetInputError, match=problem):
        plots.show_mistakes(*args)
    with pytest.raises(WidgetInputError, match="cols=0"):
        plots.show_mistakes(np.zeros((3, 4, 4)), [0, 1, 2], [1, 1, 1], cols=0)


def test_per_class_accuracy_counts_each_class_and_marks_absent_ones():
    scores = plots.per_class_accuracy([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], n_classes=4)
    assert scores[:3].tolist() == [0.5, pytest.approx(2 / 3), 1.0]
    assert np.isnan(scores[3])


def test_per_class_bars_have_class_ticks_counts_and_the_overall_line():
    y_true = [0, 0, 1, 1, 1, 2]
    fig = plots.plot_per_class_accuracy(y_true, [0, 1, 1, 1, 0, 2], NAMES, title="test split")
    ax = fig.axes[0]
    assert [round(p.get_height(), 3) for p in ax.patches] == [0.5, 0.667, 1.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.texts] == ["1/2", "2/3", "1/1"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true class", "accuracy")
    assert ax.get_title() == "test split"
    (overall,) = [line for line in ax.get_lines() if line.get_label().startswith("overall")]
    assert overall.get_label() == "overall 0.667" and overall.get_ydata()[0] == pytest.approx(4 / 6)
    # bars below the overall accuracy stand out in another colour
    assert ax.patches[0].get_facecolor() != ax.patches[2].get_facecolor()


def test_per_class_bars_draw_into_a_given_axes_and_check_their_input():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    probs = np.eye(3)[[0, 1, 2, 2]]  # model.predict rows
    assert plots.plot_per_class_accuracy([0, 1, 2, 1], probs, NAMES, ax=ax) is fig
    assert [round(p.get_height(), 2) for p in ax.patches] == [1.0, 0.5, 1.0]
    with pytest.raises(WidgetInputError, match="label 3 but class_names has 3 names"):
        plots.plot_per_class_accuracy([0, 3], [0, 3], NAMES)
    with pytest.raises(WidgetInputError, match="no examples"):
        plots.plot_per_class_accuracy([], [], NAMES)
