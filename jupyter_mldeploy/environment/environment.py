"""``Environment``: the software a model runs in, with the Azure ML SDK v1 API, stored in a local workspace.

An environment is a name, a version (assigned at registration: 1, 2, 3 ... per name, kept as a string as
v1 does), a Python section (conda/pip dependencies, or a user-managed interpreter), environment variables,
and Docker settings kept for the record and for the Docker runtime. Registered environments live in the
workspace's ``environments`` table and in ``environments/<name>/<version>/`` as v1 files
(see :mod:`jupyter_mldeploy.environment.files`).
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.environment.conda_dependencies import CondaDependencies, default_python_version
from jupyter_mldeploy.errors import EnvironmentBuildError, InvalidArgument, NotFound
from jupyter_mldeploy.names import validate_name

if TYPE_CHECKING:
    from jupyter_mldeploy.environment.build import BuiltEnvironment
    from jupyter_mldeploy.workspace import Workspace

logger = logging.getLogger(__name__)

#: v1's default CPU base image (``azureml.core.environment.DEFAULT_CPU_IMAGE``), kept for the Docker runtime.
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"

#: Name prefixes v1 reserves for curated environments; registering under them is refused.
RESERVED_PREFIXES = ("AzureML", "Microsoft")


def _default_registry() -> dict[str, Any]:
    return {"address": None, "username": None, "password": None, "registryIdentity": None}


@dataclass
class PythonSection:
    """The Python part of an environment (v1: ``PythonSection``).

    Attributes:
        user_managed_dependencies: True: use an existing interpreter as is, nothing is built.
        interpreter_path: The interpreter of a user-managed environment; v1's default ``"python"`` means
            the interpreter running jupyter_mldeploy.
        conda_dependencies: The dependencies a build installs.
        conda_dependencies_file: v1's deprecated path field, kept for the record.
        base_conda_environment: v1 field, kept for the record.
        extra: Keys of the JSON section this version does not model, written back unchanged.
    """

    user_managed_dependencies: bool = False
    interpreter_path: str = "python"
    conda_dependencies: CondaDependencies = field(default_factory=CondaDependencies)
    conda_dependencies_file: str | None = None
    base_conda_environment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DockerSection:
    """The Docker part of an environment (v1: ``DockerSection``); the process runtime ignores it.

    Attributes:
        enabled: v1's (deprecated) "run in Docker" flag.
        base_image: Base image of a Docker build.
        base_dockerfile: Dockerfile text used instead of ``base_image``.
        shared_volumes: v1 field.
        shm_size: v1 field (``"2g"``).
        arguments: Extra ``docker run`` arguments.
        base_image_registry: ``{"address", "username", "password", "registryIdentity"}``.
        platform: ``{"os": "Linux", "architecture": "amd64"}``.
        extra: Keys of the JSON section this version does not model, written back unchanged.
    """

    enabled: bool = False
    base_image: str | None = DEFAULT_CPU_IMAGE
    base_dockerfile: str | None = None
    shared_volumes: bool = True
    shm_size: str | None = "2g"
    arguments: list[str] = field(default_factory=list)
    base_image_registry: dict[str, Any] = field(default_factory=_default_registry)
    platform: dict[str, Any] = field(default_factory=lambda: {"os": "Linux", "architecture": "amd64"})
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Environment:
    """A reproducible Python environment (v1: ``azureml.core.Environment``).

    ``Environment(name)`` starts from v1's defaults: ``CondaDependencies()`` (``python=X.Y`` of this
    machine plus ``azureml-defaults``, which builds replace with our scoring server), environment variables
    ``{"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}`` as v1 sets them, Docker disabled with v1's CPU base image.

    Args:
        name: The environment's name. Checked against the naming rule when registered.

    Attributes:
        name: The name.
        version: None until registered; then ``"1"``, ``"2"`` ... (a string, as in v1).
        python: :class:`PythonSection`.
        docker: :class:`DockerSection`.
        environment_variables: Set in the scoring process of a deployment.
        inferencing_stack_version: v1 field (``"latest"`` or None), kept for the record.
        spark, databricks, r: v1 sections, kept as JSON for the record.
        pip_freeze: For :meth:`from_current`: the ``name==version`` lines of the interpreter, for the record.

    Raises:
        InvalidArgument: When ``name`` is not a non-empty string.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"An environment needs a name (a non-empty string), got {name!r}.")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
        self.inferencing_stack_version: str | None = None
        self.spark: dict[str, Any] = {"repositories": [], "packages": [], "precachePackages": True}
        self.databricks: dict[str, Any] = {
            "mavenLibraries": [], "pypiLibraries": [], "rcranLibraries": [], "jarLibraries": [], "eggLibraries": [],
        }
        self.r: dict[str, Any] | None = None
        self.pip_freeze: list[str] = []
        self.extra: dict[str, Any] = {}

    # -- constructors ---------------------------------------------------------------------------------

    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        """Create an environment from a conda environment YAML file (v1 spelling).

        As in v1, a file without ``python=`` gets a default version (here: this machine's ``X.Y``), with a
        warning in the log.

        Args:
            name: The environment name.
            file_path: The conda YAML file.

        Returns:
            The environment.

        Raises:
            NotFound: When the file does not exist.
            InvalidArgument: When it is not a conda specification.
        """
        path = Path(file_path)
        if not path.is_file():
            raise NotFound(f"Conda specification {path} does not exist.")
        conda = CondaDependencies(path)
        if not conda.python_version:
            logger.warning("No Python version in %s, defaulting to %s", path, default_python_version())
            conda.set_python_version(default_python_version())
        env = Environment(name)
        env.python.conda_dependencies = conda
        return env

    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str | os.PathLike[str], pip_version: str | None = None
    ) -> Environment:
        """Create an environment from a pip requirements file (v1 spelling).

        Comments and blank lines are skipped; ``-r other.txt`` includes are read in (relative to the file)
        so the stored environment is self-contained. As in v1 the conda list gains ``pip`` (dropped at build
        time: uv installs the packages).

        Args:
            name: The environment name.
            file_path: The requirements file.
            pip_version: v1 option: pin the conda ``pip`` package.

        Returns:
            The environment.

        Raises:
            NotFound: When the file (or an included one) does not exist.
        """
        env = Environment(name)
        env.python.conda_dependencies.set_pip_requirements(_read_requirements(Path(file_path), set()))
        env.python.conda_dependencies.add_conda_package(f"pip={pip_version}" if pip_version else "pip")
        return env

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment:
        """Create an environment from a conda environment on this machine (v1 spelling).

        Runs ``conda env export --no-builds --name NAME`` (``micromamba``/``mamba`` when conda is absent).

        Args:
            name: The environment name.
            conda_environment_name: The local conda environment.

        Returns:
            The environment.

        Raises:
            EnvironmentBuildError: When no conda, mamba or micromamba is installed, or the export fails.
        """
        tool = next((shutil.which(t) for t in ("conda", "mamba", "micromamba") if shutil.which(t)), None)
        if tool is None:
            raise EnvironmentBuildError(
                "Environment.from_existing_conda_environment needs conda, mamba or micromamba on PATH, and none "
                "is installed. Install one, or write the packages into a requirements file and use "
                "Environment.from_pip_requirements, or use Environment.from_current for this interpreter."
            )
        proc = subprocess.run(
            [tool, "env", "export", "--no-builds", "--name", conda_environment_name],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise EnvironmentBuildError(
                f"`{Path(tool).name} env export --name {conda_environment_name}` failed "
                f"(exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "environment.yml"
            import yaml

            data = yaml.safe_load(proc.stdout) or {}
            data.pop("prefix", None)
            spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            return Environment.from_conda_specification(name, spec)

    @staticmethod
    def from_current(name: str) -> Environment:
        """Describe the interpreter running now: user-managed, nothing to build.

        ``python.interpreter_path`` is ``sys.executable``; ``pip_freeze`` records every installed
        distribution as ``name==version`` (from :mod:`importlib.metadata`, what ``pip freeze`` lists),
        sorted, for the record; it is not installed anywhere.

        Args:
            name: The environment name.

        Returns:
            The environment.
        """
        env = Environment(name)
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = sys.executable
        env.python.conda_dependencies = CondaDependencies.create(
            python_version=".".join(str(v) for v in sys.version_info[:3]), pip_packages=[]
        )
        env.environment_variables = {}
        env.pip_freeze = current_pip_freeze()
        return env

    def clone(self, new_name: str) -> Environment:
        """Return a copy under a new name, unregistered (``version`` None), as v1 does.

        Raises:
            InvalidArgument: When ``new_name`` is empty.
        """
        if not new_name:
            raise InvalidArgument("clone() needs a new name.")
        env = copy.deepcopy(self)
        env.name = new_name
        env.version = None
        return env

    # -- files ----------------------------------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """Return the JSON-safe inline v1 form (``python.condaDependencies`` inline), as v1's
        ``Environment._serialize_to_dict``; ``"pipFreeze"`` is added when there is a freeze record."""
        from jupyter_mldeploy.environment.files import to_v1_dict

        return to_v1_dict(self)

    @staticmethod
    def deserialize(data: dict[str, Any]) -> Environment:
        """Build an environment from :meth:`serialize`'s form (or an inline ``environment`` of an
        ``inferenceconfig.json``).

        Raises:
            InvalidArgument: When the dict is not an environment definition.
        """
        from jupyter_mldeploy.environment.files import from_v1_dict

        return from_v1_dict(data)

    def save_to_directory(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        """Write ``azureml_environment.json`` and ``conda_dependencies.yml`` (and ``BaseDockerfile`` when set)
        into ``path``, in v1's shapes.

        Args:
            path: The folder (created).
            overwrite: Replace the files of an existing folder.

        Raises:
            Conflict: When the folder exists and ``overwrite`` is False.
        """
        from jupyter_mldeploy.environment.files import write_directory

        write_directory(self, path, overwrite=overwrite)

    @staticmethod
    def load_from_directory(path: str | os.PathLike[str]) -> Environment:
        """Read a folder written by ``save_to_directory`` (ours or Azure ML SDK v1's).

        Raises:
            NotFound: When the folder has no ``azureml_environment.json``.
            InvalidArgument: When a file cannot be parsed.
        """
        from jupyter_mldeploy.environment.files import read_directory

        return read_directory(path)

    # -- workspace ------------------------------------------------------------------------------------

    def definition_hash(self) -> str:
        """Return a sha256 (64 hex digits) of the definition without its version: equal definitions,
        equal hashes. Stored as the ``spec_hash`` of a registered version; not the build cache key."""
        data = self.serialize()
        data.pop("version", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def register(self, workspace: Workspace) -> Environment:
        """Register this definition as the next version of its name (v1 spelling).

        Versions are 1, 2, 3 ... per name, assigned in one database transaction. As in v1, registering a
        definition identical to the latest version returns that version instead of adding one. The files
        are written to ``environments/<name>/<version>/`` before the row is committed; a failure leaves
        neither.

        Args:
            workspace: The workspace.

        Returns:
            A new :class:`Environment` with ``version`` set (this object is unchanged, as in v1).

        Raises:
            InvalidArgument: For a bad name, or a name reserved for curated environments.
        """
        from jupyter_mldeploy.environment.curated import is_curated_name

        validate_name(self.name, "environment name")
        if is_curated_name(self.name) or self.name.startswith(RESERVED_PREFIXES):
            raise InvalidArgument(
                f"The environment name {self.name!r} is reserved for curated environments: register a copy "
                f"under your own name, e.g. env.clone('my-{self.name.lower()}').register(ws)."
            )
        if self.version is not None:
            logger.info("Environment %s has version %s set; registering assigns the next version.",
                        self.name, self.version)
        candidate = self.clone(self.name)
        spec_hash = candidate.definition_hash()
        name_dir = workspace.environments_dir / self.name
        name_dir.mkdir(parents=True, exist_ok=True)
        staging = name_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            with workspace.transaction() as conn:
                latest = conn.execute(
                    "SELECT version, spec_hash FROM environments WHERE name = ? ORDER BY version DESC LIMIT 1",
                    (self.name,),
                ).fetchone()
                if latest is not None and latest["spec_hash"] == spec_hash:
                    return Environment.get(workspace, self.name, latest["version"])
                version = 1 if latest is None else int(latest["version"]) + 1
                candidate.version = str(version)
                candidate.save_to_directory(staging)
                target = name_dir / str(version)
                if target.exists():
                    # A folder without a row: left by a process killed between rename and commit.
                    shutil.rmtree(target)
                os.replace(staging, target)
                try:
                    conn.execute(
                        "INSERT INTO environments (name, version, spec, spec_hash, created_time) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (self.name, version, json.dumps(candidate.serialize()), spec_hash, _now()),
                    )
                except sqlite3.Error:
                    shutil.rmtree(target, ignore_errors=True)
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return candidate

    @staticmethod
    def get(workspace: Workspace, name: str, version: str | int | None = None, label: str | None = None) -> Environment:
        """Return a registered or curated environment (v1 spelling).

        Curated names (``mldeploy-minimal``, ``mldeploy-sklearn``) and v1's ``AzureML-*`` aliases resolve
        without registration.

        Args:
            workspace: The workspace.
            name: The environment name.
            version: A version (``"2"`` or ``2``); the latest when None.
            label: v1 labels are not supported; passing one is an error.

        Returns:
            The environment, with ``version`` set.

        Raises:
            NotFound: When the name or version is not registered.
            InvalidArgument: For a bad name or version, or a label.
        """
        from jupyter_mldeploy.environment.curated import curated_environment

        if label is not None:
            raise InvalidArgument("Environment labels are not supported: ask for a version instead.")
        curated = curated_environment(name)
        if curated is not None:
            if version is not None and str(version) != curated.version:
                raise NotFound(f"Curated environment {curated.name} has only version {curated.version}.")
            return curated
        validate_name(name, "environment name")
        with workspace.connect() as conn:
            if version is None:
                row = conn.execute(
                    "SELECT version, spec FROM environments WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
                ).fetchone()
            else:
                if not str(version).isdigit() or int(version) < 1:
                    raise InvalidArgument(f"Invalid environment version {version!r}: use 1, 2, 3 ...")
                row = conn.execute(
                    "SELECT version, spec FROM environments WHERE name = ? AND version = ?", (name, int(version))
                ).fetchone()
        if row is None:
            what = f"{name}:{version}" if version is not None else name
            raise NotFound(
                f"Environment {what} is not registered in {workspace.path}; register it with env.register(ws) "
                "or `mldeploy environment register -d DIR`."
            )
        env = Environment.deserialize(json.loads(row["spec"]))
        env.version = str(row["version"])
        return env

    @staticmethod
    def list(workspace: Workspace) -> dict[str, Environment]:
        """Return every environment as v1 does: a dict ``name -> Environment`` (latest version of each).

        Curated environments come first, then registered ones in name order.

        Args:
            workspace: The workspace.

        Returns:
            ``{name: Environment}``.
        """
        from jupyter_mldeploy.environment.curated import curated_environments

        result: dict[str, Environment] = {env.name: env for env in curated_environments()}
        with workspace.connect() as conn:
            rows = conn.execute(
                "SELECT e.name, e.version, e.spec FROM environments e "
                "JOIN (SELECT name, MAX(version) AS v FROM environments GROUP BY name) m "
                "ON e.name = m.name AND e.version = m.v ORDER BY e.name"
            ).fetchall()
        for row in rows:
            env = Environment.deserialize(json.loads(row["spec"]))
            env.version = str(row["version"])
            result[row["name"]] = env
        return result

    @staticmethod
    def list_versions(workspace: Workspace, name: str) -> list[Environment]:
        """Return every registered version of ``name``, oldest first (empty when none).

        Raises:
            InvalidArgument: For a bad name.
        """
        validate_name(name, "environment name")
        with workspace.connect() as conn:
            rows = conn.execute(
                "SELECT version, spec FROM environments WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
        result = []
        for row in rows:
            env = Environment.deserialize(json.loads(row["spec"]))
            env.version = str(row["version"])
            result.append(env)
        return result

    # -- build ----------------------------------------------------------------------------------------

    def build_local(
        self,
        workspace: Workspace | None = None,
        show_output: bool = True,
        useDocker: bool = False,  # noqa: N803 - v1's spelling
        *,
        use_docker: bool = False,
    ) -> BuiltEnvironment:
        """Build this environment into the per-user cache with uv, or reuse the build of an equal spec.

        See :func:`jupyter_mldeploy.environment.build.build_environment` for what is built and hashed.

        Args:
            workspace: Accepted for v1 compatibility; builds are cached per user, not per workspace.
            show_output: Stream the build output to stdout line by line (it always goes to the build log).
            useDocker: v1's switch for a Docker build: build (or reuse) the image the Docker runtime runs,
                ``mldeploy-env:<hash>`` (see :func:`jupyter_mldeploy.docker.build.build_image`).
            use_docker: Same as ``useDocker``.

        Returns:
            BuiltEnvironment: with ``python``, the interpreter to run the scoring server with; with
            ``use_docker``, a :class:`jupyter_mldeploy.docker.build.BuiltImage` (``tag``, ``image_id``,
            ``reused``, ``build_seconds``).

        Raises:
            EnvironmentBuildError: When the build fails; the message names the step and holds the output. With
                ``use_docker``, also when no Docker engine answers.
        """
        del workspace
        if useDocker or use_docker:
            # The Docker runtime's image of this environment (dependencies only), tagged by its content hash.
            from jupyter_mldeploy.docker.build import build_image  # v1 façade forwarder

            return build_image(self, show_output=show_output)  # type: ignore[return-value]
        from jupyter_mldeploy.environment.build import build_environment

        return build_environment(self, show_output=show_output)

    # -- display --------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        conda = self.python.conda_dependencies
        if self.python.user_managed_dependencies:
            detail = f"user_managed=True, interpreter_path={self.python.interpreter_path!r}"
        else:
            detail = (
                f"python={conda.python_version!r}, conda_packages={conda.conda_packages!r}, "
                f"pip_packages={conda.pip_packages!r}"
            )
        return f"Environment(name={self.name!r}, version={self.version!r}, {detail})"

    def _repr_html_(self) -> str:
        conda = self.python.conda_dependencies
        rows = [
            ("Name", self.name),
            ("Version", self.version or "(not registered)"),
        ]
        if self.python.user_managed_dependencies:
            rows.append(("Interpreter (user-managed)", self.python.interpreter_path))
            if self.pip_freeze:
                rows.append(("pip freeze", f"{len(self.pip_freeze)} distributions"))
        else:
            rows += [
                ("Python", conda.python_version or ""),
                ("Conda packages", ", ".join(p for p in conda.conda_packages if not p.startswith("python"))),
                ("Pip packages", ", ".join(conda.pip_packages)),
            ]
        if self.environment_variables:
            rows.append(("Environment variables", ", ".join(f"{k}={v}" for k, v in self.environment_variables.items())))
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>Environment</caption>{cells}</table>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Environment) and other.serialize() == self.serialize()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


def current_pip_freeze() -> list[str]:
    """Return ``name==version`` for every distribution of the running interpreter, sorted by name.

    Uses :func:`importlib.metadata.distributions` (what ``pip freeze`` lists, without running pip).
    """
    from importlib.metadata import distributions

    seen: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return [seen[key] for key in sorted(seen)]


def _read_requirements(path: Path, visiting: set[Path]) -> list[str]:
    if not path.is_file():
        raise NotFound(f"Requirements file {path} does not exist.")
    resolved = path.resolve()
    if resolved in visiting:
        raise InvalidArgument(f"Requirements file {path} includes itself (via -r).")
    visiting = visiting | {resolved}
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for flag in ("-r ", "--requirement ", "--requirement="):
            if line.startswith(flag):
                include = line[len(flag):].strip()
                lines.extend(_read_requirements(path.parent / include, visiting))
                break
        else:
            lines.append(line)
    return lines
