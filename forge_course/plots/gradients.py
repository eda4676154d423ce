"""Figures of gradients: per-layer, per-epoch gradient norms as heatmaps on a log scale."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from forge_course.errors import WidgetInputError

__all__ = ["plot_gradient_norms"]


def _record(name: str, source) -> tuple[np.ndarray, list[str], list[int]]:
    """(norms, layer names, epochs) from a GradientNormLogger or its ``to_dict()``."""
    if isinstance(source, Mapping):
        norms, names, epochs = (source.get(k) for k in ("norms", "layer_names", "epochs"))
    else:
        norms = getattr(source, "norms", None)
        names = getattr(source, "layer_names", None)
        epochs = getattr(source, "epochs", None)
    if norms is None:
        raise WidgetInputError(
            f"{name!r}: expected a GradientNormLogger (after fit) or its to_dict(), got "
            f"{type(source).__name__}"
        )
    try:
        norms = np.asarray(norms, dtype="float64")
    except (TypeError, ValueError):
        raise WidgetInputError(f"{name!r}: the norms are not numbers") from None
    if norms.ndim != 2 or norms.size == 0:
        raise WidgetInputError(
            f"{name!r}: norms should be a table of records x layers, got shape {norms.shape}; "
            "was the logger passed to fit(callbacks=[...])?"
        )
    if np.any(norms < 0) or not np.all(np.isfinite(norms)):
        raise WidgetInputError(f"{name!r}: gradient norms must be finite and non-negative")
    names = list(names) if names is not None else [f"layer {i}" for i in range(norms.shape[1])]
    epochs = list(epochs) if epochs is not None else list(range(norms.shape[0]))
    if len(names) != norms.shape[1] or len(epochs) != norms.shape[0]:
        raise WidgetInputError(
            f"{name!r}: {norms.shape[1]} layers of norms but {len(names)} layer names, "
            f"{norms.shape[0]} records but {len(epochs)} epochs"
        )
    return norms, names, epochs


def plot_gradient_norms(loggers, *, title: str | None = None):
    """Draw one heatmap per model: layers (first at the top) by epochs, on one log colour scale.

    Args:
        loggers: a :class:`~forge_course.callbacks.GradientNormLogger` after ``fit()``, its
            ``to_dict()``, or a mapping ``{"name": logger, ...}`` to compare models side
            by side.
        title: an optional title over the panels.

    Every panel shares the same colour scale, so equal colours mean equal norms across
    models; a zero gradient is drawn in grey. Rows are numbered from the input side
    (layer names differ from model to model; the logger's ``layer_names`` has them).
    Each panel's title gives its first/last layer ratio at the last record.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    if not isinstance(loggers, Mapping) or "norms" in loggers:
        loggers = {"": loggers}
    if not loggers:
        raise WidgetInputError("plot_gradient_norms needs at least one logger")
    records = {name: _record(name, src) for name, src in loggers.items()}
    positive = np.concatenate([n[n > 0] for n, _, _ in records.values()])
    if positive.size == 0:
        raise WidgetInputError("every gradient norm is zero: nothing to draw on a log scale")
    scale = LogNorm(vmin=positive.min(), vmax=positive.max())
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")

    fig, axes = plt.subplots(
        1, len(records), figsize=(3.2 * len(records) + 1.4, 3.8), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    image = None
    for ax, (name, (norms, names, epochs)) in zip(axes[0], records.items(), strict=True):
        table = np.ma.masked_less_equal(norms.T, 0)  # rows: layers, columns: records
        image = ax.imshow(table, aspect="auto", cmap=cmap, norm=scale, interpolation="nearest")
        ax.set_xticks(range(len(epochs)), [str(e) for e in epochs], fontsize=7)
        ax.set_yticks(range(len(names)), [str(k) for k in range(1, len(names) + 1)], fontsize=7)
        ax.set_xlabel("epoch (0: before training)")
        last = norms[-1]
        ratio = f"first/last {last[0] / last[-1]:.1e}" if last[-1] > 0 else "last layer: 0"
        ax.set_title(f"{name}\n{ratio}" if name else ratio, fontsize=9)
    axes[0][0].set_ylabel("layer (1: the input side)")
    fig.colorbar(image, ax=list(axes[0]), label="gradient norm (log scale)", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig
