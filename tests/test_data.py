"""The dataset loader: Keras's cache format, offline stand-ins, corrupt files, bad names."""

from __future__ import annotations

import gzip
import re
import sys

import numpy as np
import pytest

from forge_course import data
from forge_course.download import file_sha256
from forge_course.errors import CacheError, DatasetError


def write_idx(path, array: np.ndarray) -> None:
    """Write ``array`` as a gzipped IDX file, the format keras.datasets downloads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + len(array).to_bytes(4, "big")
    if array.ndim == 3:
        header += array.shape[1].to_bytes(4, "big") + array.shape[2].to_bytes(4, "big")
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_cache(home, n_train=60, n_test=20):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, fname in data.FASHION_FILES.items():
        write_idx(home / "datasets" / "fashion-mnist" / fname, arrays[key])
    return arrays


def test_fashion_mnist_loads_from_a_keras_format_cache(keras_home, offline, capsys):
    arrays = fake_fashion_cache(keras_home)
    ds = data.load("fashion_mnist")
    assert ds.source == "keras cache" and not ds.stand_in
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"])
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10
    out = capsys.readouterr()
    assert "60 train / 20 test" in out.out and "keras cache" in out.out
    assert "NOTICE" not in out.err


def test_mnist_loads_from_a_keras_format_npz(keras_home, offline):
    rng = np.random.default_rng(1)
    (keras_home / "datasets").mkdir(parents=True)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 30, dtype=np.uint8)
    np.savez(
        keras_home / "datasets" / "mnist.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5]
    )
    ds = data.load("mnist", verbose=False)
    assert ds.source == "keras cache"
    np.testing.assert_array_equal(ds.x_train, x)
    assert data.cache_status() == {"fashion_mnist": False, "mnist": True}


def test_offline_without_cache_uses_digits_and_says_so(keras_home, offline, capsys):
    ds = data.load("fashion_mnist")
    err = capsys.readouterr().err
    assert ds.stand_in and ds.source == "bundled"
    assert "NOTICE" in err and "FORGE_COURSE_OFFLINE=1" in err and "fetch-data fashion_mnist" in err
    assert ds.x_train.shape[1:] == (28, 28) and ds.x_train.dtype == np.uint8
    assert ds.class_names == data.DIGIT_CLASSES
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_failed_download_falls_back_with_a_notice(keras_home, monkeypatch, capsys):
    monkeypatch.delenv("FORGE_COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(data, "ORIGIN", "http://127.0.0.1:9/")  # nothing listens: refused
    ds = data.load("mnist", verbose=False)
    assert ds.stand_in
    assert "downloading mnist failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage",
    [b"not gzip at all", gzip.compress(b"\x00\x00\x08\x03 truncated header")],
    ids=["not-gzip", "bad-header"],
)
def test_corrupt_cache_file_is_named_with_the_fix(keras_home, offline, damage):
    fake_fashion_cache(keras_home)
    broken = keras_home / "datasets" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(damage)
    with pytest.raises(CacheError) as info:
        data.load("fashion_mnist")
    assert str(broken) in str(info.value)
    assert "fetch-data fashion_mnist" in str(info.value)


def test_truncated_npz_is_reported(keras_home, offline):
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "mnist.npz").write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(CacheError, match="mnist.npz is corrupt"):
        data.load("mnist")


def test_unknown_name_lists_the_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'.*fashion_mnist"):
        data.load("cifar")


def test_digits_are_bundled_and_stratified(capsys):
    ds = data.load("digits")
    assert ds.x_train.shape[1:] == (8, 8) and ds.x_train.max() == 255
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert "from bundled" in capsys.readouterr().out


def test_subsets_are_seeded_and_bounded():
    a = data.load("digits", max_train=100, max_test=10, seed=3, verbose=False)
    b = data.load("digits", max_train=100, max_test=10, seed=3, verbose=False)
    assert len(a.x_train) == 100 and len(a.x_test) == 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    with pytest.raises(DatasetError, match="max_train must be at least 1"):
        data.load("digits", max_train=0)


def test_breast_cancer_is_raw_with_a_private_holdout():
    ds = data.load("breast_cancer", verbose=False)
    x_hold, y_hold = data.grading_holdout("breast_cancer")
    assert ds.x_train.shape[1] == 10 and len(ds.feature_names) == 10
    # raw measurements, scaled by the model itself: the mean radius is in micrometres
    assert ds.feature_names[0] == "mean radius" and 10 < ds.x_train[:, 0].mean() < 20
    assert len(ds.x_train) + len(ds.x_test) + len(x_hold) == 569
    seen = {row.tobytes() for row in np.concatenate([ds.x_train, ds.x_test])}
    assert not any(row.tobytes() in seen for row in x_hold)
    assert set(np.unique(y_hold)) == {0.0, 1.0}


def test_fetch_refuses_an_unwritable_cache(monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))
    with pytest.raises(CacheError, match="cannot write the dataset cache"):
        data.fetch("mnist")


def test_fetch_refuses_to_download_offline(keras_home, offline):
    with pytest.raises(DatasetError, match="FORGE_COURSE_OFFLINE=1 forbids downloading"):
        data.fetch("fashion_mnist")


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A real HTTP server on loopback standing in for the dataset mirror."""
    import functools
    import http.server
    import threading

    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(data, "ORIGIN", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.delenv("FORGE_COURSE_OFFLINE", raising=False)
    yield root
    server.shutdown()


def test_online_download_fills_the_cache_then_loads_from_it(keras_home, mirror, capsys):
    served = fake_fashion_cache(mirror.parent / "fake_home")
    for fname in data.FASHION_FILES.values():
        src = mirror.parent / "fake_home" / "datasets" / "fashion-mnist" / fname
        (mirror / fname).write_bytes(src.read_bytes())
    ds = data.load("fashion_mnist")
    assert ds.source == "download" and not ds.stand_in
    np.testing.assert_array_equal(ds.x_train, served["x_train"])
    assert (keras_home / "datasets" / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()
    again = data.load("fashion_mnist", verbose=False)
    assert again.source == "keras cache"


def test_fetch_reports_a_checksum_mismatch(keras_home, mirror):
    np.savez(mirror / "mnist.npz", x_train=np.zeros((1, 28, 28)), y_train=np.zeros(1))
    with pytest.raises(DatasetError, match="downloading mnist failed") as info:
        data.fetch("mnist")
    assert info.value.exit_code == 3


@pytest.fixture
def silent_server(monkeypatch):
    """A real loopback TCP server that accepts every connection and never answers."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, done = [], threading.Event()

    def accept_forever():
        server.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(server.accept()[0])  # keep it open, say nothing
            except OSError:
                continue

    threading.Thread(target=accept_forever, daemon=True).start()
    monkeypatch.setattr(data, "ORIGIN", f"http://127.0.0.1:{server.getsockname()[1]}/")
    monkeypatch.delenv("FORGE_COURSE_OFFLINE", raising=False)
    yield
    done.set()
    for conn in held:
        conn.close()
    server.close()


def test_a_stalled_server_falls_back_within_15_seconds(keras_home, silent_server, capsys):
    import time

    start = time.monotonic()
    ds = data.load("mnist", verbose=False)
    elapsed = time.monotonic() - start
    print(f"stalled-network fallback took {elapsed:.1f} s", file=sys.__stderr__)
    assert ds.stand_in and elapsed <= 15
    err = capsys.readouterr().err
    assert "NOTICE" in err and "stalled" in err and "fetch-data mnist" in err
    assert not list((keras_home / "datasets").iterdir())  # no half-written file left


def test_fetch_data_reports_a_stalled_server_and_exits_3(keras_home, silent_server, capsys):
    import time

    from forge_course.cli import main

    start = time.monotonic()
    code = main(["fetch-data", "mnist"])
    assert time.monotonic() - start <= 15 and code == 3
    err = capsys.readouterr().err
    assert "network stalled" in err and "fetch-data mnist" in err


@pytest.mark.parametrize("kind", ["a file", "read-only folder"])
def test_unwritable_cache_online_falls_back_with_a_notice(tmp_path, monkeypatch, capsys, kind):
    if kind == "a file":
        blocker = tmp_path / "a_file"
        blocker.write_text("")
        keras = blocker
    else:
        keras = tmp_path / "ro"
        keras.mkdir()

        def refuse(*args, **kwargs):  # a read-only folder (root could write chmod 555 ones)
            raise PermissionError(13, "Permission denied", str(keras / "datasets"))

        monkeypatch.setattr(data.tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setenv("KERAS_HOME", str(keras))
    monkeypatch.delenv("FORGE_COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(data, "ORIGIN", "http://127.0.0.1:9/")  # never reached
    ds = data.load("fashion_mnist", verbose=False)
    err = capsys.readouterr().err
    assert ds.stand_in and "NOTICE" in err
    assert str(keras / "datasets") in err
    assert "FORGE_COURSE_OFFLINE=1" in err and "KERAS_HOME" in err


def test_a_non_tensorflow_backend_is_named_not_blamed_on_the_download(
    keras_home, mirror, monkeypatch, capsys
):
    x = np.zeros((3, 28, 28), np.uint8)
    np.savez(mirror / "mnist.npz", x_train=x, y_train=x[:, 0, 0], x_test=x, y_test=x[:, 0, 0])
    monkeypatch.setattr(data, "MNIST_SHA256", file_sha256(mirror / "mnist.npz"))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    ds = data.load("mnist", verbose=False)
    err = capsys.readouterr().err
    assert ds.source == "download" and "downloading mnist failed" not in err
    assert "'jax' backend" in err and "unset KERAS_BACKEND" in err and "tensorflow" in err


@pytest.mark.parametrize("bad", [None, 42, ["mnist"]])
def test_a_name_that_is_not_a_string_is_named_with_the_choices(bad):
    with pytest.raises(DatasetError, match=rf"unknown dataset {re.escape(repr(bad))}.*digits"):
        data.load(bad)


@pytest.mark.parametrize("bad", ["100", 10.5, True])
def test_a_limit_that_is_not_a_whole_number_is_named(bad):
    with pytest.raises(
        DatasetError, match=rf"max_train must be a whole number.*{re.escape(repr(bad))}"
    ):
        data.load("digits", max_train=bad, verbose=False)
    assert len(data.load("digits", max_train=np.int64(5), verbose=False).x_train) == 5


def test_a_npz_that_is_not_a_zip_is_called_corrupt_without_pickle_advice(keras_home, offline):
    path = keras_home / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(CacheError) as info:
        data.load("mnist")
    msg = str(info.value)
    assert f"{path} is corrupt" in msg and "fetch-data mnist" in msg
    assert "pickle" not in msg


def test_fetch_lists_only_downloadable_names():
    with pytest.raises(DatasetError) as info:
        data.fetch("nope")
    msg = str(info.value)
    assert "fetch-data downloads: fashion_mnist, mnist" in msg
    assert "digits and breast_cancer ship with scikit-learn" in msg
