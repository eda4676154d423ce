"""Exercise 00: know your machine's data before training on it.

The ladder: count the classes of the training labels (apply), cut the largest balanced
subset (target), and repair a cell that flattens images into rows the wrong way (debug).
"""

from __future__ import annotations

import numpy as np

from forge_course.grading.checks import dataset
from forge_course.grading.spec import Check, Exercise, Task

N_CLASSES = 10


def training_split(p):
    """The training rows the exercise works on: a seeded subset, unbalanced whatever the data.

    Fashion-MNIST has exactly 6,000 images per class, so counting them would teach
    nothing; a random subset of ``TRAIN_ROWS`` rows is uneven in every dataset.
    """
    ds = dataset(p["DATASET"], max_train=p["TRAIN_ROWS"], seed=p["SEED"])
    return ds.x_train, ds.y_train


def _labels(p) -> np.ndarray:
    return training_split(p)[1]


# ---------------------------------------------------------------- ex00_1 apply


def _counts_shape(v, p):
    counts = np.asarray(v["class_counts"])
    if counts.shape != (N_CLASSES,) or not np.issubdtype(counts.dtype, np.integer):
        return f"class_counts should be {N_CLASSES} integers; got {counts.dtype} {counts.shape}"
    n = len(_labels(p))
    if int(counts.sum()) != n:
        return f"class_counts adds up to {int(counts.sum())}, but the training split has {n} rows"


def _counts_match(v, p):
    want = np.bincount(_labels(p), minlength=N_CLASSES)
    if not np.array_equal(np.asarray(v["class_counts"]), want):
        return "class_counts does not match the training labels class by class"


# ---------------------------------------------------------------- ex00_2 target


def _indices(v, p):
    idx = np.asarray(v["balanced"])
    n = len(_labels(p))
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        return f"balanced should be a flat array of row numbers; got {idx.dtype} {idx.shape}"
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        return f"balanced has row numbers outside 0..{n - 1}"
    if len(np.unique(idx)) != len(idx):
        return "balanced names some rows twice; a subset holds each row at most once"


def _is_balanced(v, p):
    if problem := _indices(v, p):
        return problem
    per_class = np.bincount(_labels(p)[np.asarray(v["balanced"])], minlength=N_CLASSES)
    if len(set(per_class.tolist())) != 1:
        return f"the classes are not equally represented: {per_class.tolist()}"


def _largest(v, p):
    if problem := _indices(v, p) or _is_balanced(v, p):
        return problem
    have = len(np.asarray(v["balanced"]))
    most = int(np.bincount(_labels(p), minlength=N_CLASSES).min()) * N_CLASSES
    if have != most:
        return f"balanced has {have} rows; the largest balanced subset has {most}"


# ---------------------------------------------------------------- ex00_3 debug


def _one_row_per_image(v, p):
    rows, x = np.asarray(v["rows"]), training_split(p)[0]
    want = (len(x), int(np.prod(x.shape[1:])))
    if rows.shape != want:
        return f"rows has shape {rows.shape}; one row per image gives {want}"
    if not np.allclose(rows[:3] * 255, x[:3].reshape(3, -1), atol=1e-3):
        return "row 0 is not image 0's pixels in order; each row should be one whole image"


def _float32_unit(v, p):
    rows = np.asarray(v["rows"])
    if rows.dtype != np.float32:
        return f"rows is {rows.dtype}; Keras computes in float32, so hand it float32"
    if rows.size and not (rows.min() >= 0.0 and rows.max() <= 1.0):
        return f"pixels should lie in [0, 1]; these run from {rows.min():g} to {rows.max():g}"


def _every_image(v, p):
    rows, x = np.asarray(v["rows"]), training_split(p)[0]
    if rows.shape != (len(x), int(np.prod(x.shape[1:]))):
        return "rows should hold one row per image, each row that image's pixels"
    if not np.allclose(rows * 255, x.reshape(len(x), -1), atol=1e-3):
        return "some rows do not hold their image's pixels"


