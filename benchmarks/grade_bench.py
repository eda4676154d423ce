"""Grade 20 submissions of exercise 02 with 1 and with 2 workers; print the figures.

Goal on a 2-core machine: the 20 submissions in <= 60 s with 2 workers, and >= 1.6x
from the second worker. Run: ``python benchmarks/grade_bench.py [--n 20] [--plain]``
(``--plain`` also times Jupyter's usual kernel launch, without the fork server).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from forge_course.grading.grade import grade

ROOT = Path(__file__).resolve().parents[1]


def run(subs: Path, out: Path, jobs: int) -> dict:
    book = grade([subs], out, jobs=jobs, progress=False)
    full = sum(s.passed for s in book.submissions)
    return {"wall": book.wall_s, "n": len(book.submissions), "full": full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="submissions (20)")
    parser.add_argument("--plain", action="store_true", help="also time without the fork server")
    args = parser.parse_args()
    os.environ["FORGE_COURSE_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(args.n):
            shutil.copy(ROOT / "solutions" / "02_sequential_api.ipynb", subs / f"s{i:02d}.ipynb")
        modes = [("fork server", "1")] + ([("plain kernels", "0")] if args.plain else [])
        print(f"grading {args.n} submissions of exercise 02 on {os.cpu_count()} cores")
        for label, fork in modes:
            os.environ["FORGE_COURSE_FORK"] = fork
            one = run(subs, Path(tmp) / f"out1{fork}", 1)
            two = run(subs, Path(tmp) / f"out2{fork}", 2)
            for jobs, r in ((1, one), (2, two)):
                print(
                    f"  {label:<13} jobs={jobs}: {r['wall']:6.1f} s total, "
                    f"{r['wall'] / r['n']:5.2f} s per submission, {r['full']}/{r['n']} full marks"
                )
            print(f"  {label:<13} speed-up of 2 workers over 1: {one['wall'] / two['wall']:.2f}x")


if __name__ == "__main__":
    main()
