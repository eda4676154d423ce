"""Exercise 03: the Functional API: two inputs and two outputs, wide and deep, a broken graph.

The ladder: a model that takes the digits as pixels and as an ink profile and answers
with the digit and the amount of ink (apply); a two-input *wide and deep* classifier that
beats the lesson-02-style Sequential's test accuracy with fewer parameters (target); and
a graph meant to share one block between its branches and to read both inputs, that
does neither (debug).

Every model here is built from Keras's own layers, so the grader loads it with
``safe_mode`` and runs it itself; nothing from the learner's kernel is trusted.
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import dataset, not_a_model
from forge_course.grading.spec import Check, Exercise, Task

INPUTS = {"pixels": (None, 64), "profile": (None, 16)}
MIN_DIGIT_ACCURACY = 0.85  # task 1, after EPOCHS epochs
MAX_INK_MAE = 0.026  # task 1: always answering the training mean misses by about 0.029
REFERENCE_UNITS = 32  # the Sequential to beat: 64 pixels -> Dense(32) -> Dense(10)
REFERENCE_PARAMS = (64 * REFERENCE_UNITS + REFERENCE_UNITS) + (REFERENCE_UNITS * 10 + 10)
MIN_WIDE_ACCURACY = 0.94  # task 2: above the reference's test accuracy (0.927 at SEED 0)
MIN_DEBUG_ACCURACY = 0.93  # task 3: the repaired graph; the broken one stays near 0.88
REGRESSION_LOSSES = ("mse", "meansquarederror", "mae", "meanabsoluteerror", "huber")


def views(images: np.ndarray) -> dict[str, np.ndarray]:
    """The two inputs of a batch of 8x8 digits: 64 pixels in [0, 1], and the ink profile.

    The profile holds the ink of each of the 8 rows, then of each of the 8 columns.
    """
    x = np.asarray(images).reshape(len(images), 8, 8).astype("float32") / 255
    profile = np.concatenate([x.sum(axis=2), x.sum(axis=1)], axis=1)
    return {"pixels": x.reshape(len(x), 64), "profile": profile}


def ink(images: np.ndarray) -> np.ndarray:
    """The amount of ink of each image: the mean of its pixels, in [0, 1]."""
    return (np.asarray(images).astype("float32") / 255).reshape(len(images), -1).mean(axis=1)


def _split(split: str = "test"):
    ds = dataset("digits")
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    return views(x), np.asarray(y).astype(int), ink(x)


def _run(model, inputs: dict[str, np.ndarray]):
    """The model's outputs on named inputs (dict, list or array), or a message."""
    import keras

    try:
        out = model(inputs, training=False)
    except Exception as exc:  # noqa: BLE001 - a wrong graph is a failed check, not a crash
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"the model cannot take the inputs {sorted(inputs)}: {first[:200]}"
    if isinstance(out, dict):
        return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}, None
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(v) for v in out], None
    return keras.ops.convert_to_numpy(out), None


def _input_problem(model) -> str | None:
    if bad := not_a_model(model):
        return bad
    try:
        got = {t.name: tuple(t.shape) for t in model.inputs}
    except (AttributeError, ValueError):
        return "the model has no inputs of its own: build it from keras.Input tensors"
    if got != INPUTS:
        return (
            f"the model's inputs are {got}; it should take {INPUTS} "
            "(keras.Input(shape=(64,), name='pixels') and keras.Input(shape=(16,), name='profile'))"
        )
    return None


def _digit_scores(model, inputs) -> tuple[np.ndarray | None, str | None]:
    """The (n, 10) class scores of a one-output model, or of its 'digit' output."""
    out, bad = _run(model, inputs)
    if bad:
        return None, bad
    if isinstance(out, dict):
        out = out.get("digit")
    elif isinstance(out, list):
        out = out[0] if len(out) == 1 else None
    n = len(next(iter(inputs.values())))
    if out is None or np.shape(out) != (n, 10):
        return None, "the model should answer with 10 class scores per image"
    return np.asarray(out), None


def _depends_on(model, name: str) -> bool:
    """Whether the digit scores change when the input ``name`` is zeroed."""
    x = views(dataset("digits").x_test[:32])
    base, _ = _digit_scores(model, x)
    changed, _ = _digit_scores(model, {**x, name: np.zeros_like(x[name])})
    return base is not None and changed is not None and not np.allclose(base, changed, atol=1e-6)


def _accuracy(model) -> tuple[float | None, str | None]:
    x, y, _ = _split("test")
    scores, bad = _digit_scores(model, x)
    if bad:
        return None, bad
    return float(np.mean(scores.argmax(axis=1) == y)), None


