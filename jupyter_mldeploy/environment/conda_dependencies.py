"""``CondaDependencies``: the conda environment specification of an environment, as Azure ML SDK v1 has it.

The object holds the parsed conda YAML (``name``, ``channels``, ``dependencies`` with an optional
``- pip:`` sub-list) and reads and writes it with pyyaml. As in v1, pip lines that start with ``-`` are pip
options (``--index-url URL``, ``--extra-index-url URL``, ``--find-links DIR``); the others are requirements.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from jupyter_mldeploy.environment.conda_map import conda_package_name
from jupyter_mldeploy.errors import InvalidArgument

#: Top-level keys a conda environment file may hold (v1 refuses any other).
VALID_YAML_KEYS = ("name", "channels", "dependencies", "prefix", "variables")

#: Pip packages that were v1's serving stack; the build replaces them with the jupyter_mldeploy scoring server.
SERVING_STACK_PACKAGES = frozenset({"azureml-defaults", "azureml-inference-server-http"})

_HEADER = """\
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

"""

_PIP_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def default_python_version() -> str:
    """Return ``"X.Y"`` of the interpreter running now: the default ``python=`` of a new specification."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def pip_package_name(requirement: str) -> str:
    """Return the normalised (PEP 503) project name of a pip requirement line.

    ``"Scikit_Learn[alldeps]==1.0; python_version>'3'"`` -> ``"scikit-learn"``. A URL or path requirement
    (``git+https://...``, ``./pkg.whl``) has no name before installation; the whole stripped line is returned.

    Args:
        requirement: One pip requirement line.

    Returns:
        The lower-case name with runs of ``-_.`` replaced by ``-``.
    """
    text = requirement.strip()
    if text.startswith((".", "/", "~")) or ("://" in text and " @ " not in text):
        return text
    match = _PIP_NAME_RE.match(text)
    if match is None:
        return text
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _is_pip_entry(item: Any) -> bool:
    return isinstance(item, dict) and "pip" in item


