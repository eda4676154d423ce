"""How the grader talks to a kernel: start-up that waits for nothing, imports that cost nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from jupyter_client.asynchronous import AsyncKernelClient

from forge_course.grading import engine


async def _ready_again_and_run(tmp_path, client_class) -> tuple[float, str]:
    """Start a kernel, wait until it is ready, time a second wait_for_ready (the kernel is
    up: all of it is the client's own waiting), then run a cell; (seconds, output)."""
    km = engine.kernel_manager(str(tmp_path))
    km.client_factory = client_class
    await km.start_kernel()
    try:
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        started = time.perf_counter()
        await client.wait_for_ready(timeout=60)
        waited = time.perf_counter() - started
        seen: list[str] = []
        reply = await client.execute_interactive(
            "print(6 * 7)", timeout=30,
            output_hook=lambda msg: seen.append(msg["content"].get("text", "")),
        )  # fmt: skip
        client.stop_channels()
        assert reply["content"]["status"] == "ok"
        return waited, "".join(seen)
    finally:
        await km.shutdown_kernel(now=True)


def test_a_kernel_is_ready_without_waiting_out_jupyters_drain(tmp_path):
    """jupyter_client's client drains IOPub until 0.2 s of silence at every start; the
    grader's stops after DRAIN_S, and the kernel's output still arrives."""
    assert engine.kernel_manager(str(tmp_path)).client_factory is engine.QuickStartClient
    (tmp_path / "quick").mkdir()
    (tmp_path / "plain").mkdir()
    ours, printed = asyncio.run(_ready_again_and_run(tmp_path / "quick", engine.QuickStartClient))
    theirs, _ = asyncio.run(_ready_again_and_run(tmp_path / "plain", AsyncKernelClient))
    assert printed == "42\n"
    assert theirs >= 0.2 and ours < theirs, (ours, theirs)


def test_grading_processes_skip_the_iri_grammar_and_still_validate_notebooks():
    code = (
        "import sys\n"
        "from forge_course.grading import engine\n"
        "import nbformat\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])\n"
        "nbformat.validate(nb)\n"
        "print(sys.modules['rfc3987_syntax'] is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
