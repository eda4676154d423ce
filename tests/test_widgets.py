"""The threshold explorer: the counts it shows, when it goes live, and its errors."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from forge_course import widgets
from forge_course.errors import ForgeError
from forge_course.widgets import WidgetInputError, threshold_explorer, threshold_metrics

matplotlib.use("Agg")

# Six examples; scores are P(label 1). Label 0 is "malignant", the positive class.
Y = np.array([0, 0, 0, 1, 1, 1])
SCORES = np.array([0.1, 0.4, 0.6, 0.5, 0.8, 0.9])
NAMES = ("malignant", "benign")


def test_counts_precision_and_recall_at_one_threshold():
    m = threshold_metrics(Y, SCORES, 0.5, positive=0)
    # predicted 1 when score >= 0.5: [0, 0, 1, 1, 1, 1]
    assert m.matrix.tolist() == [[2, 1], [0, 3]]
    assert m.precision == 1.0  # both predicted malignant are malignant
    assert m.recall == pytest.approx(2 / 3)  # one malignant tumour slipped through
    benign = threshold_metrics(Y, SCORES, 0.5, positive=1)
    assert benign.matrix.tolist() == m.matrix.tolist()
    assert (benign.precision, benign.recall) == (0.75, 1.0)


def test_a_score_equal_to_the_threshold_is_predicted_label_1():
    assert threshold_metrics([1], [0.5], 0.5, positive=1).matrix.tolist() == [[0, 0], [0, 1]]
    assert threshold_metrics([1], [0.49], 0.5, positive=1).matrix.tolist() == [[0, 0], [1, 0]]


def test_raising_the_threshold_trades_precision_for_recall_of_label_0():
    low = threshold_metrics(Y, SCORES, 0.3)
    high = threshold_metrics(Y, SCORES, 0.7)
    assert high.recall > low.recall  # more malignant tumours caught ...
    assert high.precision < low.precision  # ... at the price of false alarms
    assert high.matrix.sum() == low.matrix.sum() == len(Y)


def test_no_predicted_positive_gives_zero_precision_not_a_crash():
    m = threshold_metrics(Y, SCORES, 0.0, positive=0)  # everything predicted label 1
    assert m.matrix.tolist() == [[0, 3], [0, 3]]
    assert (m.precision, m.recall) == (0.0, 0.0)


def test_accepts_keras_shapes_and_float_labels():
    m = threshold_metrics(Y.astype("float32")[:, None], SCORES[:, None].astype("float32"), 0.5)
    assert m.matrix.tolist() == [[2, 1], [0, 3]]
    assert m.to_dict() == {
        "threshold": 0.5,
        "positive": 0,
        "matrix": [[2, 1], [0, 3]],
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
    }
    assert m.summary(NAMES) == "threshold 0.50: malignant precision 1.000, recall 0.667"


@pytest.mark.parametrize(
    ("y", "scores", "kwargs", "message"),
    [
        (Y, SCORES[:5], {}, "y_true has 6 labels but scores has 5 values"),
        (Y, SCORES * 2, {}, r"probabilities in \[0, 1\], found 1.2 \(example 2\)"),
        (Y, np.full(6, np.nan), {}, "found nan"),
        (Y, np.ones((6, 2)) / 2, {}, r"probs\[:, 1\]"),
        ([0, 2, 1], [0.1, 0.2, 0.3], {}, r"only the labels 0 and 1, found 2 \(example 1\)"),
        ([], [], {}, "y_true is empty"),
        (np.eye(2), [0.1, 0.2], {}, "not one-hot"),
        (Y, SCORES, {"threshold": 1.5}, r"threshold must be in \[0, 1\], got 1.5"),
        (Y, SCORES, {"threshold": "high"}, "got 'high'"),
        (Y, SCORES, {"positive": 2}, "positive must be the label 0 or 1, got 2"),
    ],
)
def test_bad_input_names_the_value_and_what_to_do(y, scores, kwargs, message):
    with pytest.raises(WidgetInputError, match=message) as info:
        threshold_metrics(y, scores, **kwargs)
    assert isinstance(info.value, ForgeError) and isinstance(info.value, ValueError)
    with pytest.raises(WidgetInputError, match=message):
        threshold_explorer(y, scores, NAMES, interactive=False, **kwargs)


def test_explorer_needs_two_class_names():
    with pytest.raises(WidgetInputError, match="name the two labels 0 and 1, got 'ab'"):
        threshold_explorer(Y, SCORES, "ab", interactive=False)
    with pytest.raises(WidgetInputError, match="name the two labels"):
        threshold_explorer(Y, SCORES, ["a", "b", "c"], interactive=False)


def test_static_explorer_is_one_figure_titled_with_precision_and_recall():
    import matplotlib.pyplot as plt

    fig = threshold_explorer(Y, SCORES, NAMES, threshold=0.5, interactive=False)
    assert fig.axes[0].get_title() == ("threshold 0.50\nmalignant: precision 1.000, recall 0.667")
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert cells == ["2\n67%", "1\n33%", "0\n0%", "3\n100%"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(NAMES)
    # detached from pyplot, so a notebook shows it once (as the cell's value)
    assert fig.number not in plt.get_fignums()


def test_interactive_explorer_redraws_the_matrix_when_the_slider_moves():
    box = threshold_explorer(Y, SCORES, NAMES, threshold=0.5, interactive=True)
    slider, image = box.children
    assert (slider.description, slider.min, slider.max, slider.value) == (
        "threshold", 0.0, 1.0, 0.5,
    )  # fmt: skip
    first = bytes(image.value)
    assert first.startswith(b"\x89PNG")
    slider.value = 0.75
    assert bytes(image.value) != first and bytes(image.value).startswith(b"\x89PNG")
    slider.value = 0.5
    assert bytes(image.value) == first  # the drawing depends on the threshold alone


def test_live_frontend_needs_a_session_name_set_by_the_server(monkeypatch):
    monkeypatch.setattr(widgets, "_in_kernel", lambda: True)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert not widgets.live_frontend()  # papermill and nbval set none
    monkeypatch.setenv("JPY_SESSION_NAME", "/course/notebooks/02_sequential_api.ipynb")
    monkeypatch.setattr(widgets, "_parent_session_name", lambda: "")
    assert widgets.live_frontend()  # JupyterLab set it for this kernel
    # papermill started from a JupyterLab kernel: the kernel inherited its parent's value
    monkeypatch.setattr(
        widgets, "_parent_session_name", lambda: "/course/notebooks/02_sequential_api.ipynb"
    )
    assert not widgets.live_frontend()
    monkeypatch.setattr(widgets, "_in_kernel", lambda: False)
    monkeypatch.setattr(widgets, "_parent_session_name", lambda: "")
    assert not widgets.live_frontend()  # a script or terminal IPython draws no widgets


@pytest.mark.parametrize(
    ("parent", "child", "seen"),
    [("/lab/a.ipynb", None, "/lab/a.ipynb"), (None, "/lab/b.ipynb", "")],
)
def test_a_kernel_reads_its_parent_process_session_name(parent, child, seen):
    """Inherited (papermill under a Lab kernel) versus set by the server for the kernel."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    inner = "from forge_course.widgets import _parent_session_name as p; print(repr(p()))"
    outer = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ)\n"
        f"if {child!r}: env['JPY_SESSION_NAME'] = {child!r}\n"
        f"sys.exit(subprocess.run([sys.executable, '-c', {inner!r}], env=env).returncode)"
    )
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    if parent:
        env["JPY_SESSION_NAME"] = parent
    out = subprocess.run(
        [sys.executable, "-c", outer], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == repr(seen)


def test_explorer_defaults_to_static_outside_a_kernel(monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/somewhere/x.ipynb")
    fig = threshold_explorer(Y, SCORES, NAMES)  # pytest is no kernel
    assert hasattr(fig, "savefig")


def test_public_names_exist():
    for name in widgets.__all__:
        assert hasattr(widgets, name), name
