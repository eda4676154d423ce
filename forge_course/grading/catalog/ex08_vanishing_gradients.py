"""Exercise 08: gradient norms of a deep network, a first layer that learns, a broken measurement.

The ladder: log a deep tanh network's gradient norms with ``GradientNormLogger``
(apply), change a deep sigmoid network, keeping its depth, until its first layer gets a
fair share of the gradient (target), and repair a cell that claims a ReLU network's
first layer never moved (debug).

Every network here starts from seeded initializers, so the grader rebuilds the exact
starting weights from ``SEED`` and measures on the same probe batch as the notebook.
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import accuracy, dataset, flat_digits, not_a_model
from forge_course.grading.spec import Check, Exercise, Task

DEPTH = 10  # Dense layers, the output layer included
WIDTH = 32
PROBE_ROWS = 256  # the first training rows: the probe batch
LEARNING_RATE = 0.1  # plain SGD, as in the lesson
MIN_RATIO = 0.05  # first/last gradient ratio after training (the lesson's sigmoid net: ~1e-5)
MIN_ACCURACY = 0.5  # digits test accuracy of a deep network that learns (guessing: ~0.1)
MIN_CHANGE = 0.05  # relative move of the ReLU network's first kernel after training
RTOL = 1e-3  # how closely a submitted number must match the grader's own measurement


def probe_batch() -> tuple[np.ndarray, np.ndarray]:
    """The first PROBE_ROWS training digits, flattened to 64 pixels in [0, 1], and labels."""
    x, y = flat_digits("train")
    return x[:PROBE_ROWS], y[:PROBE_ROWS]


def deep_network(activation: str = "sigmoid", *, seed: int = 0, he: bool = False):
    """A compiled DEPTH-layer Dense network for the digits, from seeded initial weights.

    Args:
        activation: the hidden layers' activation.
        seed: seeds every layer's initializer (layer k gets ``seed + k``).
        he: He-normal initialization instead of Glorot-uniform.
    """
    import keras
    from keras import layers

    init = keras.initializers.HeNormal if he else keras.initializers.GlorotUniform
    stack = [keras.Input(shape=(64,))]
    for k in range(DEPTH - 1):
        stack.append(layers.Dense(WIDTH, activation=activation, kernel_initializer=init(seed + k)))
    stack.append(layers.Dense(10, activation="softmax", kernel_initializer=init(seed + DEPTH)))
    model = keras.Sequential(stack)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def measure(model) -> tuple[np.ndarray | None, str | None]:
    """The kernel gradient norms of ``model`` on the probe batch, or what went wrong."""
    import keras

    from forge_course.callbacks.gradients import GradientNormLogger, kernel_layers

    if bad := not_a_model(model):
        return None, bad
    if not kernel_layers(model):
        return None, "the model has no Dense layer to measure"
    x, y = probe_batch()
    loss = getattr(model, "loss", None) or keras.losses.SparseCategoricalCrossentropy()
    try:
        return GradientNormLogger(x, y, loss=loss).measure(model), None
    except Exception as exc:  # noqa: BLE001 - a wrong model may fail in many ways
        return None, f"could not measure this model's gradients on the probe batch: {exc}"


def first_kernel(model) -> np.ndarray:
    from forge_course.callbacks.gradients import kernel_layers

    return kernel_layers(model)[0].kernel.numpy()


def relative_change(start: np.ndarray, end: np.ndarray) -> float:
    return float(np.linalg.norm(end - start) / np.linalg.norm(start))


def _number(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return f"expected one finite number, got {value!r}"
    return None


# ---------------------------------------------------------------- ex08_1 apply


def _norms(v, p) -> tuple[np.ndarray | None, str | None]:
    norms = np.asarray(v["norms"])
    want = (p["EPOCHS"] + 1, DEPTH)
    if norms.shape != want or not np.issubdtype(norms.dtype, np.number):
        return None, (
            f"norms is shaped {norms.shape}; the logger records {want}: one row before "
            f"training and one per epoch ({p['EPOCHS']}), one column per Dense layer ({DEPTH})"
        )
    if not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        return None, "norms should hold positive, finite gradient norms"
    return norms.astype("float64"), None


def _norms_shape(v, p):
    return _norms(v, p)[1]


def _last_record(v, p):
    norms, bad = _norms(v, p)
    if bad:
        return bad
    own, bad = measure(v["model"])
    if bad:
        return bad
    if own.shape != norms[-1].shape or not np.allclose(norms[-1], own, rtol=RTOL, atol=0):
        return (
            "the last row of norms is not what this model's gradients measure on the probe "
            "batch: was the logger attached to this model's fit(), on the probe batch?"
        )


def _first_record(v, p):
    norms, bad = _norms(v, p)
    if bad:
        return bad
    start, _ = measure(deep_network("tanh", seed=p["SEED"]))
    if not np.allclose(norms[0], start, rtol=RTOL, atol=0):
        return "the first row of norms is not the tanh network's gradients before training"


# ---------------------------------------------------------------- ex08_2 target


def _deep_enough(v, p):
    from forge_course.callbacks.gradients import kernel_layers

    if bad := not_a_model(v["model"]):
        return bad
    n = len(kernel_layers(v["model"]))
    if n < DEPTH:
        return f"the model has {n} Dense layers; keep all {DEPTH}, the point is a deep network"
    shapes = (tuple(v["model"].input_shape), tuple(v["model"].output_shape))
    if shapes != ((None, 64), (None, 10)):
        return f"the model maps {shapes[0]} to {shapes[1]}; 64 pixels in, 10 classes out"


def _depth(v, p):
    """Deep enough, and no longer the given plain sigmoid stack (starter code earns nothing)."""
    from forge_course.callbacks.gradients import kernel_layers

    if bad := _deep_enough(v, p):
        return bad
    model = v["model"]
    kinds = {type(layer).__name__ for layer in model.layers}
    hidden = kernel_layers(model)[:-1]
    acts = {getattr(getattr(layer, "activation", None), "__name__", "") for layer in hidden}
    if kinds <= {"Dense", "InputLayer"} and acts == {"sigmoid"}:
        return (
            f"this is still the given network of {DEPTH} sigmoid Dense layers: keep the depth "
            "and change what starves its first layer"
        )


def _ratio(v, p):
    if bad := _deep_enough(v, p):
        return bad
    norms, bad = measure(v["model"])
    if bad:
        return bad
    ratio = norms[0] / norms[-1] if norms[-1] > 0 else 0.0
    if not ratio >= MIN_RATIO:
        return (
            f"after training, the first layer's gradient is {ratio:.1e} times the last "
            f"layer's; the bar is {MIN_RATIO}"
        )


def _learns(v, p):
    if bad := _depth(v, p):
        return bad
    acc = accuracy(v["model"], *flat_digits("test"))
    if acc < MIN_ACCURACY:
        return (
            f"digits test accuracy is {acc:.3f}; a deep network that learns reaches {MIN_ACCURACY}"
        )


# ---------------------------------------------------------------- ex08_3 debug


def _grader_change(v, p) -> tuple[float | None, str | None]:
    if bad := not_a_model(v["model"]):
        return None, bad
    start = first_kernel(deep_network("relu", seed=p["SEED"], he=True))
    try:
        end = first_kernel(v["model"])
    except (IndexError, AttributeError):
        return None, "the model has no Dense layer"
    if end.shape != start.shape:
        return None, f"the first kernel is shaped {end.shape}, the given network's {start.shape}"
    return relative_change(start, end), None


def _nonzero(v, p):
    if bad := _number(v["change"]):
        return bad
    if not v["change"] > 0:
        return f"change is {v['change']}: the cell still says the first layer did not move"


def _matches(v, p):
    if bad := _number(v["change"]):
        return bad
    own, bad = _grader_change(v, p)
    if bad:
        return bad
    if not np.isclose(v["change"], own, rtol=0.01, atol=1e-9):
        return (
            f"change is {v['change']:.4g}, but this model's first kernel moved "
            f"{own:.4g} of its starting size"
        )


def _trained(v, p):
    if _nonzero(v, p) or _matches(v, p):  # the given, unrepaired cell alone earns nothing
        return "the measurement of the first layer's change is not repaired yet"
    own, bad = _grader_change(v, p)
    if bad:
        return bad
    acc = accuracy(v["model"], *flat_digits("test"))
    if own < MIN_CHANGE or acc < MIN_ACCURACY:
        return (
            f"the first kernel moved {own:.3f} of its size (needs {MIN_CHANGE}) and the model "
            f"scores {acc:.3f} on the digits test split (needs {MIN_ACCURACY})"
        )


EXERCISE = Exercise(
    name="08_vanishing_gradients",
    params={"SEED": 0, "EPOCHS": 8, "BATCH_SIZE": 32},
    tasks=(
        Task(
            "ex08_1", "apply", "log a deep tanh network's gradient norms",
            {"model": "model", "norms": "array"},
            (
                Check(
                    "shape", _norms_shape,
                    description=f"one row per record (EPOCHS + 1) and one column per Dense "
                    f"layer ({DEPTH})",
                    hints=(
                        "The logger records once before training and once after every epoch, "
                        "one number per layer with a kernel.",
                        "`GradientNormLogger(x_probe, y_probe)` in `fit(callbacks=[...])`, then "
                        "its `.norms`.",
                        "`logger = GradientNormLogger(x_probe, y_probe); tanh_net.fit(..., "
                        "callbacks=[logger]); norms = logger.norms`",
                    ),
                ),
                Check(
                    "last_record", _last_record,
                    description="the last row equals the trained model's gradient norms on the "
                    f"probe batch (within {RTOL:g})",
                    hints=(
                        "The last record is measured after the last epoch, on the weights the "
                        "model ends with.",
                        "Attach the logger to the very model you hand in, and measure on "
                        "`x_probe, y_probe`.",
                        "`check(\"ex08_1\", model=tanh_net, norms=logger.norms)`",
                    ),
                ),
                Check(
                    "first_record", _first_record, hidden=True,
                    description="the first row equals the untrained network's gradient norms",
                ),
            ),
        ),
        Task(
            "ex08_2", "target", "a deep network whose first layer learns",
            {"model": "model"},
            (
                Check(
                    "depth", _depth,
                    description=f"still {DEPTH} Dense layers, 64 pixels in, 10 classes out",
                    hints=(
                        "The task is to make a deep network learn, not to make it shallow.",
                        "Change the activation, the initializer or what sits between the Dense "
                        f"layers; keep {DEPTH} `layers.Dense`.",
                        "`layers.Dense(WIDTH, activation=\"relu\", "
                        "kernel_initializer=keras.initializers.HeNormal(seed=...))`",
                    ),
                ),
                Check(
                    "ratio", _ratio, points=2,
                    description=f"after training, first/last gradient ratio on the probe at "
                    f"least {MIN_RATIO}",
                    hints=(
                        "The sigmoid's slope is at most a quarter, so each layer shrinks the "
                        "gradient; an activation with slope 1, or normalization, keeps it.",
                        "ReLU with `HeNormal` initialization, or a `BatchNormalization` before "
                        "each activation (lesson 08, section 4).",
                        "`layers.Dense(WIDTH, activation=\"relu\", kernel_initializer="
                        "keras.initializers.HeNormal(seed=SEED + k))` for every hidden layer",
                    ),
                ),
                Check(
                    "learns", _learns, hidden=True,
                    description=f"digits test accuracy at least {MIN_ACCURACY}",
                ),
            ),
        ),
        Task(
            "ex08_3", "debug", "a first layer that 'never moved'",
            {"model": "model", "change": "scalar"},
            (
                Check(
                    "nonzero", _nonzero,
                    description="change is above zero: the first layer did move",
                    hints=(
                        "A value read before training and a value read after training are "
                        "equal only if they are the same object.",
                        "`layer.kernel` is the variable itself; `layer.kernel.numpy()` is a "
                        "copy of its values at that moment.",
                        "`before = relu_net.layers[0].kernel.numpy()`",
                    ),
                ),
                Check(
                    "matches", _matches, points=2,
                    description="change equals ||W_end - W_start|| / ||W_start|| of the first "
                    "kernel (within 1%)",
                    hints=(
                        "A change relative to where the layer started is measured against the "
                        "start, not the end.",
                        "Divide by `np.linalg.norm(before)`.",
                        "`change = float(np.linalg.norm(after - before) / "
                        "np.linalg.norm(before))`",
                    ),
                ),
                Check(
                    "trained", _trained, points=2, hidden=True,
                    description=f"the first kernel moved at least {MIN_CHANGE} and the network "
                    f"scores {MIN_ACCURACY} on the digits test split",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _trained_net(activation: str, p, epochs: int = 1, **kwargs):
    """A network trained as a learner's would be (one epoch unless told), for failing cases."""
    model = deep_network(activation, seed=p["SEED"], **kwargs)
    ds = dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), -1).astype("float32") / 255
    model.fit(x, ds.y_train, epochs=epochs, batch_size=p["BATCH_SIZE"], verbose=0)
    return model


