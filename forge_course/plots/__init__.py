"""Matplotlib figures the lessons use, one module per kind; each function returns its Figure.

In a notebook, end the cell with ``plt.show()`` (or assign the figure to a name):
a bare call on a cell's last line would display the figure twice, once by pyplot and
once as the cell's value.

A module adds its public functions to ``__all__`` and one import line here.
"""

from __future__ import annotations

from forge_course.plots.compare import RegimeSummary, beyond_noise, plot_gaps, summarize_regimes
from forge_course.plots.gradients import plot_gradient_norms
from forge_course.plots.graph import ModelGraph, has_layer_graph, model_graph_text, show_model_graph
from forge_course.plots.images import per_class_accuracy, plot_per_class_accuracy, show_mistakes
from forge_course.plots.training import plot_confusion_matrix, plot_history, show_images

__all__ = [
    "ModelGraph",
    "RegimeSummary",
    "beyond_noise",
    "has_layer_graph",
    "model_graph_text",
    "per_class_accuracy",
    "plot_confusion_matrix",
    "plot_gaps",
    "plot_gradient_norms",
    "plot_history",
    "plot_per_class_accuracy",
    "show_images",
    "show_mistakes",
    "show_model_graph",
    "summarize_regimes",
]
