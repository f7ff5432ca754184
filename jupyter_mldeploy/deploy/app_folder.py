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
or ``update`` makes a new generation.

Model files: each registered file is checked against the size and sha256 recorded at registration before
it is placed (a changed byte refuses the deployment with an ``IntegrityError``, as ``Model.download``
does); a file whose inode, size and modification time match an earlier check is not read again
(:class:`VerifiedFiles`). How a file is placed depends on whether the server can write there:

- ``"copy"`` (the process target, whose ``score.py`` runs as the user): a copy-on-write clone where the
  file system has them (``FICLONE``: btrfs, XFS), else a copy, so nothing a deployment writes can change
  the registered version;
- ``"link"`` (the Docker target, which mounts the app folder read-only): a hard link, free in time and
  space, which keeps serving even if the version is force-deleted from the registry.

Every target and the ``--check`` trial run use :func:`build_app_folder` and
:meth:`AppFolder.scoring_environment`, so a script sees the same layout and variables wherever it runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_mldeploy.deploy.state import read_json, write_json_atomic
from jupyter_mldeploy.errors import DeploymentError, IntegrityError, InvalidArgument

MODELS_DIRNAME = "azureml-models"
#: Folders never copied from a source directory: caches and version control, which a service never needs.
_SKIPPED_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


#: ``ioctl`` request of a copy-on-write clone (Linux ``FICLONE``).
_FICLONE = 0x40049409
#: Bytes read at a time while copying and hashing.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFileRef:
    """A registered file and what was recorded of it.

    Attributes:
        path: POSIX path relative to the version folder.
        size: Bytes.
        sha256: Hex digest recorded at registration.
    """

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelSource:
    """A model version to place in the app folder.

    Attributes:
        name: Model name.
        version: Model version.
        folder: The registered version folder (``models/<name>/<version>``).
        files: The registered files with their recorded size and sha256.
    """

    name: str
    version: int
    folder: Path
    files: tuple[ModelFileRef, ...] = field(default=())

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
        copied_files: Model files placed by copy-on-write clone or copy.
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


class VerifiedFiles:
    """Registered files already checked, keyed by path with their inode, size and mtime at the check.

    Kept as JSON in ``<workspace>/deployments/.verified-models.json``, so a redeploy or a reload of a large
    model does not read it again. A lost or stale entry only costs a new check.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        data = read_json(path)
        self.entries: dict[str, list[int | str]] = data if isinstance(data, dict) else {}
        self.changed = False

    @staticmethod
    def _stamp(stat: os.stat_result) -> list[int]:
        return [stat.st_ino, stat.st_size, stat.st_mtime_ns]

    def known(self, path: Path, stat: os.stat_result, sha256: str) -> bool:
        """True when ``path`` was checked against ``sha256`` and has not changed since."""
        return self.entries.get(str(path)) == [*self._stamp(stat), sha256]

    def remember(self, path: Path, stat: os.stat_result, sha256: str) -> None:
        """Record a successful check."""
        self.entries[str(path)] = [*self._stamp(stat), sha256]
        self.changed = True

    def save(self) -> None:
        """Write the entries (atomically) when something was added; entries of removed files are dropped."""
        if self.changed:
            write_json_atomic(self.path, {k: v for k, v in self.entries.items() if os.path.exists(k)})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _clone(source: Path, target: Path) -> bool:
    """Make ``target`` a copy-on-write clone of ``source``; False where the file system has none."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            return False
    return True


