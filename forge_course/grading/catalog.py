"""The built-in exercises of lessons 00-02 and their checks.

Model-quality checks compare with thresholds set well below what the reference
solution reaches, so seed and CPU differences cannot flip a grade; each threshold and
its tolerance is stated in the check's description.
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.spec import Check, Exercise, Task, register


def _dataset(name: str, **kw):
    from forge_course import data

    return data.load(name, verbose=False, **kw)


def _accuracy(model, x, y) -> float:
    """Accuracy of a sigmoid (1 unit) or softmax (k units) classifier."""
    import keras

    # a direct call, not model.predict(): no tf.function to trace for a one-off batch
    probs = keras.ops.convert_to_numpy(model(np.asarray(x, dtype="float32"), training=False))
    guess = (probs[:, 0] > 0.5) if probs.shape[-1] == 1 else probs.argmax(axis=-1)
    return float(np.mean(guess.astype(int) == np.asarray(y).astype(int)))


def _is_model(value) -> str | None:
    import keras

    if not isinstance(value, keras.Model):
        return f"expected a Keras model, got {type(value).__name__}"
    return None


# --------------------------------------------------------------------------- 00


def _tf_version(v, p):
    import tensorflow as tf

    if str(v["tf_version"]) != tf.__version__:
        return f"tf_version is {v['tf_version']!r}, but this TensorFlow says {tf.__version__!r}"


def _backend(v, p):
    if v["keras_backend"] != "tensorflow":
        return f"keras_backend is {v['keras_backend']!r}; Keras in this course runs on tensorflow"


def _counts_shape(v, p):
    counts = np.asarray(v["class_counts"])
    if counts.shape != (10,) or not np.issubdtype(counts.dtype, np.integer):
        return (
            f"class_counts should be 10 integers, one per class; got {counts.dtype} {counts.shape}"
        )


def _counts_total(v, p):
    n = len(_dataset(p["DATASET"]).y_train)
    total = int(np.asarray(v["class_counts"]).sum())
    if total != n:
        return f"class_counts adds up to {total}, but the training split has {n} examples"


def _counts_match(v, p):
    y = _dataset(p["DATASET"]).y_train
    if not np.array_equal(np.asarray(v["class_counts"]), np.bincount(y, minlength=10)):
        return "class_counts does not match the training labels class by class"


register(
    Exercise(
        name="00_setup_and_environment",
        params={"SEED": 0, "DATASET": "fashion_mnist"},
        tasks=(
            Task(
                "ex00_1",
                {"tf_version": "scalar", "keras_backend": "scalar"},
                (
                    Check("ex00_1", "tf_version", _tf_version, hint="read `tf.__version__`"),
                    Check("ex00_1", "backend", _backend, hint="ask `keras.backend.backend()`"),
                ),
            ),
            Task(
                "ex00_2",
                {"class_counts": "array"},
                (
                    Check(
                        "ex00_2", "shape", _counts_shape,
                        hint="`np.bincount(y_train, minlength=10)` counts each label",
                    ),
                    Check(
                        "ex00_2", "total", _counts_total,
                        hint="count the *training* labels of the dataset you loaded",
                    ),
                    Check("ex00_2", "per_class", _counts_match, hidden=True, points=2),
                ),
            ),
        ),
    )
)  # fmt: skip


# --------------------------------------------------------------------------- 01


def _dense_shape(v, p):
    y = np.asarray(v["y"])
    if y.shape != (4, 3):
        return f"y has shape {y.shape}; a Dense(3) layer on 4 rows gives (4, 3)"


def _dense_count(v, p):
    if v["n_weights"] != 5 * 3 + 3:
        return f"n_weights is {v['n_weights']}; count the kernel's entries and the biases"


def _dense_values(v, p):
    y = np.asarray(v["y"])
    if not np.all(np.isfinite(y)) or y.dtype != np.float32:
        return "y should hold finite float32 values, what the layer returns"


def _losses_fall(v, p):
    losses = np.asarray(v["losses"], dtype=float).ravel()
    if len(losses) != p["STEPS"]:
        return f"losses has {len(losses)} entries; record one per step ({p['STEPS']} steps)"
    if not np.all(np.isfinite(losses)):
        return "some losses are NaN or infinite; is the learning rate too high?"
    if losses[-5:].mean() > 0.5 * losses[0]:
        return "the loss did not fall to half its first value; are the gradients applied?"


def _step_model(v, p):
    bad = _is_model(v["model"])
    if bad:
        return bad
    shape_in = tuple(v["model"].input_shape)
    shape_out = tuple(v["model"].output_shape)
    if shape_in != (None, 64) or shape_out != (None, 10):
        return f"the model maps {shape_in} to {shape_out}; it should map (None, 64) to (None, 10)"


def _step_accuracy(v, p):
    test = _dataset("digits")
    x = test.x_test.reshape(len(test.x_test), -1).astype("float32") / 255.0
    acc = _accuracy(v["model"], x, test.y_test)
    if acc < 0.80:
        return f"accuracy on the digits test split is {acc:.3f}; at least 0.80 is expected"


register(
    Exercise(
        name="01_keras_on_tensorflow",
        params={"SEED": 0, "STEPS": 60, "LEARNING_RATE": 0.05},
        tasks=(
            Task(
                "ex01_1",
                {"y": "array", "n_weights": "scalar"},
                (
                    Check(
                        "ex01_1", "output_shape", _dense_shape,
                        hint="call the layer on x: `y = layer(x)`",
                    ),
                    Check(
                        "ex01_1", "weight_count", _dense_count,
                        hint="`layer.count_params()` or kernel plus bias sizes",
                    ),
                    Check("ex01_1", "output_values", _dense_values, hidden=True),
                ),
            ),
            Task(
                "ex01_2",
                {"losses": "array", "model": "model"},
                (
                    Check(
                        "ex01_2", "loss_falls", _losses_fall, points=2,
                        hint="inside the tape compute the loss; outside it, "
                        "`optimizer.apply_gradients(zip(grads, model.trainable_variables))`",
                    ),
                    Check(
                        "ex01_2", "model_shape", _step_model,
                        hint="Input(shape=(64,)) and Dense(10, activation='softmax')",
                    ),
                    Check(
                        "ex01_2", "test_accuracy", _step_accuracy, hidden=True, points=2,
                        description="digits test accuracy >= 0.80, well below a working "
                        "loop's result so run-to-run noise cannot flip it",
                    ),
                ),
            ),
        ),
    )
)  # fmt: skip


# --------------------------------------------------------------------------- 02

EXPECTED_LAYERS = [
    ("Dense", 64, "relu"),
    ("Dropout", 0.2, None),
    ("Dense", 32, "relu"),
    ("Dense", 1, "sigmoid"),
]


def _layers(model) -> list[tuple]:
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            out.append((kind, layer.units, layer.activation.__name__))
        elif kind == "Dropout":
            out.append((kind, round(float(layer.rate), 3), None))
        else:
            out.append((kind, None, None))
    return out


def _architecture(v, p):
    model = v["model"]
    bad = _is_model(model)
    if bad:
        return bad
    if tuple(model.input_shape) != (None, 10):
        return f"the input shape is {model.input_shape}; the data has 10 features"
    got = _layers(model)
    if got != EXPECTED_LAYERS:
        for i, (want, have) in enumerate(zip(EXPECTED_LAYERS, got, strict=False)):
            if want != have:
                return f"layer {i + 1} is {have}, expected {want}"
        return f"the model has {len(got)} layers, expected {len(EXPECTED_LAYERS)}"


def _param_count(v, p):
    n = v["model"].count_params()
    if n != 2817:
        return f"the model has {n:,} parameters, the classifier described has a different count"


def _compiled(v, p):
    model = v["model"]
    optimizer = type(getattr(model, "optimizer", None)).__name__.lower()
    loss = getattr(model, "loss", None)
    loss_name = loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
    if optimizer != "adam":
        return f"the optimizer is {optimizer}, not adam; did you compile the model?"
    if "binarycrossentropy" not in str(loss_name).lower().replace("_", ""):
        return f"the loss is {loss_name}, not binary cross-entropy"


def _test_split():
    ds = _dataset("breast_cancer")
    return ds.x_test, ds.y_test


def _reported(v, p):
    measured = _accuracy(v["model"], *_test_split())
    reported = float(v["test_accuracy"])
    if abs(measured - reported) > 0.02:
        return f"you report {reported:.3f}, but this model scores {measured:.3f} on the test split"


def _trained(v, p):
    acc = _accuracy(v["model"], *_test_split())
    if acc < 0.88:
        return f"test accuracy is {acc:.3f}; a trained classifier reaches at least 0.88"


def _holdout(v, p):
    from forge_course import data

    acc = _accuracy(v["model"], *data.grading_holdout("breast_cancer"))
    if acc < 0.85:
        return f"accuracy on the grader's held-out patients is {acc:.3f} (needs 0.85)"


register(
    Exercise(
        name="02_sequential_api",
        params={"SEED": 0, "EPOCHS": 6, "BATCH_SIZE": 32},
        tasks=(
            Task(
                "ex02_1",
                {"model": "model"},
                (
                    Check(
                        "ex02_1", "architecture", _architecture, points=2,
                        hint="Input(10) -> Dense(64, relu) -> Dropout(0.2) -> Dense(32, relu) "
                        "-> Dense(1, sigmoid)",
                    ),
                    Check(
                        "ex02_1", "parameter_count", _param_count,
                        hint="compare model.count_params() with your count by hand",
                    ),
                    Check(
                        "ex02_1", "compiled", _compiled,
                        hint="model.compile(optimizer='adam', loss='binary_crossentropy', "
                        "metrics=['accuracy'])",
                    ),
                ),
            ),
            Task(
                "ex02_2",
                {"model": "model", "test_accuracy": "scalar"},
                (
                    Check(
                        "ex02_2", "reported_accuracy", _reported,
                        hint="report what model.evaluate(x_test, y_test) returns for accuracy",
                        description="your test_accuracy within 0.02 of the grader's measurement",
                    ),
                    Check(
                        "ex02_2", "test_accuracy", _trained, points=2,
                        hint="train with model.fit on the training split for EPOCHS epochs",
                        description="test accuracy >= 0.88 measured by the grader, far above "
                        "what always predicting the larger class scores",
                    ),
                    Check(
                        "ex02_2", "holdout_accuracy", _holdout, hidden=True, points=3,
                        description="accuracy >= 0.85 on patients the kernel never saw; the "
                        "reference model clears it with room for seed and CPU noise",
                    ),
                ),
            ),
        ),
    )
)  # fmt: skip
