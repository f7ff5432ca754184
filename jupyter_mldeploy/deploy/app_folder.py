"""The app folder a service runs in: ``deployments/<service>/app-<generation>/``.

Layout (the one Azure ML v1 images use under ``/var/azureml-app``)::

    app-3/
      score.py ...                       a copy of the source directory (or of the entry script alone)
      azureml-models/<name>/<version>/   each served model version

The source is copied, so editing the notebook's files does not change a running service until ``reload``
or ``update`` makes a new generation. Model files are hard links to the registered (read-only) files, which
costs no space and no time for large models, and keeps serving even if a model version is force-deleted
from the registry (the inode lives while a link does). Where a hard link is impossible (another file system),
the file is copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jupyter_mldeploy.errors import DeploymentError

MODELS_DIRNAME = "azureml-models"
#: Folders never copied from a source directory: caches and version control, which a service never needs.
_SKIPPED_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class ModelSource:
    """A model version to place in the app folder.

    Attributes:
        name: Model name.
        version: Model version.
        folder: The registered version folder (``models/<name>/<version>``), whose content is linked.
    """

    name: str
    version: int
    folder: Path


@dataclass(frozen=True)
class AppFolder:
    """A laid-out app folder.

    Attributes:
        root: The app root (``app-<n>``); the scoring process's working folder and ``AML_APP_ROOT``.
        entry_script: The copied entry script.
        model_dir: ``AZUREML_MODEL_DIR``: ``azureml-models/<name>/<version>`` for one model, the
            ``azureml-models`` root otherwise.
        linked_files: Model files placed by hard link.
        copied_files: Model files that had to be copied.
    """

    root: Path
    entry_script: Path
    model_dir: Path
    linked_files: int
    copied_files: int


def _ignore(excluded: Iterable[Path]) -> Callable[[str, list[str]], set[str]]:
    excluded_paths = {p.resolve() for p in excluded}

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in _SKIPPED_NAMES}
        here = Path(folder).resolve()
        # The workspace often lives inside the source folder (./.mldeploy next to the notebook); copying it
        # would copy every deployment into the new one, recursively.
        skipped |= {n for n in names if (here / n).resolve() in excluded_paths}
        return skipped

    return ignore


def _link_tree(source: Path, target: Path) -> tuple[int, int]:
    linked = copied = 0
    for dirpath, _dirnames, filenames in os.walk(source):
        relative = Path(dirpath).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for filename in filenames:
            src = Path(dirpath) / filename
            dst = target / relative / filename
            try:
                os.link(src, dst)
                linked += 1
            except OSError:
                shutil.copy2(src, dst)
                copied += 1
    return linked, copied


def build_app_folder(
    root: Path,
    entry_script: Path,
    source_directory: Path | None,
    models: list[ModelSource],
    exclude: Iterable[Path] = (),
) -> AppFolder:
    """Lay out a new app folder; on any failure remove what was written and raise.

    Args:
        root: The folder to create (must not exist).
        entry_script: The user's entry script (absolute).
        source_directory: The user's source folder, copied whole; None copies the entry script alone.
        models: Model versions to link under ``azureml-models/``.
        exclude: Paths never copied from the source directory (the workspace folder).

    Returns:
        AppFolder: The layout.

    Raises:
        DeploymentError: When a file cannot be copied or linked (names it).
    """
    if root.exists():
        shutil.rmtree(root)
    try:
        if source_directory is not None:
            ignore = _ignore(exclude)
            shutil.copytree(source_directory, root, ignore=ignore, symlinks=False)
            stale_models = root / MODELS_DIRNAME
            if stale_models.exists():
                # The service's models come from the registry, never from a folder of the same name.
                shutil.rmtree(stale_models)
            script = root / entry_script.relative_to(source_directory)
        else:
            root.mkdir(parents=True)
            script = root / entry_script.name
            shutil.copy2(entry_script, script)
        models_root = root / MODELS_DIRNAME
        models_root.mkdir()
        linked = copied = 0
        for model in models:
            placed = _link_tree(model.folder, models_root / model.name / str(model.version))
            linked += placed[0]
            copied += placed[1]
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise DeploymentError(f"Could not lay out the app folder {root}: {exc}") from exc
    if len(models) == 1:
        model_dir = models_root / models[0].name / str(models[0].version)
    else:
        model_dir = models_root
    return AppFolder(root=root, entry_script=script, model_dir=model_dir, linked_files=linked, copied_files=copied)


def remove_app_folder(root: Path) -> None:
    """Remove an app folder, including read-only hard links to registered model files."""

    def make_writable(function: Callable[..., object], path: str, _exc: object) -> None:
        parent = os.path.dirname(path)
        os.chmod(parent, 0o755)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o755)
        function(path)

    if root.exists():
        shutil.rmtree(root, onerror=make_writable)
