"""The doctor's checks of optional tools: things a lesson uses when present and works
around when absent (each check is ``ok`` or ``warn``, never ``fail``).

``TOOL_CHECKS`` lists them in report order; :func:`forge_course.doctor.doctor` runs them
after its core checks. A new optional tool adds one function here and one line there.
"""

from __future__ import annotations

import importlib.util
import shutil

from forge_course.doctor import Check

__all__ = ["TOOL_CHECKS", "graphviz_available"]


def graphviz_available() -> bool:
    """True when ``keras.utils.plot_model`` can draw: pydot imports and Graphviz's ``dot`` runs."""
    return importlib.util.find_spec("pydot") is not None and shutil.which("dot") is not None


def _check_graphviz() -> Check:
    if graphviz_available():
        return Check("model graphs", "ok", "pydot and Graphviz found: plot_model draws images")
    missing = []
    if importlib.util.find_spec("pydot") is None:
        missing.append("pydot (run `make install`)")
    if shutil.which("dot") is None:
        missing.append("Graphviz's `dot` (apt-get install graphviz, brew install graphviz)")
    return Check(
        "model graphs",
        "warn",
        "plot_model cannot draw images here; lessons print the graph as text instead",
        "install " + " and ".join(missing),
    )


def _check_tensorboard() -> Check:
    if importlib.util.find_spec("tensorboard") is None:
        return Check(
            "TensorBoard",
            "warn",
            "not installed: lesson 06 writes logs you cannot open",
            "run `make install`",
        )
    return Check(
        "TensorBoard",
        "ok",
        "installed: open logs with `%load_ext tensorboard` then `%tensorboard --logdir runs/`",
    )


def _check_sandbox() -> Check:
    from forge_course.grading.sandbox import unavailable

    why = unavailable()
    if why is None:
        return Check(
            "grader sandbox", "ok",
            "grade runs each kernel in namespaces of its own (bubblewrap + unshare)",
        )  # fmt: skip
    return Check(
        "grader sandbox", "warn",
        f"grade cannot isolate students here: {why}",
        "install bubblewrap and allow unprivileged user namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1 or, on Ubuntu, "
        "kernel.apparmor_restrict_unprivileged_userns=0), or grade with --no-sandbox "
        "for trusted notebooks only",
    )  # fmt: skip


TOOL_CHECKS = [
    ("model graphs", _check_graphviz),
    ("TensorBoard", _check_tensorboard),
    ("grader sandbox", _check_sandbox),
]
