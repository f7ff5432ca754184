"""Every environment variable jupyter_mldeploy's core reads, declared once with its type and default.

As MLflow's ``mlflow/environment_variables.py``: code asks ``MLDEPLOY_WORKSPACE.get()`` instead of reading
``os.environ`` itself, so the list below is the whole story. The scoring server reads its own
(azmlinfsrv-compatible) variables in :mod:`jupyter_mldeploy.server.config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class EnvironmentVariable(Generic[T]):
    """One environment variable: its name, how to parse it, and the default when unset or empty.

    Args:
        name: The variable's name.
        type: A callable turning the string value into ``T``.
        default: The value when the variable is unset or empty.
        doc: One line for the README's table.
    """

    name: str
    type: type
    default: T | None
    doc: str = ""

    def is_set(self) -> bool:
        """Return True when the variable is set to a non-empty string."""
        return bool(os.environ.get(self.name))

    def get(self) -> T | None:
        """Return the parsed value, or the default when the variable is unset or empty."""
        raw = os.environ.get(self.name)
        if not raw:
            return self.default
        return self.type(raw)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jupyter_mldeploy"


def _default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "jupyter_mldeploy"


MLDEPLOY_WORKSPACE = EnvironmentVariable(
    "MLDEPLOY_WORKSPACE", Path, None, "workspace folder used when none is given (else the nearest .mldeploy/)"
)
MLDEPLOY_CACHE_DIR = EnvironmentVariable(
    "MLDEPLOY_CACHE_DIR", Path, _default_cache_dir(), "per-user cache of built environments (envs/<spec-hash>/)"
)
MLDEPLOY_RECENT_WORKSPACES = EnvironmentVariable(
    "MLDEPLOY_RECENT_WORKSPACES", Path, _default_config_dir() / "recent_workspaces.json",
    "the workspaces this user opened, most recent first, as `mldeploy workspace list` shows them",
)
MLDEPLOY_DOCKER_BASE_IMAGE = EnvironmentVariable(
    "MLDEPLOY_DOCKER_BASE_IMAGE", str, None,
    "base image of Docker builds when the environment names none (default: python:X.Y-slim, else the local "
    "mldeploy/base-python:bookworm)",
)
MLDEPLOY_DOCKER_PING_TIMEOUT = EnvironmentVariable(
    "MLDEPLOY_DOCKER_PING_TIMEOUT", float, 5.0, "seconds to wait for a Docker engine to answer before giving up"
)
MLDEPLOY_RUN_ID = EnvironmentVariable(
    "MLDEPLOY_RUN_ID", str, None,
    "set by `mldeploy pipeline run` for the notebook's kernel: the run that Run.get_context() returns",
)
MLDEPLOY_RUN_WORKSPACE = EnvironmentVariable(
    "MLDEPLOY_RUN_WORKSPACE", Path, None, "set with MLDEPLOY_RUN_ID: the workspace holding that run"
)
