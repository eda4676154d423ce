"""RegistryCallback registers the model with its final metrics and training parameters."""

from __future__ import annotations

import numpy as np
import pytest


def test_fit_registers_final_metrics_and_params(registry, capsys):
    import keras

    from forge_course.callbacks import RegistryCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    cb = RegistryCallback("toy", registry=registry, params={"batch_size": 16, "seed": 0})
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                        callbacks=[cb])  # fmt: skip

    assert cb.version == 1
    record = registry.get("toy")
    for key in ("accuracy", "loss", "val_accuracy", "val_loss"):
        assert record.metrics[key] == pytest.approx(history.history[key][-1])
    assert record.params["epochs"] == 3 and record.params["epochs_run"] == 3
    assert record.params["batch_size"] == 16 and record.params["optimizer"] == "Adam"
    assert record.params["learning_rate"] == pytest.approx(0.01)
    assert "registered toy/1" in capsys.readouterr().out
    np.testing.assert_allclose(registry.load("toy/1").predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5)  # fmt: skip

    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert cb.version == 2 and registry.get("toy").params["epochs_run"] == 1


def test_a_diverged_run_is_not_registered(registry, capsys):
    from forge_course.callbacks import RegistryCallback

    cb = RegistryCallback("toy", registry=registry)
    cb.on_train_begin()
    cb.on_train_end({"loss": float("nan"), "accuracy": 0.5})
    assert cb.version is None and registry.names() == []
    assert "not registered (non-finite loss)" in capsys.readouterr().out
