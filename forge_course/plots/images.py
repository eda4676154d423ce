"""Figures of an image classifier's mistakes: misclassified examples, accuracy per class.

:func:`show_mistakes` draws the examples a model got wrong, each titled with what it
predicted and what is true; :func:`plot_per_class_accuracy` draws one bar per class
beside the overall accuracy, so a class the model finds hard stands out.
:func:`per_class_accuracy` computes those bars' heights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forge_course.errors import WidgetInputError
from forge_course.plots.training import _classes

__all__ = ["per_class_accuracy", "plot_per_class_accuracy", "show_mistakes"]


def _labels(labels, n: int | None, who: str) -> np.ndarray:
    """Integer class labels, one per example, or a WidgetInputError saying what is wrong."""
    given = np.asarray(labels)
    if given.ndim != 1 or given.dtype.kind not in "biuf" or not np.all(given == np.round(given)):
        raise WidgetInputError(
            f"{who}: labels shaped {given.shape} ({given.dtype}); pass one class number per "
            "example, shape (n,)"
        )
    if n is not None and len(given) != n:
        raise WidgetInputError(f"{who}: {len(given)} labels for {n} examples; pass one per example")
    return given.astype(int)


def per_class_accuracy(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """The share of each class's examples predicted as that class (NaN for an absent class).

    Args:
        y_true: the true class number of each example.
        y_pred: predicted class numbers, or ``model.predict`` probabilities (one row per
            example; the likeliest class is taken).
        n_classes: how many classes there are (default: the largest label seen, plus one).
    """
    y_true = _labels(y_true, None, "per_class_accuracy")
    y_pred = _classes(y_pred, len(y_true))[: len(y_true)]
    k = n_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    totals = np.bincount(y_true, minlength=k)[:k].astype(float)
    right = np.bincount(y_true[y_pred == y_true], minlength=k)[:k].astype(float)
    return np.divide(right, totals, out=np.full(k, np.nan), where=totals > 0)


def plot_per_class_accuracy(
    y_true,
    y_pred,
    class_names: Sequence[str],
    *,
    title: str | None = None,
    ax=None,
):
    """Draw each class's accuracy as a bar, with the overall accuracy as a dashed line.

    Args:
        y_true: the true class number of each example.
        y_pred: predicted class numbers, or ``model.predict`` probabilities.
        class_names: one name per class, in label order (the bars' tick labels).
        title: an optional title.
        ax: the matplotlib Axes to draw into; by default a new pyplot figure.

    Returns:
        The Figure that holds the bars. Each bar is annotated with ``right/total``, since
        one mistake in a small class moves its bar a long way.
    """
    y_true = _labels(y_true, None, "plot_per_class_accuracy")
    names = [str(n) for n in class_names]
    if len(y_true) == 0:
        raise WidgetInputError("plot_per_class_accuracy got no examples")
    if y_true.max() >= len(names) or y_true.min() < 0:
        raise WidgetInputError(
            f"plot_per_class_accuracy: label {int(y_true.max())} but class_names has "
            f"{len(names)} names; pass one name per class"
        )
    y_pred = _classes(y_pred, len(y_true))[: len(y_true)]
    scores = per_class_accuracy(y_true, y_pred, len(names))
    totals = np.bincount(y_true, minlength=len(names))
    overall = float(np.mean(y_pred == y_true))
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 1.5), 3.2))
    else:
        fig = ax.figure
    xs = np.arange(len(names))
    heights = np.nan_to_num(scores)
    bars = ax.bar(xs, heights, color=["tab:red" if s < overall else "tab:blue" for s in heights])
    for bar, score, total in zip(bars, scores, totals, strict=True):
        text = "-" if np.isnan(score) else f"{round(score * total)}/{total}"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)  # fmt: skip
    ax.axhline(overall, color="grey", linestyle="--", linewidth=1, label=f"overall {overall:.3f}")
    low = float(np.nanmin(scores)) if np.any(~np.isnan(scores)) else 0.0
    ax.set_ylim(max(0.0, min(low, overall) - 0.05), 1.02)
    long = max(map(len, names)) > 3  # clothes' names slant; digits stand upright
    ax.set_xticks(xs, names, rotation=45 if long else 0, ha="right" if long else "center")
    ax.set_xlabel("true class")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_mistakes(
    images,
    labels,
    predictions,
    class_names: Sequence[str] | None = None,
    *,
    n: int = 16,
    cols: int = 8,
    title: str | None = None,
):
    """Show up to ``n`` misclassified images, each titled ``pred X`` over ``true Y``.

    Args:
        images: shaped ``(n, h, w)`` or ``(n, h, w, 1)``, raw pixels or scaled.
        labels: the true class number of each image.
        predictions: class numbers, or ``model.predict`` probabilities (one row per
            image; the likeliest class is taken).
        class_names: names to print instead of class numbers.
        n: show at most this many mistakes (the first ones, in the order given).
        cols: images per row.
        title: over the grid; by default it counts the mistakes.

    Returns:
        The Figure. With no mistakes at all it holds one empty panel that says so.
    """
    import matplotlib.pyplot as plt

    if isinstance(cols, bool) or not isinstance(cols, int | np.integer) or cols < 1:
        raise WidgetInputError(f"show_mistakes: cols={cols!r}; give a whole number, 1 or more")
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise WidgetInputError(f"show_mistakes needs images shaped (n, h, w), got {images.shape}")
    labels = _labels(labels, len(images), "show_mistakes")
    guesses = _classes(predictions, len(images))[: len(images)]
    wrong = np.flatnonzero(guesses != labels)

    def name(k: int) -> str:
        return str(class_names[k]) if class_names is not None else str(k)

    heading = title or f"{len(wrong)} of {len(images)} misclassified" + (
        f" (the first {n} shown)" if len(wrong) > n else ""
    )
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(3.0, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        fig.suptitle(heading, fontsize=10)
        return fig
    shown = wrong[:n]
    cols = min(cols, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown, strict=False):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"pred {name(guesses[i])}\ntrue {name(labels[i])}", fontsize=8, color="red")
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    return fig
