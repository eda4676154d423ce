"""Training on several devices and machines: what lesson 12 runs, in one place.

``tf.distribute`` needs three things the lesson would otherwise type inline:

- logical devices: :func:`split_cpu` cuts the one CPU into ``n`` logical devices, so
  ``MirroredStrategy`` has replicas to mirror over on a laptop;
- ``TF_CONFIG``: :func:`tf_config` writes the JSON every worker of a
  ``MultiWorkerMirroredStrategy`` reads (who is in the cluster, who am I), and
  :func:`is_chief` / :func:`save_path` say which worker saves where;
- real worker processes: :class:`Workers` starts ``python -m forge_course.distribute_worker``
  once per task on loopback, each with its own ``TF_CONFIG``, waits with a timeout and
  always stops them (it is a context manager).

The model and data every run shares (:func:`build_model`, :func:`training_data`) live
here too, so the notebook's single-process run and the workers train the same thing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from forge_course.errors import ForgeError

__all__ = [
    "TrainLog",
    "WorkerResult",
    "Workers",
    "build_model",
    "free_ports",
    "is_chief",
    "make_dataset",
    "save_path",
    "split_cpu",
    "tf_config",
    "train",
    "training_data",
]

WORKER_MODULE = "forge_course.distribute_worker"


# --------------------------------------------------------------------------- devices


def split_cpu(n: int = 2) -> list[str]:
    """Cut the CPU into ``n`` logical devices and return their names.

    Must run before TensorFlow creates its devices (the first op, or listing *logical*
    devices); ``forge_course.env.setup`` only seeds, so it may run before or after.

    Raises:
        ForgeError: TensorFlow has already created its devices with another split.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError:  # devices already made: fine if they are the split we want
        have = tf.config.list_logical_devices("CPU")
        if len(have) != n:
            raise ForgeError(
                f"TensorFlow already created {len(have)} CPU device(s), so it cannot split the "
                f"CPU into {n} now; restart the kernel and run split_cpu({n}) before any "
                "TensorFlow operation"
            ) from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


# --------------------------------------------------------------------------- TF_CONFIG


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports free on ``host`` right now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(workers: list[str], index: int, task_type: str = "worker") -> dict[str, Any]:
    """The ``TF_CONFIG`` of task ``index``: the whole cluster, then this task.

    Args:
        workers: ``host:port`` of every worker, the same list in the same order for all.
        index: this task's position in ``workers``.
        task_type: ``"worker"`` (worker 0 is then the chief) or ``"chief"``.
    """
    if not workers or not all(isinstance(w, str) and ":" in w for w in workers):
        raise ForgeError(f"workers should be 'host:port' strings, got {workers!r}")
    if not 0 <= index < len(workers):
        raise ForgeError(f"index {index} is outside the {len(workers)} workers; count from 0")
    return {"cluster": {task_type: list(workers)}, "task": {"type": task_type, "index": index}}


def is_chief(config: dict[str, Any]) -> bool:
    """Whether this task saves and logs: the ``chief``, else worker 0 when there is none."""
    task = config.get("task", {})
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker"
        and task.get("index") == 0
        and "chief" not in config.get("cluster", {})
    )


