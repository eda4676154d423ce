"""The doctor: check this machine for the course, with a fix for every problem.

``doctor()`` runs each check in turn and returns a :class:`DoctorReport`; a check that
breaks becomes a failed line of the report, so the doctor itself never raises.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys

from forge_course.config import home

__all__ = ["Check", "DoctorReport", "SUPPORTED_PYTHON", "backend_problem", "doctor"]

SUPPORTED_PYTHON = ((3, 10), (3, 13))
DISTRIBUTION = "forge-course"
KERNEL_PROBE_S = 60  # seconds for the kernel's Python to import the course


@dataclasses.dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str  # "ok", "warn" (worth knowing, not broken) or "fail"
    detail: str
    fix: str = ""


@dataclasses.dataclass
class DoctorReport:
    """Everything the doctor found; ``ok`` is False when any check failed."""

    checks: list[Check]

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [dataclasses.asdict(c) for c in self.checks]}

    def __str__(self) -> str:
        lines = ["Forge Course doctor"]
        for c in self.checks:
            lines.append(f"  {c.status.upper():<5} {c.name:<15} {c.detail}")
            if c.fix:
                lines.append(f"  {'':<5} {'':<15} -> {c.fix}")
        if self.ok:
            lines.append("Everything the course needs is in place.")
        else:
            names = ", ".join(c.name for c in self.problems)
            lines.append(f"{len(self.problems)} problem(s) to fix: {names}.")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # readable inside a notebook
        return "```\n" + str(self) + "\n```"


def doctor(*, kernel_name: str = "python3") -> DoctorReport:
    """Check this machine for the course and return a report (it never raises)."""
    steps = [
        ("Python", _check_python),
        ("packages", _check_packages),
        ("TensorFlow", _check_tensorflow),
        ("GPU", _check_gpu),
        ("dataset cache", _check_cache),
        ("Jupyter kernel", lambda: _check_kernel(kernel_name)),
    ]
    from forge_course.doctor_tools import TOOL_CHECKS

    steps += TOOL_CHECKS
    checks = []
    _probed.clear()  # probe TensorFlow afresh on each run
    for name, step in steps:
        try:
            found = step()
        except Exception as exc:  # noqa: BLE001 - a broken check is a finding, not a crash
            found = Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}")
        checks += found if isinstance(found, list) else [found]
    return DoctorReport(checks)


def _check_python() -> Check:
    low, high = SUPPORTED_PYTHON
    here = sys.version_info[:2]
    span = f"{low[0]}.{low[1]}-{high[0]}.{high[1]}"
    if low <= here <= high:
        return Check("Python", "ok", f"{platform.python_version()} (supported: {span})")
    return Check(
        "Python",
        "fail",
        f"{platform.python_version()} is outside the supported {span}",
        f"install Python {span} and run make with PYTHON=/path/to/that/python3",
    )


def _requirements() -> list:
    from packaging.requirements import Requirement

    try:
        declared = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    reqs = [Requirement(r) for r in declared]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _check_packages() -> list[Check]:
    reqs = _requirements()
    if not reqs:
        return [
            Check(
                "packages",
                "fail",
                f"the {DISTRIBUTION} package is not installed, so its requirements are unknown",
                "run `make install` (or `pip install -e .`) from the course folder",
            )
        ]
    bad = []
    for req in reqs:
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            bad.append(f"{req.name} missing (need {req.specifier})")
            continue
        if not req.specifier.contains(version, prereleases=True):
            bad.append(f"{req.name} {version} (need {req.specifier})")
    if bad:
        return [
            Check(
                "packages",
                "fail",
                "; ".join(bad),
                "run `make install` to install the required versions",
            )
        ]
    return [Check("packages", "ok", f"{len(reqs)} requirements met")]


KERAS_JSON_CHOICES = {
    "floatx": ("float16", "float32", "float64"),
    "image_data_format": ("channels_last", "channels_first"),
}
STARTUP_NOTE = (
    "Lines TensorFlow prints as it starts (absl, oneDNN, cuInit, CUDA drivers) are "
    "harmless notices, not errors."
)


def _keras_json_problem() -> str:
    """What is wrong with keras.json ("" when it is absent or fine), as Keras would see it."""
    import json

    path = home() / "keras.json"
    if not path.is_file():
        return ""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read ({exc})"
    except ValueError as exc:
        return f"{path} is not valid JSON ({exc})"
    if not isinstance(config, dict):
        return f"{path} holds a {type(config).__name__}, not a JSON object of settings"
    backend = config.get("backend", "tensorflow")
    if not isinstance(backend, str):
        return f'{path} sets "backend" to {backend!r}, not a name such as "tensorflow"'
    for key, choices in KERAS_JSON_CHOICES.items():
        if key in config and config[key] not in choices:
            return f'{path} sets "{key}" to {config[key]!r}, not one of {", ".join(choices)}'
    if "epsilon" in config and not isinstance(config["epsilon"], float):
        return f'{path} sets "epsilon" to {config["epsilon"]!r}, not a number such as 1e-07'
    return ""


def _keras_json_fix() -> str:
    return f"fix {home() / 'keras.json'} or delete it (Keras writes a fresh one when it loads)"


def _backend_setting() -> tuple[str, str]:
    """The backend Keras will pick and the setting that picks it."""
    import json

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}"
    path = home() / "keras.json"
    try:
        backend = json.loads(path.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow", "the default"
    return str(backend), f'"backend" in {path}'


def _configured_backend() -> str:
    """The backend Keras will pick: $KERAS_BACKEND, else keras.json, else tensorflow."""
    return _backend_setting()[0]


def _backend_fix() -> str:
    return (
        "this course runs Keras on TensorFlow: unset KERAS_BACKEND (or set the "
        f"backend in {home() / 'keras.json'} to tensorflow), then restart the kernel"
    )


def backend_problem() -> str:
    """Say why Keras cannot run this course's TensorFlow code here ("" when it can).

    Reads the settings only (``KERAS_BACKEND``, ``keras.json``) unless Keras is already
    imported, in which case it asks Keras; it never imports Keras or TensorFlow.
    """
    if "keras" in sys.modules:
        backend = sys.modules["keras"].backend.backend()
        if backend != "tensorflow":
            return f"Keras is running on the {backend!r} backend; {_backend_fix()}"
        return ""
    problem = _keras_json_problem()
    if problem:
        return f"{problem}; {_keras_json_fix()}"
    backend, setting = _backend_setting()
    if backend != "tensorflow":
        return f"Keras is configured for the {backend!r} backend ({setting}); {_backend_fix()}"
    return ""


_PROBE = """
import json
import keras
import tensorflow as tf
gpus = [g.name for g in tf.config.list_physical_devices("GPU")]
print(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__,
                  "backend": keras.backend.backend(), "gpus": gpus}))
