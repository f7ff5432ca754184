"""``InferenceConfig``: what to serve (entry script, source directory, environment), as in Azure ML SDK v1.

The same object deploys to every runtime; only the deployment configuration changes. ``from_file`` and
``to_file`` read and write CLI v1's ``inferenceconfig.json``, so a v1 project keeps working::

    {
      "entryScript": "score.py",
      "sourceDirectory": "./src",
      "environment": {"name": "sklearn-env", "version": "1"},
      "description": "diabetes ridge"
    }

``environment`` is either the v1 ``azureml_environment.json`` content inline or ``{"name", "version"}`` of
a registered environment. The legacy keys ``runtime`` / ``condaFile`` (an environment from a conda file),
``extraDockerfileSteps`` (also spelled ``extraDockerFileSteps``), ``baseImage`` and ``enableGpu`` are read
and written back. Relative paths are resolved against the JSON file's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.entry.static_check import EntryScriptCheck, check_entry_script
from jupyter_mldeploy.errors import InvalidArgument, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.environment import Environment
    from jupyter_mldeploy.workspace import Workspace

#: Keys ``from_file`` understands; anything else is reported so a typo does not pass silently.
_KNOWN_KEYS = {
    "entryScript", "sourceDirectory", "environment", "runtime", "condaFile", "extraDockerfileSteps",
    "extraDockerFileSteps", "baseImage", "baseImageRegistry", "enableGpu", "cudaVersion", "description",
    "schemaFile", "dependencies",
}
_RUNTIMES = {"python", "spark-py"}


def read_config_file(path: str | os.PathLike[str], what: str) -> tuple[Path, Any]:
    """Read a v1 JSON configuration file (``inferenceconfig.json``, ``deploymentconfig.json``).

    Args:
        path: The file (``~`` expanded, resolved to an absolute path).
        what: How messages name the file, e.g. ``"Inference config"``.

    Returns:
        tuple[Path, Any]: The resolved path and the decoded JSON content (not yet checked).

    Raises:
        NotFound: When the file does not exist.
        InvalidArgument: When it is not valid UTF-8 JSON.
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise NotFound(f"{what} {file} does not exist.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} {file} is not valid JSON ({exc}); fix the file.") from exc
    return file, data


@dataclass(frozen=True)
class EnvironmentReference:
    """A registered environment named by ``{"name", "version"}`` in ``inferenceconfig.json``.

    Resolved against the deploying workspace (``Environment.get``) when no workspace was at hand while the
    file was read.

    Attributes:
        name: The environment's name.
        version: Its version, or None for the latest.
    """

    name: str
    version: str | None = None

    def resolve(self, workspace: Workspace) -> Environment:
        """Return the registered environment.

        Args:
            workspace: The workspace holding it.

        Raises:
            NotFound: When no such environment is registered.
        """
        from jupyter_mldeploy.environment import Environment

        return Environment.get(workspace, self.name, self.version)

    def serialize(self) -> dict[str, Any]:
        """Return ``{"name", "version"}`` as written in ``inferenceconfig.json``."""
        return {"name": self.name, "version": self.version}


