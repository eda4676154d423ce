"""Time every lesson and solution notebook the way a learner runs it; print the figures.

Budget: each notebook top to bottom, offline, on a 2-core CPU, in <= 60 s including
kernel start and the TensorFlow import. Run: ``python benchmarks/lesson_times.py [GLOB...]``
(e.g. ``notebooks/*`` for the lessons only). CPU is the kernel's user+system time, which a
busy machine inflates far less than wall time.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 60.0


def main() -> None:
    os.environ["FORGE_COURSE_OFFLINE"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    patterns = sys.argv[1:] or ["notebooks/*.ipynb", "solutions/*.ipynb"]
    notebooks = [nb for pattern in patterns for nb in sorted(ROOT.glob(pattern))]
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'notebook':<45} {'wall s':>7} {'CPU s':>6}  budget {BUDGET_S:g} s wall")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for nb in notebooks:
            started = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            papermill.execute_notebook(
                str(nb), str(Path(tmp) / nb.name), kernel_name="python3",
                cwd=str(nb.parent), progress_bar=False,
            )  # fmt: skip
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            worst = max(worst, wall)
            verdict = "ok" if wall <= BUDGET_S else "OVER"
            print(f"{nb.parent.name + '/' + nb.name:<45} {wall:7.1f} {cpu:6.1f}  {verdict}")
    print(f"slowest: {worst:.1f} s")


if __name__ == "__main__":
    main()
