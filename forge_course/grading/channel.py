"""The one-way channel from a learner's kernel to the grader.

While grading, ``check(...)`` does not score anything: it serializes each value as an
artifact (a ``.keras`` model, a ``.npy`` array or a JSON scalar) and sends it over a
local (Unix) socket to the grader's worker process, which keeps it in memory: nothing
the kernel writes to disk or prints afterwards can change what was received. Once
the kernel and anything it started are gone, a grader process loads each artifact
from memory (Keras ``safe_mode``, NumPy without pickles) and computes every score.
"""

from __future__ import annotations

import functools
import io
import json
import os
import secrets
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from forge_course.errors import GradingError

ENV_VAR = "FORGE_COURSE_SUBMIT"
EXTENSIONS = {"model": ".keras", "array": ".npy", "scalar": ".json", "unanswered": ".unanswered"}
MAX_BYTES = 256 * 1024 * 1024  # one artifact
MAX_TOTAL = 1024 * 1024 * 1024  # everything one submission sends
MAX_UNPACKED = 512 * 1024 * 1024  # a .keras model (a zip) once unpacked
POLL_S = 0.05  # how often the collector checks whether it should stop
KIND_WORDS = {"model": "a Keras model", "array": "an array", "scalar": "a number or text"}


class Refused(GradingError):
    """The grader will not take a value; the message says why, in a student's words."""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def check_unpacked(payload: bytes) -> None:
    """Refuse a ``.keras`` file that would unpack to more than :data:`MAX_UNPACKED`."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Refused("the model file is not a .keras file (not a zip archive)") from None
    if total > MAX_UNPACKED:
        raise Refused(
            f"the model unpacks to {_mb(total)}; the grader loads models up to "
            f"{_mb(MAX_UNPACKED)}: submit a smaller model"
        )


def grading_address() -> tuple[str, str] | None:
    """The grader's (socket path, token) when this process runs under the grader."""
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    path, token = raw.rsplit(":", 1)
    return path, token


