"""Storage of registered models: rows in the workspace's SQLite registry plus read-only files on disk.

Layout inside the workspace (see workspace.py)::

    models/<name>/<version>/<root>      the registered file, or the registered folder under its own name
    models/<name>/<version>/.mldeploy-samples/sample_input.json, sample_output.json
                                        the version's samples, when given (see registry/samples.py)
    models/.staging/<uuid>/lock         flock'd by the process that owns the staging folder
    models/.staging/<uuid>/content/     files being copied (registration) or removed (deletion)

Integrity rules, as BentoML's store cleans up a half-written bento and MLflow assigns versions in one
database transaction:

* Files are copied and hashed into a private staging folder first, while its lock file is held. Nothing in
  ``.staging`` is ever visible as a model.
* One ``BEGIN IMMEDIATE`` transaction then assigns ``max(version) + 1``, renames the staging content to
  ``models/<name>/<version>`` (a single ``rename(2)`` on one file system) and inserts the rows. Two processes
  can never get the same number, and a version is visible only once its row is committed.
* A process killed before the rename leaves only a staging folder whose lock is no longer held; the next
  registration removes it. A process killed between the rename and the commit leaves a version folder with
  no row (an orphan); the next registration of that name gets the same number and removes the orphan first,
  while it holds the database's write lock.
* A deletion moves the version folder into a staging folder that records where it came from
  (``restore.json``) in the same transaction that deletes the rows. If the process dies before the commit,
  the rows come back (rollback) and the next clean-up moves the folder back; after the commit it is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jupyter_mldeploy.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from jupyter_mldeploy.registry.samples import SAMPLES_DIRNAME, SampleData, to_sample
from jupyter_mldeploy.workspace import Workspace

#: Name of the folder under ``models/`` holding in-flight registrations and deletions. Model names cannot
#: start with ``.``, so it never clashes with a model.
STAGING_DIRNAME = ".staging"
_LOCK_NAME = "lock"
_CONTENT_NAME = "content"
_RESTORE_NAME = "restore.json"
#: A staging folder without a lock file is only removed once it is this old (seconds): its owner may be
#: between ``mkdir`` and creating the lock file.
STALE_UNLOCKED_AGE_S = 60.0
#: Copy and hash in blocks of this many bytes.
CHUNK_SIZE = 1024 * 1024
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


@dataclass(frozen=True)
class ModelFile:
    """One stored file of a model version.

    Attributes:
        path: POSIX path relative to the version folder (``"model.pkl"``, ``"models/weights.bin"``).
        size: Size in bytes.
        sha256: Hex sha256 of the content, recorded when it was registered.
    """

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelRecord:
    """One registered model version as stored in the registry (a plain value object).

    Attributes:
        name: Model name.
        version: Version number, 1, 2, 3 ... per name.
        description: Free text, or None.
        tags: Mutable ``str -> str`` labels.
        properties: Add-only ``str -> str`` facts.
        created_time: Registration time (timezone-aware, UTC).
        model_framework: v1 framework name (``"ScikitLearn"`` ...), or None.
        model_framework_version: The framework version given at registration, or None.
        sample_input: The JSON sample input of a version registered before layout 3 (kept in its row as
            given), or None; later versions keep their samples in files (``samples``).
        lineage: Where the model came from (see :mod:`jupyter_mldeploy.registry.lineage`).
        root: Basename of the registered path: the model's entry inside the version folder.
        is_folder: Whether ``root`` is a folder.
        files: The stored files, sorted by path.
        run_id: The run it was registered from (``Run.register_model``), or None.
        experiment_name: That run's experiment, or None.
        samples: ``"input"``/``"output"`` -> the sample file (path relative to the version folder, size,
            sha256), for the samples given.
        resource_configuration: v1 ``ResourceConfiguration.serialize()`` shape, or None.
    """

    name: str
    version: int
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    created_time: datetime
    model_framework: str | None
    model_framework_version: str | None
    sample_input: Any
    lineage: dict[str, Any]
    root: str
    is_folder: bool
    files: tuple[ModelFile, ...] = field(default=())
    run_id: str | None = None
    experiment_name: str | None = None
    samples: dict[str, ModelFile] = field(default_factory=dict)
    resource_configuration: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """``"name:version"``, the v1 model id."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class NewModel:
    """What to register: the source files and the metadata of a new version.

    Attributes:
        name: Validated model name.
        root: Basename of the registered path.
        is_folder: Whether the registered path is a folder.
        entries: ``(source file, POSIX destination relative to the version folder)`` pairs.
        description: Free text, or None.
        tags: Validated tags.
        properties: Validated properties.
        created_time: Registration time, UTC.
        model_framework: v1 framework name, or None.
        model_framework_version: Framework version, or None.
        sample_input: The checked sample input, or None.
        lineage: Lineage dict.
        run_id: The run it is registered from, or None.
        experiment_name: That run's experiment, or None.
        sample_output: The checked sample output, or None.
        resource_configuration: v1 ``ResourceConfiguration.serialize()`` shape, or None.
    """

    name: str
    root: str
    is_folder: bool
    entries: tuple[tuple[Path, str], ...]
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    created_time: datetime
    model_framework: str | None
    model_framework_version: str | None
    sample_input: SampleData | None
    lineage: dict[str, Any]
    run_id: str | None = None
    experiment_name: str | None = None
    sample_output: SampleData | None = None
    resource_configuration: dict[str, Any] | None = None


