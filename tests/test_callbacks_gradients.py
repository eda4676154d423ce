"""GradientNormLogger: what it records, that it equals GradientTape, that training is untouched."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from forge_course.callbacks import GradientNormLogger
from forge_course.callbacks.gradients import kernel_layers

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 8)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int64") + (X[:, 2] > 1).astype("int64")  # 3 classes


def deep(activation="relu", depth=4, *, batchnorm=False, seed=0):
    stack = [keras.Input(shape=(8,))]
    for i in range(depth):
        init = keras.initializers.GlorotUniform(seed + i)
        stack.append(layers.Dense(16, activation=activation, kernel_initializer=init))
        if batchnorm:
            stack.append(layers.BatchNormalization())
    init = keras.initializers.GlorotUniform(seed + 99)
    stack.append(layers.Dense(3, activation="softmax", kernel_initializer=init))
    model = keras.Sequential(stack)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


def test_records_one_row_per_epoch_and_one_column_per_kernel():
    model = deep(depth=3)
    logger = GradientNormLogger(X[:32], Y[:32])
    model.fit(X, Y, epochs=4, batch_size=16, callbacks=[logger], verbose=0)
    assert logger.epochs == [0, 1, 2, 3, 4]
    assert logger.layer_names == [layer.name for layer in model.layers]  # 4 Dense layers
    assert logger.norms.shape == logger.changes.shape == (5, 4)
    assert np.all(logger.norms > 0)
    assert np.all(logger.changes[0] == 0) and np.all(logger.changes[-1] > 0)
    assert logger.ratio() == pytest.approx(logger.norms[-1, 0] / logger.norms[-1, -1])
    assert logger.to_dict()["norms"] == logger.norms.tolist()


def test_norms_are_the_compiled_losss_gradients_on_the_probe():
    model = deep(depth=2)
    logger = GradientNormLogger(X[:40], Y[:40])
    model.fit(X, Y, epochs=2, batch_size=16, callbacks=[logger], verbose=0)
    loss = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        value = loss(Y[:40], model(X[:40], training=True))
    kernels = [layer.kernel for layer in model.layers]
    by_hand = [float(tf.norm(g)) for g in tape.gradient(value, kernels)]
    np.testing.assert_allclose(logger.norms[-1], by_hand, rtol=1e-5)
    np.testing.assert_allclose(logger.measure(model), by_hand, rtol=1e-5)


def test_changes_are_each_kernels_relative_move_from_its_start():
    model = deep(depth=2)
    start = [layer.kernel.numpy().copy() for layer in model.layers]
    logger = GradientNormLogger(X[:16], Y[:16])
    model.fit(X, Y, epochs=3, batch_size=16, callbacks=[logger], verbose=0)
    moved = [
        np.linalg.norm(layer.kernel.numpy() - k0) / np.linalg.norm(k0)
        for layer, k0 in zip(model.layers, start, strict=True)
    ]
    np.testing.assert_allclose(logger.changes[-1], moved, rtol=1e-5)


def test_the_probe_leaves_training_untouched():
    """Same start, same batches: with or without the logger, the same weights (BatchNorm too)."""
    weights = []
    for callbacks in ([], [GradientNormLogger(X[:32], Y[:32])]):
        keras.utils.set_random_seed(1)
        model = deep(depth=3, batchnorm=True)
        model.fit(X, Y, epochs=3, batch_size=16, shuffle=False, callbacks=callbacks, verbose=0)
        weights.append(model.get_weights())  # moving means and variances included
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # GPU round-off


def test_measuring_restores_batchnorm_statistics():
    model = deep(depth=2, batchnorm=True)
    model.fit(X, Y, epochs=1, verbose=0)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    GradientNormLogger(X[:32] * 5 + 3, Y[:32]).measure(model)  # a batch far from the statistics
    for v, b in zip(model.non_trainable_variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)


def test_deep_sigmoid_networks_starve_their_first_layer():
    """Lesson 08's claim in small: sigmoid's first/last ratio is far below ReLU's."""
    ratios = {}
    for activation in ("sigmoid", "relu"):
        model = deep(activation, depth=8)
        logger = GradientNormLogger(X[:64], Y[:64])
        model.fit(X, Y, epochs=1, batch_size=32, callbacks=[logger], verbose=0)
        ratios[activation] = logger.ratio(0)
    assert ratios["sigmoid"] < ratios["relu"] / 100, ratios


def test_functional_residual_models_and_nested_models_are_walked():
    inp = keras.Input(shape=(8,))
    h = layers.Dense(16, name="first")(inp)
    h = layers.Add()([h, layers.Dense(16, activation="sigmoid", name="block")(h)])
    inner = keras.Sequential([keras.Input((16,)), layers.Dense(16, name="inner")], name="sub")
    out = layers.Dense(3, activation="softmax", name="out")(inner(h))
    model = keras.Model(inp, out)
    assert [layer.name for layer in kernel_layers(model)] == ["first", "block", "inner", "out"]
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    logger = GradientNormLogger(X[:16], Y[:16])
    model.fit(X, Y, epochs=1, callbacks=[logger], verbose=0)
    assert logger.norms.shape == (2, 4)


def test_clear_errors():
    with pytest.raises(ValueError, match="32 inputs but 16 labels"):
        GradientNormLogger(X[:32], Y[:16])
    with pytest.raises(ValueError, match="no gradients recorded yet"):
        GradientNormLogger(X[:4], Y[:4]).ratio()
    uncompiled = keras.Sequential([keras.Input((8,)), layers.Dense(3)])
    with pytest.raises(ValueError, match="compile the model first"):
        GradientNormLogger(X[:4], Y[:4]).measure(uncompiled)
    explicit = GradientNormLogger(
        X[:4], Y[:4], loss=keras.losses.SparseCategoricalCrossentropy(True)
    )
    assert explicit.measure(uncompiled).shape == (1,)
