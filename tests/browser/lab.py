"""A private JupyterLab 4 on loopback, and where to find Chromium.

``JupyterLabServer`` starts ``jupyter lab`` on a free 127.0.0.1 port with a random token
in a folder of its own: notebooks are copies, and Jupyter's config, data, runtime,
settings and workspaces directories all point inside that folder, so neither the repo
nor the user's own Jupyter setup is read or written. Its ``overrides.json`` turns
notebook windowing off (JupyterLab 4 otherwise attaches only the cells in view, and
the page could not be checked whole) and keeps Lab from reaching the network.

The server exposes ``window.jupyterapp`` (``--LabApp.expose_app_in_browser``), which
``tests.browser.page.NotebookPage`` drives.
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
