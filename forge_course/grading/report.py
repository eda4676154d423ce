"""The gradebook: ``gradebook.csv``, ``gradebook.json`` and ``feedback/<student>.md``."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

COLUMNS = ["student", "notebook", "check", "points", "possible", "status", "message"]


def rows(book: dict) -> list[dict]:
    """One flat row per student x notebook x check."""
    return [
        {
            "student": s["student"],
            "notebook": s["notebook"],
            "check": r["check"],
            "points": r["points"],
            "possible": r["possible"],
            "status": r["status"],
            "message": r["message"],
        }
        for s in book["submissions"]
        for r in s["rows"]
    ]


def write(out: Path, book: dict) -> None:
    """Write the whole gradebook; each file is replaced atomically."""
    for s in book["submissions"]:
        s["points"] = sum(r["points"] for r in s["rows"])
        s["possible"] = sum(r["possible"] for r in s["rows"])
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows(book):  # 2 and 2.0 alike print as 2
        writer.writerow(row | {k: f"{row[k]:g}" for k in ("points", "possible")})
    _atomic(out / "gradebook.csv", table.getvalue())
    _write_feedback(out, book)
    _atomic(out / "gradebook.json", json.dumps(book, indent=2, default=str) + "\n")


def _write_feedback(out: Path, book: dict) -> None:
    by_student: dict[str, list[dict]] = defaultdict(list)
    for s in book["submissions"]:
        by_student[s["student"]].append(s)
    (out / "feedback").mkdir(exist_ok=True)
    used: set[str] = set()
    for student, subs in sorted(by_student.items()):
        name, n = _safe(student), 1
        while name in used:  # "a b" and "a_b" must not share a file
            n += 1
            name = f"{_safe(student)}-{n}"
        used.add(name)
        for s in subs:
            s["feedback"] = f"feedback/{name}.md"
        _atomic(out / "feedback" / f"{name}.md", feedback(student, subs))


def feedback(student: str, subs: list[dict]) -> str:
    """A student's feedback: what passed, what failed and why, hints; no check sources."""
    lines = [f"# Feedback for {student}", ""]
    for s in subs:
        title = s["exercise"] or "unknown exercise"
        lines += [f"## {title} ({s['notebook']}): {s['points']:g}/{s['possible']:g} points", ""]
        if s["message"]:
            lead = {"completed": "Note", "missing": "Missing"}.get(
                s["outcome"], "Your notebook did not run to the end"
            )
            lines += [f"{lead}: {s['message']}", ""]
        for r in s["rows"]:
            mark = "passed" if r["status"] == "passed" else r["status"].upper()
            label = f"{r['check']} (hidden check)" if r.get("hidden") else r["check"]
            lines.append(f"- **{mark}** `{label}`: {r['points']:g}/{r['possible']:g}")
            if r["status"] != "passed":
                if r["message"]:
                    lines.append(f"  - {r['message']}")
                if r.get("hint"):
                    lines.append(f"  - hint: {r['hint']}")
        lines.append("")
    return "\n".join(lines)


def summary(book: dict) -> str:
    """A short table for the terminal."""
    lines = [f"{'student':<20} {'notebook':<28} {'points':>10}  outcome"]
    for s in book["submissions"]:
        pts = f"{s['points']:g}/{s['possible']:g}"
        lines.append(f"{s['student']:<20} {s['notebook']:<28} {pts:>10}  {s['outcome']}")
    lines.append(f"{len(book['submissions'])} submission(s) graded in {book['wall_s']:.1f} s")
    return "\n".join(lines)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _atomic(path: Path, text: str) -> None:
    """Write ``text`` to a fresh temporary file beside ``path``, then rename it over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)