EXERCISE = Exercise(
    name="00_setup_and_environment",
    params={"SEED": 0, "DATASET": "fashion_mnist", "TRAIN_ROWS": 2000},
    timeout=120.0,
    tasks=(
        Task(
            "ex00_1", "apply", "count the training examples of each class",
            {"class_counts": "array"},
            (
                Check(
                    "counts", _counts_shape,
                    description=f"{N_CLASSES} integer counts that add up to the training rows",
                    hints=(
                        "Each label is a whole number from 0 to 9; you want how often each "
                        "one occurs among the training labels.",
                        "`np.bincount` counts the occurrences of each non-negative integer.",
                        "`np.bincount(y_train, minlength=10)`",
                    ),
                ),
                Check(
                    "per_class", _counts_match, hidden=True,
                    description="each count equals the grader's count of that class",
                ),
            ),
        ),
        Task(
            "ex00_2", "target", "the largest balanced subset of the training set",
            {"balanced": "array"},
            (
                Check(
                    "row_numbers", _indices,
                    description="a flat integer array of distinct training row numbers",
                    hints=(
                        "A subset is a list of row numbers into the training set, each used "
                        "at most once.",
                        "`np.flatnonzero(y_train == k)` gives the rows of class k.",
                        "`np.concatenate([np.flatnonzero(y_train == k)[:n] for k in range(10)])`",
                    ),
                ),
                Check(
                    "balanced", _is_balanced,
                    description="every class appears the same number of times",
                    hints=(
                        "Take the same number of rows from every class.",
                        "Count what you kept with `np.bincount(y_train[balanced])`.",
                        "`n = <one number>` then `[np.flatnonzero(y_train == k)[:n] ...]`",
                    ),
                ),
                Check(
                    "largest", _largest,
                    description="as many rows as any balanced subset can have",
                    hints=(
                        "The rarest class limits every class: no balanced subset holds more "
                        "of each class than the rarest one has.",
                        "`class_counts.min()` is that limit.",
                        "`n = np.bincount(y_train, minlength=10).min()`",
                    ),
                ),
            ),
        ),
        Task(
            "ex00_3", "debug", "repair the cell that flattens images into rows",
            {"rows": "array"},
            (
                Check(
                    "one_row_per_image", _one_row_per_image, points=2,
                    description="shape (images, pixels) with row i holding image i",
                    hints=(
                        "Print the shape of rows: which axis counts images, which pixels?",
                        "`x.reshape(len(x), -1)` keeps the first axis and flattens the rest.",
                        "`rows = x_train.reshape(len(x_train), -1)`",
                    ),
                ),
                Check(
                    "float32_in_0_1", _float32_unit,
                    description="float32 values between 0 and 1",
                    hints=(
                        "Dividing uint8 pixels by 255 gives float64, twice the memory Keras "
                        "needs.",
                        "`.astype('float32')` converts an array.",
                        "`x_train.reshape(len(x_train), -1).astype('float32') / 255`",
                    ),
                ),
                Check(
                    "every_image", _every_image, hidden=True,
                    description="every row matches its image, pixel by pixel",
                ),
            ),
        ),
    ),
)  # fmt: skip


def _ones(p, n=None):
    return np.ones(n if n is not None else N_CLASSES, dtype=int)


FAILING = {
    "ex00_1.counts": lambda p: {"class_counts": _ones(p)},
    "ex00_1.per_class": lambda p: {  # right total, as if every class were equally common
        "class_counts": np.full(N_CLASSES, len(_labels(p)) // N_CLASSES)
    },
    "ex00_2.row_numbers": lambda p: {"balanced": np.array([0, 0, 1])},
    "ex00_2.balanced": lambda p: {"balanced": np.arange(25)},
    "ex00_2.largest": lambda p: {
        "balanced": np.concatenate([np.flatnonzero(_labels(p) == k)[:1] for k in range(10)])
    },
    "ex00_3.one_row_per_image": lambda p: {
        "rows": training_split(p)[0].reshape(28 * 28, -1).astype("float32") / 255
    },
    "ex00_3.float32_in_0_1": lambda p: {
        "rows": training_split(p)[0].reshape(len(_labels(p)), -1) / 255
    },
    "ex00_3.every_image": lambda p: {
        "rows": np.flip(training_split(p)[0], axis=0).reshape(len(_labels(p)), -1).astype("float32")
        / 255
    },
}