def connect(path: str) -> socket.socket:
    """Open a connection to a collector's Unix socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(path)
    return sock


def encode(kind: str, value: Any) -> bytes:
    """Serialize one value as the artifact of its kind."""
    if value is Ellipsis:
        return b""
    if kind == "model":
        import keras

        if not isinstance(value, keras.Model):
            raise GradingError(f"expected a Keras model, got {type(value).__name__}")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            try:
                value.save(path)
            except Exception as exc:  # noqa: BLE001 - e.g. a custom layer without get_config
                raise GradingError(f"could not save the model: {exc}") from None
            return path.read_bytes()
    if kind == "array":
        buf = io.BytesIO()
        arr = np.asarray(value)
        if arr.dtype == object:
            raise GradingError("expected numbers in an array, got Python objects")
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    if kind == "scalar":
        if hasattr(value, "numpy"):
            value = value.numpy()
        if isinstance(value, np.generic | np.ndarray):
            value = value.tolist()
        try:
            return json.dumps(value).encode()
        except TypeError:
            raise GradingError(f"expected a number or text, got {type(value).__name__}") from None
    raise GradingError(f"unknown artifact kind {kind!r}")


def decode(kind: str, payload: bytes) -> Any:
    """Load one artifact from its bytes, in memory, refusing anything that could run code.

    Nothing touches the disk, so nothing another process writes can swap an artifact
    between its arrival and its scoring.
    """
    if kind == "model":
        import warnings

        check_unpacked(payload)
        # keras.saving.load_model takes only paths; the saving library under it also
        # takes a file object, with the same safe_mode guarantee (keras is pinned < 4).
        from keras.src.saving import saving_lib

        with warnings.catch_warnings():  # optimizer-state notices are not the learner's concern
            warnings.simplefilter("ignore")
            return saving_lib.load_model(io.BytesIO(payload), safe_mode=True)
    if kind == "array":
        return np.load(io.BytesIO(payload), allow_pickle=False)
    if kind == "scalar":
        return json.loads(payload)
    if kind == "unanswered":
        return Ellipsis
    raise GradingError(f"unknown artifact kind {kind!r}")


def submit(task_id: str, values: dict[str, tuple[str, Any]]) -> None:
    """Send a task's values to the grader (kernel side). ``values``: name -> (kind, value)."""
    address = grading_address()
    if address is None:
        raise GradingError("not running under the grader")
    path, token = address
    encoded = {  # serialize everything first: a task is sent whole or not at all
        name: ("unanswered" if value is Ellipsis else kind, encode(kind, value))
        for name, (kind, value) in values.items()
    }
    for name, (kind, payload) in encoded.items():
        header = {"token": token, "task": task_id, "name": name, "kind": kind, "size": len(payload)}
        try:
            sock = connect(path)
        except OSError as exc:
            raise GradingError(f"could not reach the grader: {exc}") from None
        with sock:
            try:
                sock.sendall(json.dumps(header).encode() + b"\n" + payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the grader may have refused before reading it all: its reply says why
            try:
                reply = sock.makefile("rb").readline().decode().strip()
            except OSError as exc:
                raise GradingError(f"could not reach the grader: {exc}") from None
        if reply != "ok":
            raise GradingError(f"the grader refused {task_id}.{name}: {reply}")


def _peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process at the other end of a Unix socket (Linux), else None."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None
    return struct.unpack("3i", creds)[0]


class Collector:
    """The grader's side: a Unix-socket server that keeps received artifacts in memory.

    Args:
        allowed: task -> value name -> kind this exercise takes (None: any).
        sender_ok: given the sending process's pid, whether to accept it; the worker
            accepts only its current kernel and that kernel's descendants, so another
            student's notebook that learns the address and token still cannot send.
    """

    def __init__(
        self, allowed: dict[str, dict[str, str]] | None = None, sender_ok=None, folder=None
    ):
        self.allowed = allowed
        self.sender_ok = sender_ok
        self.token = secrets.token_hex(16)
        self.received: dict[str, dict[str, tuple[str, bytes]]] = {}  # task -> name -> artifact
        self.refused: dict[str, str] = {}  # task -> why the grader refused a value of it
        self._reserved = 0
        self._lock = threading.Lock()
        collector = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    pid = _peer_pid(self.connection)
                    if collector.sender_ok and pid is not None and not collector.sender_ok(pid):
                        raise GradingError("this process may not submit for this notebook")
                    collector._receive(self.rfile)
                    self.wfile.write(b"ok\n")
                except GradingError as exc:  # why, in words; never a header (it holds the token)
                    self.wfile.write(f"error: {exc}\n".encode())
                except Exception:  # noqa: BLE001 - e.g. a header that is not JSON
                    self.wfile.write(b"error: the grader could not read this submission\n")

        self._owned = folder is None
        self._folder = tempfile.mkdtemp(prefix="forge-collect-") if folder is None else folder
        self.path = os.path.join(self._folder, "collector.sock")
        self._server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        self._server.daemon_threads = True
        # serve_forever notices shutdown() only between polls: its default half second
        # would be added to every submission's grading time
        serve = functools.partial(self._server.serve_forever, poll_interval=POLL_S)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.path}:{self.token}"

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._owned:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _receive(self, rfile) -> None:
        header = json.loads(rfile.readline(4096))
        if not secrets.compare_digest(str(header.get("token", "")), self.token):
            raise GradingError("bad token")
        task, name, kind = str(header["task"]), str(header["name"]), str(header["kind"])
        size = int(header["size"])
        if kind not in EXTENSIONS or size < 0:
            raise GradingError("bad artifact header")
        if not (task.replace("_", "").isalnum() and name.replace("_", "").isalnum()):
            raise GradingError("bad artifact name")
        if self.allowed is not None:
            want = self.allowed.get(task, {}).get(name)
            if want is None:
                raise GradingError(f"this exercise takes no value {name} for {task}")
            if kind not in (want, "unanswered"):
                self._refuse(task, f"{name} should be {KIND_WORDS.get(want, want)}, "
                                   f"got {KIND_WORDS.get(kind, kind)}")  # fmt: skip
        if size > MAX_BYTES:
            self._refuse(task, f"{name} is {_mb(size)}; the grader accepts values up to "
                               f"{_mb(MAX_BYTES)}: submit something smaller")  # fmt: skip
        with self._lock:  # reserve the room before reading, so parallel senders cannot pile up
            if self._reserved + size > MAX_TOTAL:
                self._refuse(task, f"this notebook has sent more than the {_mb(MAX_TOTAL)} "
                                   "the grader keeps for one submission")  # fmt: skip
            self._reserved += size
        payload = rfile.read(size)
        if len(payload) != size:
            raise GradingError("artifact truncated")
        with self._lock:  # a later call for the same task replaces the earlier answer
            self.received.setdefault(task, {})[name] = (kind, payload)
            self.refused.pop(task, None)  # values arrive in order: a refusal after this one counts

    def _refuse(self, task: str, why: str) -> None:
        with self._lock:
            self.refused[task] = why
        raise Refused(why)

    def artifacts(self) -> dict[str, dict[str, tuple[str, bytes]]]:
        """A copy of everything received: task -> name -> (kind, bytes)."""
        with self._lock:
            return {task: dict(values) for task, values in self.received.items()}
