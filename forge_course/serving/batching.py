"""Server-side batching: concurrent requests share one model call, as in TF Serving.

A request's rows join a queue. A batch leaves the queue when

* it holds ``max_batch_size`` rows, or
* the oldest request in it has waited ``max_wait_s`` (0: the end of the current event-loop
  turn, so requests that arrived together still share a call), and the model is free.

By default the model runs in the event loop's own thread: while it runs, new requests
wait in the kernel's socket buffers, are read the moment it returns, and leave together
as the next batch. Under load, batches grow by themselves without any waiting. With
``model_thread=True`` the model runs in a worker thread instead, so the loop keeps
parsing during a call (worth it for models that take milliseconds; for a small model the
two thread hand-offs per batch cost more than they save). One request larger than a
batch runs alone (the servable slices it). :class:`BatchStats` counts requests and model
calls, which is how the tests prove that batching happened (calls < requests).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["BatchStats", "Batcher"]

Done = Callable[[object], None]  # called with a dict of output arrays, or an exception


@dataclass
class BatchStats:
    """What the batcher has done so far."""

    requests: int = 0
    rows: int = 0
    model_calls: int = 0
    largest_batch: int = 0

    def to_dict(self) -> dict:
        """The counters as a JSON-ready dict."""
        return asdict(self)


class Batcher:
    """Queue requests and run them through ``run`` in batches (see the module docstring)."""

    def __init__(
        self,
        run: Callable[[np.ndarray], dict[str, np.ndarray]],
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.0,
        model_thread: bool = False,
    ):
        self._run = run
        self._loop = loop
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: deque[tuple[np.ndarray, Done]] = deque()
        self._queued_rows = 0
        self._busy = False
        self._timer: asyncio.Handle | None = None
        self._work = threading.Condition()
        self._job: tuple[np.ndarray, list] | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if model_thread:
            self._thread = threading.Thread(target=self._worker, name="forge-model", daemon=True)
            self._thread.start()

    @property
    def idle(self) -> bool:
        """True when nothing is queued or running."""
        return not self._busy and not self._queue

    def submit(self, batch: np.ndarray, done: Done) -> None:
        """Queue ``batch`` (rows first); ``done`` gets its outputs (or an exception) later."""
        self.stats.requests += 1
        self._queue.append((batch, done))
        self._queued_rows += len(batch)
        if self._busy:
            return  # leaves with the next batch when the model returns
        if self._queued_rows >= self.max_batch_size:
            self._cancel_timer()
            self._flush()
        elif self._timer is None:
            if self.max_wait_s > 0:
                self._timer = self._loop.call_later(self.max_wait_s, self._flush)
            else:
                self._timer = self._loop.call_soon(self._flush)

    def close(self) -> None:
        """Stop the worker thread, if any (after the batch it is running)."""
        with self._work:
            self._closed = True
            self._work.notify()

    # -- inside the event loop ------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        self._timer = None
        if self._busy or not self._queue:
            return
        taken, rows = [], 0
        while self._queue and (not taken or rows + len(self._queue[0][0]) <= self.max_batch_size):
            batch, done = self._queue.popleft()
            taken.append((batch, done))
            rows += len(batch)
        self._queued_rows -= rows
        self._busy = True
        self.stats.model_calls += 1
        self.stats.rows += rows
        self.stats.largest_batch = max(self.stats.largest_batch, rows)
        joined = taken[0][0] if len(taken) == 1 else np.concatenate([b for b, _ in taken])
        if self._thread is None:  # inline: the loop waits; sockets buffer what arrives
            try:
                result = self._run(joined)
            except Exception as exc:  # reported to each request as a 500, server stays up
                result = exc
            self._finish(taken, result)
            return
        with self._work:
            self._job = (joined, taken)
            self._work.notify()

    def _finish(self, taken: list, result) -> None:
        self._busy = False
        if isinstance(result, BaseException):
            for _, done in taken:
                done(result)
        else:
            start = 0
            for batch, done in taken:
                stop = start + len(batch)
                done({k: v[start:stop] for k, v in result.items()})
                start = stop
        if self._queue:
            self._cancel_timer()
            self._flush()

    # -- in the model thread --------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            with self._work:
                while self._job is None and not self._closed:
                    self._work.wait()
                if self._job is None:
                    return
                joined, taken = self._job
                self._job = None
            try:
                result = self._run(joined)
            except Exception as exc:  # reported to each request as a 500, server stays up
                result = exc
            try:
                self._loop.call_soon_threadsafe(self._finish, taken, result)
            except RuntimeError:  # the loop closed during shutdown
                return