def _norms_of(model, rows: int) -> np.ndarray:
    own, _ = measure(model)
    return np.tile(own, (rows, 1))


FAILING = {
    "ex08_1.shape": lambda p: {
        "model": deep_network("tanh", seed=p["SEED"]), "norms": np.ones((p["EPOCHS"], DEPTH)),
    },
    "ex08_1.last_record": lambda p: {  # the untrained network's norms, for a trained model
        "model": _trained_net("tanh", p),
        "norms": _norms_of(deep_network("tanh", seed=p["SEED"]), p["EPOCHS"] + 1),
    },
    "ex08_1.first_record": lambda p: {  # every row measured after training
        "model": (net := _trained_net("tanh", p)), "norms": _norms_of(net, p["EPOCHS"] + 1),
    },
    "ex08_2.depth": lambda p: {"model": _shallow()},
    "ex08_2.ratio": lambda p: {"model": deep_network("sigmoid", seed=p["SEED"])},
    "ex08_2.learns": lambda p: {"model": deep_network("relu", seed=p["SEED"], he=True)},
    "ex08_3.nonzero": lambda p: {"model": _trained_net("relu", p, he=True), "change": 0.0},
    "ex08_3.matches": lambda p: _relative_to_end(p),  # divided by the end, not the start
    "ex08_3.trained": lambda p: {"model": deep_network("relu", seed=p["SEED"], he=True),
                                 "change": 0.0},
}  # fmt: skip


def _relative_to_end(p) -> dict:
    model = _trained_net("relu", p, p["EPOCHS"], he=True)  # the notebook's whole training
    start = first_kernel(deep_network("relu", seed=p["SEED"], he=True))
    end = first_kernel(model)
    return {"model": model, "change": float(np.linalg.norm(end - start) / np.linalg.norm(end))}


def _shallow():
    import keras

    model = keras.Sequential(
        [keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model