class CondaDependencies:
    """The conda/pip dependencies of an environment (v1: ``azureml.core.conda_dependencies.CondaDependencies``).

    ``CondaDependencies()`` is v1's default specification: ``python=X.Y`` (this machine's interpreter, where
    v1 pinned 3.8.13), channels ``anaconda`` and ``conda-forge``, and the pip package ``azureml-defaults``,
    which builds replace with the jupyter_mldeploy scoring server.

    Args:
        conda_dependencies_file_path: A conda environment YAML file to load.
        _underlying_structure: An already parsed specification (a dict), as the inline
            ``python.condaDependencies`` of an ``azureml_environment.json``.

    Raises:
        InvalidArgument: When the file is not a conda specification (not a mapping, unknown top-level keys,
            a ``dependencies`` value that is not a list).
        FileNotFoundError: When the file does not exist.
    """

    def __init__(
        self,
        conda_dependencies_file_path: str | os.PathLike[str] | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        if conda_dependencies_file_path is not None:
            path = Path(conda_dependencies_file_path)
            text = path.read_text(encoding="utf-8")
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InvalidArgument(f"{path} is not valid YAML: {exc}") from exc
            self._data = self._validated(data, str(path))
        elif _underlying_structure is not None:
            self._data = self._validated(copy.deepcopy(_underlying_structure), "the conda specification")
        else:
            self._data = {
                "name": "project_environment",
                "dependencies": [f"python={default_python_version()}", {"pip": ["azureml-defaults"]}],
                "channels": ["anaconda", "conda-forge"],
            }

    # -- construction ---------------------------------------------------------------------------------

    @staticmethod
    def create(
        python_version: str | None = None,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        pip_indexurl: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """Create a specification (v1: ``CondaDependencies.create``).

        As in v1, ``pip_packages=None`` gives ``["azureml-defaults"]`` (replaced by our scoring server at build
        time), and a given list replaces it.

        Args:
            python_version: ``"X.Y"`` or ``"X.Y.Z"``; default: this machine's ``X.Y``.
            pip_packages: pip requirement lines.
            conda_packages: conda package lines (mapped to PyPI names at build time).
            pip_indexurl: A pip index URL, written as a ``--index-url URL`` line (v1 also added PyPI as an
                extra index; we do not, so an offline index stays offline).
            pin_sdk_version: Accepted for v1 compatibility; there is no SDK version to pin.

        Returns:
            The new specification.
        """
        del pin_sdk_version
        cd = CondaDependencies()
        cd.set_python_version(python_version or default_python_version())
        if pip_packages is not None:
            for package in list(cd.pip_packages):
                cd.remove_pip_package(package)
            for package in pip_packages:
                cd.add_pip_package(package)
        for package in conda_packages or ():
            cd.add_conda_package(package)
        if pip_indexurl:
            cd.set_pip_index_url(f"--index-url {pip_indexurl}")
        return cd

    @staticmethod
    def _validated(data: Any, where: str) -> dict[str, Any]:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where} is not a conda environment specification (expected a YAML mapping).")
        unknown = [str(k) for k in data if str(k) not in VALID_YAML_KEYS]
        if unknown:
            raise InvalidArgument(
                f"{where}: unknown key(s) {unknown} in the conda specification; allowed: {list(VALID_YAML_KEYS)}."
            )
        deps = data.get("dependencies")
        if deps is None:
            data["dependencies"] = []
        elif not isinstance(deps, list):
            raise InvalidArgument(f"{where}: 'dependencies' must be a list.")
        cleaned: list[Any] = []
        for item in data["dependencies"]:
            if _is_pip_entry(item):
                pip_items = item.get("pip") or []
                if not isinstance(pip_items, list):
                    raise InvalidArgument(f"{where}: the '- pip:' entry must hold a list of requirement lines.")
                cleaned.append({"pip": [str(x) for x in pip_items]})
            elif isinstance(item, (str, int, float)):
                cleaned.append(str(item))
            else:
                raise InvalidArgument(f"{where}: cannot read the dependency {item!r}; use 'name=version' strings.")
        data["dependencies"] = cleaned
        if "channels" in data and data["channels"] is not None:
            data["channels"] = [str(c) for c in data["channels"]]
        return data

    # -- reading --------------------------------------------------------------------------------------

    def _pip_entry(self, create: bool = False) -> list[str] | None:
        for item in self._data["dependencies"]:
            if _is_pip_entry(item):
                return item["pip"]
        if not create:
            return None
        entry: dict[str, list[str]] = {"pip": []}
        self._data["dependencies"].append(entry)
        return entry["pip"]

    @property
    def conda_packages(self) -> list[str]:
        """The conda dependency lines, ``python=...`` included (v1 returns an iterator; a list iterates too)."""
        return [item for item in self._data["dependencies"] if isinstance(item, str)]

    @property
    def pip_packages(self) -> list[str]:
        """The pip requirement lines (options such as ``--index-url`` excluded)."""
        return [x for x in (self._pip_entry() or []) if not x.strip().startswith("-")]

    @property
    def pip_options(self) -> list[str]:
        """The pip option lines (``--index-url URL``, ``--extra-index-url URL``, ...)."""
        return [x for x in (self._pip_entry() or []) if x.strip().startswith("-")]

    @property
    def conda_channels(self) -> list[str]:
        """The conda channels."""
        return list(self._data.get("channels") or [])

    @property
    def python_version(self) -> str | None:
        """The version of the ``python=`` dependency (``"3.11"``), or None when not pinned."""
        return self.get_python_version()

    def get_python_version(self) -> str | None:
        """Return the version of the ``python`` conda dependency, or None (v1 spelling)."""
        for item in self.conda_packages:
            if conda_package_name(item) == "python":
                spec = item.strip().split("::", 1)[-1][len("python"):].strip().lstrip("=").strip()
                return spec.split("=", 1)[0].strip() or None
        return None

    # -- editing --------------------------------------------------------------------------------------

    def set_python_version(self, version: str) -> None:
        """Set ``python=version``, replacing any ``python`` dependency.

        Raises:
            InvalidArgument: When ``version`` is not ``X.Y`` or ``X.Y.Z``.
        """
        if not re.fullmatch(r"\d+\.\d+(\.\d+)?", str(version)):
            raise InvalidArgument(f"Invalid python version {version!r}: use X.Y or X.Y.Z, e.g. '3.11'.")
        self.add_conda_package(f"python={version}")

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda dependency, replacing one of the same package name in place.

        Raises:
            InvalidArgument: For an empty string.
        """
        line = str(conda_package).strip()
        if not line:
            raise InvalidArgument("A conda package must be a non-empty string such as 'numpy=1.26'.")
        name = conda_package_name(line)
        deps = self._data["dependencies"]
        for index, item in enumerate(deps):
            if isinstance(item, str) and conda_package_name(item) == name:
                deps[index] = line
                return
        pip_at = next((i for i, item in enumerate(deps) if _is_pip_entry(item)), len(deps))
        deps.insert(pip_at, line)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove the conda dependency with this package name (any version); absent is not an error."""
        name = conda_package_name(conda_package)
        self._data["dependencies"] = [
            item
            for item in self._data["dependencies"]
            if not (isinstance(item, str) and conda_package_name(item) == name)
        ]

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement, replacing one of the same project name in place.

        Raises:
            InvalidArgument: For an empty string or an option line (use :meth:`set_pip_option`).
        """
        line = str(pip_package).strip()
        if not line or line.startswith("-"):
            raise InvalidArgument(
                f"Invalid pip package {pip_package!r}: give a requirement such as 'numpy==1.26'; "
                "set options such as --index-url with set_pip_option()."
            )
        name = pip_package_name(line)
        entry = self._pip_entry(create=True)
        assert entry is not None
        for index, item in enumerate(entry):
            if not item.startswith("-") and pip_package_name(item) == name:
                entry[index] = line
                return
        entry.append(line)

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove the pip requirement with this project name (any version); absent is not an error."""
        entry = self._pip_entry()
        if entry is None:
            return
        name = pip_package_name(pip_package)
        entry[:] = [x for x in entry if x.startswith("-") or pip_package_name(x) != name]

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option line such as ``--extra-index-url URL``, replacing one with the same flag.

        ``--extra-index-url`` and ``--find-links`` may repeat with different values; other flags are unique.

        Raises:
            InvalidArgument: When the line does not start with ``-``.
        """
        line = str(pip_option).strip()
        if not line.startswith("-"):
            raise InvalidArgument(f"Invalid pip option {pip_option!r}: an option starts with '-', e.g. '--index-url URL'.")
        flag = line.split(None, 1)[0].split("=", 1)[0]
        entry = self._pip_entry(create=True)
        assert entry is not None
        if line in entry:
            return
        if flag not in {"--extra-index-url", "--find-links", "-f"}:
            for index, item in enumerate(entry):
                if item.startswith("-") and item.split(None, 1)[0].split("=", 1)[0] == flag:
                    entry[index] = line
                    return
        options_end = sum(1 for x in entry if x.startswith("-"))
        entry.insert(options_end, line)

    def set_pip_index_url(self, index_url: str) -> None:
        """Set the pip index (v1 spelling; takes ``"--index-url URL"`` or a bare URL)."""
        line = index_url if index_url.strip().startswith("-") else f"--index-url {index_url.strip()}"
        self.set_pip_option(line)

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (kept for the record; uv builds do not use channels)."""
        channels = self._data.setdefault("channels", [])
        if channel not in channels:
            channels.append(channel)

    def set_pip_requirements(self, requirements: Iterable[str]) -> None:
        """Replace the pip list with the lines of a requirements file (comments and blanks skipped)."""
        entry = self._pip_entry(create=True)
        assert entry is not None
        lines = []
        for raw in requirements:
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
        entry[:] = lines

    # -- writing --------------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Return a deep copy of the specification (v1's inline ``python.condaDependencies`` value)."""
        return copy.deepcopy(self._data)

    def serialize_to_string(self) -> str:
        """Return the conda YAML text, with v1's header comment.

        Key order is ``name``, ``dependencies``, ``channels`` (then ``variables``, ``prefix``), as v1 writes.
        """
        order = ["name", "dependencies", "channels", "variables", "prefix"]
        ordered = {k: self._data[k] for k in order if k in self._data}
        body = yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return _HEADER + body

    def save_to_file(self, base_directory: str | os.PathLike[str], conda_file_path: str | None = None) -> str:
        """Write the YAML to ``base_directory/conda_file_path`` (v1 spelling) and return the path.

        Args:
            base_directory: Folder to write into (created when missing).
            conda_file_path: File name; default ``conda_dependencies.yml``.
        """
        target = Path(base_directory) / (conda_file_path or "conda_dependencies.yml")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.serialize_to_string(), encoding="utf-8")
        return str(target)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the YAML to ``path`` and return it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.serialize_to_string(), encoding="utf-8")
        return str(target)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and other._data == self._data

    def __repr__(self) -> str:
        return f"CondaDependencies(python={self.python_version!r}, conda={self.conda_packages!r}, pip={self.pip_packages!r})"
