"""The Azure ML SDK v1 file formats of an environment: ``azureml_environment.json`` and its siblings.

``Environment.save_to_directory`` in v1 writes a folder holding

- ``azureml_environment.json``: the definition, camelCase keys, 4-space indent, with
  ``python.condaDependencies`` and ``docker.baseDockerfile`` taken out into the two files below;
- ``conda_dependencies.yml``: the conda specification (when there is one);
- ``BaseDockerfile``: the base Dockerfile text (when set).

This module converts between :class:`~jupyter_mldeploy.environment.Environment` and those shapes. Keys it
does not model (``assetId``, ``buildContext``, anything newer) are kept and written back unchanged, so a v1
file survives a load/save round trip. jupyter_mldeploy adds one optional file, ``pip_freeze.txt``, holding
the ``pip freeze`` record of :meth:`Environment.from_current`; v1 ignores it.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.errors import Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from jupyter_mldeploy.environment.environment import Environment

DEFINITION_FILE_NAME = "azureml_environment.json"
CONDA_DEPENDENCIES_FILE_NAME = "conda_dependencies.yml"
BASE_DOCKERFILE_FILE_NAME = "BaseDockerfile"
PIP_FREEZE_FILE_NAME = "pip_freeze.txt"

#: Extension key (not in v1) carrying the pip freeze record inside the inline JSON form.
PIP_FREEZE_KEY = "pipFreeze"

_KNOWN_TOP = {
    "name", "version", "environmentVariables", "python", "docker", "spark", "databricks", "r",
    "inferencingStackVersion", PIP_FREEZE_KEY,
}
_KNOWN_PYTHON = {"userManagedDependencies", "interpreterPath", "condaDependenciesFile", "baseCondaEnvironment",
                 "condaDependencies"}
_KNOWN_DOCKER = {"enabled", "baseImage", "baseDockerfile", "sharedVolumes", "shmSize", "arguments",
                 "baseImageRegistry", "platform"}


def to_v1_dict(env: Environment) -> dict[str, Any]:
    """Return the inline v1 form of ``env`` (as v1's ``Environment._serialize_to_dict``).

    ``python.condaDependencies`` holds the conda specification inline; ``docker.baseDockerfile`` the
    Dockerfile text. Key order follows v1's files. A non-empty ``pip_freeze`` adds ``"pipFreeze"`` (a
    jupyter_mldeploy extension, never written into ``azureml_environment.json``).

    Args:
        env: The environment.

    Returns:
        A JSON-safe dict.
    """
    python = env.python
    docker = env.docker
    result: dict[str, Any] = {
        "name": env.name,
        "version": env.version,
        "environmentVariables": dict(env.environment_variables),
        "python": {
            "userManagedDependencies": bool(python.user_managed_dependencies),
            "interpreterPath": python.interpreter_path,
            "condaDependenciesFile": python.conda_dependencies_file,
            "baseCondaEnvironment": python.base_conda_environment,
            "condaDependencies": python.conda_dependencies.as_dict() if python.conda_dependencies else None,
            **copy.deepcopy(python.extra),
        },
        "docker": {
            "enabled": bool(docker.enabled),
            "baseImage": docker.base_image,
            "baseDockerfile": docker.base_dockerfile,
            "sharedVolumes": docker.shared_volumes,
            "shmSize": docker.shm_size,
            "arguments": list(docker.arguments),
            "baseImageRegistry": copy.deepcopy(docker.base_image_registry),
            "platform": copy.deepcopy(docker.platform),
            **copy.deepcopy(docker.extra),
        },
        "spark": copy.deepcopy(env.spark),
        "databricks": copy.deepcopy(env.databricks),
        "r": copy.deepcopy(env.r),
        "inferencingStackVersion": env.inferencing_stack_version,
        **copy.deepcopy(env.extra),
    }
    if env.pip_freeze:
        result[PIP_FREEZE_KEY] = list(env.pip_freeze)
    return result


def from_v1_dict(data: dict[str, Any]) -> Environment:
    """Build an :class:`Environment` from the inline v1 form (or the content of ``azureml_environment.json``).

    Missing sections keep v1's defaults; unknown keys are kept for writing back.

    Args:
        data: The parsed JSON object.

    Returns:
        The environment.

    Raises:
        InvalidArgument: When ``data`` is not an object, has no ``name``, or a section has the wrong type.
    """
    from jupyter_mldeploy.environment.conda_dependencies import CondaDependencies
    from jupyter_mldeploy.environment.environment import Environment

    if not isinstance(data, dict):
        raise InvalidArgument("An environment definition must be a JSON object.")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("The environment definition has no \"name\": add one, e.g. \"name\": \"my-env\".")
    env = Environment(name)
    version = data.get("version")
    env.version = None if version is None else str(version)
    variables = data.get("environmentVariables")
    if variables is not None:
        if not isinstance(variables, dict):
            raise InvalidArgument("\"environmentVariables\" must be an object of NAME: value strings.")
        env.environment_variables = {str(k): "" if v is None else str(v) for k, v in variables.items()}
    python = data.get("python")
    if python is not None:
        if not isinstance(python, dict):
            raise InvalidArgument("\"python\" must be an object.")
        env.python.user_managed_dependencies = bool(python.get("userManagedDependencies", False))
        env.python.interpreter_path = python.get("interpreterPath", "python")
        env.python.conda_dependencies_file = python.get("condaDependenciesFile")
        env.python.base_conda_environment = python.get("baseCondaEnvironment")
        inline = python.get("condaDependencies")
        if inline is not None:
            env.python.conda_dependencies = CondaDependencies(_underlying_structure=inline)
        env.python.extra = {k: v for k, v in python.items() if k not in _KNOWN_PYTHON}
    docker = data.get("docker")
    if docker is not None:
        if not isinstance(docker, dict):
            raise InvalidArgument("\"docker\" must be an object.")
        section = env.docker
        section.enabled = bool(docker.get("enabled", False))
        section.base_image = docker.get("baseImage", section.base_image)
        section.base_dockerfile = docker.get("baseDockerfile")
        section.shared_volumes = docker.get("sharedVolumes", section.shared_volumes)
        section.shm_size = docker.get("shmSize", section.shm_size)
        section.arguments = list(docker.get("arguments") or [])
        section.base_image_registry = docker.get("baseImageRegistry") or section.base_image_registry
        section.platform = docker.get("platform") or section.platform
        section.extra = {k: v for k, v in docker.items() if k not in _KNOWN_DOCKER}
    for key, attr in (("spark", "spark"), ("databricks", "databricks")):
        if key in data and data[key] is not None:
            setattr(env, attr, copy.deepcopy(data[key]))
    env.r = copy.deepcopy(data.get("r"))
    env.inferencing_stack_version = data.get("inferencingStackVersion")
    freeze = data.get(PIP_FREEZE_KEY)
    env.pip_freeze = [str(x) for x in freeze] if isinstance(freeze, list) else []
    env.extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in _KNOWN_TOP}
    return env


def write_directory(env: Environment, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``env`` as v1's ``save_to_directory`` does.

    Args:
        env: The environment.
        path: Destination folder (created).
        overwrite: When False, an existing folder is an error (v1: ``os.makedirs(path, exist_ok=overwrite)``).

    Returns:
        The folder.

    Raises:
        Conflict: When the folder exists and ``overwrite`` is False.
    """
    folder = Path(path)
    if folder.exists() and not overwrite:
        raise Conflict(f"{folder} already exists: pass overwrite=True to replace its environment files.")
    folder.mkdir(parents=True, exist_ok=True)
    definition = to_v1_dict(env)
    definition.pop(PIP_FREEZE_KEY, None)
    # As v1: what goes to a separate file is taken out of the JSON; an empty value stays as null.
    if definition["python"].get("condaDependencies") is not None:
        del definition["python"]["condaDependencies"]
        env.python.conda_dependencies.save_to_file(folder, CONDA_DEPENDENCIES_FILE_NAME)
    else:
        definition["python"].pop("condaDependencies", None)
    if definition["docker"].get("baseDockerfile"):
        dockerfile = definition["docker"].pop("baseDockerfile")
        (folder / BASE_DOCKERFILE_FILE_NAME).write_text(dockerfile, encoding="utf-8")
    if env.pip_freeze:
        (folder / PIP_FREEZE_FILE_NAME).write_text("\n".join(env.pip_freeze) + "\n", encoding="utf-8")
    (folder / DEFINITION_FILE_NAME).write_text(json.dumps(definition, indent=4) + "\n", encoding="utf-8")
    return folder