# ---------------------------------------------------------------- ex03_1 apply


def _output_shapes(model) -> dict[str, tuple] | None:
    try:
        names = list(model.output_names)
        shapes = [tuple(t.shape) for t in model.outputs]
    except (AttributeError, ValueError, TypeError):
        return None
    return dict(zip(names, shapes, strict=False))


def _two_by_two(v, p):
    model = v["model"]
    if bad := _input_problem(model):
        return bad
    got = _output_shapes(model)
    want = {"digit": (None, 10), "ink": (None, 1)}
    if got != want:
        return f"the model's outputs are {got}; it should answer {want}, named by the output layers"


def _loss_label(loss) -> str:
    if loss is None:
        return ""
    name = (
        loss
        if isinstance(loss, str)
        else (getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)
    )
    return str(name).lower().replace("_", "")


def _per_output(model, value) -> dict | None:
    """A per-output setting (dict, or list in output order) as a dict keyed by output name."""
    if isinstance(value, dict):
        return value
    names = list(getattr(model, "output_names", []) or [])
    if isinstance(value, (list, tuple)) and len(value) == len(names) > 1:
        return dict(zip(names, value, strict=True))
    return None


def _losses(v, p):
    model = v["model"]
    if bad := not_a_model(model):
        return bad
    loss = getattr(model, "loss", None)
    losses = _per_output(model, loss)
    if losses is None:
        got = _loss_label(loss) if isinstance(loss, str) or loss is not None else "no loss"
        return (
            "compile the model with one loss per output, a dictionary keyed by output name "
            f"(got {got or 'no loss'})"
        )
    digit, amount = _loss_label(losses.get("digit")), _loss_label(losses.get("ink"))
    if "sparsecategoricalcrossentropy" not in digit:
        return f"the digit's loss is {digit or 'missing'}; its labels are integers 0-9"
    if not any(r in amount for r in REGRESSION_LOSSES):
        return f"the ink's loss is {amount or 'missing'}; it is a number, so a regression loss"


def _trained(v, p):
    model = v["model"]
    if bad := _input_problem(model):
        return bad
    x, y, amount = _split("test")
    out, bad = _run(model, x)
    if bad:
        return bad
    out = _per_output(model, out) if isinstance(out, list) else out
    if not isinstance(out, dict) or set(out) != {"digit", "ink"}:
        return "the model should answer a dictionary with 'digit' and 'ink'"
    if np.shape(out["digit"]) != (len(y), 10) or np.size(out["ink"]) != len(y):
        return "the outputs should be 10 scores and one number per image"
    accuracy = float(np.mean(np.asarray(out["digit"]).argmax(axis=1) == y))
    mae = float(np.mean(np.abs(np.asarray(out["ink"]).ravel() - amount)))
    if accuracy < MIN_DIGIT_ACCURACY or mae > MAX_INK_MAE:
        return (
            f"on the test digits: accuracy {accuracy:.3f} (needs {MIN_DIGIT_ACCURACY}), ink "
            f"mean absolute error {mae:.4f} (needs at most {MAX_INK_MAE})"
        )


# ---------------------------------------------------------------- ex03_2 target


def _wide_and_deep_inputs(v, p):
    model = v["model"]
    if bad := _input_problem(model):
        return bad
    x = views(dataset("digits").x_test[:4])
    if bad := _digit_scores(model, x)[1]:
        return bad
    unused = [name for name in INPUTS if not _depends_on(model, name)]
    if unused:
        return f"the class scores do not change with {' or '.join(unused)}: use both inputs"


def _fewer_parameters(v, p):
    model = v["model"]
    if bad := not_a_model(model):
        return bad
    try:
        count = model.count_params()
    except ValueError:
        return "the model is not built yet: build it from keras.Input tensors"
    if count >= REFERENCE_PARAMS:
        return (
            f"the model has {count:,} parameters; the Sequential it must beat has "
            f"{REFERENCE_PARAMS:,}"
        )


def _wide_accuracy(v, p):
    model = v["model"]
    if bad := _input_problem(model):
        return bad
    accuracy, bad = _accuracy(model)
    if bad:
        return bad
    if accuracy < MIN_WIDE_ACCURACY:
        return f"test accuracy is {accuracy:.3f}; the bar is {MIN_WIDE_ACCURACY}"


# ---------------------------------------------------------------- ex03_3 debug


