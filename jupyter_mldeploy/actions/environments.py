"""Choosing the environment a deployment runs in from a face's options (``--env``, ``--requirements``,
``--current``), and listing environments, the same way for every face."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_mldeploy.environment import Environment
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.names import parse_name_version
from jupyter_mldeploy.workspace import Workspace


def choose_environment(workspace: Workspace, service_name: str, env: str | None = None,
                       requirements: str | os.PathLike[str] | None = None,
                       current: bool = False) -> Environment | None:
    """The environment named by at most one of three options.

    Args:
        workspace: Where ``env`` is registered (curated names resolve without registration).
        service_name: The service deployed; a requirements environment is named ``<service>-env``.
        env: ``NAME[:VERSION]`` of a registered or curated environment.
        requirements: A pip requirements file (built with uv, cached by content).
        current: Serve with the caller's own interpreter.

    Returns:
        The environment, or None for the caller's interpreter (``current``, or no option given).

    Raises:
        InvalidArgument: When more than one option is given, or the requirements file does not exist.
        NotFound: For an unknown environment.
    """
    chosen = [option for option, given in (("--env", env), ("--requirements", requirements),
                                           ("--current", current)) if given]
    if len(chosen) > 1:
        raise InvalidArgument(f"{' and '.join(chosen)} exclude each other: choose one way to get the environment.")
    if env:
        name, version = parse_name_version(env, "environment")
        return Environment.get(workspace, name, version)
    if requirements:
        path = Path(requirements).expanduser()
        if not path.is_file():
            raise InvalidArgument(f"Requirements file {path} does not exist.")
        return Environment.from_pip_requirements(name=f"{service_name}-env", file_path=str(path))
    return None


def environment_dicts(workspace: Workspace) -> list[dict[str, Any]]:
    """Curated and registered environments (latest version of each) as ``Environment.serialize()``."""
    return [env.serialize() for env in Environment.list(workspace).values()]


__all__ = ["choose_environment", "environment_dicts"]
