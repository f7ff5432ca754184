"""Registered models as every face lists, shows, registers and deletes them.

The CLI's ``mldeploy model ...``, the ``%models``/``%register_model`` magics, the panel's Registry tab and
the sidebar's ``models`` routes call these functions, so a version looks and behaves the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jupyter_mldeploy.actions.tags import parse_filters, parse_tags
from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.names import parse_name_version
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace

Tags = str | Iterable[str] | Mapping[str, str] | None


@dataclass(frozen=True)
class ModelRow:
    """One registered model version as listed.

    Attributes:
        name: Model name.
        version: Version number.
        tags: Tags.
        description: Description, or None.
        framework: ``"ScikitLearn 1.5"``-style framework and version, or ``""``.
        files: Stored file paths relative to the version folder.
        size_bytes: Total size of the files.
        created_time: Registration time (timezone-aware; listings show it in local time).
        run_id: The run it was registered from (lineage, ``Model.run_id``), or None.
        experiment_name: That run's experiment, or None.
    """

    name: str
    version: int
    tags: dict[str, str]
    description: str | None
    framework: str
    files: tuple[str, ...]
    size_bytes: int
    created_time: datetime
    run_id: str | None = None
    experiment_name: str | None = None

    @property
    def id(self) -> str:
        """``"name:version"``."""
        return f"{self.name}:{self.version}"


def model_row(model: Model) -> ModelRow:
    """Describe one registered version."""
    data = model.serialize()
    return ModelRow(
        name=model.name,
        version=int(model.version),
        tags=dict(model.tags),
        description=model.description,
        framework=" ".join(x for x in (model.model_framework, model.model_framework_version) if x),
        files=tuple(f["path"] for f in data["files"]),
        size_bytes=sum(int(f["size"]) for f in data["files"]),
        created_time=model.created_time,
        run_id=model.run_id,
        experiment_name=model.experiment_name,
    )


def list_models(workspace: Workspace, name: str | None = None, tags: str | Iterable[str] | None = None,
                properties: str | Iterable[str] | None = None, latest: bool = False) -> list[Model]:
    """The registered versions, sorted by name, newest version first (``Model.list`` with parsed filters).

    Args:
        workspace: The workspace.
        name: Only this model's versions.
        tags: Filters ``KEY`` (has the tag) or ``KEY=VALUE``, as :func:`~.tags.parse_filters` reads them.
        properties: The same for properties.
        latest: Only the latest matching version of each name.

    Raises:
        InvalidArgument: For a malformed name or filter.
    """
    return Model.list(workspace, name=name, tags=parse_filters(tags, "tag"),
                      properties=parse_filters(properties, "property"), latest=latest)


def model_rows(workspace: Workspace, name: str | None = None) -> list[ModelRow]:
    """:func:`list_models` as :class:`ModelRow` s (for tables)."""
    return [model_row(model) for model in list_models(workspace, name)]


def model_groups(workspace: Workspace, name: str | None = None) -> list[dict[str, Any]]:
    """Versions grouped by name: ``[{"name", "latestVersion", "versions": [Model.serialize(), ...]}]``.

    Args:
        workspace: The workspace.
        name: Only this model (then exactly one group).

    Raises:
        NotFound: When ``name`` is given and has no version (the message names the models that exist).
    """
    if name is not None:
        Model(workspace, name)
    groups: dict[str, dict[str, Any]] = {}
    for model in Model.list(workspace, name=name):
        data = model.serialize()
        group = groups.setdefault(data["name"], {"name": data["name"], "latestVersion": data["version"],
                                                 "versions": []})
        group["versions"].append(data)
    return list(groups.values())


def get_model(workspace: Workspace, model_id: str, version: int | None = None) -> Model:
    """One version: ``get_model(ws, "name:3")``, ``get_model(ws, "name", 3)``, or the latest of ``"name"``.

    Raises:
        InvalidArgument: For a malformed id.
        NotFound: When the model or version does not exist.
    """
    name, parsed = parse_name_version(model_id, "model")
    return Model(workspace, name, version=version if version is not None else parsed)


def delete_model(workspace: Workspace, model_id: str, version: int | None = None, force: bool = False) -> str:
    """Delete one version (its files and records) and return its ``"name:version"``.

    Args:
        workspace: The workspace.
        model_id: ``"name:version"``, or the name with ``version``.
        version: The version when ``model_id`` is a bare name; a version is required either way.
        force: Delete even when a service serves it.

    Raises:
        InvalidArgument: When no version is given (deleting "the latest" by accident is refused).
        Conflict: When a service uses it and ``force`` is False.
    """
    name, parsed = parse_name_version(model_id, "model")
    chosen = version if version is not None else parsed
    if chosen is None:
        raise InvalidArgument(f"Give the version to delete: {name}:VERSION.")
    model = Model(workspace, name, version=chosen)
    model.delete(force=force)
    return model.id


def check_model_path(model_path: str | os.PathLike[str]) -> Path:
    """Check, before a workspace is opened or created, that the file or folder to register exists.

    Faces call it first so that a typo never creates a workspace (``Model.register`` checks it again).

    Returns:
        The path, user-expanded.

    Raises:
        NotFound: Naming the path.
    """
    path = Path(model_path).expanduser()
    if not path.exists():
        raise NotFound(f"model_path {str(model_path)!r} does not exist; pass the path of the model file or folder.")
    return path


def register_model(workspace: Workspace, model_path: str | os.PathLike[str], model_name: str, tags: Tags = None,
                   properties: Tags = None, **options: Any) -> Model:
    """Register a file or folder as the next version of ``model_name``, with tags parsed one way.

    Args:
        workspace: The workspace (a writing command: faces open it with ``create=True``).
        model_path: The file or folder.
        model_name: The model name.
        tags: ``"k=v, k2=v2"``, a list of ``k=v``, or a mapping (see :mod:`.tags`).
        properties: The same, for properties.
        **options: Passed to :meth:`Model.register` (``description``, ``sample_input``,
            ``model_framework``, ``model_framework_version``, ...).

    Returns:
        The registered version.

    Raises:
        InvalidArgument: For a malformed tag, name, or a path that does not exist.
    """
    return Model.register(workspace, model_path=str(model_path), model_name=model_name,
                          tags=parse_tags(tags, "tag") or None,
                          properties=parse_tags(properties, "property") or None, **options)


__all__ = [
    "ModelRow",
    "check_model_path",
    "delete_model",
    "get_model",
    "list_models",
    "model_groups",
    "model_row",
    "model_rows",
    "register_model",
]