def read_directory(path: str | os.PathLike[str]) -> Environment:
    """Read a folder written by ``save_to_directory`` (ours or Azure ML SDK v1's).

    Args:
        path: The folder holding ``azureml_environment.json``.

    Returns:
        The environment.

    Raises:
        NotFound: When the folder has no ``azureml_environment.json``.
        InvalidArgument: When a file cannot be parsed.
    """
    from jupyter_mldeploy.environment.conda_dependencies import CondaDependencies

    folder = Path(path)
    definition_path = folder / DEFINITION_FILE_NAME
    if not definition_path.is_file():
        raise NotFound(
            f"{definition_path} does not exist: point at a folder written by save_to_directory "
            "or `mldeploy environment scaffold`."
        )
    try:
        data = json.loads(definition_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{definition_path} is not valid JSON: {exc}") from exc
    env = from_v1_dict(data)
    conda_path = folder / CONDA_DEPENDENCIES_FILE_NAME
    if conda_path.is_file():
        env.python.conda_dependencies = CondaDependencies(conda_path)
    dockerfile_path = folder / BASE_DOCKERFILE_FILE_NAME
    if dockerfile_path.is_file():
        env.docker.base_dockerfile = dockerfile_path.read_text(encoding="utf-8")
    freeze_path = folder / PIP_FREEZE_FILE_NAME
    if freeze_path.is_file():
        env.pip_freeze = [line for line in freeze_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return env
