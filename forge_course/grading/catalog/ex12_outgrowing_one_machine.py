"""Exercise 12: TF_CONFIG for one worker, a global batch for a cluster, a save that clobbers.

The ladder, none of it on a real cluster: the ``TF_CONFIG`` of the third machine of a
three-worker cluster (apply), the largest global batch that splits evenly over every
GPU of a cluster and fits each one, with its learning rate scaled (target), and a save
routine with which every worker writes over the chief's model and the wrong task thinks
it is the chief (debug). Everything is submitted as scalars: numbers, and JSON text for
the TF_CONFIG and the save plans (a TF_CONFIG is JSON text in an environment variable).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from forge_course.grading.spec import Check, Exercise, Task

CLUSTER = ["trainer-0:2222", "trainer-1:2222", "trainer-2:2222"]
MY_INDEX = 2  # the machine task 1 writes TF_CONFIG for: trainer-2

WORKERS = len(CLUSTER)
GPUS_PER_WORKER = 4
MAX_PER_REPLICA = 96  # examples one GPU holds per step (activations and all)
BASE_BATCH = 64  # the batch the learning rate was tuned for, on one GPU
BASE_LEARNING_RATE = 0.01

PATH = "/shared/run/model.keras"  # where the cluster's model must end up
TASKS = {  # two clusters: workers only, and a chief with two workers
    "A/worker-0": {"cluster": {"worker": CLUSTER}, "task": {"type": "worker", "index": 0}},
    "A/worker-1": {"cluster": {"worker": CLUSTER}, "task": {"type": "worker", "index": 1}},
    "A/worker-2": {"cluster": {"worker": CLUSTER}, "task": {"type": "worker", "index": 2}},
    "B/chief-0": {
        "cluster": {"chief": ["boss:2222"], "worker": CLUSTER[:2]},
        "task": {"type": "chief", "index": 0},
    },
    "B/worker-0": {
        "cluster": {"chief": ["boss:2222"], "worker": CLUSTER[:2]},
        "task": {"type": "worker", "index": 0},
    },
    "B/worker-1": {
        "cluster": {"chief": ["boss:2222"], "worker": CLUSTER[:2]},
        "task": {"type": "worker", "index": 1},
    },
}


def replicas() -> int:
    """Every GPU of every worker is one replica of MultiWorkerMirroredStrategy."""
    return WORKERS * GPUS_PER_WORKER


def best_global_batch() -> int:
    return replicas() * MAX_PER_REPLICA


def chief_of(cluster: str) -> str:
    """The task of ``cluster`` ("A" or "B") that TensorFlow treats as the chief."""
    return "B/chief-0" if cluster == "B" else "A/worker-0"


# ---------------------------------------------------------------- ex12_1 apply


def _config(v) -> tuple[dict | None, str | None]:
    """The submitted TF_CONFIG, parsed: the JSON text an environment variable holds."""
    config = v["tf_config"]
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return None, "tf_config should be JSON text (json.dumps of a dict); this is not JSON"
    if not isinstance(config, dict):
        return None, f"tf_config should be the JSON text of a dict, got {v['tf_config']!r}"
    return config, None


def _cluster(v, p):
    config, bad = _config(v)
    if bad:
        return bad
    cluster = config.get("cluster")
    if cluster != {"worker": CLUSTER}:
        return (
            f"'cluster' is {cluster!r}; it lists every worker, the same list in the same "
            "order on every machine, under the key 'worker'"
        )


def _task(v, p):
    config, bad = _config(v)
    if bad:
        return bad
    task = config.get("task")
    if task != {"type": "worker", "index": MY_INDEX}:
        return (
            f"'task' is {task!r}; it says which entry of the worker list this machine "
            f"({CLUSTER[MY_INDEX].split(':')[0]}) is"
        )


def _resolver(v, p):
    config, bad = _config(v)
    if bad:
        return bad
    try:
        text = json.dumps(config)
    except (TypeError, ValueError):
        return "tf_config cannot be written as JSON, so no environment variable can hold it"
    import tensorflow as tf

    before = os.environ.get("TF_CONFIG")
    os.environ["TF_CONFIG"] = text
    try:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        seen = (resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())
    except Exception as exc:  # noqa: BLE001 - TensorFlow refuses it: that is the finding
        return f"TensorFlow cannot read this TF_CONFIG: {exc}"
    finally:
        if before is None:
            os.environ.pop("TF_CONFIG", None)
        else:
            os.environ["TF_CONFIG"] = before
    if seen != ("worker", MY_INDEX, {"worker": CLUSTER}):
        return f"TensorFlow reads it as task {seen[0]} {seen[1]} of {seen[2]}"


# ---------------------------------------------------------------- ex12_2 target


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _batch(v) -> tuple[int | None, str | None]:
    batch = _number(v["global_batch"])
    if batch is None or batch != int(batch) or batch < 1:
        return None, f"global_batch should be a positive whole number, got {v['global_batch']!r}"
    return int(batch), None


def _even(v, p):
    batch, bad = _batch(v)
    if bad:
        return bad
    if batch % replicas():
        return (
            f"{batch} examples do not split evenly over the {replicas()} replicas "
            f"({batch / replicas():.2f} each)"
        )


def _fits(v, p):
    batch, bad = _batch(v)
    if bad:
        return bad
    share = batch / replicas()
    if share > MAX_PER_REPLICA:
        return f"each replica would get {share:g} examples; one GPU holds {MAX_PER_REPLICA}"


def _largest(v, p):
    batch, bad = _batch(v)
    if bad:
        return bad
    if batch > best_global_batch():
        return f"{batch} examples do not fit: some replica would get more than it holds"
    if batch < best_global_batch():
        return f"{batch} splits and fits, but a larger global batch does too"


def _learning_rate(v, p):
    batch, bad = _batch(v)
    if bad:
        return bad
    rate = _number(v["learning_rate"])
    if rate is None or rate <= 0:
        return f"learning_rate should be a positive number, got {v['learning_rate']!r}"
    want = BASE_LEARNING_RATE * batch / BASE_BATCH
    if not math.isclose(rate, want, rel_tol=1e-6):
        return (
            f"learning_rate {rate:g} for a global batch of {batch}: the rate tuned for "
            f"{BASE_BATCH} examples has not been scaled with the batch"
        )


# ---------------------------------------------------------------- ex12_3 debug


def _plans(v) -> tuple[dict | None, str | None]:
    plans = v["plans"]
    if isinstance(plans, str):
        try:
            plans = json.loads(plans)
        except ValueError:
            return None, "plans should be json.dumps(plans), the JSON text of the dict"
    if not isinstance(plans, dict) or sorted(plans) != sorted(TASKS):
        return None, f"plans should map each task of TASKS ({', '.join(TASKS)}) to its plan"
    out = {}
    for name, plan in plans.items():
        ok = (
            isinstance(plan, list | tuple)
            and len(plan) == 2
            and isinstance(plan[0], str)
            and isinstance(plan[1], bool)
        )
        if not ok:
            return None, f"plans[{name!r}] should be (path, keep): a string and a bool"
        out[name] = (plan[0], plan[1])
    return out, None


def _chief_keeps(v, p):
    plans, bad = _plans(v)
    if bad:
        return bad
    for cluster in ("A", "B"):
        chief = chief_of(cluster)
        if plans[chief] != (PATH, True):
            return f"in cluster {cluster}, the chief's plan is {list(plans[chief])}"
        keepers = [n for n, (_, keep) in plans.items() if keep and n.startswith(cluster)]
        if keepers != [chief]:
            return f"in cluster {cluster}, these tasks keep their file: {', '.join(keepers)}"


def _no_overwrite(v, p):
    plans, bad = _plans(v)
    if bad:
        return bad
    for cluster in ("A", "B"):
        paths = [path for n, (path, _) in plans.items() if n.startswith(cluster)]
        if len(set(paths)) != len(paths):
            return f"in cluster {cluster}, two tasks save to the same file: the last one wins"
        chief = chief_of(cluster)
        if any(
            path == PATH for n, (path, _) in plans.items() if n.startswith(cluster) and n != chief
        ):
            return f"in cluster {cluster}, a task that is not the chief saves to {PATH}"


EXERCISE = Exercise(
    name="12_outgrowing_one_machine",
    params={"SEED": 0},
    timeout=120.0,
    tasks=(
        Task(
            "ex12_1", "apply", "the TF_CONFIG of one worker",
            {"tf_config": "scalar"},
            (
                Check(
                    "cluster", _cluster,
                    description="'cluster' lists the three workers, in order",
                    hints=(
                        "Every machine gets the same description of the whole cluster; only "
                        "the part that says who it is differs.",
                        "`TF_CONFIG` has two keys: `cluster` (task type to a list of "
                        "host:port) and `task`.",
                        "`json.dumps({'cluster': {'worker': CLUSTER}, 'task': ...})`",
                    ),
                ),
                Check(
                    "task", _task,
                    description=f"'task' names worker {MY_INDEX}",
                    hints=(
                        "The task says which entry of the list this machine is, counting "
                        "the way Python indexes lists.",
                        "`'task': {'type': ..., 'index': ...}`, where type is the key of "
                        "the list in `cluster`.",
                        f"`'task': {{'type': 'worker', 'index': {MY_INDEX}}}`",
                    ),
                ),
                Check(
                    "resolver", _resolver, hidden=True,
                    description="TensorFlow's TFConfigClusterResolver reads it as that worker "
                    "of that cluster",
                ),
            ),
        ),
        Task(
            "ex12_2", "target", "a global batch and its learning rate for the cluster",
            {"global_batch": "scalar", "learning_rate": "scalar"},
            (
                Check(
                    "even", _even,
                    description="the global batch splits evenly over every replica",
                    hints=(
                        "Every GPU of every worker is a replica, and each gets the same "
                        "share of the global batch.",
                        "Count the replicas: workers times GPUs per worker; the global "
                        "batch must be a multiple of that.",
                        "`global_batch % (WORKERS * GPUS_PER_WORKER) == 0`",
                    ),
                ),
                Check(
                    "fits", _fits,
                    description=f"each replica's share is at most {MAX_PER_REPLICA} examples",
                    hints=(
                        "A replica's share must fit in one GPU's memory.",
                        "Share = global batch / replicas; compare it with `MAX_PER_REPLICA`.",
                        "`global_batch // (WORKERS * GPUS_PER_WORKER) <= MAX_PER_REPLICA`",
                    ),
                ),
                Check(
                    "largest", _largest,
                    description="no larger global batch splits evenly and fits",
                    hints=(
                        "Fill every GPU: the largest share, on every replica.",
                        "The largest global batch is the number of replicas times the "
                        "largest share.",
                        "`global_batch = WORKERS * GPUS_PER_WORKER * MAX_PER_REPLICA`",
                    ),
                ),
                Check(
                    "learning_rate", _learning_rate, points=2,
                    description="the learning rate scaled with the global batch (linear rule)",
                    hints=(
                        "A bigger batch averages more examples into each step, so each step "
                        "can be bolder, in proportion.",
                        "Linear scaling: multiply `BASE_LEARNING_RATE` by how many times "
                        "larger the global batch is than `BASE_BATCH`.",
                        "`learning_rate = BASE_LEARNING_RATE * global_batch / BASE_BATCH`",
                    ),
                ),
            ),
        ),
        Task(
            "ex12_3", "debug", "every worker saves over the chief's model",
            {"plans": "scalar"},
            (
                Check(
                    "chief_keeps", _chief_keeps, points=3,
                    description=f"in each cluster only the chief keeps its file, at {PATH}",
                    hints=(
                        "Worker 0 is the chief only when the cluster has no task of type "
                        "chief; otherwise the chief task is.",
                        "Look at `config['task']['type']` and at whether `'chief'` is a key "
                        "of `config['cluster']`.",
                        "`chief = task['type'] == 'chief' or (task['type'] == 'worker' and "
                        "task['index'] == 0 and 'chief' not in config['cluster'])`",
                    ),
                ),
                Check(
                    "no_overwrite", _no_overwrite, points=3,
                    description="no two tasks of a cluster save to the same file",
                    hints=(
                        "Every task runs the save; only the chief's may land on the shared "
                        "path, so the others need a place of their own.",
                        "Give each other task a scratch path that names its type and index.",
                        "`return f\"/tmp/{task['type']}-{task['index']}/model.keras\", False`",
                    ),
                ),
            ),
        ),
    ),
)  # fmt: skip


def _broken_plans() -> str:
    """What the given code submits: every task at PATH, index 0 keeps its file."""
    return json.dumps({n: [PATH, c["task"]["index"] == 0] for n, c in TASKS.items()})


def _text(workers: list[str], task: dict | None) -> str:
    """A TF_CONFIG as JSON text (without "task" when ``task`` is None)."""
    config = {"cluster": {"worker": workers}} | ({"task": task} if task is not None else {})
    return json.dumps(config)


FAILING = {
    "ex12_1.cluster": lambda p: {
        "tf_config": _text(CLUSTER[::-1], {"type": "worker", "index": 2})
    },
    "ex12_1.task": lambda p: {
        "tf_config": _text(CLUSTER, {"type": "worker", "index": 3})
    },
    "ex12_1.resolver": lambda p: {"tf_config": _text(CLUSTER, None)},
    "ex12_2.even": lambda p: {"global_batch": 1000, "learning_rate": 0.01 * 1000 / 64},
    "ex12_2.fits": lambda p: {"global_batch": replicas() * 128, "learning_rate": 0.01},
    "ex12_2.largest": lambda p: {"global_batch": replicas() * 64, "learning_rate": 0.01 * 12},
    "ex12_2.learning_rate": lambda p: {"global_batch": best_global_batch(), "learning_rate": 0.01},
    "ex12_3.chief_keeps": lambda p: {"plans": _broken_plans()},
    "ex12_3.no_overwrite": lambda p: {"plans": _broken_plans()},
}  # fmt: skip
