"""Interactive widgets the lessons use, with a static fallback for headless runs.

A widget needs a live frontend to draw it. Under papermill, nbval or the grader no
frontend is attached, so each widget here draws one static figure instead. Whether to
go live is decided by :func:`live_frontend` (see its docstring); every widget also takes
``interactive=True`` or ``False`` to override the guess.

The numbers a widget shows come from a pure function (:func:`threshold_metrics`) that
a test or a learner can call directly.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forge_course.errors import WidgetInputError

__all__ = [
    "ThresholdMetrics",
    "WidgetInputError",
    "live_frontend",
    "threshold_explorer",
    "threshold_metrics",
]


@dataclass(frozen=True)
class ThresholdMetrics:
    """What a decision threshold does to a binary classifier's predictions.

    Attributes:
        threshold: an example is predicted label 1 when its score is ``>= threshold``.
        positive: the label (0 or 1) whose precision and recall are reported.
        matrix: 2x2 counts; row = true label, column = predicted label.
        precision: of the examples predicted ``positive``, the fraction that are
            (0.0 when none is predicted ``positive``, as scikit-learn reports it).
        recall: of the examples that are ``positive``, the fraction predicted so
            (0.0 when there are none).
    """

    threshold: float
    positive: int
    matrix: np.ndarray
    precision: float
    recall: float

    def to_dict(self) -> dict:
        """Return plain Python values, ready for JSON."""
        return {
            "threshold": self.threshold,
            "positive": self.positive,
            "matrix": self.matrix.tolist(),
            "precision": self.precision,
            "recall": self.recall,
        }

    def summary(self, class_names: Sequence[str] | None = None) -> str:
        """Return one line: threshold, then precision and recall of the positive class."""
        name = class_names[self.positive] if class_names else f"label {self.positive}"
        return (
            f"threshold {self.threshold:.2f}: {name} precision {self.precision:.3f}, "
            f"recall {self.recall:.3f}"
        )


def _labels(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise WidgetInputError(
            f"y_true must hold one label per example, shaped (n,), got shape {y.shape}; "
            "pass the 0/1 labels, not one-hot rows"
        )
    if y.size == 0:
        raise WidgetInputError("y_true is empty; pass the labels of at least one example")
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise WidgetInputError(f"y_true must hold the numbers 0 and 1, got dtype {y.dtype}")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise WidgetInputError(
            f"y_true must hold only the labels 0 and 1, found {y[bad[0]].item()!r} "
            f"(example {bad[0]}); this widget is for binary classifiers"
        )
    return y.astype(int)


def _scores(scores, n: int) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim == 2 and s.shape[1] == 1:  # what model.predict() returns for one sigmoid
        s = s[:, 0]
    if s.ndim != 1:
        raise WidgetInputError(
            f"scores must hold one probability of label 1 per example, shaped (n,) or "
            f"(n, 1), got shape {s.shape}; for a softmax output pass probs[:, 1]"
        )
    if len(s) != n:
        raise WidgetInputError(
            f"y_true has {n} labels but scores has {len(s)} values; "
            "pass the scores of the same examples, in the same order"
        )
    if not np.issubdtype(s.dtype, np.number):
        raise WidgetInputError(f"scores must be numbers, got dtype {s.dtype}")
    s = s.astype(float)
    outside = np.flatnonzero(~((s >= 0.0) & (s <= 1.0)))  # also catches NaN
    if outside.size:
        raise WidgetInputError(
            f"scores must be probabilities in [0, 1], found {s[outside[0]].item()!r} "
            f"(example {outside[0]}); "
            "pass the sigmoid output (or apply keras.ops.sigmoid to logits first)"
        )
    return s


def _check_threshold(threshold) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise WidgetInputError(f"threshold must be a number in [0, 1], got {threshold!r}") from None
    if not 0.0 <= t <= 1.0:
        raise WidgetInputError(f"threshold must be in [0, 1], got {threshold!r}")
    return t


def _check_positive(positive) -> int:
    if positive not in (0, 1) or isinstance(positive, bool):
        raise WidgetInputError(f"positive must be the label 0 or 1, got {positive!r}")
    return int(positive)


def _metrics(y: np.ndarray, s: np.ndarray, threshold: float, positive: int) -> ThresholdMetrics:
    predicted = (s >= threshold).astype(int)
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (y, predicted), 1)
    true_pos = int(matrix[positive, positive])
    predicted_pos = int(matrix[:, positive].sum())
    actual_pos = int(matrix[positive, :].sum())
    return ThresholdMetrics(
        threshold=threshold,
        positive=positive,
        matrix=matrix,
        precision=true_pos / predicted_pos if predicted_pos else 0.0,
        recall=true_pos / actual_pos if actual_pos else 0.0,
    )


def threshold_metrics(
    y_true, scores, threshold: float = 0.5, *, positive: int = 0
) -> ThresholdMetrics:
    """Count a binary classifier's decisions at one threshold, with precision and recall.

    Args:
        y_true: the true labels, 0 or 1, shaped ``(n,)`` or ``(n, 1)``.
        scores: the model's probability of label 1 per example, in [0, 1], shaped
            ``(n,)`` or ``(n, 1)`` (what ``model.predict`` returns for one sigmoid unit).
        threshold: predict label 1 when the score is at or above it.
        positive: the label whose precision and recall are computed.

    Returns:
        The confusion counts (row = true, column = predicted), precision and recall.

    Raises:
        WidgetInputError: the labels or scores are malformed, their lengths differ, a score is
            outside [0, 1], or ``threshold``/``positive`` is out of range.
    """
    y = _labels(y_true)
    return _metrics(
        y, _scores(scores, len(y)), _check_threshold(threshold), _check_positive(positive)
    )


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _parent_session_name() -> str | None:
    """Return the parent process's ``JPY_SESSION_NAME`` ("" when unset, None if unreadable)."""
    try:
        import psutil

        return psutil.Process(os.getppid()).environ().get("JPY_SESSION_NAME", "")
    except Exception:  # no psutil, no permission, a sandbox hiding its parent, ...
        return None


