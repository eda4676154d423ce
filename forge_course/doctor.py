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

__all__ = ["Check", "DoctorReport", "SUPPORTED_PYTHON", "doctor"]

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
    checks = []
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


def _configured_backend() -> str:
    """The backend Keras will pick: $KERAS_BACKEND, else keras.json, else tensorflow."""
    import json

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    try:
        return json.loads((home() / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _check_tensorflow() -> Check:
    configured = _configured_backend()
    if configured != "tensorflow":
        return Check(
            "TensorFlow",
            "fail",
            f"Keras is configured for the {configured!r} backend",
            "this course runs Keras on TensorFlow: unset KERAS_BACKEND (or set the "
            f"backend in {home() / 'keras.json'} to tensorflow), then restart the kernel",
        )
    try:
        import keras
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 - the report shows whatever broke
        return Check("TensorFlow", "fail", f"import failed: {exc}", "run `make install`")
    backend = keras.backend.backend()
    detail = f"TensorFlow {tf.__version__}, Keras {keras.__version__}, backend {backend}"
    if backend != "tensorflow":
        return Check(
            "TensorFlow",
            "fail",
            detail,
            "this course runs Keras on TensorFlow: unset KERAS_BACKEND "
            "or set it to tensorflow, then restart the kernel",
        )
    return Check("TensorFlow", "ok", detail)


def _check_gpu() -> Check:
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    except Exception as exc:  # noqa: BLE001
        return Check("GPU", "warn", f"could not ask TensorFlow for GPUs: {exc}")
    if gpus:
        return Check("GPU", "ok", f"{len(gpus)} visible: " + ", ".join(g.name for g in gpus))
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