class InferenceConfig:
    """What a service runs: an entry script, the folder it comes from, and the environment it runs in.

    Relative paths are resolved when the object is created (against the current folder, or the JSON file's
    folder for :meth:`from_file`), so a later ``os.chdir`` in the notebook does not change what deploys.

    Args:
        entry_script: The ``score.py`` defining ``init()`` and ``run()``; relative to ``source_directory``
            when that is given (a path relative to the current folder that lies inside
            ``source_directory`` is accepted too).
        source_directory: A folder copied whole next to the entry script in the service's app folder (and
            put on ``sys.path``); None copies only the entry script.
        environment: An :class:`~jupyter_mldeploy.environment.Environment`, a reference to a registered one,
            or None to run in the interpreter of the calling process (nothing to build).
        description: Free text kept with the service.
        runtime: v1 legacy, ``"python"``; kept for round trips.
        conda_file: v1 legacy: a conda YAML file; when given without ``environment`` it becomes the
            environment (``Environment.from_conda_specification``).
        extra_docker_file_steps: v1 legacy: a file of Dockerfile steps (used by the Docker runtime).
        base_image: v1 legacy: the base Docker image (used by the Docker runtime).
        enable_gpu: v1 legacy: request a GPU base image (used by the Docker runtime).

    Raises:
        InvalidArgument: When ``entry_script`` is empty or ``runtime`` is unknown.
    """

    def __init__(
        self,
        entry_script: str | os.PathLike[str],
        source_directory: str | os.PathLike[str] | None = None,
        environment: Environment | EnvironmentReference | None = None,
        description: str | None = None,
        *,
        runtime: str | None = None,
        conda_file: str | os.PathLike[str] | None = None,
        extra_docker_file_steps: str | os.PathLike[str] | None = None,
        base_image: str | None = None,
        enable_gpu: bool | None = None,
        _base_dir: Path | None = None,
    ) -> None:
        if not entry_script or not str(entry_script).strip():
            raise InvalidArgument("entry_script is required: pass the path of your score.py.")
        if runtime is not None and runtime not in _RUNTIMES:
            raise InvalidArgument(f"Unknown runtime {runtime!r}: v1 accepts 'python' (or leave it out).")
        base = (_base_dir or Path.cwd()).resolve()
        self.source_directory: Path | None = (
            (base / Path(source_directory).expanduser()).resolve() if source_directory is not None else None
        )
        self.entry_script: Path = self._resolve_entry_script(Path(entry_script).expanduser(), base)
        self.conda_file = (base / Path(conda_file).expanduser()).resolve() if conda_file else None
        self.extra_docker_file_steps = (
            (base / Path(extra_docker_file_steps).expanduser()).resolve() if extra_docker_file_steps else None
        )
        self.runtime = runtime
        self.base_image = base_image
        self.enable_gpu = enable_gpu
        self.description = description
        if environment is None and self.conda_file is not None:
            environment = self._environment_from_conda_file(self.conda_file)
        self.environment = environment

    # -- paths ----------------------------------------------------------------------------------------

    def _resolve_entry_script(self, script: Path, base: Path) -> Path:
        if script.is_absolute():
            return script.resolve()
        if self.source_directory is None:
            return (base / script).resolve()
        inside = (self.source_directory / script).resolve()
        if inside.exists():
            return inside
        # v1 notebooks also write InferenceConfig(entry_script="src/score.py", source_directory="src").
        beside = (base / script).resolve()
        if beside.exists() and beside.is_relative_to(self.source_directory):
            return beside
        return inside

    @property
    def entry_script_relative(self) -> Path:
        """The entry script's path inside the app folder: relative to ``source_directory``, else its name."""
        if self.source_directory is not None and self.entry_script.is_relative_to(self.source_directory):
            return self.entry_script.relative_to(self.source_directory)
        return Path(self.entry_script.name)

    @staticmethod
    def _environment_from_conda_file(conda_file: Path) -> Environment:
        from jupyter_mldeploy.environment import Environment

        if not conda_file.is_file():
            raise NotFound(f"condaFile {conda_file} does not exist; fix the path in the inference config.")
        return Environment.from_conda_specification(name=conda_file.stem or "conda-env", file_path=str(conda_file))

    # -- checks ---------------------------------------------------------------------------------------

    def check(self) -> EntryScriptCheck:
        """Check the entry script statically (parsed, never imported) and the source directory.

        Returns:
            EntryScriptCheck: Problems (one line each) and detected features (schema, rawhttp,
            request_headers).

        Raises:
            NotFound: When the source directory or the entry script does not exist.
            InvalidArgument: When the entry script lies outside the source directory, or is not a file.
        """
        if self.source_directory is not None:
            if not self.source_directory.is_dir():
                raise NotFound(
                    f"source_directory {self.source_directory} does not exist or is not a folder; fix the path."
                )
            if not self.entry_script.is_relative_to(self.source_directory):
                raise InvalidArgument(
                    f"Entry script {self.entry_script} is outside source_directory {self.source_directory}; "
                    "move it into that folder or give its path relative to it."
                )
        return check_entry_script(self.entry_script)

    def validate(self) -> EntryScriptCheck:
        """Check everything that can be checked before a process starts; raise on the first failure.

        Returns:
            EntryScriptCheck: The (problem-free) check result, with the detected features.

        Raises:
            NotFound: When the source directory or entry script does not exist.
            InvalidArgument: When the entry script would be refused by the scoring server; the message lists
                every problem, one per line.
        """
        result = self.check()
        result.raise_for_problems()
        return result

    def resolve_environment(self, workspace: Workspace) -> Environment | None:
        """Return the environment to run in, looking up an ``{"name", "version"}`` reference in ``workspace``.

        Args:
            workspace: The workspace deploying the service.

        Returns:
            The environment, or None for the calling process's interpreter.

        Raises:
            NotFound: When a referenced environment is not registered in ``workspace``.
        """
        if isinstance(self.environment, EnvironmentReference):
            return self.environment.resolve(workspace)
        return self.environment

    # -- files ----------------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], workspace: Workspace | None = None) -> InferenceConfig:
        """Read a CLI v1 ``inferenceconfig.json``.

        Args:
            path: The JSON file. Relative paths inside it are resolved against its folder.
            workspace: Used to look up ``environment: {"name", "version"}`` now; without it the reference is
                kept and resolved by the deploying workspace.

        Returns:
            InferenceConfig: The configuration (not yet validated: call :meth:`validate`).

        Raises:
            NotFound: When the file, or a file it names, does not exist.
            InvalidArgument: When the file is not a JSON object, lacks ``entryScript``, or holds unknown keys
                (listed, with the known ones).
        """
        file, data = read_config_file(path, "Inference config")
        return cls.from_dict(data, base_dir=file.parent, workspace=workspace, source=f"Inference config {file}")

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        base_dir: str | os.PathLike[str] | None = None,
        workspace: Workspace | None = None,
        source: str = "Inference config",
    ) -> InferenceConfig:
        """Build a configuration from ``inferenceconfig.json`` content (the v1 camelCase keys).

        Args:
            data: The JSON object.
            base_dir: Folder that relative paths are resolved against (default: the current folder).
            workspace: Used to look up an ``environment: {"name", "version"}`` reference now.
            source: Names the content in error messages.

        Raises:
            InvalidArgument: When ``data`` is not an object, lacks ``entryScript`` or holds unknown keys.
            NotFound: When a referenced environment or conda file does not exist.
        """
        if not isinstance(data, dict):
            raise InvalidArgument(f"{source} must hold a JSON object, not {type(data).__name__}.")
        unknown = sorted(set(data) - _KNOWN_KEYS)
        if unknown:
            raise InvalidArgument(f"{source} has unknown keys {unknown}; known keys: {sorted(_KNOWN_KEYS)}.")
        if not data.get("entryScript"):
            raise InvalidArgument(f"{source} has no 'entryScript'; name your score.py there.")
        environment = cls._environment_from_json(data.get("environment"), source, workspace)
        steps = data.get("extraDockerfileSteps", data.get("extraDockerFileSteps"))
        return cls(
            entry_script=data["entryScript"],
            source_directory=data.get("sourceDirectory"),
            environment=environment,
            description=data.get("description"),
            runtime=data.get("runtime"),
            conda_file=data.get("condaFile"),
            extra_docker_file_steps=steps,
            base_image=data.get("baseImage"),
            enable_gpu=data.get("enableGpu"),
            _base_dir=Path(base_dir) if base_dir is not None else None,
        )

    @staticmethod
    def _environment_from_json(
        value: Any, source: str, workspace: Workspace | None
    ) -> Environment | EnvironmentReference | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidArgument(
                f"'environment' in {source} must be an object: the azureml_environment.json content, or "
                '{"name": ..., "version": ...} of a registered environment.'
            )
        if set(value) <= {"name", "version"}:
            if not value.get("name"):
                raise InvalidArgument(f"'environment' in {source} needs a 'name'.")
            version = value.get("version")
            reference = EnvironmentReference(str(value["name"]), None if version is None else str(version))
            return reference.resolve(workspace) if workspace is not None else reference
        from jupyter_mldeploy.environment import Environment

        return Environment.deserialize(value)

    def serialize(self, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Return the ``inferenceconfig.json`` content (camelCase v1 keys).

        Args:
            relative_to: A folder to write paths relative to (when they lie below it); None writes absolute
                paths.

        Returns:
            dict: JSON-safe; keys that are unset are left out.
        """
        base = Path(relative_to).resolve() if relative_to is not None else None

        def show(path: Path | None) -> str | None:
            if path is None:
                return None
            if base is not None:
                try:
                    return Path(os.path.relpath(path, base)).as_posix()
                except ValueError:  # another drive on Windows
                    return str(path)
            return str(path)

        data: dict[str, Any] = {}
        if self.source_directory is not None:
            data["sourceDirectory"] = show(self.source_directory)
            data["entryScript"] = self.entry_script_relative.as_posix()
        else:
            data["entryScript"] = show(self.entry_script)
        if isinstance(self.environment, EnvironmentReference):
            data["environment"] = self.environment.serialize()
        elif self.environment is not None:
            data["environment"] = self.environment.serialize()
        optional = {
            "runtime": self.runtime,
            "condaFile": show(self.conda_file) if self.conda_file and self.environment is None else None,
            "extraDockerfileSteps": show(self.extra_docker_file_steps),
            "baseImage": self.base_image,
            "enableGpu": self.enable_gpu,
            "description": self.description,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    def to_file(self, path: str | os.PathLike[str]) -> Path:
        """Write ``inferenceconfig.json``, with paths relative to its folder, atomically.

        Args:
            path: The file to write (its folder must exist).

        Returns:
            Path: The written file.
        """
        file = Path(path).expanduser().resolve()
        text = json.dumps(self.serialize(relative_to=file.parent), indent=2) + "\n"
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, file)
        return file

    def __repr__(self) -> str:
        env = self.environment
        env_text = "current interpreter" if env is None else getattr(env, "name", str(env))
        return (
            f"InferenceConfig(entry_script={str(self.entry_script)!r}, source_directory="
            f"{str(self.source_directory) if self.source_directory else None!r}, environment={env_text!r})"
        )


__all__ = ["InferenceConfig", "EnvironmentReference"]
