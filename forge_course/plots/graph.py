"""A model's layer graph: plot_model's image when Graphviz is present, text when not.

``plot_model`` needs two things a laptop often lacks: the ``pydot`` package and
Graphviz's ``dot`` program (:func:`forge_course.doctor_tools.graphviz_available` says
whether both are there; ``forge-course doctor`` reports it). Without them a lesson still
shows the graph: :func:`model_graph_text` renders the same layers, the tensors each one
reads (a shared layer once, with each of its calls), and the shapes, as plain text.
A subclassed model has no layer graph at all (its ``call`` is Python code that Keras
does not record), so the text lists its layers and says so, and never raises.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["ModelGraph", "has_layer_graph", "model_graph_text", "show_model_graph"]

NO_GRAPH = (
    "no layer graph: a subclassed model's call() is Python code that Keras does not record, "
    "so only its layers can be listed (plot_model draws it as a single box)"
)
NO_GRAPH_YET = (
    "no layer graph yet: this Sequential model starts without keras.Input and has not been "
    "built, so only its layers can be listed"
)


def _graph_of(model):
    """The Functional graph behind ``model`` (itself, or a built Sequential's), or None."""
    from keras.src.models.functional import Functional

    if isinstance(model, Functional):
        return model
    inner = getattr(model, "_functional", None)  # a Sequential built from keras.Input
    return inner if isinstance(inner, Functional) else None


def has_layer_graph(model) -> bool:
    """Whether Keras recorded ``model``'s layers as a graph (Functional, built Sequential)."""
    try:
        return _graph_of(model) is not None
    except Exception:  # noqa: BLE001 - a question about any object must not raise
        return False


def _shape(tensor) -> str:
    shape = getattr(tensor, "shape", None)
    return str(tuple(shape)) if shape is not None else "?"


def _params(layer) -> str:
    try:
        count = layer.count_params()
    except Exception:  # noqa: BLE001 - an unbuilt layer has no parameters to count yet
        return "unbuilt"
    return f"{count:,} params" if count else ""


def _source(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return "?"
    op = history.operation
    if len(getattr(op, "_inbound_nodes", [])) > 1:  # a shared layer: say which call
        return f"{op.name}[call {history.node_index + 1}]"
    return op.name


def _calls(layer, graph) -> list:
    """The nodes (calls) of ``layer`` that belong to ``graph``, in the order they were made."""
    keys = getattr(graph, "_nodes", None)
    nodes = list(getattr(layer, "_inbound_nodes", []))
    if not keys:
        return nodes
    return [n for i, n in enumerate(nodes) if f"{id(layer)}_ib-{i}" in keys]


def _graph_lines(graph) -> list[str]:
    rows: list[tuple[str, str, str, str]] = []  # name, type, reads, writes (+ params)
    for layer in graph._operations:
        kind = type(layer).__name__
        calls = _calls(layer, graph)
        if kind == "InputLayer":
            out = _shape(calls[0].outputs[0]) if calls and calls[0].outputs else "?"
            rows.append((layer.name, kind, "(input)", out))
            continue
        params = _params(layer)
        for k, node in enumerate(calls):
            reads = (
                ", ".join(f"{_source(t)} {_shape(t)}" for t in node.input_tensors) or "(nothing)"
            )
            writes = ", ".join(_shape(t) for t in node.outputs)
            if len(calls) > 1:
                name = layer.name if k == 0 else ""
                label = f"{kind}, shared: call {k + 1} of {len(calls)}"
            else:
                name, label = layer.name, kind
            rows.append((name, label, reads, writes + (f"  {params}" if params and k == 0 else "")))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [
        f"{n:<{width[0]}}  {t:<{width[1]}}  {reads} -> {writes}" for n, t, reads, writes in rows
    ]
    outs = ", ".join(f"{_source(t)} {_shape(t)}" for t in graph.outputs)
    return [*lines, f"outputs: {outs}"]


def _layer_lines(model) -> list[str]:
    rows = []
    for layer in getattr(model, "layers", []):
        try:
            shape = str(tuple(layer.output.shape))
        except Exception:  # noqa: BLE001 - layers of a subclassed model have no symbolic output
            shape = "shape unknown"
        rows.append((layer.name, type(layer).__name__, shape, _params(layer)))
    if not rows:
        return ["(no layers tracked)"]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return [f"{n:<{width[0]}}  {t:<{width[1]}}  {s}  {p}".rstrip() for n, t, s, p in rows]


def model_graph_text(model) -> str:
    """Render ``model``'s layer graph as text: every layer, what it reads, the shapes it makes.

    One line per call of a layer: its name and type, the layers whose outputs it reads
    with their shapes, then the shape it writes and its parameter count. A layer called
    more than once (a shared layer) is named once, with one line per call. A model
    without a layer graph (subclassed) gets a list of its layers and a line saying why.

    Args:
        model: any Keras model (Functional, Sequential, subclassed; built or not).

    Returns:
        The rendering, lines joined by newlines. It never raises on a Keras model.
    """
    name = getattr(model, "name", type(model).__name__)
    try:
        graph = _graph_of(model)
    except Exception:  # noqa: BLE001
        graph = None
    try:
        count = f"{model.count_params():,} parameters"
    except Exception:  # noqa: BLE001 - unbuilt
        count = "not built yet"
    head = f"Model {name!r} ({type(model).__name__}), {count}"
    if graph is None:
        from keras import Sequential

        why = NO_GRAPH_YET if isinstance(model, Sequential) else NO_GRAPH
        return "\n".join([head, why, *_layer_lines(model)])
    try:
        body = _graph_lines(graph)
    except Exception as exc:  # noqa: BLE001 - a graph Keras laid out in an unexpected way
        body = [f"(graph could not be read: {exc}; layers instead)", *_layer_lines(model)]
    return "\n".join([head, *body])


@dataclasses.dataclass
class ModelGraph:
    """What :func:`show_model_graph` made: an image file, or the text rendering and why.

    In a notebook it displays itself (the image, or the text); ``str()`` is the text.
    """

    text: str
    image: Path | None = None
    reason: str = ""  # why there is no image, when there is none

    def __str__(self) -> str:
        return self.text if self.image is None else f"{self.text}\n(drawn to {self.image})"

    def _repr_png_(self) -> bytes | None:
        if self.image is not None and self.image.suffix == ".png" and self.image.exists():
            return self.image.read_bytes()
        return None

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's text/plain
        printer.text(repr(self))

    def __repr__(self) -> str:
        note = f"[text rendering: {self.reason}]\n" if self.reason else ""
        return note + str(self)


def show_model_graph(model, to_file: str | Path = "model.png", **plot_kwargs) -> ModelGraph:
    """Draw ``model``'s graph with ``plot_model`` if Graphviz is present, else render it as text.

    Args:
        model: a Keras model.
        to_file: where ``plot_model`` writes the image (when it can draw).
        **plot_kwargs: passed to ``keras.utils.plot_model`` (``show_shapes=True`` and
            ``show_layer_names=True`` unless given).

    Returns:
        A :class:`ModelGraph` that displays itself: the image when one was drawn, else the
        text of :func:`model_graph_text` with the reason (no Graphviz, no layer graph, or
        the error ``plot_model`` raised). It never raises on a Keras model.
    """
    from forge_course.doctor_tools import graphviz_available

    text = model_graph_text(model)
    if not has_layer_graph(model):
        return ModelGraph(text, reason="this model has no layer graph to draw")
    if not graphviz_available():
        return ModelGraph(
            text, reason="plot_model needs pydot and Graphviz's dot; see forge-course doctor"
        )
    import keras

    plot_kwargs.setdefault("show_shapes", True)
    plot_kwargs.setdefault("show_layer_names", True)
    try:
        keras.utils.plot_model(model, to_file=str(to_file), **plot_kwargs)
    except Exception as exc:  # noqa: BLE001 - Graphviz failing is no reason to stop a lesson
        return ModelGraph(text, reason=f"plot_model failed: {str(exc).splitlines()[0]}")
    image = Path(to_file)
    if not image.exists():
        return ModelGraph(text, reason=f"plot_model wrote no file at {image}")
    return ModelGraph(text, image=image)