def _shared_layers(model) -> list[str]:
    """Layers of ``model`` that the model calls more than once."""
    keys = getattr(model, "_nodes", None) or set()  # this model's calls (a layer may serve others)
    shared = []
    for layer in getattr(model, "layers", []):
        nodes = getattr(layer, "_inbound_nodes", [])
        calls = sum(f"{id(layer)}_ib-{i}" in keys for i in range(len(nodes)))
        if type(layer).__name__ != "InputLayer" and calls > 1:
            shared.append(layer.name)
    return shared


def _shares_a_block(v, p):
    model = v["model"]
    if bad := _input_problem(model):
        return bad
    if not _shared_layers(model):
        return (
            "no layer of this model is called twice: both branches should go through one "
            "and the same block"
        )


def _reads_both(v, p):
    return _wide_and_deep_inputs(v, p)


def _repaired_accuracy(v, p):
    if _shares_a_block(v, p) or _reads_both(v, p):  # the given graph earns nothing here
        return "the graph does not yet share its block and read both inputs"
    accuracy, bad = _accuracy(v["model"])
    if bad:
        return bad
    if accuracy < MIN_DEBUG_ACCURACY:
        return f"test accuracy is {accuracy:.3f}; the repaired graph reaches {MIN_DEBUG_ACCURACY}"


