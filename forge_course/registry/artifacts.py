"""Model files on disk: written under a temporary name, hashed, then moved into place."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from forge_course.errors import ArtifactError, RegistryError

__all__ = ["Staged", "file_sha256", "library_versions", "read_verified", "stage"]

CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Staged:
    """A complete model file under a temporary name, with its hash and size."""

    path: Path
    sha256: str
    size: int


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in chunks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write(model: Any, tmp: Path) -> None:
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        if source.suffix != ".keras" or not source.is_file():
            raise RegistryError(
                f"cannot register {str(source)!r}: give a Keras model or an existing "
                ".keras file (model.save('model.keras'))"
            )
        shutil.copyfile(source, tmp)
        return
    save = getattr(model, "save", None)
    if not callable(save):
        raise RegistryError(
            f"cannot register a {type(model).__name__}: give a Keras model or a .keras file"
        )
    save(str(tmp))


def stage(model: Any, folder: Path) -> Staged:
    """Write ``model`` (a Keras model or a ``.keras`` file) to a temporary file in ``folder``.

    The file is flushed to disk and hashed before it is used; if anything fails, the
    temporary file is removed and the error propagates.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}.keras"
    try:
        _write(model, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        return Staged(tmp, file_sha256(tmp), tmp.stat().st_size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def library_versions() -> tuple[str, str]:
    """The installed Keras and TensorFlow versions (read from package metadata: no import)."""
    from importlib import metadata

    found = []
    for names in (("keras",), ("tensorflow", "tensorflow-cpu", "tensorflow-macos")):
        for name in names:
            try:
                found.append(metadata.version(name))
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            found.append("unknown")
    return found[0], found[1]


def read_verified(record) -> bytes:
    """The bytes of ``record``'s artifact, if their SHA-256 is the registered one.

    Raises:
        ArtifactError: the file is missing, or its hash changed (both hashes named).
    """
    path = Path(record.artifact_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"the artifact of {record.ref} is missing: {path} (registered with SHA-256 "
            f"{record.sha256}); restore the file or register the model again"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.sha256:
        raise ArtifactError(
            f"refusing to load {record.ref}: {path} has SHA-256 {actual}, but the "
            f"registry recorded {record.sha256} when it was registered; the file changed "
            "since. Restore it, or register the model again as a new version"
        )
    return data
