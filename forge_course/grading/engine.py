"""How the grader executes a notebook: papermill with an output cap, over ``ipc`` sockets.

- :class:`CappedClient` keeps at most :data:`OUTPUT_CAP` bytes of a notebook's outputs
  (text, images, errors, all cells together); past it, outputs are dropped and the cell
  that crossed it gets one marker saying so. A notebook that prints 200 MB therefore
  costs the grader a few megabytes, and its executed copy stays readable.
- :func:`kernel_manager` talks to the kernel over Jupyter's ``ipc`` transport: Unix
  sockets in the submission's own job folder, which a sandboxed kernel (no network of
  its own) can reach and no other kernel can see; its client (:class:`QuickStartClient`)
  starts executing as soon as the kernel has answered.

The engine is registered with papermill as ``forge`` (:func:`register`).
"""

from __future__ import annotations

import json
from typing import Any

from forge_course.grading import procs

procs.skip_slow_imports()  # papermill imports nbformat, and it jsonschema, next

from jupyter_client.asynchronous import AsyncKernelClient  # noqa: E402
from papermill.clientwrap import PapermillNotebookClient  # noqa: E402
from papermill.engines import NBClientEngine, papermill_engines  # noqa: E402
from papermill.utils import merge_kwargs, remove_args  # noqa: E402

__all__ = ["ENGINE", "OUTPUT_CAP", "CappedClient", "QuickStartClient", "kernel_manager", "register"]

ENGINE = "forge"
OUTPUT_CAP = 2 * 1024 * 1024  # bytes of outputs kept per notebook
DRAIN_S = 0.02  # IOPub silence that ends a kernel's start-up (jupyter_client waits 0.2 s)
MARKER = "[grader: output truncated here: this notebook printed more than {cap} MB]"


def _size(out) -> int:
    try:
        return len(json.dumps(out, default=str))
    except (TypeError, ValueError):
        return OUTPUT_CAP


class CappedClient(PapermillNotebookClient):
    """papermill's client, keeping no more than :data:`OUTPUT_CAP` bytes of outputs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept = 0
        self.truncated = False

    def output(self, outs, msg, display_id, cell_index):
        if self.truncated:
            return None
        content = msg.get("content", {})
        text = content.get("text")
        size = len(text) if isinstance(text, str) else _size(content)
        if self.kept + size > OUTPUT_CAP:
            self.truncated = True
            from nbformat.v4 import new_output

            text = MARKER.format(cap=OUTPUT_CAP // (1024 * 1024)) + "\n"
            outs.append(new_output("stream", name="stderr", text=text))
            return None
        self.kept += size
        return super().output(outs, msg, display_id, cell_index)


class CappedEngine(NBClientEngine):
    """papermill's nbclient engine with :class:`CappedClient`."""

    @classmethod
    def execute_managed_notebook(
        cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
        start_timeout=60, execution_timeout=None, **kwargs,
    ):  # fmt: skip
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
            startup_timeout=start_timeout, kernel_name=kernel_name, log_output=log_output,
            stdout_file=stdout_file, stderr_file=stderr_file,
        )  # fmt: skip
        return CappedClient(nb_man, **final_kwargs).execute()


def register() -> None:
    """Make the ``forge`` engine available to ``papermill.execute_notebook``."""
    papermill_engines.register(ENGINE, CappedEngine)


class QuickStartClient(AsyncKernelClient):
    """jupyter_client's client, but ready once IOPub is quiet for :data:`DRAIN_S`.

    ``wait_for_ready`` ends by draining IOPub until it has been silent for 0.2 s, which
    every submission would wait out in full (about 5 % of exercise 02's grading).
    nbclient matches each message to its own request, so a start-up message that
    arrives later cannot be mistaken for a cell's output.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        channel = self.iopub_channel
        get_msg = channel.get_msg

        async def quick(timeout: float | None = None):
            return await get_msg(timeout=None if timeout is None else min(timeout, DRAIN_S))

        channel.get_msg = quick
        try:
            await super().wait_for_ready(timeout)
        finally:
            del channel.get_msg  # the channel's own method again


def kernel_manager(job: str):
    """A kernel manager for one submission: ``ipc`` sockets and connection file in ``job``."""
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(
        kernel_name="python3", transport="ipc", ip=f"{job}/kernel",
        connection_file=f"{job}/kernel.json",
    )  # fmt: skip
    km.client_factory = QuickStartClient
    return km
