"""The app folder a service runs in, laid out as an Azure ML v1 image lays out ``/var/azureml-app``.

Layout (``source_directory="src"``, ``entry_script="x/score.py"``)::

    app-3/                               AML_APP_ROOT: the scoring process's working folder
      src/ ...                           a copy of the source directory, under its own name
        x/score.py                       AZUREML_ENTRY_SCRIPT = "src/x/score.py" (relative to the root)
      azureml-models/<name>/<version>/   each served model version

v1 copies ``source_directory`` to ``$AML_APP_ROOT/<basename>`` and runs from ``AML_APP_ROOT`` with
``AZUREML_SOURCE_DIRECTORY=<basename>`` and ``AZUREML_ENTRY_SCRIPT=<basename>/<entry>``; the scoring server
puts both the app root and the source folder on ``sys.path``. Scripts written for v1 that open
``./src/data.json`` (relative to the working folder) or files next to their own ``__file__`` therefore both
work. Without a source directory the entry script alone is copied to the root.

The source is copied, so editing the notebook's files does not change a running service until ``reload``
or ``update`` makes a new generation. Model files are hard links to the registered (read-only) files, which
costs no space and no time for large models, and keeps serving even if a model version is force-deleted
from the registry (the inode lives while a link does). Where a hard link is impossible (another file system),
the file is copied.

Every target and the ``--check`` trial run use :func:`build_app_folder` and
:meth:`AppFolder.scoring_environment`, so a script sees the same layout and variables wherever it runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jupyter_mldeploy.errors import DeploymentError, InvalidArgument

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

    @property
    def id(self) -> str:
        """``"name:version"``."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class AppFolder:
    """A laid-out app folder.

    Attributes:
        root: The app root (``app-<n>``); the scoring process's working folder and ``AML_APP_ROOT``.
        source_dir: The copied source directory (``<root>/<basename>``), or None when only the entry script
            was copied (it then sits in the root).
        entry_script: The copied entry script.
        model_dir: ``AZUREML_MODEL_DIR``: ``azureml-models/<name>/<version>`` for one model, the
            ``azureml-models`` root otherwise (also when no model is served, as v1 does).
        linked_files: Model files placed by hard link.
        copied_files: Model files that had to be copied.
    """

    root: Path
    source_dir: Path | None
    entry_script: Path
    model_dir: Path
    linked_files: int
    copied_files: int

    def scoring_environment(self, place: Callable[[Path], str] | None = None) -> dict[str, str]:
        """Return the layout variables the scoring server reads, with the values v1 gives them.

        ``AML_APP_ROOT`` and ``AZUREML_MODEL_DIR`` are absolute; ``AZUREML_ENTRY_SCRIPT`` and
        ``AZUREML_SOURCE_DIRECTORY`` are relative to the app root, as in a v1 image (azureml-inference-server-http
        1.5 joins them with ``AML_APP_ROOT``). ``AZUREML_SOURCE_DIRECTORY`` is left out without a source
        directory.

        Args:
            place: Maps a path of this folder to the path the server sees it at (a container's mount);
                default: the path itself.

        Returns:
            dict[str, str]: ``AML_APP_ROOT``, ``AZUREML_MODEL_DIR``, ``AZUREML_ENTRY_SCRIPT`` and, with a
            source directory, ``AZUREML_SOURCE_DIRECTORY``.
        """
        where = place or (lambda path: str(path))
        env = {
            "AML_APP_ROOT": where(self.root),
            "AZUREML_MODEL_DIR": where(self.model_dir),
            "AZUREML_ENTRY_SCRIPT": self.entry_script.relative_to(self.root).as_posix(),
        }
        if self.source_dir is not None:
            env["AZUREML_SOURCE_DIRECTORY"] = self.source_dir.relative_to(self.root).as_posix()
        return env


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


def source_folder_name(source_directory: Path) -> str:
    """Return the name the source directory gets inside the app root (its own base name, as v1).

    Raises:
        InvalidArgument: When that name is empty (the file-system root) or ``azureml-models`` (where the
            served models go).
    """
    name = source_directory.resolve().name
    if not name or name == MODELS_DIRNAME:
        raise InvalidArgument(
            f"source_directory {str(source_directory)!r} cannot be served: its folder name must be neither empty "
            f"nor {MODELS_DIRNAME!r}; put the scripts in a folder of another name."
        )
    return name


def build_app_folder(
    root: Path,
    entry_script: Path,
    source_directory: Path | None,
    models: list[ModelSource],
    exclude: Iterable[Path] = (),
) -> AppFolder:
    """Lay out a new app folder; on any failure remove what was written and raise.

    Args:
        root: The folder to create (replaced when it exists).
        entry_script: The user's entry script (absolute; inside ``source_directory`` when that is given).
        source_directory: The user's source folder, copied whole to ``<root>/<its name>``; None copies the
            entry script alone into the root.
        models: Model versions to link under ``azureml-models/`` (may be empty: a deployment that serves
            files from its source directory only).
        exclude: Paths never copied from the source directory (the workspace folder).

    Returns:
        AppFolder: The layout.

    Raises:
        InvalidArgument: For a source directory whose name cannot be used (see :func:`source_folder_name`).
        DeploymentError: When a file cannot be copied or linked (names it).
    """
    if root.exists():
        remove_app_folder(root)
    source_dir: Path | None = None
    if source_directory is not None:
        source_dir = root / source_folder_name(source_directory)
    try:
        root.mkdir(parents=True)
        if source_directory is not None and source_dir is not None:
            shutil.copytree(source_directory, source_dir, ignore=_ignore(exclude), symlinks=False)
            script = source_dir / entry_script.relative_to(source_directory)
        else:
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
        remove_app_folder(root)
        raise DeploymentError(f"Could not lay out the app folder {root}: {exc}") from exc
    model_dir = models_root / models[0].name / str(models[0].version) if len(models) == 1 else models_root
    return AppFolder(
        root=root, source_dir=source_dir, entry_script=script, model_dir=model_dir, linked_files=linked,
        copied_files=copied,
    )


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