def _place_model(
    model: ModelSource, target: Path, mode: str, verified: VerifiedFiles, previous: Path | None
) -> str:
    """Check and place every registered file of ``model`` under ``target``; return how (link/clone/copy).

    With ``previous`` (the same model's folder in the app generation being replaced), a copy placed there
    that is unchanged since it was placed (same inode, size and mtime, so no write reached it) is hard-linked
    instead of copied again: a reload of a large model costs no copy, and the registry stays untouched.
    """
    how = "link"
    for ref in model.files:
        destination = target / ref.path
        destination.parent.mkdir(parents=True, exist_ok=True)
        earlier = previous / ref.path if previous is not None else None
        if mode == "copy" and earlier is not None and earlier.is_file() and verified.known(
            earlier, earlier.stat(), ref.sha256
        ):
            os.link(earlier, destination)
            verified.remember(destination, destination.stat(), ref.sha256)
            continue
        source = model.folder / ref.path
        try:
            stat = source.stat()
        except FileNotFoundError:
            raise IntegrityError(
                f"Model '{model.id}' is damaged: {source} was removed since it was registered; register the "
                "model again."
            ) from None
        if not verified.known(source, stat, ref.sha256):
            actual = _sha256(source) if stat.st_size == ref.size else None
            if actual != ref.sha256:
                raise IntegrityError(
                    f"Model '{model.id}' is damaged: {source} no longer matches the sha256 and size recorded "
                    f"when it was registered ({ref.size} bytes); nothing was deployed. Register the model "
                    "again from its original file."
                )
            verified.remember(source, stat, ref.sha256)
        if mode == "link":
            try:
                os.link(source, destination)
                continue
            except OSError:
                how = "copy"  # another file system: a copy, still verified above
        elif _clone(source, destination):
            how = "clone"
        else:
            how = "copy"
            shutil.copyfile(source, destination)
        verified.remember(destination, destination.stat(), ref.sha256)
    return how


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
    model_placement: str = "copy",
    verified: VerifiedFiles | None = None,
    previous: Path | None = None,
) -> AppFolder:
    """Lay out a new app folder; on any failure remove what was written and raise.

    Args:
        root: The folder to create (replaced when it exists).
        entry_script: The user's entry script (absolute; inside ``source_directory`` when that is given).
        source_directory: The user's source folder, copied whole to ``<root>/<its name>``; None copies the
            entry script alone into the root.
        models: Model versions to place under ``azureml-models/`` (may be empty: a deployment that serves
            files from its source directory only).
        exclude: Paths never copied from the source directory (the workspace folder).
        model_placement: ``"copy"`` (clone or copy: the server may write) or ``"link"`` (hard links: the
            server sees the folder read-only); see the module docstring.
        verified: The checked-files cache to use and update; None checks every file.
        previous: The app root this one replaces (a reload or update): its unchanged model copies are linked
            instead of copied again.

    Returns:
        AppFolder: The layout.

    Raises:
        InvalidArgument: For a source directory whose name cannot be used (see :func:`source_folder_name`),
            or an unknown ``model_placement``.
        IntegrityError: When a registered model file was changed or removed since registration.
        DeploymentError: When a file cannot be copied or linked (names it).
    """
    if model_placement not in ("copy", "link"):
        raise InvalidArgument(f"model_placement must be 'copy' or 'link', not {model_placement!r}.")
    if root.exists():
        remove_app_folder(root)
    source_dir: Path | None = None
    if source_directory is not None:
        source_dir = root / source_folder_name(source_directory)
    checks = verified if verified is not None else VerifiedFiles(root / ".verified.json")
    placed: dict[str, int] = {"link": 0, "clone": 0, "copy": 0}
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
        for model in models:
            relative = Path(MODELS_DIRNAME) / model.name / str(model.version)
            how = _place_model(model, root / relative, model_placement, checks,
                               previous / relative if previous is not None else None)
            placed[how] += len(model.files)
    except IntegrityError:
        remove_app_folder(root)
        raise
    except (OSError, shutil.Error) as exc:
        remove_app_folder(root)
        raise DeploymentError(f"Could not lay out the app folder {root}: {exc}") from exc
    if verified is not None:
        verified.save()
    model_dir = models_root / models[0].name / str(models[0].version) if len(models) == 1 else models_root
    return AppFolder(
        root=root, source_dir=source_dir, entry_script=script, model_dir=model_dir, linked_files=placed["link"],
        copied_files=placed["clone"] + placed["copy"],
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
