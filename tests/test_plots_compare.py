"""Regimes over seeds: the summary table, the noise verdict, the gap plot."""

from __future__ import annotations

import math

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from forge_course.errors import WidgetInputError  # noqa: E402
from forge_course.plots import RegimeSummary, beyond_noise, plot_gaps, summarize_regimes  # noqa: E402

RUNS = {
    "baseline": [(1.0, 0.70), (1.0, 0.66), (1.0, 0.68)],  # gaps 0.30, 0.34, 0.32
    "dropout": [(0.90, 0.72), (0.88, 0.74), (0.92, 0.73)],  # gaps 0.18, 0.14, 0.19
}


def test_summary_has_means_stds_and_gaps_per_regime_in_order():
    base, drop = summarize_regimes(RUNS)
    assert [base.name, drop.name] == ["baseline", "dropout"]
    assert base.gap == pytest.approx((0.30, 0.34, 0.32))
    assert base.mean_std("gap") == pytest.approx((0.32, 0.02))  # sample std (ddof=1)
    assert drop.mean_std("train") == pytest.approx((0.90, 0.02))
    assert drop.to_dict() == {
        "name": "dropout",
        "runs": 3,
        "train_mean": pytest.approx(0.90),
        "train_std": pytest.approx(0.02),
        "val_mean": pytest.approx(0.73),
        "val_std": pytest.approx(0.01),
        "gap_mean": pytest.approx(0.17),
        "gap_std": pytest.approx(math.sqrt(((0.01) ** 2 + 0.03**2 + 0.02**2) / 2)),
    }
    assert base.summary().split() == [
        "baseline", "1.000", "±", "0.000", "0.680", "±", "0.020", "0.320", "±", "0.020",
    ]  # fmt: skip


def test_one_run_has_no_spread():
    (only,) = summarize_regimes({"once": [(0.9, 0.8)]})
    assert only.mean_std("val") == (0.8, 0.0)


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ({"empty": []}, "has no runs"),
        ({"bad": [(1.2, 0.5)]}, r"\(train_accuracy, val_accuracy\)"),
        ({"bad": [(0.9,)]}, "two numbers"),
        ({"bad": [("high", 0.5)]}, "two numbers"),
    ],
)
def test_bad_runs_say_what_a_run_is(runs, message):
    with pytest.raises(WidgetInputError, match=message):
        summarize_regimes(runs)


def test_mean_std_names_what_it_can_summarize():
    with pytest.raises(WidgetInputError, match="'train', 'val' or 'gap'"):
        RegimeSummary("x", (1.0,), (0.5,)).mean_std("loss")


def test_beyond_noise_separates_a_real_difference_from_seed_spread():
    base, drop = summarize_regimes(RUNS)
    score, real = beyond_noise(drop.gap, base.gap)
    assert score < -2 and real  # dropout's gap is smaller by many standard errors
    score, real = beyond_noise(drop.val, [0.70, 0.76, 0.73])  # same mean, more spread
    assert abs(score) < 1 and not real
    assert beyond_noise([0.5, 0.5], [0.5, 0.5]) == (0.0, False)
    assert beyond_noise([0.6, 0.6], [0.5, 0.5]) == (math.inf, True)
    with pytest.raises(WidgetInputError, match="at least two runs"):
        beyond_noise([0.5], [0.5, 0.6])


def test_gap_plot_has_one_bar_and_one_dot_per_seed_for_each_regime():
    before = len(plt.get_fignums())
    fig = plot_gaps(summarize_regimes(RUNS), title="gaps")
    assert len(plt.get_fignums()) == before + 1
    (ax,) = fig.axes
    bars = [p for p in ax.patches if type(p).__name__ == "Rectangle"]
    assert [round(b.get_height(), 6) for b in bars] == [0.32, 0.17]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "dropout"]
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and len(ln.get_xdata())]
    assert [len(ln.get_ydata()) for ln in dots] == [3, 3]
    assert ax.get_ylabel() == "train − validation accuracy" and ax.get_title() == "gaps"
    baseline_line = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert baseline_line and baseline_line[0].get_ydata()[0] == pytest.approx(0.32)
    plt.close(fig)
    with pytest.raises(WidgetInputError, match="no regimes"):
        plot_gaps([])