"""
_probed: dict = {}  # one out-of-process probe per doctor() run


def _tensorflow_facts() -> dict:
    """TensorFlow's and Keras's versions, the backend and the GPUs, without writing.

    When this process has TensorFlow and Keras loaded already, ask them. Otherwise ask a
    child Python: importing Keras creates ``$KERAS_HOME`` and a ``keras.json`` when they
    are missing, and TensorFlow prints start-up lines on stderr, so the child gets a
    throwaway Keras home in that case and its stderr is kept (shown only if it fails).
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        import keras
        import tensorflow as tf

        gpus = [g.name for g in tf.config.list_physical_devices("GPU")]
        return {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "gpus": gpus,
            "note": STARTUP_NOTE,
        }
    if not _probed:
        _probed.update(_probe_tensorflow())
    return _probed


def _probe_tensorflow() -> dict:
    import json
    import tempfile

    real = home()
    with tempfile.TemporaryDirectory(prefix="forge-doctor-") as scratch:
        keras_home = real
        if not (real / "keras.json").is_file():  # Keras would write it, and maybe the folder
            keras_home = os.path.join(scratch, "keras")
        env = os.environ | {"KERAS_HOME": str(keras_home)}
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300
        )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise ImportError(lines[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_tensorflow() -> Check:
    problem = _keras_json_problem()
    if problem:
        return Check("TensorFlow", "fail", problem, _keras_json_fix())
    configured = _configured_backend()
    if configured != "tensorflow":
        return Check(
            "TensorFlow",
            "fail",
            f"Keras is configured for the {configured!r} backend",
            _backend_fix(),
        )
    try:
        facts = _tensorflow_facts()
    except Exception as exc:  # noqa: BLE001 - the report shows whatever broke
        return Check("TensorFlow", "fail", f"import failed: {exc}", "run `make install`")
    backend = facts["backend"]
    detail = f"TensorFlow {facts['tensorflow']}, Keras {facts['keras']}, backend {backend}"
    if backend != "tensorflow":
        return Check(
            "TensorFlow",
            "fail",
            detail,
            "this course runs Keras on TensorFlow: unset KERAS_BACKEND "
            "or set it to tensorflow, then restart the kernel",
        )
    return Check("TensorFlow", "ok", detail, facts.get("note", ""))


def _check_gpu() -> Check:
    try:
        gpus = _tensorflow_facts()["gpus"]
    except Exception as exc:  # noqa: BLE001
        return Check("GPU", "warn", f"could not ask TensorFlow for GPUs: {exc}")
    if gpus:
        return Check("GPU", "ok", f"{len(gpus)} visible: " + ", ".join(gpus))
    if shutil.which("nvidia-smi"):
        hint = (
            "an NVIDIA driver is present but TensorFlow sees no GPU: install the CUDA build "
            "with `pip install 'tensorflow[and-cuda]>=2.21,<2.22'` inside .venv"
        )
    elif sys.platform == "darwin":
        hint = "TensorFlow has no GPU support on macOS; the CPU is enough for every lesson"
    else:
        hint = (
            "for a GPU later: Linux or WSL2 with an NVIDIA driver, then "
            "`pip install 'tensorflow[and-cuda]>=2.21,<2.22'`"
        )
    return Check("GPU", "ok", "none visible; CPU only is fine, each lesson takes ~1 min", hint)


def _check_cache() -> Check:
    from forge_course import data

    root = data.cache_dir()
    status = data.cache_status()
    if not data.cache_writable(root):
        return Check(
            "dataset cache",
            "fail",
            f"{root} cannot be written",
            "set KERAS_HOME to a writable folder, or fix the folder's permissions",
        )
    for name in (n for n, present in status.items() if present):
        for path in data._cache_files(name):
            problem = _cache_file_problem(name, path)
            if problem:
                return Check(
                    "dataset cache",
                    "fail",
                    f"the cached file {path} is corrupt: {problem}",
                    f"delete {path} and run `forge-course fetch-data {name}` while online",
                )
    cached = [name for name, ok in status.items() if ok]
    missing = [name for name, ok in status.items() if not ok]
    detail = f"{root}: " + (("cached " + ", ".join(cached)) if cached else "nothing cached")
    if missing:
        return Check(
            "dataset cache",
            "ok",
            detail,
            f"{', '.join(missing)} not cached: offline lessons use the bundled digits "
            "instead; run `forge-course fetch-data` while online for the real data",
        )
    return Check("dataset cache", "ok", detail)


def _cache_file_problem(name: str, path) -> str:
    """Why ``load`` would reject this cache file ("" when it looks whole), read cheaply.

    mnist.npz is checked against the SHA-256 that Keras publishes; each gzipped IDX file
    of Fashion-MNIST by its gzip header, its IDX header and the length the gzip trailer
    records, which a truncated download gets wrong.
    """
    import gzip
    import zlib

    from forge_course import data
    from forge_course.download import file_sha256

    if name == "mnist":
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                return "not an .npz (zip) file"
        digest = file_sha256(path)
        if digest != data.MNIST_SHA256:
            return f"its SHA-256 is {digest[:12]}..., not the published {data.MNIST_SHA256[:12]}..."
        return ""
    images = "images" in path.name
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return "not a gzip file"
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:
            return "too short for a gzip file"
        f.seek(-4, os.SEEK_END)
        recorded = int.from_bytes(f.read(4), "little")  # uncompressed size mod 2**32
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(16 if images else 8)
    except (OSError, EOFError, zlib.error) as exc:
        return f"its gzip data cannot be read ({exc})"
    magic = 2051 if images else 2049
    if len(head) < (16 if images else 8) or int.from_bytes(head[:4], "big") != magic:
        return f"not an IDX {'image' if images else 'label'} file"
    count = int.from_bytes(head[4:8], "big")
    size = 16 + count * int.from_bytes(head[8:12], "big") * int.from_bytes(head[12:16], "big")
    if not images:
        size = 8 + count
    if size % 2**32 != recorded:
        return (
            f"its IDX header promises {size:,} bytes but its gzip trailer records "
            f"{recorded:,}: the download was cut short or altered"
        )
    return ""


def _check_kernel(name: str) -> Check:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return Check(
            "Jupyter kernel",
            "fail",
            f"no kernel named {name!r} is installed",
            f"run `{sys.executable} -m ipykernel install --user --name {name}`",
        )
    exe = spec.argv[0]
    if exe in ("python", "python3", "{python}"):
        exe = sys.executable  # ipykernel's own spec means "the Python that runs Jupyter"
    probe = [exe, "-c", "import forge_course, ipykernel"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=KERNEL_PROBE_S).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        return Check(
            "Jupyter kernel",
            "fail",
            f"kernel {name!r} runs {exe}, which cannot import forge_course",
            "start JupyterLab with `make lab`, or run `make install` to register the kernel",
        )
    return Check("Jupyter kernel", "ok", f"{name!r} runs {exe}")
