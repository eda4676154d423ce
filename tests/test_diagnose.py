"""diagnose(): each mistake caught in a broken setup and silent in the correct one.

Each code has a broken setup that must report it and the corrected setup that must not;
the course's own correct setups (lessons 01 and 02, rebuilt here) must report nothing;
odd input never raises; and the model is never trained or changed.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from forge_course import data
from forge_course.diagnose import CODES, Finding, Findings, diagnose


@pytest.fixture(scope="module")
def digits():
    ds = data.load("digits", verbose=False)
    flat = lambda x: x.reshape(len(x), -1).astype("float32")  # noqa: E731
    return flat(ds.x_train), ds.y_train, flat(ds.x_test), ds.y_test


@pytest.fixture(scope="module")
def cancer():
    ds = data.load("breast_cancer", verbose=False)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def classifier(*, first=(), last="softmax", units=10, after=(), inputs=64,
               loss="sparse_categorical_crossentropy", functional=False):  # fmt: skip
    """A small classifier: optional first layers, Dense(16), Dense(units, last), after."""
    stack = [*first, layers.Dense(16, activation="relu"), layers.Dense(units, activation=last),
             *after]  # fmt: skip
    if functional:
        x = inp = keras.Input(shape=(inputs,))
        for layer in stack:
            x = layer(x)
        model = keras.Model(inp, x)
    else:
        model = keras.Sequential([keras.Input(shape=(inputs,)), *stack])
    model.compile(optimizer="adam", loss=loss)
    return model


def adapted(rows):
    norm = layers.Normalization()
    norm.adapt(rows)
    return norm


def codes(found) -> list[str]:
    assert isinstance(found, list) and all(isinstance(f, Finding) for f in found)
    for f in found:
        assert f.code in CODES and f.message and f.fix
    return [f.code for f in found]


# --------------------------------------------------------------------------- UNSCALED_INPUTS


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_raw_pixels_are_unscaled_and_scaled_ones_are_not(digits, functional):
    x, y, _, _ = digits
    assert codes(diagnose(classifier(functional=functional), x, y)) == ["UNSCALED_INPUTS"]
    assert codes(diagnose(classifier(functional=functional), x / 255, y)) == []


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_a_model_that_scales_inside_takes_raw_inputs(digits, cancer, functional):
    x, y, x_test, _ = digits
    rescaled = classifier(first=[layers.Rescaling(1 / 255)], functional=functional)
    assert codes(diagnose(rescaled, x, y, x_test=x_test)) == []
    cx, cy, cx_test, _ = cancer
    normalized = classifier(first=[adapted(cx)], last="sigmoid", units=1, inputs=10,
                            loss="binary_crossentropy", functional=functional)  # fmt: skip
    assert codes(diagnose(normalized, cx, cy, x_test=cx_test)) == []


def test_raw_measurements_are_unscaled(cancer):
    x, y, _, _ = cancer
    model = classifier(last="sigmoid", units=1, inputs=10, loss="binary_crossentropy")
    (finding,) = diagnose(model, x, y)
    assert finding.code == "UNSCALED_INPUTS" and "Normalization" in finding.fix


# --------------------------------------------------------------------------- INPUT_SKEW


def test_test_inputs_on_another_scale_are_skew(digits):
    x, y, x_test, _ = digits
    assert codes(diagnose(classifier(), x / 255, y, x_test=x_test)) == ["INPUT_SKEW"]
    assert codes(diagnose(classifier(), x / 255, y, x_test=x_test / 255)) == []


def test_inputs_scaled_before_a_model_that_scales_itself_are_skew(cancer):
    x, y, _, _ = cancer
    model = classifier(first=[adapted(x)], last="sigmoid", units=1, inputs=10,
                       loss="binary_crossentropy")  # fmt: skip
    standardized = (x - x.mean(axis=0)) / x.std(axis=0)
    assert codes(diagnose(model, standardized, y)) == ["INPUT_SKEW"]
    assert codes(diagnose(model, x, y)) == []


# --------------------------------------------------------------------------- LOSS_OUTPUT_MISMATCH


@pytest.mark.parametrize(
    "broken",
    [
        dict(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        dict(last=None),  # logits read as probabilities
        dict(after=[layers.Softmax()]),  # double softmax
        dict(units=1),  # a softmax over one unit
    ],
    ids=["softmax_with_from_logits", "logits_without_from_logits", "double_softmax",
         "softmax_over_one_unit"],
)  # fmt: skip
def test_loss_that_does_not_read_the_output(digits, broken):
    x, y, _, _ = digits
    found = codes(diagnose(classifier(**broken), x / 255, y))
    assert found[0] == "LOSS_OUTPUT_MISMATCH", found


def test_logits_with_from_logits_and_sigmoid_with_binary_are_fine(digits, cancer):
    x, y, _, _ = digits
    logits = classifier(
        last=None, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    assert codes(diagnose(logits, x / 255, y)) == []
    cx, cy, _, _ = cancer
    binary = classifier(first=[adapted(cx)], last="sigmoid", units=1, inputs=10,
                        loss=keras.losses.BinaryCrossentropy())  # fmt: skip
    assert codes(diagnose(binary, cx, cy)) == []


# --------------------------------------------------------------------------- LABELS_LOSS_MISMATCH


def test_integer_labels_with_categorical_crossentropy(digits):
    x, y, _, _ = digits
    model = classifier(loss="categorical_crossentropy")
    (finding,) = diagnose(model, x / 255, y)
    assert finding.code == "LABELS_LOSS_MISMATCH" and "sparse" in finding.fix
    assert codes(diagnose(model, x / 255, keras.utils.to_categorical(y, 10))) == []


def test_one_hot_labels_with_the_sparse_loss_and_labels_out_of_range(digits, cancer):
    x, y, _, _ = digits
    assert codes(diagnose(classifier(), x / 255, keras.utils.to_categorical(y, 10))) == [
        "LABELS_LOSS_MISMATCH"
    ]
    assert codes(diagnose(classifier(units=5), x / 255, y)) == ["LABELS_LOSS_MISMATCH"]
    binary_on_ten = classifier(last="sigmoid", units=1, loss="binary_crossentropy")
    assert codes(diagnose(binary_on_ten, x / 255, y)) == ["LABELS_LOSS_MISMATCH"]


# --------------------------------------------------------------------------- TRAIN_TEST_OVERLAP


def test_evaluating_on_training_rows_is_overlap(digits):
    x, y, x_test, _ = digits
    (finding,) = diagnose(classifier(), x / 255, y, x_test=x[:200] / 255)
    assert finding.code == "TRAIN_TEST_OVERLAP" and "200 of 200" in finding.message
    assert codes(diagnose(classifier(), x / 255, y, x_test=x_test / 255)) == []


# --------------------------------------------------------------------------- TEST_STATISTICS_LEAK


@pytest.mark.parametrize("fitted_on", ["test", "train_and_test"])
def test_a_scaler_adapted_on_the_test_rows_leaks(cancer, fitted_on):
    x, y, x_test, _ = cancer
    rows = x_test if fitted_on == "test" else np.concatenate([x, x_test])
    leaky = classifier(first=[adapted(rows)], last="sigmoid", units=1, inputs=10,
                       loss="binary_crossentropy")  # fmt: skip
    assert codes(diagnose(leaky, x, y, x_test=x_test)) == ["TEST_STATISTICS_LEAK"]
    honest = classifier(first=[adapted(x)], last="sigmoid", units=1, inputs=10,
                        loss="binary_crossentropy")  # fmt: skip
    assert codes(diagnose(honest, x, y, x_test=x_test)) == []


# --------------------------------------------------------------------------- tf.data, odd input


def test_tf_data_pipelines_are_read_like_arrays(digits):
    x, y, x_test, y_test = digits
    pipe = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).batch(64)  # noqa: E731
    assert codes(diagnose(classifier(), pipe(x / 255, y), x_test=pipe(x_test / 255, y_test))) == []
    assert codes(diagnose(classifier(), pipe(x, y))) == ["UNSCALED_INPUTS"]
    assert codes(diagnose(classifier(), pipe(x / 255, y), x_test=pipe(x[:99] / 255, y[:99]))) == [
        "TRAIN_TEST_OVERLAP"
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("not a model", "x", "y"),
        ("model", "text", None),
        ("model", {"a": "b"}, [1, 2]),
        ("model", np.array([]), np.array([])),
        ("model", np.array(3.0), None),
        ("model", "unbatched", None),
        ("model", "not_pairs", None),
        ("uncompiled", "x", "y"),
    ],
    ids=lambda a: str(a[:2]),
)
def test_odd_input_is_reported_not_raised(digits, args):
    x, y, _, _ = digits
    model_key, x_key, y_val = args
    models = {
        "model": classifier(),
        "uncompiled": keras.Sequential(
            [keras.Input((64,)), layers.Dense(10, activation="softmax")]
        ),
        "not a model": "my model",
    }
    xs = {
        "x": x / 255,
        "text": "hello",
        "unbatched": tf.data.Dataset.from_tensor_slices((x / 255, y)),
        "not_pairs": tf.data.Dataset.from_tensor_slices(x / 255).batch(8),
    }
    x_val = xs.get(x_key, x_key) if isinstance(x_key, str) else x_key
    found = diagnose(models[model_key], x_val, y if isinstance(y_val, str) else y_val)
    assert "NOT_INSPECTED" in codes(found), found
    assert all(f.message.startswith("could not check") for f in found if f.code == "NOT_INSPECTED")
    if model_key == "uncompiled":
        assert "compile the model" in found[0].fix


def test_the_model_is_never_trained_or_changed(digits, cancer):
    x, y, x_test, _ = digits
    model = classifier(after=[layers.Softmax()])
    before = [w.copy() for w in model.get_weights()]
    optimizer_vars = len(model.optimizer.variables)
    assert diagnose(model, x, y, x_test=x[:50])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert len(model.optimizer.variables) == optimizer_vars and int(model.optimizer.iterations) == 0
    cx, cy, cx_test, _ = cancer
    norm = adapted(cx_test)
    leaky = classifier(first=[norm], last="sigmoid", units=1, inputs=10, loss="binary_crossentropy")
    stats = [w.copy() for w in leaky.get_weights()]
    assert diagnose(leaky, cx, cy, x_test=cx_test)
    assert all(np.array_equal(a, b) for a, b in zip(stats, leaky.get_weights(), strict=True))


def test_findings_print_one_paragraph_each(digits):
    x, y, _, _ = digits
    found = diagnose(classifier(loss="categorical_crossentropy"), x, y)
    assert isinstance(found, Findings) and found.codes == [
        "UNSCALED_INPUTS",
        "LABELS_LOSS_MISMATCH",
    ]
    text = str(found)
    assert text.count("fix:") == 2 and text.startswith("UNSCALED_INPUTS: ")
    assert str(Findings()) == "diagnose: no findings"
    assert found[0].to_dict().keys() == {"code", "message", "fix"}


# --------------------------------------------------------------------------- no false alarms


def test_lesson_01_setup_has_no_findings(digits):
    """Lesson 01: digits flattened and scaled, linear logits, from_logits=True, L2 penalties."""
    x, y, x_test, _ = digits
    model = keras.Sequential([
        keras.Input(shape=(64,)),
        layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
        layers.Dense(10, kernel_regularizer=keras.regularizers.L2(1e-3)),
    ])  # fmt: skip
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    assert codes(diagnose(model, x / 255, y, x_test=x_test / 255)) == []


def test_lesson_02_setup_has_no_findings(cancer):
    """Lesson 02: raw measurements, Normalization adapted on the rows fit() trains on."""
    x, y, x_test, _ = cancer
    n_fit = int(len(x) * 0.8)
    model = keras.Sequential([
        keras.Input(shape=(10,)), adapted(x[:n_fit]),
        layers.Dense(64, activation="relu"), layers.Dropout(0.2),
        layers.Dense(32, activation="relu"), layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert codes(diagnose(model, x, y, x_test=x_test)) == []
    assert codes(diagnose(model, x[n_fit:], y[n_fit:], x_test=x_test)) == []  # validation rows
