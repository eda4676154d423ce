"""Exercise 05: augmentation that fits digits, a classifier on raw pixels, a broken pipeline.

The ladder, on scikit-learn's 8x8 digits: an augmentation model that leaves images alone
outside training and never mirrors a digit (apply); a classifier that takes raw pixels
and clears a validation bar (target); and a ``tf.data`` pipeline that scales pixels the
model scales again and shuffles the images apart from their labels (debug).

The notebook works on the training split only, cut by :func:`digit_splits` into the rows
the model fits and validation rows. The test split belongs to the grader: the hidden
checks measure the submitted models on those images, which the notebook never uses.
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import accuracy, dataset, not_a_model
from forge_course.grading.spec import Check, Exercise, Task

VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0  # the cut is fixed, whatever SEED the grader injects
MIN_CHANGED = 0.5  # share of images the augmentation must change while training
MIN_READABLE = 0.6  # a reference classifier still reads this share of augmented test digits
MIN_VAL_ACCURACY = 0.975  # task 2's bar, on the validation images
MIN_HELD_OUT = 0.95  # task 2 on the grader's images (the test split), room for noise
MIN_PIPELINE_ACCURACY = 0.9  # task 3's model, validation images and the grader's alike
SHAPE = (8, 8)


def digit_splits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_fit, y_fit, x_val, y_val): raw 8x8 digits of the training split, cut at random.

    The same seeded cut in the notebook and in the grader; the test split is left out.
    """
    ds = dataset("digits")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(ds.x_train))
    n_val = int(len(order) * VALIDATION_FRACTION)
    val, fit = order[:n_val], order[n_val:]
    return ds.x_train[fit], ds.y_train[fit], ds.x_train[val], ds.y_train[val]


def held_out() -> tuple[np.ndarray, np.ndarray]:
    """The grader's images: the digits' test split, which the exercise never uses."""
    ds = dataset("digits")
    return ds.x_test, ds.y_test


def _call(model, x: np.ndarray, *, training: bool) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(model(x.astype("float32"), training=training))


def _layers(model) -> list:
    """Every layer inside ``model``, nested models included."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found += _layers(layer)
    return found


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images moved by whole pixels, with blank pixels coming in at the edges."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    return padded[:, 1 - dy : 1 - dy + SHAPE[0], 1 - dx : 1 - dx + SHAPE[1]]


def _channels(x: np.ndarray) -> np.ndarray:
    return x[..., None].astype("float32")


# ---------------------------------------------------------------- ex05_1 apply


def _augment_output(v) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """The sample, and the augmentation's output on it outside training, or what is wrong."""
    model = v["augment"]
    if bad := not_a_model(model):
        return None, None, bad
    sample = _channels(digit_splits()[0][:64])
    try:
        out = _call(model, sample, training=False)
    except Exception as exc:  # noqa: BLE001 - any failure is the learner's to see, in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, None, f"the augmentation fails on images shaped (n, 8, 8, 1): {first}"
    if out.shape != sample.shape:
        return None, None, f"it turns images shaped {sample.shape} into {out.shape}; keep the shape"
    return sample, out, None


def _inference_identity(v, p):
    sample, out, bad = _augment_output(v)
    if bad:
        return bad
    if not np.allclose(out, sample, atol=1e-4):
        return (
            "outside training it still changes the pixels (largest change "
            f"{float(np.abs(out - sample).max()):.3g}); augmentation only, no scaling here"
        )


def _varies_in_training(v, p):
    sample, _, bad = _augment_output(v)
    if bad:
        return bad
    out = _call(v["augment"], sample, training=True)
    changed = float(np.mean(np.any(np.abs(out - sample) > 1e-3, axis=(1, 2, 3))))
    if changed < MIN_CHANGED:
        return (
            f"while training it changed {changed:.0%} of the images; it should change at "
            f"least {MIN_CHANGED:.0%}"
        )


def _no_mirror(v, p):
    if bad := not_a_model(v["augment"]):
        return bad
    flips = [layer.name for layer in _layers(v["augment"]) if type(layer).__name__ == "RandomFlip"]
    if flips:
        return f"{flips[0]} mirrors images, and a mirrored 2, 3 or 7 is no longer that digit"


