"""``Model.get_model_path`` as it behaves inside an Azure ML scoring container (SDK v1 semantics).

Standard library only: the scoring server ships this module into every target environment, where the
``azureml.core.model`` shim calls :func:`get_model_path` for unchanged ``score.py`` files.

The rules follow azureml-core v1's local lookup: models live under ``azureml-models/`` in the app root
(``$AML_APP_ROOT`` when set, else the working directory); ``azureml-models/<name>/<version>/`` must hold
exactly one entry, the registered file or folder, whose path is returned; when the model's folder (or the
asked version's folder) is absent the lookup falls back to ``./<name>``.
"""

from __future__ import annotations

import os

#: Folder, relative to the app root, holding ``<name>/<version>/<entry>`` for each deployed model.
MODELS_DIRNAME = "azureml-models"


class ModelPathNotFound(FileNotFoundError):
    """No model of that name (and version) is present where a scoring container keeps models."""


class AmbiguousModelPath(ValueError):
    """A version folder holds no entry or several entries, so the model's path is not defined."""


def models_root() -> str:
    """Return ``azureml-models`` inside ``$AML_APP_ROOT`` (v1's ``MODELS_DIR``), relative when it is unset."""
    return os.path.join(os.environ.get("AML_APP_ROOT", ""), MODELS_DIRNAME)


def get_model_path(model_name: str, version: int | None = None) -> str:
    """Return the path of a deployed model's file or folder, as v1's ``Model.get_model_path`` does in score.py.

    Args:
        model_name: The registered model name.
        version: The version (an ``int``); None picks the highest numbered version folder.

    Returns:
        ``azureml-models/<name>/<version>/<entry>`` (relative to the working directory unless
        ``$AML_APP_ROOT`` is set), or ``<name>`` when only ``./<name>`` exists.

    Raises:
        TypeError: When ``version`` is given and is not an ``int``.
        ValueError: When ``model_name`` is empty.
        AmbiguousModelPath: When the version folder does not hold exactly one entry.
        ModelPathNotFound: When neither the version folder nor ``./<name>`` exists; names both places.
    """
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise TypeError(f"version should be an int, got {version!r}")
    if not model_name:
        raise ValueError("model_name must be a non-empty model name")
    root = models_root()
    model_dir = os.path.join(root, model_name)
    if not os.path.isdir(model_dir):
        return _from_working_directory(model_name, root)
    if version is None:
        versions = [int(entry) for entry in os.listdir(model_dir) if entry.isdigit()]
        if not versions:
            return _from_working_directory(model_name, root)
        version = max(versions)
    version_dir = os.path.join(model_dir, str(version))
    if not os.path.isdir(version_dir):
        return _from_working_directory(model_name, root, version)
    entries = sorted(os.listdir(version_dir))
    if len(entries) != 1:
        raise AmbiguousModelPath(
            f"Model folder {version_dir} must hold exactly one file or folder (the registered model); it "
            f"holds {entries}."
        )
    return os.path.join(version_dir, entries[0])


def _from_working_directory(model_name: str, root: str, version: int | None = None) -> str:
    if os.path.exists(model_name):
        return model_name
    wanted = f"{model_name}/{version}" if version is not None else model_name
    raise ModelPathNotFound(
        f"Model {wanted} not found in {os.path.abspath(os.path.join(root, model_name))} nor at "
        f"{os.path.abspath(model_name)} (working directory {os.getcwd()})."
    )