EXERCISE = Exercise(
    name="03_functional_api",
    params={"SEED": 0, "EPOCHS": 10, "BATCH_SIZE": 32},
    tasks=(
        Task(
            "ex03_1", "apply", "two inputs, two outputs",
            {"model": "model"},
            (
                Check(
                    "two_by_two", _two_by_two,
                    description="inputs 'pixels' (64) and 'profile' (16); outputs 'digit' "
                    "(10 scores) and 'ink' (1 number)",
                    hints=(
                        "A functional model is declared by its input tensors and its output "
                        "tensors; names let fit() match arrays to them.",
                        "`keras.Input(shape=(64,), name='pixels')`, and "
                        "`keras.Model(inputs={...}, outputs={'digit': ..., 'ink': ...})` "
                        "with output layers named 'digit' and 'ink'.",
                        "`digit = layers.Dense(10, activation='softmax', name='digit')(merged)`; "
                        "`amount = layers.Dense(1, name='ink')(merged)`",
                    ),
                ),
                Check(
                    "losses", _losses,
                    description="compiled with one loss per output: a cross-entropy for "
                    "integer labels, a regression loss for the ink",
                    hints=(
                        "Each output answers a different kind of question, so each needs its "
                        "own measure of error.",
                        "`compile(loss={'digit': ..., 'ink': ...})`, keyed by output name.",
                        "`loss={'digit': 'sparse_categorical_crossentropy', 'ink': 'mse'}`",
                    ),
                ),
                Check(
                    "trained", _trained, hidden=True,
                    description=f"test digit accuracy at least {MIN_DIGIT_ACCURACY} and ink "
                    f"mean absolute error at most {MAX_INK_MAE}",
                ),
            ),
        ),
        Task(
            "ex03_2", "target", "wide and deep, smaller and better",
            {"model": "model"},
            (
                Check(
                    "both_inputs", _wide_and_deep_inputs,
                    description="inputs 'pixels' and 'profile', both of which change the "
                    "class scores",
                    hints=(
                        "Wide and deep means two paths to the output: a short, wide one for "
                        "the simple features and a deeper one for the raw pixels.",
                        "Give each input its own path and join them with `layers.Add` or "
                        "`layers.Concatenate` before (or in) the output layer.",
                        "`wide = layers.Dense(10)(profile)`; `deep = layers.Dense(10)("
                        "layers.Dense(16, activation='relu')(pixels))`; "
                        "`layers.Activation('softmax')(layers.Add()([wide, deep]))`",
                    ),
                ),
                Check(
                    "fewer_parameters", _fewer_parameters, points=2,
                    description=f"fewer than {REFERENCE_PARAMS:,} parameters, the Sequential's "
                    "count",
                    hints=(
                        "The profile already summarises the image, so the pixel path can be "
                        "narrower than the Sequential's hidden layer.",
                        "`model.count_params()` counts them; the first Dense layer on the "
                        "pixels costs 65 per unit.",
                        "`layers.Dense(16, activation='relu')(pixels)` costs 1,040",
                    ),
                ),
                Check(
                    "accuracy", _wide_accuracy, points=2,
                    description=f"test accuracy at least {MIN_WIDE_ACCURACY}",
                    hints=(
                        "A small model trained for few epochs may simply not have learnt yet: "
                        "how fast it learns matters as much as its size.",
                        "Pass an optimizer with a larger step to `compile`, e.g. "
                        "`keras.optimizers.Adam(learning_rate=...)`, and scale the profile "
                        "with a `Normalization` layer.",
                        "`model.compile(optimizer=keras.optimizers.Adam(0.01), "
                        "loss='sparse_categorical_crossentropy', metrics=['accuracy'])`",
                    ),
                ),
            ),
        ),
        Task(
            "ex03_3", "debug", "a graph that shares nothing and reads one input",
            {"model": "model"},
            (
                Check(
                    "shared_block", _shares_a_block, points=2,
                    description="one block called on both branches (a shared layer)",
                    hints=(
                        "Creating a layer and calling it are two steps; a shared layer is "
                        "created once and called twice.",
                        "Create the block once, `block = layers.Dense(...)`, then call "
                        "`block(seen)` and `block(read)`.",
                        "`block = layers.Dense(WIDTH, activation='relu')`; "
                        "`seen = layers.Add()([seen, block(seen)])`",
                    ),
                ),
                Check(
                    "reads_both", _reads_both, points=2,
                    description="class scores that change with the pixels and with the profile",
                    hints=(
                        "An input the output does not depend on is an input the model "
                        "ignores: follow the tensor the head reads back to the inputs.",
                        "The head should read the tensor that merges both branches.",
                        "`digit = layers.Dense(10, activation='softmax', name='digit')(merged)`",
                    ),
                ),
                Check(
                    "accuracy", _repaired_accuracy, points=3, hidden=True,
                    description=f"the repaired graph reaches test accuracy {MIN_DEBUG_ACCURACY}",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _built(
    *,
    shared: bool = True,
    head_reads: str = "merged",
    outputs=("digit",),
    losses=None,
    train: bool = False,
    hidden: int = 8,
):
    """A model of the exercise's shape, right or wrong in the ways FAILING needs."""
    import keras
    from keras import layers

    pixels = keras.Input(shape=(64,), name="pixels")
    profile = keras.Input(shape=(16,), name="profile")
    seen = layers.Dense(hidden, activation="relu")(pixels)
    read = layers.Dense(hidden, activation="relu")(profile)
    block = layers.Dense(hidden, activation="relu")
    other = block if shared else layers.Dense(hidden, activation="relu")
    seen = layers.Add()([seen, block(seen)])
    read = layers.Add()([read, other(read)])
    merged = layers.Concatenate()([seen, read])
    source = {"merged": merged, "read": read}[head_reads]
    heads = {"digit": layers.Dense(10, activation="softmax", name="digit")(source)}
    if "ink" in outputs:
        heads["ink"] = layers.Dense(1, name="ink")(merged)
    model = keras.Model(
        {"pixels": pixels, "profile": profile}, heads if len(heads) > 1 else heads["digit"]
    )
    if losses is not None:
        model.compile(optimizer="adam", loss=losses)
    if train:
        x, y, amount = _split("train")
        targets = {"digit": y, "ink": amount} if len(heads) > 1 else y
        model.fit(x, targets, epochs=1, batch_size=64, verbose=0)
    return model


def _wide(hidden: int):
    import keras
    from keras import layers

    pixels = keras.Input(shape=(64,), name="pixels")
    profile = keras.Input(shape=(16,), name="profile")
    deep = layers.Dense(10)(layers.Dense(hidden, activation="relu")(pixels))
    out = layers.Activation("softmax")(layers.Add()([layers.Dense(10)(profile), deep]))
    return keras.Model({"pixels": pixels, "profile": profile}, out)


FAILING = {
    "ex03_1.two_by_two": lambda p: {"model": _built()},  # one output only
    "ex03_1.losses": lambda p: {  # one loss for both outputs
        "model": _built(outputs=("digit", "ink"), losses="mse")
    },
    "ex03_1.trained": lambda p: {  # compiled right, barely trained
        "model": _built(
            outputs=("digit", "ink"),
            losses={"digit": "sparse_categorical_crossentropy", "ink": "mse"},
        )
    },
    "ex03_2.both_inputs": lambda p: {"model": _built(head_reads="read")},
    "ex03_2.fewer_parameters": lambda p: {"model": _wide(64)},
    "ex03_2.accuracy": lambda p: {"model": _wide(16)},  # untrained
    "ex03_3.shared_block": lambda p: {"model": _built(shared=False)},
    "ex03_3.reads_both": lambda p: {"model": _built(head_reads="read")},
    "ex03_3.accuracy": lambda p: {"model": _built()},  # right graph, untrained
}  # fmt: skip