def _readable(v, p):
    """A classifier trained on clean digits still reads the augmented test digits."""
    from sklearn.neighbors import KNeighborsClassifier

    _, _, bad = _augment_output(v)
    if bad:
        return bad
    x_fit, y_fit, _, _ = digit_splits()
    x_test, y_test = held_out()
    # trained on every training digit shifted by up to one pixel, so that a shift alone
    # does not fool it, while a digit turned or moved much further does
    shifted = [_shift(x_fit, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    reference = KNeighborsClassifier(n_neighbors=3).fit(
        np.concatenate(shifted).reshape(-1, 64) / 255, np.tile(y_fit, len(shifted))
    )
    augmented = _call(v["augment"], _channels(x_test), training=True)
    score = reference.score(augmented.reshape(len(x_test), -1) / 255, y_test)
    if score < MIN_READABLE:
        return (
            f"a classifier trained on clean digits reads only {score:.2f} of the augmented "
            f"ones (needs {MIN_READABLE}); turns and shifts this strong change what a digit is"
        )


# ---------------------------------------------------------------- ex05_2 target


def _classifier_shape(model) -> str | None:
    if bad := not_a_model(model):
        return bad
    shapes = (tuple(model.input_shape), tuple(model.output_shape))
    if shapes[0][1:] not in (SHAPE, (*SHAPE, 1)) or shapes[1] != (None, 10):
        return f"the model maps {shapes[0]} to {shapes[1]}; 8x8 raw pixels in, 10 classes out"
    return None


def _raw_pixels(v, p):
    model = v["model"]
    if bad := _classifier_shape(model):
        return bad
    scaling = [type(layer).__name__ for layer in _layers(model)]
    if not {"Rescaling", "Normalization"} & set(scaling):
        return (
            "the model has no Rescaling (or Normalization) layer: it expects pixels scaled "
            "before they reach it, and a served model receives them raw (0-255)"
        )
    learned = [layer for layer in _layers(model) if layer.trainable_weights and not _layers(layer)]
    if len(learned) < 2:
        return (
            "this is still the given one-layer model (it scales inside, keep that): give it "
            "layers that can see strokes before the last one"
        )


def _val_accuracy(v, p):
    if bad := _classifier_shape(v["model"]):
        return bad
    _, _, x_val, y_val = digit_splits()
    acc = accuracy(v["model"], x_val, y_val)
    if acc < MIN_VAL_ACCURACY:
        return f"validation accuracy is {acc:.3f}; the bar is {MIN_VAL_ACCURACY}"


def _held_out_accuracy(v, p, bar: float = MIN_HELD_OUT):
    if bad := _classifier_shape(v["model"]):
        return bad
    acc = accuracy(v["model"], *held_out())
    if acc < bar:
        return f"on the grader's digits, fed raw pixels, it is right for {acc:.3f} (needs {bar})"


# ---------------------------------------------------------------- ex05_3 debug


def _batch(v) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """The submitted batch as (images, labels), or what is wrong with its shapes."""
    images, labels = np.asarray(v["images"]), np.asarray(v["labels"]).ravel()
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != SHAPE or images.dtype.kind not in "biuf":
        return None, None, f"images should be one batch shaped (n, 8, 8), got {images.shape}"
    if labels.shape != (len(images),) or labels.dtype.kind not in "biuf":
        wanted = f"one class per image ({len(images)})"
        return None, None, f"labels should hold {wanted}, got {labels.shape}"
    return images.astype("float64"), labels, None


def _pairs(v, p):
    images, labels, bad = _batch(v)
    if bad:
        return bad
    x_fit, y_fit, _, _ = digit_splits()
    if images.max() <= 1.0:  # scaled in the pipeline: compare on the stored scale
        images = images * 255
    known: dict[bytes, set[int]] = {}
    for x, y in zip(x_fit, y_fit, strict=True):
        known.setdefault(x.tobytes(), set()).add(int(y))
    found = [known.get(np.clip(np.round(x), 0, 255).astype(np.uint8).tobytes()) for x in images]
    strangers = sum(f is None for f in found)
    if strangers:
        return f"{strangers} of the {len(images)} images are not training images of this exercise"
    wrong = sum(int(y) not in f for f, y in zip(found, labels, strict=True))
    if wrong:
        return f"{wrong} of the {len(images)} images in the batch travel with another image's label"


def _raw_batch(v, p):
    images, _, bad = _batch(v)
    if bad:
        return bad
    if images.max() <= 1.0:
        return (
            "the batch holds pixels scaled to [0, 1], and the model divides by 255 again: "
            f"it sees values no larger than {images.max() / 255:.4f}"
        )


def _pipeline_learns(v, p):
    if bad := _classifier_shape(v["model"]):
        return bad
    _, _, x_val, y_val = digit_splits()
    acc = accuracy(v["model"], x_val, y_val)
    if acc < MIN_PIPELINE_ACCURACY:
        return (
            f"the model trained on this pipeline is right for {acc:.3f} of the validation "
            f"digits fed raw pixels (needs {MIN_PIPELINE_ACCURACY})"
        )


EXERCISE = Exercise(
    name="05_image_classifier",
    params={"SEED": 0, "EPOCHS": 20, "BATCH_SIZE": 32},
    tasks=(
        Task(
            "ex05_1", "apply", "augmentation that fits digits",
            {"augment": "model"},
            (
                Check(
                    "inference_identity", _inference_identity,
                    description="outside training, images come out exactly as they went in",
                    hints=(
                        "A served model must see each image as it is; random changes belong to "
                        "training only, and scaling belongs in the classifier, not here.",
                        "Keras's `RandomRotation`, `RandomTranslation` and friends pass images "
                        "through untouched when called with `training=False`.",
                        "`keras.Sequential([keras.Input(shape=(8, 8, 1)), "
                        "layers.RandomRotation(0.05), layers.RandomTranslation(0.1, 0.1)])`",
                    ),
                ),
                Check(
                    "varies_in_training", _varies_in_training,
                    description=f"while training, at least {MIN_CHANGED:.0%} of the images "
                    "change",
                    hints=(
                        "Augmentation shows the network a new variant of each image on every "
                        "pass; it has to change something.",
                        "Call `augment(images, training=True)` and compare with the input; "
                        "a rotation or translation factor of 0 does nothing.",
                        "`layers.RandomTranslation(height_factor=0.1, width_factor=0.1, "
                        "fill_mode='constant')`",
                    ),
                ),
                Check(
                    "no_mirror", _no_mirror,
                    description="no flips: a mirrored digit is not a digit",
                    hints=(
                        "Augment only with changes that keep the label true; which digits "
                        "survive being mirrored?",
                        "Leave `RandomFlip` out; `RandomRotation` and `RandomTranslation` "
                        "keep a digit a digit when they stay small.",
                        "`augment = keras.Sequential([keras.Input(shape=(8, 8, 1)), "
                        "layers.RandomRotation(0.05), layers.RandomTranslation(0.1, 0.1)])`",
                    ),
                ),
                Check(
                    "readable", _readable, hidden=True,
                    description=f"a classifier trained on clean digits still reads at least "
                    f"{MIN_READABLE} of the augmented test digits",
                ),
            ),
        ),
        Task(
            "ex05_2", "target", "a classifier on raw pixels that clears the bar",
            {"model": "model"},
            (
                Check(
                    "raw_pixels", _raw_pixels,
                    description="8x8 raw pixels (0-255) in, 10 classes out, scaled inside",
                    hints=(
                        "A served model receives pixels as they are stored; the model itself "
                        "must bring them to a small range.",
                        "Put `layers.Rescaling(1 / 255)` right after the input, and train on "
                        "`x_fit` as loaded.",
                        "`keras.Sequential([keras.Input(shape=(8, 8)), layers.Reshape((8, 8, 1)), "
                        "layers.Rescaling(1 / 255), ...])`",
                    ),
                ),
                Check(
                    "val_accuracy", _val_accuracy, points=2,
                    description=f"validation accuracy at least {MIN_VAL_ACCURACY}",
                    hints=(
                        "A dense layer sees pixels as an unordered list; a convolution looks "
                        "at neighbourhoods, which is where strokes live.",
                        "Add a `Conv2D` block (`Conv2D(32, 3, padding='same', "
                        "activation='relu')`, `MaxPooling2D()`) before `Flatten`.",
                        "`layers.Conv2D(32, 3, padding='same', activation='relu'), "
                        "layers.MaxPooling2D(), layers.Conv2D(64, 3, padding='same', "
                        "activation='relu'), layers.MaxPooling2D(), layers.Flatten()`",
                    ),
                ),
                Check(
                    "held_out", _held_out_accuracy, points=2, hidden=True,
                    description=f"accuracy at least {MIN_HELD_OUT} on digits the notebook never "
                    "uses, fed raw pixels",
                ),
            ),
        ),
        Task(
            "ex05_3", "debug", "repair a pipeline that teaches nothing",
            {"model": "model", "images": "array", "labels": "array"},
            (
                Check(
                    "pairs", _pairs, points=2,
                    description="every image in a batch travels with its own label",
                    hints=(
                        "Shuffling images and labels separately breaks the pairs; shuffle the "
                        "pairs as one.",
                        "`tf.data.Dataset.from_tensor_slices((x_fit, y_fit))` keeps each image "
                        "with its label through `shuffle` and `batch`.",
                        "`tf.data.Dataset.from_tensor_slices((x_fit, y_fit)).shuffle(len(x_fit), "
                        "seed=SEED).batch(BATCH_SIZE)`",
                    ),
                ),
                Check(
                    "raw_pixels", _raw_batch, points=2,
                    description="the batches hold raw pixels (0-255): the model scales them",
                    hints=(
                        "Look at the first layers of the model: what happens to pixels that "
                        "were already scaled before they reach them?",
                        "Leave `x_fit` as loaded: no division in the pipeline, "
                        "`Rescaling(1 / 255)` in the model does it.",
                        "`tf.data.Dataset.from_tensor_slices((x_fit, y_fit))` with no `/ 255`",
                    ),
                ),
                Check(
                    "learns", _pipeline_learns, points=2,
                    description=f"the model trained on the repaired pipeline reaches "
                    f"{MIN_PIPELINE_ACCURACY} on the validation digits",
                    hints=(
                        "A model that learns nothing was fed data in which nothing can be "
                        "learnt; repair the pipeline, then train a fresh model on it.",
                        "Run the cell again after repairing it: it builds and trains "
                        "`pipeline_model` from scratch.",
                        "`pipeline_model.fit(train_ds, epochs=EPOCHS, verbose=0)` on the "
                        "repaired `train_ds`",
                    ),
                ),
                Check(
                    "held_out", lambda v, p: _held_out_accuracy(v, p, MIN_PIPELINE_ACCURACY),
                    points=2, hidden=True,
                    description=f"accuracy at least {MIN_PIPELINE_ACCURACY} on digits the "
                    "notebook never uses, fed raw pixels",
                ),
            ),
        ),
    ),
)  # fmt: skip


def classifier(*, conv: bool = True, scale: bool = True):
    """An untrained (or, with the caller's fit, trained) digits classifier on raw 8x8 pixels."""
    import keras
    from keras import layers

    body = [layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D()]
    model = keras.Sequential([
        keras.Input(shape=SHAPE), layers.Reshape((*SHAPE, 1)),
        *([layers.Rescaling(1 / 255)] if scale else []),
        *(body if conv else []),
        layers.Flatten(), layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def _trained(scale: bool, x_scale: float = 1.0, shuffled: bool = False):
    x_fit, y_fit, _, _ = digit_splits()
    if shuffled:  # labels apart from their images
        y_fit = np.random.default_rng(0).permutation(y_fit)
    model = classifier(conv=False, scale=scale)
    model.fit(x_fit * x_scale, y_fit, epochs=8, batch_size=64, verbose=0)
    return model


def _augmenter(*steps):
    import keras

    return keras.Sequential([keras.Input(shape=(*SHAPE, 1)), *steps])


def _batch_of(x_scale: float = 1.0, shuffle_labels: bool = False):
    x_fit, y_fit, _, _ = digit_splits()
    labels = y_fit[:32][::-1] if shuffle_labels else y_fit[:32]
    return {"images": x_fit[:32] * x_scale, "labels": labels}


def _keras_layers():
    from keras import layers

    return layers


def _rescaler():
    return _augmenter(_keras_layers().Rescaling(1 / 255))


FAILING = {
    "ex05_1.inference_identity": lambda p: {"augment": _rescaler()},
    "ex05_1.varies_in_training": lambda p: {
        "augment": _augmenter(_keras_layers().RandomTranslation(0.0, 0.0))
    },
    "ex05_1.no_mirror": lambda p: {"augment": _augmenter(_keras_layers().RandomFlip("horizontal"))},
    "ex05_1.readable": lambda p: {
        "augment": _augmenter(_keras_layers().RandomRotation(0.5, fill_mode="constant", seed=0))
    },
    "ex05_2.raw_pixels": lambda p: {"model": _trained(scale=False, x_scale=1 / 255)},
    "ex05_2.val_accuracy": lambda p: {"model": classifier()},  # untrained
    "ex05_2.held_out": lambda p: {"model": classifier()},
    "ex05_3.pairs": lambda p: {"model": classifier(), **_batch_of(shuffle_labels=True)},
    "ex05_3.raw_pixels": lambda p: {"model": classifier(), **_batch_of(x_scale=1 / 255)},
    "ex05_3.learns": lambda p: {"model": classifier(), **_batch_of()},
    "ex05_3.held_out": lambda p: {"model": _trained(True, 1 / 255, shuffled=True), **_batch_of()},
}