class _Staging:
    """A private folder under ``models/.staging/`` whose lock file this process holds (flock).

    Use :meth:`create`, fill or move things into :attr:`content`, then :meth:`close`, which removes the
    folder and releases the lock. If the process dies instead, the kernel releases the flock and the next
    :meth:`ModelStore.clean_staging` removes the folder (or, for an uncommitted deletion, restores it).
    """

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self.content = folder / _CONTENT_NAME
        self._fd: int | None = fd

    @classmethod
    def create(cls, staging_root: Path, restore_to: tuple[str, int] | None = None) -> _Staging:
        """Make a new staging folder and lock it.

        Args:
            staging_root: ``models/.staging``.
            restore_to: For a deletion, the ``(name, version)`` whose folder will be moved in; recorded in
                ``restore.json`` so a clean-up can put the folder back if the deletion never committed.
        """
        staging_root.mkdir(parents=True, exist_ok=True)
        while True:
            folder = staging_root / uuid.uuid4().hex
            folder.mkdir()
            lock_path = folder / _LOCK_NAME
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                # A cleaner removed the folder between mkdir and open (it judged it stale): start over.
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A cleaner may have locked and removed the folder between our open and flock; the lock we hold
            # is then on an unlinked file. Only a lock on the file still at lock_path protects the folder.
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.write(fd, f"{os.getpid()}\n".encode())
                if restore_to is not None:
                    marker = {"name": restore_to[0], "version": restore_to[1]}
                    (folder / _RESTORE_NAME).write_text(json.dumps(marker))
                return cls(folder, fd)
            os.close(fd)

    def close(self) -> None:
        """Remove the staging folder (whatever is left in it), then release the lock."""
        if self._fd is None:
            return
        try:
            remove_tree(self.folder)
        finally:
            os.close(self._fd)
            self._fd = None


