"""forge_course.distribute: TF_CONFIG, who saves where, and real workers on loopback."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from forge_course import distribute
from forge_course.distribute import Workers, free_ports, is_chief, save_path, tf_config
from forge_course.errors import ForgeError


def test_tf_config_names_the_whole_cluster_then_this_task():
    workers = ["localhost:12345", "localhost:23456"]
    config = tf_config(workers, 1)
    assert config == {
        "cluster": {"worker": workers},
        "task": {"type": "worker", "index": 1},
    }
    assert json.loads(json.dumps(config)) == config  # what goes into the environment


@pytest.mark.parametrize(
    ("workers", "index"), [([], 0), (["localhost"], 0), (["a:1", "b:2"], 2), (["a:1"], -1)]
)
def test_tf_config_refuses_what_no_worker_could_use(workers, index):
    with pytest.raises(ForgeError, match="worker|index"):
        tf_config(workers, index)


def test_worker_zero_is_chief_unless_there_is_a_chief_task():
    workers = ["a:1", "b:2"]
    assert is_chief(tf_config(workers, 0)) and not is_chief(tf_config(workers, 1))
    with_chief = {"cluster": {"chief": ["c:3"], "worker": workers}}
    assert is_chief(with_chief | {"task": {"type": "chief", "index": 0}})
    assert not is_chief(with_chief | {"task": {"type": "worker", "index": 0}})


def test_only_the_chief_saves_at_the_path(tmp_path):
    workers = ["a:1", "b:2", "c:3"]
    paths = [save_path(tmp_path / "model.keras", tf_config(workers, i)) for i in range(3)]
    assert paths[0] == tmp_path / "model.keras"
    assert len(set(paths)) == 3 and all(p.name == "model.keras" for p in paths)
    assert all(p.parent != tmp_path for p in paths[1:])


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_the_worker_refuses_to_run_without_tf_config(monkeypatch, tmp_path, capsys):
    from forge_course import distribute_worker

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute_worker.main(["--out", str(tmp_path)]) == 2
    assert "TF_CONFIG" in capsys.readouterr().out


def test_workers_that_hang_are_stopped_and_named(tmp_path):
    """A worker that never finishes is killed at the timeout; none is left running."""
    import subprocess

    hang = Workers(2, tmp_path, steps=1)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    hang.procs = [subprocess.Popen(sleeper) for _ in range(2)]  # stand-ins that never end
    with pytest.raises(ForgeError, match="worker 0 ran past"):
        hang.wait(timeout=0.5)
    assert hang.running == 0


def test_a_failing_worker_is_reported_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(distribute, "WORKER_MODULE", "this_module_does_not_exist")
    with Workers(2, tmp_path, steps=1) as workers, pytest.raises(ForgeError, match="exited"):
        workers.wait(timeout=30)
    assert workers.running == 0
    assert "this_module_does_not_exist" in workers.log_tail(0)


def test_two_workers_train_the_same_model_and_only_the_chief_saves(tmp_path):
    """Two real processes, one TF_CONFIG each: they agree on every step's loss."""
    with Workers(2, tmp_path, steps=8, batch_size=32) as workers:
        results = workers.wait(timeout=240)
    assert workers.running == 0
    assert [r.index for r in results] == [0, 1] and [r.chief for r in results] == [True, False]
    assert results[0].loss == pytest.approx(results[1].loss, rel=1e-6)  # all-reduced updates
    assert (tmp_path / "model.keras").exists()
    assert results[0].saved == str(tmp_path / "model.keras") and results[1].saved == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_worker_that_fails_stops_the_one_waiting_for_it(tmp_path):
    """Worker 1 dies at once while worker 0 would wait for it: both end, worker 1 named."""
    import subprocess

    workers = Workers(2, tmp_path, steps=1)
    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dying = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    workers.procs = [waiting, dying]
    with pytest.raises(ForgeError, match="worker 1 exited with 3"):
        workers.wait(timeout=30)
    assert workers.running == 0
