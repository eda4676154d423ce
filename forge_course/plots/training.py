"""Figures of training and evaluation: learning curves, image grids, a confusion matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from forge_course.errors import WidgetInputError

__all__ = ["plot_confusion_matrix", "plot_history", "show_images"]


def _history_dict(history) -> dict[str, list[float]]:
    hist = getattr(history, "history", history)
    if not isinstance(hist, Mapping) or not hist:
        raise TypeError(
            "plot_history needs the History that model.fit() returns (or its .history "
            f"dict), got {type(history).__name__}"
        )
    return {k: [float(v) for v in vals] for k, vals in hist.items()}


def plot_history(history, *, metrics: Sequence[str] | None = None, title: str | None = None):
    """Draw training and validation curves, one panel per metric.

    Args:
        history: what ``model.fit()`` returned, or its ``.history`` dictionary.
        metrics: which metrics to draw, one name or a list (default: every metric that
            is not ``val_*``).
        title: an optional title over the panels.

    The best validation epoch of each panel is marked, since that is the model you
    would keep.
    """
    import matplotlib.pyplot as plt

    hist = _history_dict(history)
    if isinstance(metrics, str):
        metrics = [metrics]
    names = list(metrics) if metrics else [k for k in hist if not k.startswith("val_")]
    unknown = [m for m in names if m not in hist]
    if unknown:
        raise KeyError(f"no metric {unknown[0]!r} in this history; it has {sorted(hist)}")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        curve_panel(ax, name, hist[name], hist.get(f"val_{name}"))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def curve_panel(ax, name: str, train, val=None, planned: int | None = None) -> None:
    """Draw one metric's training (and validation) curve on ``ax``, the best epoch marked.

    ``planned``: the epochs a running fit() will reach, so the x axis stays put while
    the curve grows (``forge_course.callbacks.LivePlot`` redraws with it).
    """
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, train, label="train", marker="o", markersize=3)
    if val:
        ax.plot(epochs[: len(val)], val, label="validation", marker="o", markersize=3)
        best = int(np.argmin(val) if "loss" in name else np.argmax(val))
        ax.axvline(epochs[best], color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"best {val[best]:.3f}", (epochs[best], val[best]),
            textcoords="offset points", xytext=(4, 6), fontsize=8,
        )  # fmt: skip
    if planned and planned > 1:
        ax.set_xlim(0.5, planned + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
    ax.legend()


def show_images(
    images: np.ndarray,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    n: int = 16,
    predictions=None,
    cols: int = 8,
):
    """Show the first ``n`` images in a grid, titled with labels (and predictions).

    ``predictions`` are class numbers, or what ``model.predict`` returns: one row of
    class probabilities per image (the likeliest class is taken), or one probability
    of class 1 per image for a binary model. A prediction that disagrees with its label
    is titled in red.
    """
    import matplotlib.pyplot as plt

    if isinstance(cols, bool) or not isinstance(cols, int | np.integer) or cols < 1:
        raise WidgetInputError(f"show_images: cols={cols!r}; give a whole number, 1 or more")
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise WidgetInputError(f"show_images needs images shaped (n, h, w), got {images.shape}")
    n = min(n, len(images))
    if n == 0:
        raise WidgetInputError("show_images got no images to show")
    if labels is not None and len(labels) < n:
        raise WidgetInputError(
            f"show_images: {len(labels)} labels for {n} images; pass one label per image"
        )
    if predictions is not None:
        predictions = _classes(predictions, n)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r")
        if labels is None:
            continue
        name = class_names[int(labels[i])] if class_names else str(int(labels[i]))
        color = "black"
        if predictions is not None:
            guess = class_names[int(predictions[i])] if class_names else str(predictions[i])
            color = "black" if int(predictions[i]) == int(labels[i]) else "red"
            name = f"{guess}\n(true {name})" if color == "red" else name
        ax.set_title(name, fontsize=8, color=color)
    fig.tight_layout()
    return fig


def _classes(predictions, n: int) -> np.ndarray:
    """Class numbers from class numbers, probability rows, or binary probabilities."""
    given = np.asarray(predictions)
    expected = (
        "pass class numbers, shape (n,), or what model.predict returns: probabilities "
        "shaped (n, classes), or (n,) / (n, 1) for a binary model"
    )
    if given.dtype.kind not in "biuf" or given.ndim not in (1, 2):
        raise WidgetInputError(
            f"show_images: predictions shaped {given.shape} ({given.dtype}); {expected}"
        )
    if len(given) < n:
        raise WidgetInputError(
            f"show_images: {len(given)} predictions for {n} images; pass one per image"
        )
    if given.ndim == 2:
        if given.shape[1] > 1:
            return np.argmax(given, axis=1)
        given = given[:, 0]
    if given.dtype.kind == "f" and not np.all(given == np.round(given)):
        if np.all((given >= 0) & (given <= 1)):
            return (given >= 0.5).astype(int)  # a binary model's probability of class 1
        raise WidgetInputError(f"show_images: predictions are not whole numbers; {expected}")
    return given.astype(int)


def plot_confusion_matrix(
    matrix,
    class_names: Sequence[str],
    *,
    title: str | None = None,
    ax=None,
):
    """Draw a confusion matrix as a grid of counts, true labels down, predictions across.

    Args:
        matrix: square counts, ``matrix[i, j]`` = examples of class ``i`` predicted
            as class ``j``.
        class_names: one name per class, in label order.
        title: an optional title over the grid.
        ax: the matplotlib Axes to draw into; by default a new pyplot figure.

    Returns:
        The Figure that holds the grid.

    Each cell shows its count and its share of the true class (its row), so a rare
    class's mistakes are as visible as a common one's.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(
            f"plot_confusion_matrix needs square counts shaped (k, k), got {matrix.shape}"
        )
    if len(class_names) != matrix.shape[0]:
        raise ValueError(
            f"the matrix has {matrix.shape[0]} classes but class_names has "
            f"{len(class_names)} ({list(class_names)!r}); pass one name per class"
        )
    if ax is None:
        import matplotlib.pyplot as plt

        size = 1.2 * matrix.shape[0] + 2.2
        fig, ax = plt.subplots(figsize=(size + 0.6, size))
    else:
        fig = ax.figure
    k = matrix.shape[0]
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            color = "white" if shares[i, j] > 0.5 else "black"
            ax.text(j, i, f"{matrix[i, j]:g}\n{shares[i, j]:.0%}", ha="center", va="center",
                    color=color, fontsize=10)  # fmt: skip
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(n) for n in class_names])
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