def remove_stale_staging(staging_root: Path, recover: Callable[[Path], None] | None = None) -> list[Path]:
    """Remove staging folders whose owner is gone (its lock is not held).

    Args:
        staging_root: ``models/.staging``.
        recover: Called with a stale folder (while its lock is held) before it is removed, to move back
            the content of a deletion that never committed.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    if not staging_root.is_dir():
        return removed
    for entry in staging_root.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            with contextlib.suppress(OSError):
                entry.unlink()
            continue
        try:
            fd = os.open(entry / _LOCK_NAME, os.O_RDWR)
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - entry.stat().st_mtime > STALE_UNLOCKED_AGE_S:
                    remove_tree(entry)
                    removed.append(entry)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive and working
            if recover is not None and (entry / _RESTORE_NAME).is_file():
                recover(entry)
            remove_tree(entry)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def remove_tree(path: Path) -> None:
    """Remove a file or folder tree, including read-only files; a missing path is not an error."""

    def make_writable_and_retry(function: Callable[..., Any], failed: str, *_: Any) -> None:
        parent = os.path.dirname(failed)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
        with contextlib.suppress(OSError):
            os.chmod(failed, stat.S_IRWXU)
        function(failed)

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable_and_retry)
        else:
            shutil.rmtree(path, onerror=make_writable_and_retry)


def copy_and_hash(source: Path, target: Path) -> ModelFile:
    """Copy one file and hash it in the same pass.

    Args:
        source: File to read.
        target: File to create (its parent must exist); must not exist yet.

    Returns:
        A :class:`ModelFile` whose ``path`` is ``target``'s name (callers set the relative path).
    """
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(target, "xb") as dst:
        while block := src.read(CHUNK_SIZE):
            digest.update(block)
            dst.write(block)
            size += len(block)
        dst.flush()
        os.fsync(dst.fileno())
    return ModelFile(path=target.name, size=size, sha256=digest.hexdigest())


class ModelStore:
    """The model registry of one workspace: SQLite rows plus files under ``models/``.

    Args:
        workspace: The workspace whose ``registry.sqlite`` and ``models/`` folder are used.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @property
    def staging_root(self) -> Path:
        """``models/.staging``."""
        return self.workspace.models_dir / STAGING_DIRNAME

    def version_dir(self, name: str, version: int) -> Path:
        """Folder of one version: ``models/<name>/<version>``."""
        return self.workspace.models_dir / name / str(version)

    def clean_staging(self) -> list[Path]:
        """Remove staging folders left by dead processes; put back folders of uncommitted deletions.

        Returns:
            The staging folders removed.
        """
        return remove_stale_staging(self.staging_root, recover=self._restore)

    def _restore(self, entry: Path) -> None:
        content = entry / _CONTENT_NAME
        if not content.is_dir():
            return
        marker = json.loads((entry / _RESTORE_NAME).read_text())
        name, version = str(marker["name"]), int(marker["version"])
        with self.workspace.transaction() as conn:
            # Under the write lock: the row still existing means the deletion rolled back, and no register
            # can be publishing this number (it is not above the maximum).
            exists = conn.execute(
                "SELECT 1 FROM models WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            target = self.version_dir(name, version)
            if exists and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(content, target)

    # -- writes ---------------------------------------------------------------------------------------

    def register(self, new: NewModel) -> ModelRecord:
        """Store a new version: copy and hash into staging, then assign the version and publish atomically.

        Args:
            new: Validated source entries and metadata.

        Returns:
            The stored record.

        Raises:
            OSError: When a source file cannot be read or the disk is full; nothing is left visible.
        """
        self.clean_staging()
        staging = _Staging.create(self.staging_root)
        try:
            files = self._fill(staging.content, new)
            samples = self._write_samples(staging.content, new)
            final: Path | None = None
            try:
                with self.workspace.transaction() as conn:
                    row = conn.execute(
                        "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?", (new.name,)
                    ).fetchone()
                    version = int(row[0])
                    target = self.version_dir(new.name, version)
                    # No row can exist for max+1, so a folder there is an orphan of a crash between rename
                    # and commit. We hold the write lock: nobody else can be publishing this number.
                    remove_tree(target)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(staging.content, target)
                    final = target
                    conn.execute(
                        "INSERT INTO models (name, version, description, tags, properties, created_time, "
                        "model_framework, model_framework_version, sample_input, lineage, root, is_folder, "
                        "run_id, experiment_name, samples, resource_configuration) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            new.name,
                            version,
                            new.description,
                            json.dumps(new.tags, sort_keys=True),
                            json.dumps(new.properties, sort_keys=True),
                            new.created_time.isoformat(),
                            new.model_framework,
                            new.model_framework_version,
                            None,  # the column of layout <= 2 samples; samples are files since layout 3
                            json.dumps(new.lineage, sort_keys=True),
                            new.root,
                            int(new.is_folder),
                            new.run_id,
                            new.experiment_name,
                            json.dumps({k: vars(f) for k, f in samples.items()}, sort_keys=True),
                            None if new.resource_configuration is None else json.dumps(new.resource_configuration),
                        ),
                    )
                    conn.executemany(
                        "INSERT INTO model_files (name, version, path, size, sha256) VALUES (?, ?, ?, ?, ?)",
                        [(new.name, version, f.path, f.size, f.sha256) for f in files],
                    )
            except BaseException:
                if final is not None:
                    with contextlib.suppress(OSError):
                        remove_tree(final)
                raise
        finally:
            staging.close()
        return self.get(new.name, version)

    def _fill(self, content: Path, new: NewModel) -> list[ModelFile]:
        content.mkdir()
        if new.is_folder:
            (content / new.root).mkdir()
        files: list[ModelFile] = []
        for source, relative in new.entries:
            target = content / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            copied = copy_and_hash(source, target)
            os.chmod(target, _READ_ONLY)
            files.append(ModelFile(path=relative, size=copied.size, sha256=copied.sha256))
        return sorted(files, key=lambda f: f.path)

    @staticmethod
    def _write_samples(content: Path, new: NewModel) -> dict[str, ModelFile]:
        """Write the sample files into the staged version folder (published with it, or not at all)."""
        written: dict[str, ModelFile] = {}
        for which, sample in (("input", new.sample_input), ("output", new.sample_output)):
            if sample is None:
                continue
            relative = f"{SAMPLES_DIRNAME}/sample_{which}.json"
            target = content / relative
            target.parent.mkdir(exist_ok=True)
            encoded = json.dumps(sample.to_json(), separators=(",", ":")).encode()
            with open(target, "xb") as handle:
                handle.write(encoded)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(target, _READ_ONLY)
            written[which] = ModelFile(relative, len(encoded), hashlib.sha256(encoded).hexdigest())
        return written

    def read_sample(self, record: ModelRecord, which: str) -> SampleData | None:
        """Return a version's sample input or output (``which``: ``"input"`` or ``"output"``), or None.

        A version registered before layout 3 has its sample input in its row: it is read as a table when it
        is one (``{"data": rows}`` ...), else as the JSON value it is.

        Raises:
            IntegrityError: When the sample file is missing or no longer matches its recorded sha256.
        """
        stored = record.samples.get(which)
        if stored is None:
            if which != "input" or record.sample_input is None:
                return None
            try:
                return to_sample(record.sample_input, "sample_input")
            except InvalidArgument:  # e.g. {"data": []}: accepted as JSON before layout 3
                return SampleData("json", record.sample_input)
        path = self.version_dir(record.name, record.version) / stored.path
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"Model '{record.id}' is damaged: its sample file {path} is missing; register the model again."
            ) from exc
        if hashlib.sha256(raw).hexdigest() != stored.sha256:
            raise IntegrityError(
                f"Model '{record.id}' is damaged: {path} was changed after registration (sha256 differs); "
                "register the model again."
            )
        return SampleData.from_json(json.loads(raw), str(path))

    def delete(self, name: str, version: int, force: bool = False) -> None:
        """Remove a version's rows and files.

        The folder is first moved into a locked staging folder inside the same transaction that deletes
        the rows, so a crash leaves either the whole version or nothing visible.

        Args:
            name: Model name.
            version: Version number.
            force: Delete even when a service uses this version.

        Raises:
            NotFound: When the version does not exist.
            Conflict: When a service uses it and ``force`` is False; names the services.
        """
        self.clean_staging()
        staging = _Staging.create(self.staging_root, restore_to=(name, version))
        try:
            moved_from: Path | None = None
            try:
                with self.workspace.transaction() as conn:
                    self._require(conn, name, version)
                    self.workspace.drop_stale_service_rows(conn)
                    services = [
                        r[0]
                        for r in conn.execute(
                            "SELECT DISTINCT s.name FROM service_models AS sm JOIN services AS s "
                            "ON s.name = sm.service WHERE sm.model_name = ? AND sm.model_version = ? "
                            "ORDER BY s.name",
                            (name, version),
                        )
                    ]
                    if services and not force:
                        listed = ", ".join(repr(s) for s in services)
                        raise Conflict(
                            f"Model '{name}:{version}' is used by service {listed}; delete the service first, "
                            "or pass force=True (CLI: --force) to delete the model anyway."
                        )
                    folder = self.version_dir(name, version)
                    if folder.exists():
                        os.rename(folder, staging.content)
                        moved_from = folder
                    conn.execute("DELETE FROM model_files WHERE name = ? AND version = ?", (name, version))
                    conn.execute("DELETE FROM models WHERE name = ? AND version = ?", (name, version))
                    with contextlib.suppress(OSError):
                        folder.parent.rmdir()  # only succeeds when no version is left
            except BaseException:
                if moved_from is not None and staging.content.exists():
                    moved_from.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(staging.content, moved_from)
                raise
        finally:
            staging.close()

    def update_tags(self, name: str, version: int, add: dict[str, str], remove: Iterable[str]) -> dict[str, str]:
        """Merge ``add`` into a version's tags and drop the ``remove`` keys, in one transaction.

        Returns:
            The tags now stored.

        Raises:
            NotFound: When the version does not exist.
        """
        remove = list(remove)

        def change(tags: dict[str, str]) -> dict[str, str]:
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            return tags

        return self._update_json(name, version, "tags", change)

    def add_properties(self, name: str, version: int, add: dict[str, str]) -> dict[str, str]:
        """Add properties to a version; an existing key may only be given its current value (add-only, v1).

        Returns:
            The properties now stored.

        Raises:
            NotFound: When the version does not exist.
            InvalidArgument: When a key exists with another value.
        """
        from jupyter_mldeploy.errors import InvalidArgument

        def change(properties: dict[str, str]) -> dict[str, str]:
            changed = sorted(k for k, v in add.items() if k in properties and properties[k] != v)
            if changed:
                raise InvalidArgument(
                    f"Model '{name}:{version}' already has properties {changed}; properties are add-only "
                    "(as in Azure ML v1): use a new key, or a tag for a value that changes."
                )
            properties.update(add)
            return properties

        return self._update_json(name, version, "properties", change)

    def _update_json(
        self, name: str, version: int, column: str, change: Callable[[dict[str, str]], dict[str, str]]
    ) -> dict[str, str]:
        with self.workspace.transaction() as conn:
            self._require(conn, name, version)
            raw = conn.execute(
                f"SELECT {column} FROM models WHERE name = ? AND version = ?", (name, version)
            ).fetchone()[0]
            value = change(json.loads(raw))
            conn.execute(
                f"UPDATE models SET {column} = ? WHERE name = ? AND version = ?",
                (json.dumps(value, sort_keys=True), name, version),
            )
        return value

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        """Return one version, the latest when ``version`` is None.

        Raises:
            NotFound: Naming the versions that exist, or the models that exist.
        """
        with self.workspace.connect() as conn:
            if version is None:
                row = conn.execute(
                    "SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
                ).fetchone()
            else:
                row = conn.execute("SELECT * FROM models WHERE name = ? AND version = ?", (name, version)).fetchone()
            if row is None:
                raise self._not_found(conn, name, version)
            return self._records(conn, [row])[0]

    def list(self, name: str | None = None, run_id: str | None = None) -> list[ModelRecord]:
        """Return every stored version, sorted by name, then newest version first.

        Args:
            name: Only this model's versions.
            run_id: Only versions registered from this run.
        """
        clauses = [(column, value) for column, value in (("name", name), ("run_id", run_id)) if value is not None]
        where = " AND ".join(f"{column} = ?" for column, _ in clauses)
        with self.workspace.connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM models {'WHERE ' + where if where else ''} ORDER BY name, version DESC",
                [value for _, value in clauses],
            ).fetchall()
            return self._records(conn, rows)

    def _records(self, conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[ModelRecord]:
        files: dict[tuple[str, int], list[ModelFile]] = {}
        names = sorted({row["name"] for row in rows})
        for chunk_start in range(0, len(names), 500):
            chunk = names[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for f in conn.execute(
                f"SELECT name, version, path, size, sha256 FROM model_files WHERE name IN ({marks}) "
                "ORDER BY path",
                chunk,
            ):
                files.setdefault((f["name"], f["version"]), []).append(
                    ModelFile(path=f["path"], size=f["size"], sha256=f["sha256"])
                )
        return [
            ModelRecord(
                name=row["name"],
                version=row["version"],
                description=row["description"],
                tags=json.loads(row["tags"]),
                properties=json.loads(row["properties"]),
                created_time=datetime.fromisoformat(row["created_time"]),
                model_framework=row["model_framework"],
                model_framework_version=row["model_framework_version"],
                sample_input=None if row["sample_input"] is None else json.loads(row["sample_input"]),
                lineage=json.loads(row["lineage"]),
                root=row["root"],
                is_folder=bool(row["is_folder"]),
                files=tuple(files.get((row["name"], row["version"]), ())),
                run_id=row["run_id"],
                experiment_name=row["experiment_name"],
                samples={k: ModelFile(**v) for k, v in json.loads(row["samples"]).items()},
                resource_configuration=None if row["resource_configuration"] is None
                else json.loads(row["resource_configuration"]),
            )
            for row in rows
        ]

    def _require(self, conn: sqlite3.Connection, name: str, version: int) -> None:
        found = conn.execute("SELECT 1 FROM models WHERE name = ? AND version = ?", (name, version)).fetchone()
        if found is None:
            raise self._not_found(conn, name, version)

    def _not_found(self, conn: sqlite3.Connection, name: str, version: int | None) -> NotFound:
        versions = [r[0] for r in conn.execute("SELECT version FROM models WHERE name = ? ORDER BY version", (name,))]
        if versions:
            listed = ", ".join(str(v) for v in versions)
            noun = "version" if len(versions) == 1 else "versions"
            return NotFound(f"Model '{name}' has no version {version}; it has {noun} {listed}.")
        names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM models ORDER BY name LIMIT 11")]
        if not names:
            known = "the workspace has no models yet; register one with Model.register"
        else:
            more = ", ..." if len(names) > 10 else ""
            known = "registered models: " + ", ".join(names[:10]) + more
        return NotFound(f"Model '{name}' not found in workspace {self.workspace.path} ({known}).")

    # -- download -------------------------------------------------------------------------------------

    def download(self, record: ModelRecord, target_dir: Path, exist_ok: bool = False) -> Path:
        """Copy a version's root entry into ``target_dir``, checking every file's sha256 and size.

        Files are written into a hidden temporary folder inside ``target_dir`` first and moved into place
        only when all of them match, so a mismatch leaves no partial output.

        Args:
            record: The version to copy.
            target_dir: Folder to write into (created when missing).
            exist_ok: Replace an existing file, or overwrite the files of an existing folder, of the same
                name; when False an existing one is an error.

        Returns:
            ``target_dir/<root>``: the file for a single-file model, the folder for a folder model.

        Raises:
            Conflict: When the destination exists and ``exist_ok`` is False.
            IntegrityError: When a stored file is missing or no longer matches its recorded checksum.
        """
        source_dir = self.version_dir(record.name, record.version)
        target_dir = Path(target_dir).expanduser().resolve()
        target_dir.mkdir(parents=True, exist_ok=True)
        dest = target_dir / record.root
        if (dest.exists() or dest.is_symlink()) and not exist_ok:
            raise Conflict(
                f"{dest} already exists; pass exist_ok=True (CLI: --overwrite) to replace it, or choose "
                "another target folder."
            )
        tmp = Path(tempfile.mkdtemp(prefix=".mldeploy-download-", dir=target_dir))
        try:
            for expected in record.files:
                source = source_dir / expected.path
                out = tmp / expected.path
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    copied = copy_and_hash(source, out)
                except FileNotFoundError as exc:
                    raise IntegrityError(
                        f"Model '{record.id}' is damaged: {source} is missing from the workspace; "
                        "register the model again from its source."
                    ) from exc
                if (copied.sha256, copied.size) != (expected.sha256, expected.size):
                    raise IntegrityError(
                        f"Model '{record.id}' is damaged: {source} has sha256 {copied.sha256} "
                        f"({copied.size} bytes) but {expected.sha256} ({expected.size} bytes) was recorded "
                        "at registration; the stored copy was changed. Register the model again from its "
                        "source."
                    )
            staged = tmp / record.root
            if record.is_folder:
                staged.mkdir(exist_ok=True)
            self._move_into_place(staged, dest, record.is_folder)
        finally:
            remove_tree(tmp)
        return dest

    @staticmethod
    def _move_into_place(staged: Path, dest: Path, is_folder: bool) -> None:
        if is_folder and dest.is_dir() and not dest.is_symlink():
            # Overwrite the model's files inside an existing folder; other files the user keeps there stay.
            for path in _walk_files(staged):
                relative = path.relative_to(staged)
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest / relative)
            return
        if dest.is_dir() and not dest.is_symlink():
            remove_tree(dest)
        elif is_folder and (dest.exists() or dest.is_symlink()):
            dest.unlink()
        os.replace(staged, dest)


def _walk_files(folder: Path) -> Iterator[Path]:
    for current, _dirs, names in os.walk(folder):
        for file_name in sorted(names):
            yield Path(current) / file_name
