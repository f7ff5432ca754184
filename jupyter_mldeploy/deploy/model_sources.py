"""Which registered model versions a deployment, a package or a trial run serves: one resolver for all.

Accepts what v1 code and the faces pass: ``Model`` objects, ``"name:version"`` strings, and ``"name"`` (the
latest version, as ``Model(ws, name)``). An empty list is a deployment that serves files from its source
directory only (v1's "deploy using a local model"); callers that need a model say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.app_folder import ModelFileRef, ModelSource
from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.names import parse_name_version

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.workspace import Workspace


def as_model_list(models: Any) -> list[Any]:
    """Return ``models`` as a list: None -> ``[]``, one ``Model`` or string -> ``[it]``, a sequence as is."""
    if models is None:
        return []
    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
        return [models]
    return list(models)


def resolve_model_sources(workspace: Workspace, models: Any) -> list[ModelSource]:
    """Turn ``Model`` objects or ``"name[:version]"`` strings into registered version folders.

    Args:
        workspace: The workspace holding the models.
        models: None, one item, or a sequence of items; each a registered ``Model``, ``"name:version"``, or
            ``"name"`` (latest version).

    Returns:
        list[ModelSource]: In the given order; empty for None or ``[]``.

    Raises:
        InvalidArgument: For an item of another type, a malformed id, or a version listed twice.
        NotFound: For a model or version that is not registered (the registry's message lists what is), or
            a registered version whose files are missing.
    """
    # registry imports deploy lazily (Model.deploy forwards here), so importing it at module level is safe,
    # but it would load the registry for callers that only lay out folders.
    from jupyter_mldeploy.registry import Model

    resolved: list[ModelSource] = []
    for item in as_model_list(models):
        if isinstance(item, str):
            name, version = parse_name_version(item)
        elif hasattr(item, "name") and hasattr(item, "version"):
            name, version = str(item.name), int(item.version)
        else:
            raise InvalidArgument(f"Cannot serve {item!r}: pass a registered Model or a 'name:version' string.")
        model = Model(workspace, name, version=version)
        files = tuple(ModelFileRef(f["path"], int(f["size"]), f["sha256"]) for f in model.serialize()["files"])
        source = ModelSource(name=model.name, version=int(model.version), folder=Path(model.url), files=files)
        if not source.folder.is_dir():
            raise NotFound(f"Model '{model.id}' has no files at {source.folder}; register it again.")
        if any(m.name == source.name and m.version == source.version for m in resolved):
            raise InvalidArgument(f"Model '{model.id}' is listed twice; list each model version once.")
        resolved.append(source)
    return resolved
