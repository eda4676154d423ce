"""A driver for one notebook tab of JupyterLab 4 in Chromium (through Playwright).

``NotebookPage`` drives the notebook through ``window.jupyterapp`` (the Lab started by
``tests.browser.lab.JupyterLabServer`` exposes it) and reads results both from the
notebook model and from the rendered page.
"""

from __future__ import annotations

from pathlib import Path

from tests.browser.lab import JupyterLabServer

ACTION_TIMEOUT_S = 60  # the longest a click, key press or redraw may take

# JavaScript run in the page. `app` is window.jupyterapp.
_JS_OPEN_PANEL = """async (name) => {
  const app = window.jupyterapp;
  await app.started; await app.restored;
  const panel = await app.commands.execute('docmanager:open', {path: name});
  await panel.context.ready;
  await panel.sessionContext.ready;
  return panel.id;
}"""

# Start Run All without awaiting it here (evaluate has no timeout); _JS_IDLE waits.
_JS_RUN_ALL = """(id) => {
  const app = window.jupyterapp;
  app.shell.activateById(id);
  window.forgeRunAll = {done: false};
  app.commands.execute('notebook:run-all-cells').then(
    ok => { window.forgeRunAll = {done: true, ok: ok}; },
    err => { window.forgeRunAll = {done: true, error: String(err)}; });
}"""

_JS_IDLE = """(id) => {
  const app = window.jupyterapp;
  const panel = [...app.shell.widgets('main')].find(w => w.id === id);
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const busy = [...panel.content.node.querySelectorAll('.jp-InputPrompt')]
    .some(p => p.textContent.includes('*'));
  const ran = window.forgeRunAll === undefined || window.forgeRunAll.done;
  return ran && kernel && kernel.status === 'idle' && !busy;
}"""

_JS_STATE = """(id) => {
  const app = window.jupyterapp;
  const panel = [...app.shell.widgets('main')].find(w => w.id === id);
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = [];
  const model = panel.content.model;
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    if (cell.type !== 'code') continue;
    cells.push({index: i, count: cell.executionCount,
                outputs: cell.outputs.toJSON(), source: cell.sharedModel.getSource()});
  }
  return {kernel: kernel ? kernel.status : 'none', cells, total: model.cells.length,
          // cells the browser renders: windowing hides the others (display: none) or
          // skips them (content-visibility: auto)
          shown: [...panel.content.node.querySelectorAll('.jp-Cell')].filter(
            c => c.checkVisibility({contentVisibilityAuto: true})).length,
          windowing: panel.content.notebookConfig.windowingMode};
}"""

_JS_STDERR_TRACEBACKS = """(id) => {
  const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.id === id);
  const selector = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
  return [...panel.content.node.querySelectorAll(selector)]
    .map(node => node.textContent).filter(text => text.includes('Traceback'));
}"""


class NotebookPage:
    """One notebook, open in its own JupyterLab tab."""

    def __init__(self, page, server: JupyterLabServer, name: str):
        self.page = page
        self.server = server
        self.name = name
        self.panel_id: str | None = None
        self._closed = False

    def open(self, timeout: float = 120) -> NotebookPage:
        """Load Lab on this notebook and wait until its kernel is ready."""
        self.page.set_default_timeout(ACTION_TIMEOUT_S * 1000)
        self.page.goto(
            self.server.notebook_url(self.name), wait_until="domcontentloaded",
            timeout=timeout * 1000,
        )  # fmt: skip
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout * 1000)
        self.panel_id = self.page.evaluate(_JS_OPEN_PANEL, self.name)
        return self

    def run_all(self, timeout: float = 600) -> None:
        """Run every cell, then wait until each code cell ran and the kernel is idle.

        Raises:
            AssertionError: the notebook was still running after ``timeout`` seconds
                (the message names the cells still waiting).
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.page.evaluate(_JS_RUN_ALL, self.panel_id)
        try:
            self.wait_idle(timeout)
        except PlaywrightTimeout:
            busy = [
                f"cell {c['index']}: {c['source'][:60]!r}"
                for c in self.state()["cells"]
                if c["count"] is None and c["source"].strip()
            ]
            raise AssertionError(
                f"{self.name} was still running after {timeout:.0f} s; "
                f"not finished: {', '.join(busy[:3]) or 'none (the kernel stayed busy)'}"
            ) from None
        outcome = self.page.evaluate("() => window.forgeRunAll")
        if outcome.get("error"):
            raise AssertionError(f"Run All failed in {self.name}: {outcome['error']}")

    def state(self) -> dict:
        """Return the kernel status, the cells on the page, and each code cell's record."""
        return self.page.evaluate(_JS_STATE, self.panel_id)

    def problems(self) -> list[str]:
        """List what went wrong: error outputs, tracebacks on stderr, cells that never ran.

        TensorFlow's start-up lines on stderr are not problems; a traceback is.
        """
        state = self.state()
        found = []
        for cell in state["cells"]:
            where = f"cell {cell['index']} (In [{cell['count']}])"
            for out in cell["outputs"]:
                if out.get("output_type") == "error":
                    found.append(f"{where}: {out.get('ename')}: {out.get('evalue')}")
        for text in self.page.evaluate(_JS_STDERR_TRACEBACKS, self.panel_id):
            if not any(line.split(": ", 1)[-1] in text for line in found):
                found.append(f"a traceback on stderr: {text[-800:]}")
        if not found:
            found += [
                f"cell {c['index']} never ran: {c['source'][:60]!r}"
                for c in state["cells"]
                if c["count"] is None and c["source"].strip()
            ]
        if state["shown"] != state["total"]:
            found.append(
                f"only {state['shown']} of {state['total']} cells are rendered: "
                "is notebook windowing still on?"
            )
        return found

    def widget_slider(self, label: str):
        """Return a locator for the handles of the ipywidgets sliders labelled ``label``."""
        return self.page.locator(
            f'[id="{self.panel_id}"] .widget-slider:has(.widget-label:text-is("{label}")) '
            "[role=slider]"
        )

    def image_fingerprint(self, img) -> tuple[str, int, int]:
        """Return an ``<img>``'s src, byte length and FNV-1a hash of its bytes."""
        return tuple(
            img.evaluate(
                """async (node) => {
                  const bytes = new Uint8Array(await (await fetch(node.src)).arrayBuffer());
                  let h = 0x811c9dc5;
                  for (const b of bytes) { h ^= b; h = Math.imul(h, 0x01000193) >>> 0; }
                  return [node.src, bytes.length, h];
                }"""
            )
        )

    def wait_idle(self, timeout: float = ACTION_TIMEOUT_S) -> None:
        """Wait until Run All (if any) finished and the kernel is idle."""
        self.page.wait_for_function(
            _JS_IDLE, arg=self.panel_id, polling=200, timeout=timeout * 1000
        )

    def screenshot(self, path: Path) -> Path:
        """Save the whole page as a PNG (for a failure message); return the path."""
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        """Shut this notebook's kernel down and close the tab (again: nothing happens)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.page.evaluate(
                """async (id) => {
                  const panel = [...window.jupyterapp.shell.widgets('main')]
                    .find(w => w.id === id);
                  if (panel) await panel.sessionContext.shutdown();
                }""",
                self.panel_id,
            )
        finally:
            self.page.context.close()
