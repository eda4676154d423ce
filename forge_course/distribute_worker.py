"""One worker of a MultiWorkerMirroredStrategy run: ``python -m forge_course.distribute_worker``.

Every worker runs this same program. It reads who it is from the ``TF_CONFIG``
environment variable (:func:`forge_course.distribute.tf_config` writes it; on a cluster,
Kubernetes or a person sets it), trains :func:`forge_course.distribute.build_model` on
the digits for ``--steps`` steps of ``--batch-size`` examples *in all* (the global batch,
split across the workers), then saves: the chief to ``--out/model.keras``, the others to
a scratch folder they delete. It writes ``--out/result-<index>.json`` for whoever started
it, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from forge_course.distribute import is_chief, save_path


def main(argv: list[str] | None = None) -> int:
    """Train, save and report as the worker ``TF_CONFIG`` names."""
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name if __spec__ else __name__}")
    parser.add_argument("--out", required=True, help="folder for the model and result files")
    parser.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and shuffling")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="SGD step (0.05)")
    args = parser.parse_args(argv)
    if "TF_CONFIG" not in os.environ:
        print("TF_CONFIG is not set: every worker needs its own; see forge_course.distribute")
        return 2
    config = json.loads(os.environ["TF_CONFIG"])

    import keras
    import tensorflow as tf

    from forge_course.distribute import build_model, make_dataset, train, training_data

    # First, before any other TensorFlow op: it connects to the other workers.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(args.seed)
    x, y, _, _ = training_data()
    data = make_dataset(x, y, args.batch_size, seed=args.seed)  # the GLOBAL batch
    with strategy.scope():
        model = build_model(seed=args.seed)
        optimizer = keras.optimizers.SGD(args.learning_rate, momentum=0.9)
    start = time.perf_counter()
    log = train(model, optimizer, strategy, data, args.steps)
    seconds = time.perf_counter() - start

    out = Path(args.out)
    target = save_path(out / "model.keras", config)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)  # every worker saves; only the chief's copy stays
    chief = is_chief(config)
    if not chief:
        shutil.rmtree(target.parent, ignore_errors=True)
    index = config["task"]["index"]
    result = {
        "index": index,
        "chief": chief,
        "steps": args.steps,
        "steps_per_s": log.steps_per_s,
        "loss": log.losses[-1],
        "saved": str(target) if chief else "",
        "seconds": round(seconds, 3),
        "pid": os.getpid(),
    }
    (out / f"result-{index}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
