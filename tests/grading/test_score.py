"""Scoring what a submission sent: each distinct model file is loaded once."""

from __future__ import annotations

import numpy as np

from forge_course import pretrained
from forge_course.data import load
from forge_course.grading import channel, score
from forge_course.grading.catalog.ex02_sequential_api import cancer_split


def test_one_model_answering_two_tasks_is_loaded_once(monkeypatch):
    """Exercise 02's tasks 2 and 3 both send the screen: one load serves both."""
    model = pretrained.load("breast_cancer_screen")
    sent = channel.encode("model", model)
    _, _, x_val, _ = cancer_split()
    scores = model.predict(x_val, verbose=0).ravel()
    test = load("breast_cancer", verbose=False)
    decisions = (model.predict(test.x_test, verbose=0).ravel() >= 0.5).astype(int)
    loads = []
    real = channel.decode
    monkeypatch.setattr(
        channel, "decode", lambda kind, data: loads.append(kind) or real(kind, data)
    )
    threshold = channel.encode("scalar", float(np.median(scores)))
    artifacts = {
        "ex02_2": {"model": ("model", sent), "threshold": ("scalar", threshold)},
        "ex02_3": {
            "model": ("model", sent),
            "test_predictions": ("array", channel.encode("array", decisions)),
        },
    }
    params = {"SEED": 0, "EPOCHS": 6, "BATCH_SIZE": 32}
    request = score.ScoreRequest("02_sequential_api", None, artifacts, params, "completed", "")
    rows = score.score(request).rows
    assert loads.count("model") == 1
    by_task = {r.check.split(".")[0] for r in rows if r.status == "passed"}
    assert "ex02_3" in by_task  # the shared model still answers the second task's checks
