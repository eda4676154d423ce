"""Compare training regimes run over several seeds: a summary per regime, and a gap plot.

A *regime* is one way of training (a baseline, with Dropout, with L2, ...), run once per
seed. Each run gives a training and a validation accuracy; their difference, the
*generalization gap*, is what regularization tries to shrink. Seeds make the spread
visible: :func:`beyond_noise` says whether two regimes differ by more than their seeds do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from forge_course.errors import WidgetInputError

__all__ = ["RegimeSummary", "beyond_noise", "plot_gaps", "summarize_regimes"]


@dataclass(frozen=True)
class RegimeSummary:
    """One regime's runs: training and validation accuracy per seed, and their gap.

    Attributes:
        name: the regime (``"dropout"``).
        train: training accuracy of each run.
        val: validation accuracy of each run.
    """

    name: str
    train: tuple[float, ...]
    val: tuple[float, ...]

    @property
    def gap(self) -> tuple[float, ...]:
        """Training minus validation accuracy, per run."""
        return tuple(t - v for t, v in zip(self.train, self.val, strict=True))

    @staticmethod
    def _mean_std(values: Sequence[float]) -> tuple[float, float]:
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return float(np.mean(values)), std

    def mean_std(self, what: str) -> tuple[float, float]:
        """Mean and sample standard deviation of ``train``, ``val`` or ``gap``."""
        if what not in ("train", "val", "gap"):
            raise WidgetInputError(f"mean_std: what={what!r}; choose 'train', 'val' or 'gap'")
        return self._mean_std(getattr(self, what))

    def to_dict(self) -> dict:
        """Return plain Python values, ready for JSON."""
        out: dict = {"name": self.name, "runs": len(self.train)}
        for what in ("train", "val", "gap"):
            out[f"{what}_mean"], out[f"{what}_std"] = self.mean_std(what)
        return out

    def summary(self) -> str:
        """Return one table row: name, then train, validation and gap as mean ± std."""
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in map(self.mean_std, ("train", "val", "gap"))]
        return f"{self.name:<14}" + "".join(f"{c:>17}" for c in cells)


def summarize_regimes(runs: Mapping[str, Sequence[tuple[float, float]]]) -> list[RegimeSummary]:
    """Summarize each regime's runs, in the order given.

    Args:
        runs: regime name -> one ``(train_accuracy, val_accuracy)`` pair per seed.

    Raises:
        WidgetInputError: a regime has no runs, or a run is not a pair of numbers in [0, 1].
    """
    summaries = []
    for name, pairs in runs.items():
        pairs = list(pairs)
        if not pairs:
            raise WidgetInputError(f"regime {name!r} has no runs; give one (train, val) per seed")
        for pair in pairs:
            if len(pair) != 2 or not all(
                isinstance(a, int | float | np.floating) and 0.0 <= a <= 1.0 for a in pair
            ):
                raise WidgetInputError(
                    f"regime {name!r}: run {pair!r} should be (train_accuracy, val_accuracy), "
                    "two numbers in [0, 1]"
                )
        summaries.append(
            RegimeSummary(
                str(name), tuple(float(t) for t, _ in pairs), tuple(float(v) for _, v in pairs)
            )
        )
    return summaries


def beyond_noise(a: Sequence[float], b: Sequence[float], *, z: float = 2.0) -> tuple[float, bool]:
    """Say whether two sets of runs differ by more than their seed-to-seed spread.

    Returns the difference of the means in standard errors,
    ``(mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)``, and whether its size
    reaches ``z`` (a rough two-sided test; with three seeds, treat it as a rule of
    thumb, not a p-value). Identical, spread-free runs give ``(0.0, False)``; different
    spread-free runs give an infinite score.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise WidgetInputError("beyond_noise needs at least two runs on each side to see noise")
    diff = float(a.mean() - b.mean())
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if se == 0.0:
        score = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    else:
        score = diff / se
    return score, abs(score) >= z


def plot_gaps(summaries: Sequence[RegimeSummary], *, title: str | None = None):
    """Draw each regime's generalization gap: a bar at the mean, a dot per seed, ± 1 std.

    Args:
        summaries: what :func:`summarize_regimes` returned; the first is the baseline,
            whose mean is drawn as a dashed line across the plot.
        title: an optional title.

    Returns:
        The matplotlib Figure (end the cell with ``plt.show()``).
    """
    import matplotlib.pyplot as plt

    if not summaries:
        raise WidgetInputError("plot_gaps got no regimes; pass summarize_regimes(...)'s list")
    fig, ax = plt.subplots(figsize=(1.3 * len(summaries) + 2.5, 3.4))
    positions = np.arange(len(summaries))
    stats = [s.mean_std("gap") for s in summaries]
    ax.bar(
        positions, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4,
        color="tab:blue", alpha=0.35, label="mean ± 1 std",
    )  # fmt: skip
    for x, s in zip(positions, summaries, strict=True):
        ax.plot(np.full(len(s.gap), x), s.gap, "o", color="tab:blue", markersize=4)
    ax.plot([], [], "o", color="tab:blue", markersize=4, label="one seed")
    ax.axhline(stats[0][0], color="grey", linestyle="--", linewidth=1, label=summaries[0].name)
    ax.set_xticks(positions, [s.name for s in summaries])
    ax.set_ylabel("train − validation accuracy")
    ax.set_xlabel("regime")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
