"""Shared fixtures: a private Keras home per test, offline by default, headless plots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras home (dataset cache) for one test."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("FORGE_COURSE_OFFLINE", "1")


def run_cli(*args: str, env: dict | None = None, timeout: int = 300):
    """Run ``forge-course`` as a user would, in a fresh process."""
    full_env = os.environ | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "forge_course.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )
