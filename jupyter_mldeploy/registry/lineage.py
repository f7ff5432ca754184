"""Where a registered model came from: recorded automatically at registration time.

Every key is optional except ``createdTime``, ``user`` and ``pythonVersion``: a fact that cannot be found
(no ``git``, not in a repository, not in Jupyter, framework not importable) is left out rather than guessed.
Keys are camelCase because the dict is stored and served as JSON, like the v1 file formats.
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_mldeploy._version import __version__

#: Azure ML SDK v1 ``Model.Framework`` values mapped to the distribution whose version is recorded.
FRAMEWORK_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "scikitlearn": ("scikit-learn",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "tfkeras": ("tensorflow", "tensorflow-cpu"),
    "pytorch": ("torch",),
    "onnx": ("onnxruntime", "onnx"),
}

#: Seconds a ``git`` query may take before lineage gives up on it (a huge repository or a hung mount must
#: not stall a registration).
GIT_TIMEOUT_S = 5.0


def collect_lineage(
    model_path: Path, model_framework: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Gather the lineage of a model being registered from the current process.

    Args:
        model_path: The absolute path being registered (recorded as ``sourcePath``).
        model_framework: The v1 framework name (``"ScikitLearn"``, ``"PyTorch"`` ...); when the matching
            distribution is installed its version is recorded as ``frameworkVersion``.
        now: The registration time (UTC); defaults to the current time.

    Returns:
        A JSON-safe dict with ``createdTime`` (ISO 8601 UTC), ``user``, ``host``, ``pythonVersion``,
        ``mldeployVersion``, ``sourcePath`` and, where available, ``framework``/``frameworkVersion``,
        ``gitCommit``/``gitDirty``/``gitRoot`` (of the current folder) and ``notebook`` (the notebook path when
        run inside Jupyter).
    """
    created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    lineage: dict[str, Any] = {
        "createdTime": created.isoformat(),
        "user": _user(),
        "host": platform.node(),
        "pythonVersion": platform.python_version(),
        "mldeployVersion": __version__,
        "sourcePath": str(model_path),
    }
    if model_framework:
        lineage["framework"] = model_framework
        version = framework_version(model_framework)
        if version:
            lineage["frameworkVersion"] = version
    lineage.update(git_state(Path.cwd()))
    notebook = notebook_path()
    if notebook:
        lineage["notebook"] = notebook
    return lineage


def framework_version(model_framework: str) -> str | None:
    """Return the installed version of a v1 framework's distribution, or None when it is not installed.

    Args:
        model_framework: A v1 ``Model.Framework`` value, case-insensitive (``"ScikitLearn"``); other names
            are tried as a distribution name as given.
    """
    candidates = FRAMEWORK_DISTRIBUTIONS.get(model_framework.lower(), (model_framework,))
    for distribution in candidates:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError, ValueError):
            return importlib.metadata.version(distribution)
    return None


def git_state(folder: Path) -> dict[str, Any]:
    """Return the git commit of ``folder`` and whether its work tree has uncommitted changes.

    Args:
        folder: Any folder; its enclosing repository is queried with the ``git`` command line.

    Returns:
        ``{"gitCommit": sha, "gitDirty": bool, "gitRoot": path}``, or ``{}`` when ``git`` is missing, the
        folder is not in a repository, the repository has no commit yet, or git takes too long.
    """
    git = shutil.which("git")
    if git is None:
        return {}

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [git, "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if not commit:
        return {}
    state: dict[str, Any] = {"gitCommit": commit}
    status = run("status", "--porcelain", "--untracked-files=no")
    if status is not None:
        state["gitDirty"] = bool(status)
    root = run("rev-parse", "--show-toplevel")
    if root:
        state["gitRoot"] = root
    return state


def notebook_path() -> str | None:
    """Return the path of the notebook this kernel runs, when known.

    Sources, first found wins: ``$JPY_SESSION_NAME`` (set by Jupyter Server 2 for every kernel it
    starts), ``__session__`` in IPython's user namespace (set by ipykernel), ``__vsc_ipynb_file__`` (set by
    VS Code). IPython is looked up in ``sys.modules`` only, never imported: the core does not depend on it.
    """
    from_env = os.environ.get("JPY_SESSION_NAME")
    if from_env:
        return from_env
    ipython_module = sys.modules.get("IPython")
    get_ipython = getattr(ipython_module, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    user_ns = getattr(shell, "user_ns", None) or {}
    for key in ("__session__", "__vsc_ipynb_file__"):
        value = user_ns.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # No passwd entry and no LOGNAME/USER (some containers): record the uid rather than fail.
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
