"""Feed lesson 05's CNN from a ``tf.data`` pipeline and from a Python generator; print images/s.

Two cases, each timed over ``--epochs`` epochs of ``fit`` after one warm-up epoch (the
warm-up traces the training step, which has nothing to do with the input), and once more
with no model at all (``input only``: how fast each feed can deliver batches, the ceiling
a fast accelerator would hit; for in-memory arrays that line flatters the generator,
since NumPy slicing from Python is cheap while ``fit`` never iterates ``tf.data`` from
Python but inside its compiled step):

- ``arrays``: the images already sit in memory as a NumPy array, as in the lesson. Both
  feeds only slice batches, so expect a ratio near 1: there is nothing to overlap.
- ``png``: every image is stored as PNG bytes, as on disk, and must be decoded before
  the model sees it. ``tf.data`` decodes in parallel (``map(num_parallel_calls=
  AUTOTUNE)``) and ahead of training (``prefetch``); the generator decodes one image at a
  time in Python (Pillow), between training steps.

Run: ``FORGE_COURSE_OFFLINE=1 python benchmarks/input_pipeline.py`` (offline, the digits
stand in for Fashion-MNIST, tiled to ``--images`` examples). The figures are wall-clock
throughput, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time

import numpy as np

BATCH_SIZE = 32


def images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training images (raw uint8, 28x28) and labels, tiled when the data has fewer."""
    from forge_course import data

    ds = data.load("fashion_mnist", seed=0)
    reps = math.ceil(n / len(ds.x_train))
    return np.tile(ds.x_train, (reps, 1, 1))[:n], np.tile(ds.y_train, reps)[:n]


def model(shape: tuple[int, int]):
    """Lesson 05's CNN: raw pixels in, scaling and augmentation inside."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input(shape=shape), layers.Reshape((*shape, 1)), layers.Rescaling(1 / 255),
        layers.RandomRotation(0.05, fill_mode="constant"),
        layers.RandomTranslation(0.07, 0.07, fill_mode="constant"),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.3), layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return net


def encode_png(x: np.ndarray) -> list[bytes]:
    from PIL import Image

    out = []
    for image in x:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def tf_arrays(x, y):
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x), seed=0)
            .batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE))  # fmt: skip


def tf_png(pngs, y, shape):
    import tensorflow as tf

    def decode(png, label):
        return tf.reshape(tf.io.decode_png(png, channels=1), shape), label

    return (tf.data.Dataset.from_tensor_slices((pngs, y)).shuffle(len(y), seed=0)
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE))  # fmt: skip


def gen_arrays(x, y):
    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            yield x[rows], y[rows]


def gen_png(pngs, y):
    from PIL import Image

    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(y))
        for start in range(0, len(y), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            batch = np.stack([np.asarray(Image.open(io.BytesIO(pngs[i]))) for i in rows])
            yield batch, y[rows]


def images_per_second(net, feed, n: int, epochs: int, **fit_args) -> float:
    net.fit(feed, epochs=1, verbose=0, **fit_args)  # warm-up: traces the step
    start = time.perf_counter()
    net.fit(feed, epochs=epochs, verbose=0, **fit_args)
    return epochs * n / (time.perf_counter() - start)


def delivered_per_second(feed, n: int) -> float:
    """Images per second that a feed delivers with nobody training on them (one epoch)."""
    it = iter(feed)
    next(it)  # start-up: the first batch (and tf.data's threads)
    start, seen = time.perf_counter(), 0
    while seen < n:
        seen += len(next(it)[1])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per feed")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    x, y = images(args.images)
    steps = math.ceil(len(x) / BATCH_SIZE)
    pngs = encode_png(x)
    net = model(x.shape[1:])
    print(f"{len(x):,} images {x.shape[1:]}, batch {BATCH_SIZE}, {args.epochs} timed epochs each")
    print(f"{'case':<18} {'tf.data img/s':>14} {'generator img/s':>16} {'ratio':>6}")
    for case, tf_feed, py_feed in (
        ("arrays", tf_arrays(x, y), gen_arrays(x, y)),
        ("png", tf_png(pngs, y, x.shape[1:]), gen_png(pngs, y)),
    ):
        fast = images_per_second(net, tf_feed, len(x), args.epochs)
        slow = images_per_second(net, py_feed, len(x), args.epochs, steps_per_epoch=steps)
        print(f"{case + ', fit':<18} {fast:14,.0f} {slow:16,.0f} {fast / slow:6.2f}")
        fast = delivered_per_second(tf_feed.repeat(), len(x))
        slow = delivered_per_second(py_feed, len(x))
        print(f"{case + ', input only':<18} {fast:14,.0f} {slow:16,.0f} {fast / slow:6.2f}")


if __name__ == "__main__":
    main()