def save_path(path: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Where this task saves: the chief at ``path``, every other task in a scratch folder.

    Every worker must run the save (it is part of the same program), but only the
    chief's copy may land at ``path``; the others write beside it and delete theirs.
    """
    path = Path(path)
    if is_chief(config):
        return path
    task = config["task"]
    return path.parent / f".{task['type']}-{task['index']}" / path.name


# --------------------------------------------------------------------------- model, data


def training_data(seed: int = 0):
    """The digits as (x_train, y_train, x_test, y_test): 64 pixels in [0, 1], labels 0-9."""
    from forge_course import data

    ds = data.load("digits", verbose=False)
    flat = [x.reshape(len(x), -1).astype("float32") / 255.0 for x in (ds.x_train, ds.x_test)]
    return flat[0], ds.y_train.astype("int32"), flat[1], ds.y_test.astype("int32")


def build_model(seed: int = 0):
    """A small MLP for the digits (64 pixels in, 10 probabilities out), not compiled.

    Create it inside ``strategy.scope()`` so its variables are mirrored on every replica.
    """
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential([
        keras.Input(shape=(64,)),
        keras.layers.Dense(64, activation="relu", kernel_initializer=init),
        keras.layers.Dense(10, activation="softmax", kernel_initializer=init),
    ])  # fmt: skip


def make_dataset(x, y, global_batch: int, seed: int = 0):
    """Shuffled, repeated batches of ``global_batch`` examples: the batch of ONE step, all
    replicas together. A strategy splits each into ``global_batch / replicas`` per replica."""
    import tensorflow as tf

    options = tf.data.Options()  # each worker keeps its own share of every global batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed)
        .repeat()
        .batch(global_batch, drop_remainder=True)
        .with_options(options)
    )


@dataclasses.dataclass
class TrainLog:
    """What :func:`train` measured: the loss and the clock after every step."""

    losses: list[float]
    times: list[float]
    warmup: int = 3  # the first steps trace and compile the step function: not timed

    @property
    def steps_per_s(self) -> float:
        timed = self.times[self.warmup :]
        if len(timed) < 2:
            return float("nan")
        return (len(timed) - 1) / (timed[-1] - timed[0])


def train(model, optimizer, strategy, dataset, steps: int) -> TrainLog:
    """Train ``model`` for ``steps`` global batches under ``strategy``: the same code for
    one device (``tf.distribute.get_strategy()``), mirrored replicas, or many workers.

    Each replica computes the gradients of its share of the batch, with the loss averaged
    over the GLOBAL batch; ``optimizer.apply_gradients`` all-reduces (sums) them across
    replicas, so every replica applies the same update and the copies stay identical.
    """
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    with strategy.scope():
        optimizer.build(model.trainable_variables)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            per_example = loss_fn(y, model(x, training=True))
            loss = tf.nn.compute_average_loss(per_example)  # sum / GLOBAL batch size
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))  # all-reduce
        return loss

    @tf.function
    def step(batch):
        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce("SUM", losses, axis=None)

    batches = iter(strategy.experimental_distribute_dataset(dataset))
    log = TrainLog([], [])
    for _ in range(steps):
        log.losses.append(float(step(next(batches))))  # float() waits for the step to end
        log.times.append(time.perf_counter())
    return log


# --------------------------------------------------------------------------- workers


@dataclasses.dataclass
class WorkerResult:
    """What one worker reports when it ends (its ``result-<index>.json``)."""

    index: int
    chief: bool
    steps: int
    steps_per_s: float
    loss: float
    saved: str
    seconds: float
    pid: int

    @classmethod
    def read(cls, path: Path) -> WorkerResult:
        return cls(**json.loads(Path(path).read_text()))


class Workers:
    """Start ``n`` worker processes on loopback, one ``TF_CONFIG`` each; always stop them.

    Use it as a context manager: leaving the block (normally, by an error or by an
    interrupt) kills every worker still running::

        with Workers(2, out, steps=40) as workers:
            results = workers.wait(timeout=120)
    """

    def __init__(
        self,
        n: int,
        out: str | os.PathLike,
        *,
        steps: int = 40,
        batch_size: int = 64,
        learning_rate: float = 0.05,
        seed: int = 0,
        host: str = "localhost",
        extra_env: dict[str, str] | None = None,
    ):
        self.out = Path(out)
        self.addresses = [f"{host}:{port}" for port in free_ports(n)]
        self.configs = [tf_config(self.addresses, i) for i in range(n)]
        self.args = [
            *("--steps", str(steps), "--batch-size", str(batch_size)),
            *("--learning-rate", str(learning_rate), "--seed", str(seed)),
        ]
        self.extra_env = dict(extra_env or {})
        self.procs: list[subprocess.Popen] = []

    def start(self) -> Workers:
        """Start every worker (``python -m forge_course.distribute_worker``)."""
        self.out.mkdir(parents=True, exist_ok=True)
        for i, config in enumerate(self.configs):
            env = os.environ | self.extra_env | {"TF_CONFIG": json.dumps(config)}
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            log = open(self.out / f"worker-{i}.log", "w")  # noqa: SIM115 (closed by the child)
            cmd = [sys.executable, "-m", WORKER_MODULE, "--out", str(self.out), *self.args]
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        return self

    def wait(self, timeout: float = 120.0) -> list[WorkerResult]:
        """Wait for every worker; return their results, chief first.

        Raises:
            ForgeError: a worker failed or ran past ``timeout`` (all are then stopped);
                the message ends with the tail of its log.
        """
        deadline = time.monotonic() + timeout
        while any(proc.poll() is None for proc in self.procs):
            failed = [i for i, proc in enumerate(self.procs) if proc.poll() not in (None, 0)]
            if failed:  # the others would wait for it in their next all-reduce: stop them
                break
            if time.monotonic() > deadline:
                late = next(i for i, proc in enumerate(self.procs) if proc.poll() is None)
                self.stop()
                raise ForgeError(
                    f"worker {late} ran past {timeout:.0f} s and was stopped; raise the timeout "
                    f"or lower the steps. Its log ends:\n{self.log_tail(late)}"
                )
            time.sleep(0.1)
        for i, proc in enumerate(self.procs):
            if proc.poll() not in (None, 0):
                code = proc.returncode
                self.stop()
                raise ForgeError(
                    f"worker {i} exited with {code}. Its log ends:\n{self.log_tail(i)}"
                )
        return [WorkerResult.read(self.out / f"result-{i}.json") for i in range(len(self.procs))]

    def stop(self) -> None:
        """Terminate every worker still running (then kill it after 5 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    @property
    def running(self) -> int:
        """How many workers are still running."""
        return sum(proc.poll() is None for proc in self.procs)

    def log_tail(self, index: int, lines: int = 15) -> str:
        path = self.out / f"worker-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Workers:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
