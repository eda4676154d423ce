"""The artifact channel: round trips, tokens, and refusing what could run code."""

from __future__ import annotations

import json
import socket
import time

import keras
import numpy as np
import pytest

from forge_course.errors import GradingError
from forge_course.grading import channel


def test_values_round_trip_through_a_real_socket(monkeypatch):
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    with channel.Collector() as collector:
        monkeypatch.setenv(channel.ENV_VAR, collector.address)
        channel.submit(
            "ex01_1",
            {
                "y": ("array", np.arange(6, dtype=np.float32).reshape(2, 3)),
                "n_weights": ("scalar", np.int64(18)),
                "model": ("model", model),
            },
        )
        channel.submit("ex01_2", {"losses": ("array", ...)})
    got = collector.artifacts()
    kinds = {task: {name: kind for name, (kind, _) in v.items()} for task, v in got.items()}
    assert kinds == {
        "ex01_1": {"y": "array", "n_weights": "scalar", "model": "model"},
        "ex01_2": {"losses": "unanswered"},
    }
    y = channel.decode("array", got["ex01_1"]["y"][1])
    assert y.shape == (2, 3) and y.dtype == np.float32
    assert channel.decode("scalar", got["ex01_1"]["n_weights"][1]) == 18
    loaded = channel.decode("model", got["ex01_1"]["model"][1])
    np.testing.assert_allclose(loaded.get_weights()[0], model.get_weights()[0])


def test_a_wrong_token_is_refused(monkeypatch):
    with channel.Collector() as collector:
        monkeypatch.setenv(channel.ENV_VAR, f"{collector.path}:forged")
        with pytest.raises(GradingError, match="bad token"):
            channel.submit("ex00_1", {"tf_version": ("scalar", "2.21.0")})
        assert collector.received == {}


@pytest.mark.parametrize(
    "change, error",
    [
        ({"task": "../etc"}, "error: bad artifact name"),
        ({"size": channel.MAX_BYTES + 1}, "error: x is 256.0 MB; the grader accepts values up to"),
        ({"kind": "pickle"}, "error: bad artifact header"),
    ],
)
def test_oversized_or_malformed_headers_are_refused(change, error):
    with channel.Collector() as collector:
        token = collector.token
        header = {"token": token, "task": "ex00_1", "name": "x", "kind": "scalar", "size": 2}
        with channel.connect(collector.path) as sock:
            sock.sendall(json.dumps(header | change).encode() + b"\n{}")
            sock.shutdown(socket.SHUT_WR)
            reply = sock.makefile().readline()
            assert reply.startswith(error) and token not in reply  # the token is never echoed
        assert collector.received == {}


def test_objects_that_need_pickle_are_not_sent():
    with pytest.raises(GradingError, match="Python objects"):
        channel.encode("array", np.array([{"a": 1}], dtype=object))
    with pytest.raises(GradingError, match="number or text"):
        channel.encode("scalar", object())


def test_a_model_with_code_inside_is_refused_by_safe_mode(tmp_path):
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(Exception, match="(?i)safe_mode|lambda"):
        channel.decode("model", path.read_bytes())


def test_a_bad_value_or_a_gone_grader_is_a_clear_message(monkeypatch, capsys):
    from forge_course.grading import check

    with channel.Collector() as collector:
        monkeypatch.setenv(channel.ENV_VAR, collector.address)
        check("ex02_1", digit_model="not a model")
        check("ex01_3", losses=[[1.0], [2.0, 3.0]], model=...)  # ragged: not an array
    out = capsys.readouterr().out
    assert "could not submit: expected a Keras model, got str" in out
    assert out.count("could not submit") == 2 and collector.received == {}
    monkeypatch.setenv(channel.ENV_VAR, "/nonexistent/collector.sock:token")
    with pytest.raises(GradingError, match="could not reach the grader"):
        channel.submit("ex00_1", {"tf_version": ("scalar", "2.21.0")})


def test_only_the_submissions_own_processes_may_send(monkeypatch):
    import os

    seen = []

    def sender_ok(pid):
        seen.append(pid)
        return False  # as for a process outside this submission's kernel

    with channel.Collector(sender_ok=sender_ok) as collector:
        monkeypatch.setenv(channel.ENV_VAR, collector.address)
        with pytest.raises(GradingError, match="may not submit"):
            channel.submit("ex00_1", {"tf_version": ("scalar", "2.21.0")})
        assert seen == [os.getpid()] and collector.received == {}


def test_the_collector_takes_only_the_exercises_values(monkeypatch):
    allowed = {"ex00_1": {"tf_version": "scalar", "keras_backend": "scalar"}}
    with channel.Collector(allowed) as collector:
        monkeypatch.setenv(channel.ENV_VAR, collector.address)
        with pytest.raises(GradingError, match="this exercise takes no value x for junk0"):
            channel.submit("junk0", {"x": ("scalar", 1)})
        with pytest.raises(GradingError, match="tf_version should be a number or text, got an"):
            channel.submit("ex00_1", {"tf_version": ("array", 1)})
        assert collector.refused["ex00_1"] == "tf_version should be a number or text, got an array"
        channel.submit("ex00_1", {"tf_version": ("scalar", "2.21.0")})
        assert list(collector.received) == ["ex00_1"]


def test_a_collector_stops_at_once():
    """It closes after every submission: its poll interval is added to each one's time."""
    with channel.Collector() as collector:
        assert collector.address
        started = time.perf_counter()
    assert time.perf_counter() - started < 0.25
