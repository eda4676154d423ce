"""Grade 20 submissions of exercise 02 with 2 workers, sandboxed and not; print the figures.

Goal on a quiet 2-core machine: the 20 submissions in <= 35 s with 2 workers, sandbox
on (issue 12), and the sandbox costing little over ``--no-sandbox``. The machine's
1-minute load average is printed before and after each run, since a shared machine
inflates wall times.
Run: ``python benchmarks/grade_bench.py [--n 20] [--repeat 3] [--one] [--plain]``
(``--repeat`` runs each setting that many times and prints the median, since the same
batch varies by about 10 % between runs on a shared machine; ``--one`` also times 1
worker; ``--plain`` also times Jupyter's usual kernel launch, no fork server).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from forge_course.grading.grade import grade

ROOT = Path(__file__).resolve().parents[1]


def run(subs: Path, out: Path, jobs: int, sandbox: bool) -> dict:
    load = os.getloadavg()[0]
    book = grade([subs], out, jobs=jobs, progress=False, sandbox=sandbox)
    full = sum(s.passed for s in book.submissions)
    return {
        "wall": book.wall_s, "n": len(book.submissions), "full": full, "load": load,
        "after": os.getloadavg()[0],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="submissions (20)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (1)")
    parser.add_argument("--one", action="store_true", help="also time 1 worker")
    parser.add_argument("--plain", action="store_true", help="also time without the fork server")
    args = parser.parse_args()
    os.environ["FORGE_COURSE_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(args.n):
            shutil.copy(ROOT / "solutions" / "02_sequential_api.ipynb", subs / f"s{i:02d}.ipynb")
        forks = [("fork server", "1")] + ([("plain kernels", "0")] if args.plain else [])
        print(f"grading {args.n} submissions of exercise 02 on {os.cpu_count()} cores")
        for label, fork in forks:
            os.environ["FORGE_COURSE_FORK"] = fork
            for sandbox in (True, False):
                for jobs in (1, 2) if args.one else (2,):
                    name = f"{label}, {'sandbox' if sandbox else 'no sandbox'}"
                    walls = []
                    for k in range(args.repeat):
                        out = Path(tmp) / f"out{fork}{sandbox}{jobs}-{k}"
                        r = run(subs, out, jobs, sandbox)
                        walls.append(r["wall"])
                        print(
                            f"  {name:<26} jobs={jobs}: {r['wall']:6.1f} s, "
                            f"{r['wall'] / r['n']:5.2f} s per submission, {r['full']}/{r['n']} "
                            f"full marks (load {r['load']:.1f} before, {r['after']:.1f} after)",
                            flush=True,
                        )
                    if args.repeat > 1:
                        print(
                            f"  {name:<26} jobs={jobs}: median {statistics.median(walls):.1f} s "
                            f"of {args.repeat} (from {min(walls):.1f} to {max(walls):.1f} s)"
                        )


if __name__ == "__main__":
    main()
