"""The ``--out`` folder: written only by the grader, at the end, and checked afterwards.

During a batch no process writes ``--out``: each executed notebook and kernel log
arrives in the grader's memory and waits in a private spool folder (mode 0700, seen by
no kernel, sandboxed or not). At the end :class:`OutDir` writes them, the gradebook
and the feedback, each file whole (a temporary file renamed over), and then looks for
*stray* files: anything in ``--out`` that neither existed unchanged before the batch
nor was written by the grader. A stray under ``executed/`` or ``feedback/`` (the
grader's own folders) is removed; any other is left and reported. Both go into
``gradebook.json`` (``stray_files``) and a line on stderr.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["OutDir", "safe_part"]

OWNED = ("executed", "feedback")


def safe_part(name: str) -> str:
    """One safe path component for a student or notebook name (never ``.`` or ``..``)."""
    out = "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in name).strip()
    return out if out.strip(".") else (out.replace(".", "_") or "_")


def _state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class OutDir:
    """The batch's ``--out``: what was there before, the spool, what the grader wrote."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.before = {p: _state(self.out / p) for p in self._files()}
        self.spool = Path(tempfile.mkdtemp(prefix="forge-spool-"))
        self.spooled: dict[str, str] = {}  # relative path in --out -> spool file
        self.written: set[str] = set()

    def _files(self) -> list[str]:
        if not self.out.is_dir():
            return []
        found = []
        for root, dirs, files in os.walk(self.out):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                found.append(os.path.relpath(os.path.join(root, name), self.out))
        return found

    @staticmethod
    def executed_path(student: str, notebook: str) -> str:
        """Where a submission's executed notebook goes, relative to ``--out``."""
        parts = [safe_part(p) for p in Path(notebook).parts if p not in ("", "/")]
        return os.path.join("executed", safe_part(student), *parts)

    def keep(self, student: str, notebook: str, executed: str | None, log: str) -> None:
        """Spool a submission's executed notebook and kernel log (written at the end)."""
        rel = self.executed_path(student, notebook)
        for path, text in ((rel, executed), (str(Path(rel).with_suffix(".log")), log)):
            if text:
                fd, tmp = tempfile.mkstemp(dir=self.spool)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                self.spooled[path] = tmp

    def write(self, rel: str, text: str) -> None:
        """Write ``text`` to ``--out/rel`` whole: a temporary file, then a rename."""
        path = self.out / rel
        _no_links_under(self.out, path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                f.write(text)
            if path.is_symlink() or path.is_dir():
                _remove(path)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        self.written.add(rel)

    def publish(self) -> None:
        """Write every spooled executed notebook and log into ``--out``."""
        for rel, tmp in sorted(self.spooled.items()):
            self.write(rel, Path(tmp).read_text())

    def strays(self) -> list[dict[str, str]]:
        """Find stray files; remove those in the grader's own folders. Returns them."""
        found = []
        for rel in sorted(self._files()):
            if rel in self.written:
                continue
            if rel in self.before and self.before[rel] == _state(self.out / rel):
                continue
            owned = Path(rel).parts[0] in OWNED or rel in ("gradebook.csv", "gradebook.json")
            if owned:
                _remove(self.out / rel)
            found.append({"path": rel, "action": "removed" if owned else "left in place"})
        return found

    def close(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _no_links_under(out: Path, folder: Path) -> None:
    """Replace any symbolic link between ``out`` and ``folder`` (a planted link must not
    send the grader's writes elsewhere)."""
    here = out
    for part in folder.relative_to(out).parts:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            _remove(here)