def live_frontend() -> bool:
    """Guess whether a live Jupyter frontend will draw this kernel's widgets.

    True when all of these hold:

    * we run in an IPython kernel (not a script or a terminal IPython);
    * the kernel was started by a Jupyter server (JupyterLab, Notebook 7,
      JupyterHub): ``jupyter_server`` sets ``JPY_SESSION_NAME`` to the notebook's
      path in the environment of each kernel it starts; papermill, nbval (through
      nbclient) and the course grader start kernels with ``jupyter_client`` directly,
      which does not;
    * the variable was not merely inherited: a papermill or nbval run launched *from*
      a JupyterLab kernel passes its environment on, so when the parent process
      carries the same ``JPY_SESSION_NAME`` the kernel is not the server's.

    A frontend that sets no ``JPY_SESSION_NAME`` gets static figures; pass
    ``interactive=True`` to a widget there.
    """
    session = os.environ.get("JPY_SESSION_NAME")
    if not session or not _in_kernel():
        return False
    return _parent_session_name() != session


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


def threshold_explorer(
    y_true,
    scores,
    class_names: Sequence[str],
    *,
    positive: int = 0,
    threshold: float = 0.5,
    interactive: bool | None = None,
):
    """Show how a decision threshold trades precision for recall, with a slider.

    Draws the confusion matrix of ``scores >= threshold`` titled with the precision and
    recall of class ``positive``. With a live frontend it is a ``threshold`` slider
    (0 to 1) above the matrix, redrawn each time the slider moves; without one (papermill,
    nbval, a script) it is one static figure at ``threshold``.

    Put the call on the last line of a cell: the returned widget or figure displays as
    the cell's value (once; the static figure is detached from pyplot).

    Args:
        y_true: the true labels, 0 or 1, shaped ``(n,)`` or ``(n, 1)``.
        scores: each example's probability of label 1, in [0, 1] (``model.predict``).
        class_names: the names of labels 0 and 1, e.g. ``("malignant", "benign")``.
        positive: the label whose precision and recall the title reports.
        threshold: where the slider starts, and the threshold of the static figure.
        interactive: True for the slider, False for the static figure, None (default)
            to decide with :func:`live_frontend`.

    Returns:
        An ``ipywidgets.VBox`` (slider, then the matrix as an ``ipywidgets.Image``)
        when interactive, else the matplotlib ``Figure``.

    Raises:
        WidgetInputError: the labels, scores, class names, ``positive`` or ``threshold`` are
            unusable; the message names the bad value.
    """
    y = _labels(y_true)
    s = _scores(scores, len(y))
    start = _check_threshold(threshold)
    positive = _check_positive(positive)
    names = _class_names(class_names)
    if interactive is None:
        interactive = live_frontend()
    if not interactive:
        return _static_figure(y, s, start, positive, names)
    return _slider_widget(y, s, start, positive, names)


def _class_names(class_names) -> tuple[str, str]:
    if isinstance(class_names, str) or len(class_names) != 2:
        raise WidgetInputError(
            f"class_names must name the two labels 0 and 1, got {class_names!r}; "
            'e.g. ("malignant", "benign")'
        )
    return str(class_names[0]), str(class_names[1])


def _draw(fig_or_ax, metrics: ThresholdMetrics, names: tuple[str, str]):
    from forge_course.plots import plot_confusion_matrix

    return plot_confusion_matrix(
        metrics.matrix,
        names,
        title=f"threshold {metrics.threshold:.2f}\n{names[metrics.positive]}: "
        f"precision {metrics.precision:.3f}, recall {metrics.recall:.3f}",
        ax=fig_or_ax,
    )


def _static_figure(y, s, threshold, positive, names):
    import matplotlib.pyplot as plt

    fig = _draw(None, _metrics(y, s, threshold, positive), names)
    plt.close(fig)  # shown once, as the cell's value, not again by the inline backend
    return fig


def _render(y, s, threshold, positive, names) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.6), dpi=100)  # not pyplot's: nothing global, nothing to close
    _draw(fig.add_subplot(), _metrics(y, s, threshold, positive), names)
    return _png(fig)


def _slider_widget(y, s, threshold, positive, names):
    import ipywidgets as widgets

    slider = widgets.FloatSlider(
        value=threshold,
        min=0.0,
        max=1.0,
        step=0.01,
        description="threshold",
        continuous_update=False,  # redraw when the slider is released, not on every pixel
        readout_format=".2f",
    )
    image = widgets.Image(value=_render(y, s, threshold, positive, names), format="png")

    def redraw(change) -> None:
        image.value = _render(y, s, float(change["new"]), positive, names)

    slider.observe(redraw, names="value")
    return widgets.VBox([slider, image])
