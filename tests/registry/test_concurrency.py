"""Concurrent register() calls from several processes: distinct versions, none lost.

The processes start together on an empty database, so they also race to create the
schema (first use) and the model's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import ROOT

PROCESSES, EACH = 5, 4

WORKER = """
import json, sys, time
from forge_course.registry import ModelRegistry
url, artifacts, model, start, who, each = sys.argv[1:7]
reg = ModelRegistry(url, artifacts=artifacts)
while time.time() < float(start):
    time.sleep(0.005)
got, spent = [], []
for i in range(int(each)):
    t = time.perf_counter()
    params = {"who": who, "i": i}
    got.append(reg.register(model, "digits", metrics={"accuracy": 0.5}, params=params))
    spent.append(time.perf_counter() - t)
print(json.dumps({"versions": got, "seconds": spent}))
"""


def test_concurrent_registers_get_distinct_versions(db_url, tmp_path, keras_file):
    from forge_course.registry import ModelRegistry

    artifacts = tmp_path / "artifacts"
    start = time.time() + 3.0  # every process imports first, then all register at once
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                db_url,
                str(artifacts),
                str(keras_file),
                str(start),
                f"p{n}",
                str(EACH),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for n in range(PROCESSES)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    versions = sorted(v for r in results for v in r["versions"])
    assert versions == list(range(1, PROCESSES * EACH + 1))  # distinct, none lost, no gaps

    reg = ModelRegistry(db_url, artifacts=artifacts)
    records = reg.list("digits")
    assert [r.version for r in records] == versions
    owners = {(r.params["who"], r.params["i"]) for r in records}
    assert len(owners) == PROCESSES * EACH  # every call's own row
    assert reg.verify().ok
    assert len(list(artifacts.rglob("*.keras"))) == PROCESSES * EACH  # no strays, no temps
    reg.close()
    slowest = max(s for r in results for s in r["seconds"])
    print(f"{db_url.split(':')[0]}: {PROCESSES}x{EACH} registers, slowest {slowest:.3f} s")
