"""Fixtures for the service suite: a small seeded model, and real servers on loopback.

Each server is ``forge-course serve`` in a process of its own, started as a user would,
on a free port (``--port 0``; the port is read from the line the service prints).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import ROOT

FEATURES, CLASSES = 8, 3
READY = re.compile(r"on http://([\d.]+):(\d+)/v1/models/(\S+) ")


def build_model():
    """A seeded two-layer classifier of 8 features into 3 classes, its input named 'features'."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((FEATURES,), name="features"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ],
        name="tiny",
    )


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """The model, saved as .keras and exported as models/tiny/3, with a predict function."""
    from forge_course.serving.export import export_for_serving, save_with_hash

    folder = tmp_path_factory.mktemp("served")
    model = build_model()
    sha = save_with_hash(model, folder / "tiny.keras")
    export = export_for_serving(model, folder / "models", "tiny", 3)
    return {"model": model, "keras": folder / "tiny.keras", "sha256": sha, "export": export.path}


class Server:
    """``forge-course serve`` in a subprocess; ``url`` once it is listening."""

    def __init__(self, *args: str, timeout: float = 180):
        env = os.environ | {"FORGE_COURSE_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forge_course.cli", "serve", *args, "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + timeout
        match = None
        while match is None:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server exited before listening:\n" + "".join(self.lines))
            self.lines.append(line)
            match = READY.search(line)
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start in time:\n" + "".join(self.lines))
        host, port, self.name = match.groups()
        self.base = f"http://{host}:{port}"
        self.host, self.port = host, int(port)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def url(self, path: str) -> str:
        return self.base + path

    def stats(self) -> dict:
        return requests.get(self.url("/healthz"), timeout=10).json()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture(scope="module")
def server(model_files):
    """The .keras model served as 'tiny': batches of up to 8, 30 ms wait, 64 KiB bodies."""
    srv = Server(
        str(model_files["keras"]),
        "--name", "tiny",
        "--sha256", model_files["sha256"],
        "--max-batch-size", "8",
        "--batch-wait-ms", "30",
        "--max-body-bytes", "65536",
    )  # fmt: skip
    yield srv
    srv.stop()


def rows(n: int, seed: int = 1) -> np.ndarray:
    """``n`` distinct float32 instances."""
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype("float32")


def post(srv: Server, path: str, payload, **kw) -> requests.Response:
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return requests.post(srv.url(path), data=data, timeout=30, **kw)


__all__ = ["CLASSES", "FEATURES", "Path", "Server", "build_model", "post", "rows"]
