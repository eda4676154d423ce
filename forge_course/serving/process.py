"""Run the service next to a notebook: start it in a subprocess, stop it whatever happens.

:func:`start_service` launches ``forge-course serve`` on a free loopback port, waits for
``/healthz`` and returns a :class:`Service` (``url``, ``stats()``, ``stop()``). The process
is stopped by ``stop()``, by ``with``, and in any case when the Python process exits
(``atexit``), so a notebook that fails half-way never leaves a server behind.

:func:`respond` answers a ``:predict`` body in this process exactly as the service would
(same validation, same compiled call, same JSON), for exercises and checks that must run
where no socket may be opened; :func:`answer_over_http` sends it to a real service on
loopback, in a thread of this process.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from forge_course.errors import ExecutionError

__all__ = ["Service", "answer_over_http", "free_port", "respond", "start_service"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Service:
    """A ``forge-course serve`` subprocess on loopback."""

    def __init__(self, proc: subprocess.Popen, name: str, port: int, log: Path):
        self.proc, self.name, self.port, self.log = proc, name, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.predict_url = f"{self.url}/v1/models/{name}:predict"
        self.returncode: int | None = None

    def stats(self) -> dict:
        """The service's ``/healthz`` answer (status and batching counters)."""
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as r:
            return json.loads(r.read())

    def stop(self, timeout: float = 30) -> int:
        """Send SIGTERM (in-flight requests finish), wait, and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.proc.poll() is None else f"stopped ({self.proc.returncode})"
        return f"<Service {self.name!r} at {self.url}, pid {self.proc.pid}, {state}>"


def start_service(
    model: str | os.PathLike,
    name: str,
    *,
    port: int | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 120,
) -> Service:
    """Start ``forge-course serve MODEL --name NAME`` on loopback; return once it answers.

    Raises:
        ExecutionError: the service exited or did not answer ``/healthz`` within ``timeout``;
            the message holds the end of its log.
    """
    port = port or free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"forge-serve-{name}-{port}.log"
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forge_course.cli", "serve", str(model), "--name", name,
             "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    service = Service(proc, name, port, log)
    atexit.register(service.stop)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            service.stop()
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise ExecutionError(f"the service did not start (log {log}):\n{tail}")
        try:
            if service.stats().get("status") == "ok":
                return service
        except OSError:
            time.sleep(0.2)


def respond(servable, body) -> tuple[int, dict]:
    """Answer a ``:predict`` body (bytes, text or a JSON-ready object) as the service would.

    Returns:
        ``(status, payload)``: 200 and ``{"predictions": ...}`` or ``{"outputs": ...}``,
        or 400 and ``{"error": ...}``.
    """
    from forge_course.serving.validate import RequestError, format_outputs, parse_predict

    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes | bytearray):
        try:
            body = json.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            return 400, {"error": f"the body cannot be written as JSON: {exc}"}
    try:
        request = parse_predict(bytes(body), servable.input)
    except RequestError as exc:
        return exc.status, {"error": str(exc)}
    result = servable.run(request.batch)
    return 200, format_outputs(result, servable.outputs, request.columnar)


def answer_over_http(servable, body: bytes | str, **config) -> tuple[int, dict]:
    """POST ``body`` to a real service on loopback, started in a thread of this process.

    The whole path a client takes (HTTP parsing, the body limit, validation, batching, the
    compiled call), for graders that must judge a request by what the service answers.
    ``config`` goes to :class:`~forge_course.serving.server.ServeConfig` (port 0 is used).

    Returns:
        ``(status, payload)`` as the client received them.
    """
    import asyncio
    import http.client
    import threading

    from forge_course.serving.server import ModelServer, ServeConfig

    server = ModelServer(servable, ServeConfig(**{**config, "port": 0}))
    ready = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            await server.start()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            failure.append(exc)
            return
        finally:
            ready.set()
        await server.wait_stopped()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(30)
    if failure or server.loop is None:
        raise ExecutionError(f"could not start a service on loopback: {failure[:1]}")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        data = body.encode() if isinstance(body, str) else body
        conn.request("POST", f"/v1/models/{servable.name}:predict", body=data,
                     headers={"Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        status, payload = response.status, json.loads(response.read() or b"{}")
        conn.close()
    finally:
        server.loop.call_soon_threadsafe(server.stop)
        thread.join(30)
    return status, payload
