"""Model graphs: plot_model's image when Graphviz is present, a faithful text rendering when not."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from keras import layers

from forge_course import plots
from forge_course.doctor_tools import graphviz_available
from forge_course.plots import graph as graph_module

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _two_in_two_out() -> keras.Model:
    pixels = keras.Input((64,), name="pixels")
    profile = keras.Input((16,), name="profile")
    image = layers.Dense(32, name="image_branch")(pixels)
    table = layers.Dense(32, name="table_branch")(profile)
    block = layers.Dense(32, activation="relu", name="shared_block")
    image = layers.Add(name="image_residual")([image, block(image)])
    table = layers.Add(name="table_residual")([table, block(table)])
    merged = layers.Concatenate(name="merged")([image, table])
    digit = layers.Dense(10, activation="softmax", name="digit")(merged)
    centre = layers.Dense(1, name="centre")(merged)
    return keras.Model({"pixels": pixels, "profile": profile}, {"digit": digit, "centre": centre})


class Tiny(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(8, activation="relu", name="hidden")
        self.out = layers.Dense(3, name="scores")

    def call(self, x):
        return self.out(self.hidden(x))


def _row(text: str, name: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(rows) == 1, f"expected one row starting with {name!r}:\n{text}"
    return rows[0]


def test_text_names_every_layer_what_it_reads_and_the_shapes():
    model = _two_in_two_out()
    text = plots.model_graph_text(model)
    for layer in model.layers:
        assert re.search(rf"^{layer.name}\s", text, re.M), f"{layer.name} missing:\n{text}"
    assert re.search(r"pixels\s+InputLayer .*-> \(None, 64\)", text)
    assert "pixels (None, 64) -> (None, 32)" in _row(text, "image_branch")
    merged = _row(text, "merged")
    assert "image_residual (None, 32)" in merged and "table_residual (None, 32)" in merged
    assert merged.endswith("-> (None, 64)")
    assert "merged (None, 64) -> (None, 10)" in _row(text, "digit")
    assert f"{model.count_params():,} parameters" in text.splitlines()[0]
    assert "outputs:" in text and "digit (None, 10)" in text and "centre (None, 1)" in text


def test_a_shared_layer_is_named_once_with_both_of_its_calls():
    text = plots.model_graph_text(_two_in_two_out())
    assert len(re.findall(r"^shared_block\s", text, re.M)) == 1
    calls = [line for line in text.splitlines() if "shared: call" in line]
    assert len(calls) == 2, text
    assert "image_branch (None, 32)" in calls[0] and "call 1 of 2" in calls[0]
    assert "table_branch (None, 32)" in calls[1] and "call 2 of 2" in calls[1]
    # each residual reads its own call of the shared block
    assert "shared_block[call 1]" in _row(text, "image_residual")
    assert "shared_block[call 2]" in _row(text, "table_residual")


def test_a_layer_reused_in_another_model_shows_only_that_models_calls():
    model = _two_in_two_out()
    block = model.get_layer("shared_block")
    inputs = keras.Input((32,), name="features")
    other = keras.Model(inputs, block(inputs))
    text = plots.model_graph_text(other)
    assert "shared: call" not in text
    assert "features (None, 32) -> (None, 32)" in _row(text, "shared_block")


def test_sequential_models_render_as_a_chain():
    model = keras.Sequential(
        [keras.Input((4,)), layers.Dense(3, name="a"), layers.Dense(2, name="b")]
    )
    text = plots.model_graph_text(model)
    assert "a (None, 3) -> (None, 2)" in _row(text, "b")
    assert plots.has_layer_graph(model)
    unbuilt = keras.Sequential([layers.Dense(3, name="lonely")])
    assert not plots.has_layer_graph(unbuilt)
    assert "lonely" in plots.model_graph_text(unbuilt)


@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
def test_a_subclassed_model_lists_its_layers_and_says_why_there_is_no_graph(built):
    model = Tiny()
    if built:
        model(np.zeros((2, 5), dtype="float32"))
    assert not plots.has_layer_graph(model)
    text = plots.model_graph_text(model)
    assert "no layer graph" in text and "subclassed" in text
    assert "hidden" in text and "scores" in text
    assert ("48 params" in _row(text, "hidden")) == built  # 5 * 8 + 8
    shown = plots.show_model_graph(model)
    assert shown.image is None and "no layer graph" in shown.reason


def test_without_graphviz_the_text_is_shown_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr("forge_course.doctor_tools.graphviz_available", lambda: False)
    shown = plots.show_model_graph(_two_in_two_out(), to_file=tmp_path / "g.png")
    assert shown.image is None and "Graphviz" in shown.reason
    assert shown._repr_png_() is None
    assert "shared_block" in repr(shown) and "Graphviz" in repr(shown)
    assert not (tmp_path / "g.png").exists()


def test_with_graphviz_plot_model_draws_and_the_image_displays(monkeypatch, tmp_path):
    seen = {}

    def fake_plot_model(model, to_file, **kwargs):
        seen.update(kwargs, model=model)
        with open(to_file, "wb") as f:
            f.write(PNG)

    monkeypatch.setattr("forge_course.doctor_tools.graphviz_available", lambda: True)
    monkeypatch.setattr(keras.utils, "plot_model", fake_plot_model)
    model = _two_in_two_out()
    shown = plots.show_model_graph(model, to_file=tmp_path / "g.png")
    assert seen["model"] is model and seen["show_shapes"] and seen["show_layer_names"]
    assert shown.image == tmp_path / "g.png" and shown._repr_png_() == PNG
    assert "shared_block" in shown.text  # the text travels with the image


def test_plot_model_failing_falls_back_to_text(monkeypatch, tmp_path):
    def broken(model, to_file, **kwargs):
        raise OSError("dot crashed\nwith a long story")

    monkeypatch.setattr("forge_course.doctor_tools.graphviz_available", lambda: True)
    monkeypatch.setattr(keras.utils, "plot_model", broken)
    shown = plots.show_model_graph(_two_in_two_out(), to_file=tmp_path / "g.png")
    assert shown.image is None and shown.reason == "plot_model failed: dot crashed"


@pytest.mark.skipif(not graphviz_available(), reason="pydot and Graphviz's dot are not installed")
def test_real_plot_model_draws_a_png(tmp_path):
    shown = plots.show_model_graph(_two_in_two_out(), to_file=tmp_path / "g.png")
    assert shown.image is not None and shown._repr_png_().startswith(b"\x89PNG")


def test_the_module_exports_what_plots_exports():
    assert set(graph_module.__all__) <= set(plots.__all__)
