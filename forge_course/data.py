"""Every dataset the course uses: the Keras cache, a download, or a bundled stand-in.

``load(name)`` returns a :class:`Dataset` and prints one line saying where the data came
from. Images come from Keras's own cache (``$KERAS_HOME/datasets``, the files that
``keras.datasets`` writes); when they are not cached, they are downloaded into those same
files (Keras's names and checksums) unless ``FORGE_COURSE_OFFLINE=1``. A download gives up
on a server that does not connect or goes silent (:mod:`forge_course.download`). Offline
with an empty cache, with a cache that cannot be written, or when the download fails,
scikit-learn's bundled handwritten digits stand in, and a notice says so: the course
never swaps data silently.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from forge_course.config import home, offline
from forge_course.download import copy_url, file_sha256
from forge_course.errors import CacheError, DatasetError, DownloadError

__all__ = [
    "Dataset",
    "IMAGE_DATASETS",
    "TABULAR_DATASETS",
    "cache_dir",
    "cache_status",
    "cache_writable",
    "fetch",
    "load",
    "names",
]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_FILES = {
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_train": "train-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
}
IMAGE_DATASETS = ("fashion_mnist", "mnist", "digits")
TABULAR_DATASETS = ("breast_cancer",)
DOWNLOADABLE = ("fashion_mnist", "mnist")


@dataclasses.dataclass
class Dataset:
    """Arrays of one dataset, its class names, and where it came from.

    ``source`` names the origin (``"keras cache"``, ``"download"``, ``"bundled"``);
    ``notice`` is set when a stand-in replaced the data that was asked for.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    location: str = ""
    notice: str = ""
    feature_names: tuple[str, ...] = ()

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_test, self.y_test

    @property
    def stand_in(self) -> bool:
        """True when this is not the dataset that was asked for."""
        return bool(self.notice)

    def summary(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return (
            f"{self.name}: {len(self.x_train):,} train / {len(self.x_test):,} test, "
            f"inputs {self.x_train.shape[1:]}, {len(self.class_names)} classes, "
            f"from {self.source}{where}"
        )


def names() -> tuple[str, ...]:
    """Every name :func:`load` accepts."""
    return IMAGE_DATASETS + TABULAR_DATASETS


def cache_dir() -> Path:
    """Keras's dataset cache: ``$KERAS_HOME/datasets``, by default ``~/.keras/datasets``."""
    return home() / "datasets"


def cache_writable(path: Path | None = None) -> bool:
    """Whether the cache folder exists (or can be made) and can be written."""
    path = path or cache_dir()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def cache_status() -> dict[str, bool]:
    """Which downloadable datasets are fully present in the cache."""
    return {name: all(p.exists() for p in _cache_files(name)) for name in DOWNLOADABLE}


def load(
    name: str,
    *,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> Dataset:
    """Load a dataset by name, from the cache, a download or a bundled stand-in.

    Args:
        name: one of :func:`names` (``fashion_mnist``, ``mnist``, ``digits``,
            ``breast_cancer``).
        max_train: keep at most this many training examples (a seeded random subset).
        max_test: the same for the test split.
        seed: the seed of those subsets.
        verbose: print the one-line summary (a stand-in's notice prints regardless).

    Raises:
        DatasetError: ``name`` is unknown, or a limit is not a whole number.
        CacheError: a cache file is corrupt.
    """
    key = _key(name, names())
    for split, limit in (("train", max_train), ("test", max_test)):
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
        ):
            raise DatasetError(
                f"max_{split} must be a whole number or None, got {limit!r} "
                f"({type(limit).__name__}); for example max_{split}=1000"
            )
    _warn_about_backend()
    if key == "digits":
        ds = _digits()
    elif key == "breast_cancer":
        ds = _breast_cancer()[0]
    else:
        ds = _image_dataset(key)
    ds = _subsample(ds, max_train, max_test, seed)
    if ds.notice:
        print(f"NOTICE: {ds.notice}", file=sys.stderr)
    if verbose:
        print(ds.summary())
    return ds


def fetch(name: str) -> Path:
    """Download one dataset into the Keras cache (for ``forge-course fetch-data``).

    Returns the cached path. Raises :class:`CacheError` when the cache cannot be
    written and :class:`DatasetError` when the download fails or the name is unknown.
    """
    key = _key(name, names(), fetchable=True)
    if key not in DOWNLOADABLE:
        return Path("(bundled with scikit-learn)")
    root = cache_dir()
    if not cache_writable(root):
        raise CacheError(
            f"cannot write the dataset cache {root}; set KERAS_HOME to a writable folder "
            "(for example `export KERAS_HOME=$HOME/.keras`) and run fetch-data again"
        )
    if offline() and not all(p.exists() for p in _cache_files(key)):
        raise DatasetError(
            f"FORGE_COURSE_OFFLINE=1 forbids downloading {key}; unset it and try again"
        )
    try:
        _download(key)
    except DownloadError as exc:
        raise DownloadError(
            f"{exc}; check the network connection or proxy and run "
            f"`forge-course fetch-data {key}` again"
        ) from None
    _read_cache(key)  # prove the files are whole
    return _cache_files(key)[0].parent


def _key(name: object, choices: tuple[str, ...], *, fetchable: bool = False) -> str:
    """The canonical form of a dataset name, or a DatasetError listing the choices."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key in choices:
        return key
    if fetchable:
        bundled = [n for n in names() if n not in DOWNLOADABLE]
        raise DatasetError(
            f"unknown dataset {name!r}; fetch-data downloads: {', '.join(DOWNLOADABLE)} "
            f"({' and '.join(bundled)} ship with scikit-learn and need no download)"
        )
    raise DatasetError(
        f"unknown dataset {name!r}; choose one of: {', '.join(choices)} "
        '(a name in quotes, for example load("fashion_mnist"))'
    )


def _warn_about_backend() -> None:
    """Say so when Keras is set up for another backend: the lesson's imports will fail."""
    from forge_course.doctor import _configured_backend

    backend = _configured_backend()
    if backend != "tensorflow":
        print(
            f"NOTICE: Keras is configured for the {backend!r} backend (KERAS_BACKEND or "
            f"{home() / 'keras.json'}), but this course runs Keras on TensorFlow: unset "
            "KERAS_BACKEND or set it to tensorflow (`export KERAS_BACKEND=tensorflow`), "
            "then restart the kernel.",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------- images


def _cache_files(name: str) -> list[Path]:
    if name == "mnist":
        return [cache_dir() / "mnist.npz"]
    return [cache_dir() / "fashion-mnist" / f for f in FASHION_FILES.values()]


def _image_dataset(name: str) -> Dataset:
    classes = FASHION_CLASSES if name == "fashion_mnist" else DIGIT_CLASSES
    files = _cache_files(name)
    if all(p.exists() for p in files):
        arrays = _read_cache(name)
        return Dataset(name, *arrays, classes, "keras cache", str(files[0].parent))
    if offline():
        why = f"FORGE_COURSE_OFFLINE=1 and {name} is not in the cache {cache_dir()}"
        return _stand_in(name, why)
    try:
        _download(name)
    except CacheError as exc:
        why = (
            f"{exc}, so {name} cannot be downloaded (or set FORGE_COURSE_OFFLINE=1 to "
            "skip the download)"
        )
        return _stand_in(name, why)
    except DownloadError as exc:
        return _stand_in(name, str(exc))
    arrays = _read_cache(name)
    return Dataset(name, *arrays, classes, "download", str(files[0].parent))


def _download(name: str) -> None:
    """Download ``name``'s missing files into the Keras cache, under Keras's file names.

    Raises :class:`CacheError` when the cache cannot be written and
    :class:`DownloadError` when the mirror fails, stalls or sends a wrong file.
    """
    root = cache_dir()
    unwritable = CacheError(
        f"cannot write the dataset cache {root}; set KERAS_HOME to a writable folder"
    )
    if not cache_writable(root):
        raise unwritable
    if name == "mnist":
        todo = [("mnist.npz", root, MNIST_SHA256)]
    else:
        todo = [(f, root / "fashion-mnist", None) for f in FASHION_FILES.values()]
    for fname, folder, sha256 in todo:
        if (folder / fname).exists():
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            part = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{fname}.", delete=False)
        except OSError:
            raise unwritable from None
        try:
            with part:
                copy_url(ORIGIN + fname, part, name)
            if sha256 and file_sha256(part.name) != sha256:
                raise DownloadError(
                    f"downloading {name} failed: {fname} from {ORIGIN} does not match its "
                    "SHA-256 checksum (a proxy or captive portal may have answered instead)"
                )
            os.replace(part.name, folder / fname)
        finally:
            if os.path.exists(part.name):
                os.unlink(part.name)


def _read_cache(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read cached files in the exact formats keras.datasets writes, validating them."""
    if name == "mnist":
        path = _cache_files("mnist")[0]
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = tuple(f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        except KeyError as exc:
            raise _corrupt(path, "mnist", f"it has no array {exc}") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error):
            # not numpy's own words: they invite allow_pickle=True, unsafe for a bad file
            raise _corrupt(path, "mnist", "not a readable .npz archive") from None
        _check_pairs(path, "mnist", arrays)
        return arrays
    out = {}
    for key, fname in FASHION_FILES.items():
        path = cache_dir() / "fashion-mnist" / fname
        try:
            out[key] = _read_idx(path, images=key.startswith("x"))
        except (OSError, ValueError, EOFError, zlib.error) as exc:
            raise _corrupt(path, "fashion_mnist", exc) from None
    arrays = (out["x_train"], out["y_train"], out["x_test"], out["y_test"])
    _check_pairs(cache_dir() / "fashion-mnist", "fashion_mnist", arrays)
    return arrays


def _read_idx(path: Path, *, images: bool) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST family's format) and check its header."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, want = (2051, 16) if images else (2049, 8)
    if len(raw) < want or int.from_bytes(raw[:4], "big") != magic:
        raise ValueError(f"not an IDX {'image' if images else 'label'} file")
    count = int.from_bytes(raw[4:8], "big")
    body = np.frombuffer(raw, np.uint8, offset=want)
    if images:
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        if body.size != count * rows * cols:
            raise ValueError(f"header says {count} images of {rows}x{cols}, data is truncated")
        return body.reshape(count, rows, cols)
    if body.size != count:
        raise ValueError(f"header says {count} labels, found {body.size}")
    return body


def _check_pairs(path: Path, name: str, arrays: tuple) -> None:
    x_train, y_train, x_test, y_test = arrays
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise _corrupt(path, name, "images and labels differ in number")


def _corrupt(path: Path, name: str, exc: BaseException | str) -> CacheError:
    return CacheError(
        f"the cached file {path} is corrupt ({exc}); delete it and run "
        f"`forge-course fetch-data {name}` while online (offline, the digits stand in)"
    )


def _stand_in(name: str, why: str) -> Dataset:
    """scikit-learn's digits, upscaled to 28x28 like MNIST, in place of ``name``."""
    small = _digits()
    x_train, x_test = (_to_28x28(x) for x in (small.x_train, small.x_test))
    notice = (
        f"{why}; using scikit-learn's bundled handwritten digits (8x8, upscaled to 28x28) "
        f"instead, so class names are digits. For the real {name}, run "
        f"`forge-course fetch-data {name}` while online."
    )
    return Dataset(
        name, x_train, small.y_train, x_test, small.y_test, DIGIT_CLASSES,
        "bundled", "scikit-learn digits", notice,
    )  # fmt: skip


def _to_28x28(images: np.ndarray) -> np.ndarray:
    """Upscale 8x8 digits 3x (24x24) and pad to 28x28, as MNIST centres its digits."""
    big = images.repeat(3, axis=1).repeat(3, axis=2)
    return np.pad(big, ((0, 0), (2, 2), (2, 2)))


# --------------------------------------------------------------------------- bundled


def _fresh(build):
    """Build a bundled dataset once per process; every call returns its own copy.

    scikit-learn parses its files on each call; the grader's fork server calls these
    once (see :func:`warm`) so that every kernel it forks starts with them parsed. A copy
    each time: a learner who scales ``x_train`` in place changes only their own arrays.
    """
    cached: list = []

    def load_fresh():
        if not cached:
            cached.append(build())
        return _copy(cached[0])

    load_fresh.__doc__ = build.__doc__
    return load_fresh


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Dataset):
        arrays = {f: getattr(value, f).copy() for f in ("x_train", "y_train", "x_test", "y_test")}
        return dataclasses.replace(value, **arrays)
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return value


def warm() -> None:
    """Parse the bundled datasets now, so that processes forked later find them ready."""
    _digits()
    _breast_cancer()


@_fresh
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    labels = bunch.target.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=0
    )
    return Dataset(
        "digits", x_train, y_train, x_test, y_test, DIGIT_CLASSES, "bundled",
        "scikit-learn digits",
    )  # fmt: skip


@_fresh
def _breast_cancer() -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
    """Wisconsin breast-cancer data: the 10 'mean' features, raw, binary labels.

    Split 60/20/20 into train, test and a grading hold-out that :func:`load` never
    returns. The features stay in their own units (radius in micrometres next to
    smoothness near 0.1): scaling belongs in the model, as a ``Normalization`` layer
    adapted on the rows it trains on, so that no statistic leaks from held-out rows and
    a served model takes raw measurements. Label 1 means benign, 0 malignant
    (scikit-learn's coding).
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x = bunch.data[:, :10].astype(np.float32)
    y = bunch.target.astype(np.float32)
    x_rest, x_hold, y_rest, y_hold = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    x_train, x_test, y_train, y_test = train_test_split(
        x_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=0
    )
    ds = Dataset(
        "breast_cancer", x_train, y_train, x_test, y_test, ("malignant", "benign"),
        "bundled", "scikit-learn breast cancer (Wisconsin)",
        feature_names=tuple(str(f) for f in bunch.feature_names[:10]),
    )  # fmt: skip
    return ds, (x_hold, y_hold)


def grading_holdout(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The examples of ``name`` that :func:`load` never returns, for the grader's checks."""
    if name != "breast_cancer":
        raise DatasetError(f"no grading hold-out for {name!r}; only breast_cancer has one")
    return _breast_cancer()[1]


def _subsample(ds: Dataset, max_train: int | None, max_test: int | None, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    for split, limit in (("train", max_train), ("test", max_test)):
        if limit is None:
            continue
        if limit < 1:
            raise DatasetError(f"max_{split} must be at least 1, got {limit}")
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if limit < len(x):
            keep = np.sort(rng.choice(len(x), size=limit, replace=False))
            ds = dataclasses.replace(ds, **{f"x_{split}": x[keep], f"y_{split}": y[keep]})
    return ds
