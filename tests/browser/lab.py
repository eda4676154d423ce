"""A private JupyterLab 4 on loopback, and a driver for one notebook tab in Chromium.

``JupyterLabServer`` starts ``jupyter lab`` on a free 127.0.0.1 port with a random token
in a folder of its own: notebooks are copies, and Jupyter's config, data, runtime,
settings and workspaces directories all point inside that folder, so neither the repo
nor the user's own Jupyter setup is read or written. Its ``overrides.json`` turns
notebook windowing off (JupyterLab 4 otherwise attaches only the cells in view, and
the page could not be checked whole) and keeps Lab from reaching the network.

``NotebookPage`` drives one notebook through ``window.jupyterapp`` (exposed with
``--LabApp.expose_app_in_browser``) and reads results both from the notebook model and
from the rendered page.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ACTION_TIMEOUT_S = 60  # the longest a click, key press or redraw may take

# Settings for this Lab only (app-level overrides; the private user settings stay empty).
OVERRIDES = {
    # 'none' attaches every cell to the page, so outputs far down are rendered too.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # Never fetch news or update checks, never open toasts over the page.
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_chromium() -> str | None:
    """Return the system Chromium (``FORGE_COURSE_CHROMIUM`` overrides the search)."""
    explicit = os.environ.get("FORGE_COURSE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    mac = Path("/Applications/Chromium.app/Contents/MacOS/Chromium")
    return str(mac) if mac.exists() else None


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM if pytest dies without teardown."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class JupyterLabServer:
    """Run ``jupyter lab`` on copies of some notebooks, in a private folder."""

    def __init__(self, workdir: Path, notebooks: list[Path], *, env: dict[str, str] | None = None):
        self.workdir = workdir
        self.root = workdir / "notebooks"
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "jupyterlab.log"
        self._notebooks = notebooks
        self._extra_env = env or {}
        self._proc: subprocess.Popen | None = None

    # -- the recipe ---------------------------------------------------------------------

    def start(self, timeout: float = 120) -> JupyterLabServer:
        """Copy the notebooks, write the settings, start Lab and wait until it answers."""
        self._copy_notebooks()
        settings = self._write_settings()
        self._launch(settings)
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        """Shut Lab and its kernels down: politely through the API, then by signal."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            try:
                self.api("POST", "/api/shutdown", timeout=10)
            except OSError:
                pass
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # the kernels live in Lab's process group: end whatever is left of it
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self._proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(1)
        self._proc.wait(timeout=10)
        self._log.close()
        self._proc = None

    def add_notebook(self, name: str, notebook: dict) -> str:
        """Write ``notebook`` (nbformat JSON) next to the lessons; return its name."""
        (self.root / name).write_text(json.dumps(notebook))
        return name

    def notebook_url(self, name: str) -> str:
        """Return the Lab URL that opens ``name``, token included."""
        # ?reset: start from an empty workspace, not with the last test's notebooks open
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def api(self, method: str, path: str, *, timeout: float = 10):
        """Call Lab's REST API with the token; return the decoded JSON (or None)."""
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of Lab's own log, for a failure message."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- the steps ----------------------------------------------------------------------

    def _copy_notebooks(self) -> None:
        self.root.mkdir(parents=True)
        for path in self._notebooks:
            shutil.copy2(path, self.root / path.name)

    def _write_settings(self) -> dict[str, Path]:
        dirs = {
            name: self.workdir / name
            for name in (
                "config",
                "data",
                "runtime",
                "app-settings",
                "user-settings",
                "workspaces",
            )  # fmt: skip
        }
        for path in dirs.values():
            path.mkdir()
        (dirs["app-settings"] / "overrides.json").write_text(json.dumps(OVERRIDES, indent=2))
        return dirs

    def _environment(self, dirs: dict[str, Path]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER"))}
        env.pop("MPLBACKEND", None)  # kernels use the inline backend, as for a learner
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTER_PLATFORM_DIRS="1",
            FORGE_COURSE_OFFLINE="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(self._extra_env)
        return env

    def _launch(self, dirs: dict[str, Path]) -> None:
        command = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            f"--LabApp.app_settings_dir={dirs['app-settings']}",
            f"--LabApp.user_settings_dir={dirs['user-settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly",
            "--LabApp.news_url=",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            command,
            cwd=self.root,
            env=self._environment(dirs),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: Lab and the kernels it starts
            preexec_fn=_die_with_parent,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with code {self._proc.returncode} before it "
                    f"answered; its log ends:\n{self.log_tail()}"
                )
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(
            f"jupyter lab did not answer on {self.url} within {timeout:.0f} s; its log ends:\n"
            f"{self.log_tail()}"
        )


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
