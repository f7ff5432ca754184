"""The workspace: one folder holding the registry, environments, deployments and logs.

Layout::

    <workspace>/
      registry.sqlite            models, versions, tags, properties, environments, services (WAL mode)
      models/<name>/<version>/   registered files, read-only once written (and .mldeploy-samples/)
      environments/<name>/<version>/
      deployments/<service>/
      runs/<run_id>/             files of experiment runs (uploaded files, outputs, executed notebooks)

The embedded default needs no server: files plus SQLite. Every table lives in this module's schema so that
one ``LAYOUT_VERSION`` describes the whole folder; a workspace written by another layout version is refused
with a message instead of being misread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jupyter_mldeploy import settings
from jupyter_mldeploy.errors import Conflict, NotFound, WorkspaceError

#: Version of the on-disk layout and database schema. Bump it (and teach ``_check_layout`` to migrate or
#: refuse) whenever a table or folder changes meaning. Version 2 added experiments, runs and their metrics,
#: and the model <-> run lineage columns. Version 3 keeps a version's sample input and output as files in its
#: folder (``samples``: their sha256; the ``sample_input`` column keeps what layout 2 stored) and its
#: ``resource_configuration``.
LAYOUT_VERSION = 3

DEFAULT_DIRNAME = ".mldeploy"
REGISTRY_FILENAME = "registry.sqlite"
#: A service's record inside ``deployments/<service>/``; a service exists exactly when it does.
SERVICE_RECORD_FILENAME = "service.json"

#: Experiments and runs (jupyter_mldeploy.runs), added in layout version 2. Kept apart from ``_SCHEMA`` so the
#: migration from version 1 creates the same tables a new workspace gets.
_RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name          TEXT PRIMARY KEY,
    created_time  TEXT NOT NULL                        -- ISO 8601, UTC
);
CREATE TABLE IF NOT EXISTS runs (
    id               TEXT    PRIMARY KEY,
    experiment       TEXT    NOT NULL REFERENCES experiments (name),
    number           INTEGER NOT NULL,                 -- 1, 2, 3 ... per experiment
    kind             TEXT    NOT NULL,                 -- interactive | pipeline
    status           TEXT    NOT NULL,                 -- Running | Completed | Failed | Canceled
    tags             TEXT    NOT NULL DEFAULT '{}',    -- JSON object
    parameters       TEXT    NOT NULL DEFAULT '{}',    -- JSON object (pipeline parameters)
    start_time       TEXT    NOT NULL,                 -- ISO 8601, UTC
    end_time         TEXT,
    error            TEXT,                             -- why it failed, or NULL
    host             TEXT    NOT NULL,                 -- where pid lives
    pid              INTEGER NOT NULL,                 -- the process that owns the run while Running
    pid_create_time  REAL    NOT NULL,                 -- psutil create time of pid (against pid reuse)
    source           TEXT,                             -- the notebook of a pipeline run
    UNIQUE (experiment, number)
);
CREATE TABLE IF NOT EXISTS run_metrics (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,    -- append-only: rows are never updated
    run_id       TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,                     -- scalar | list | row | table | image
    value        TEXT    NOT NULL,                     -- JSON
    logged_time  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS run_metrics_by_run ON run_metrics (run_id, name);
CREATE INDEX IF NOT EXISTS models_by_run ON models (run_id);
"""

#: Statements that bring a workspace of layout version N to N + 1, run in one write transaction on open.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE models ADD COLUMN run_id TEXT",
        "ALTER TABLE models ADD COLUMN experiment_name TEXT",
        *(statement.strip() for statement in _RUNS_SCHEMA.split(";") if statement.strip()),
    ),
    # Adds columns only: a layout-2 row keeps its sample input in ``sample_input``, read as before.
    2: (
        "ALTER TABLE models ADD COLUMN samples TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE models ADD COLUMN resource_configuration TEXT",
    ),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    name              TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    description       TEXT,
    tags              TEXT    NOT NULL DEFAULT '{}',   -- JSON object
    properties        TEXT    NOT NULL DEFAULT '{}',   -- JSON object, add-only
    created_time      TEXT    NOT NULL,                -- ISO 8601, UTC
    model_framework   TEXT,
    model_framework_version TEXT,
    sample_input      TEXT,                            -- JSON sample of a layout <= 2 version, or NULL
    lineage           TEXT    NOT NULL DEFAULT '{}',   -- JSON object
    root              TEXT    NOT NULL,                -- basename of the registered path
    is_folder         INTEGER NOT NULL,
    run_id            TEXT,                            -- the run it was registered from, or NULL
    experiment_name   TEXT,                            -- that run's experiment, or NULL
    samples           TEXT    NOT NULL DEFAULT '{}',   -- JSON {"input"|"output": {path, size, sha256}}
    resource_configuration TEXT,                       -- JSON {"cpu", "memoryInGB", "gpu"}, or NULL
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_files (
    name     TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    path     TEXT    NOT NULL,                         -- POSIX path relative to the version folder
    size     INTEGER NOT NULL,                         -- bytes
    sha256   TEXT    NOT NULL,
    PRIMARY KEY (name, version, path),
    FOREIGN KEY (name, version) REFERENCES models (name, version) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS environments (
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    spec          TEXT    NOT NULL,                    -- azureml_environment.json content
    spec_hash     TEXT    NOT NULL,
    created_time  TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS services (
    name          TEXT PRIMARY KEY,
    runtime       TEXT NOT NULL,                       -- process | docker | kubernetes
    created_time  TEXT NOT NULL,
    updated_time  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS service_models (
    service        TEXT    NOT NULL REFERENCES services (name) ON DELETE CASCADE,
    model_name     TEXT    NOT NULL,
    model_version  INTEGER NOT NULL,
    PRIMARY KEY (service, model_name, model_version)
);
""" + _RUNS_SCHEMA


def is_workspace(folder: Path) -> bool:
    """True when ``folder`` holds a workspace: its ``registry.sqlite`` exists (the one test used everywhere)."""
    return (folder / REGISTRY_FILENAME).is_file()


@dataclass(frozen=True)
class WorkspaceLocation:
    """Where the workspace to use is, found by :func:`locate_workspace`.

    Attributes:
        path: The workspace folder (absolute): the one found, else the one a writing command creates.
        exists: True when ``path`` already holds a workspace.
        searched: The folders looked at, in order (named when no workspace exists).
        source: How ``path`` was chosen: ``"given"``, ``"$MLDEPLOY_WORKSPACE"``, ``"nearest .mldeploy"`` or
            ``"default"`` (a new ``.mldeploy`` in the start folder).
    """

    path: Path
    exists: bool
    searched: tuple[Path, ...]
    source: str

    def missing_message(self) -> str:
        """One sentence for a reading command that found no workspace: the folders searched and the fix."""
        where = ", ".join(str(p) for p in self.searched)
        return (
            f"No workspace found (looked for {REGISTRY_FILENAME} in {where}). Create one with "
            f"'mldeploy workspace create {self.path}' (Workspace.create in Python), or register a model: "
            "the first register creates it."
        )


def locate_workspace(path: str | os.PathLike[str] | None = None, start: str | os.PathLike[str] | None = None,
                     ) -> WorkspaceLocation:
    """Find the workspace to use: the one resolution rule of the package.

    ``Workspace.from_config``, the CLI, the magics, the panel and the Jupyter server extension all call this,
    so they agree on which folder a command means. Order:

    1. ``path`` when given, else ``$MLDEPLOY_WORKSPACE``: that folder when it holds a workspace, else its
       ``.mldeploy/`` when that does, else that folder (to be created);
    2. the nearest ``.mldeploy/`` holding a workspace in ``start`` or its parents (as v1 looks for
       ``config.json``);
    3. else ``<start>/.mldeploy`` (to be created).

    A folder holds a workspace when its ``registry.sqlite`` exists (:func:`is_workspace`). Nothing is created
    here.

    Args:
        path: A workspace folder, or a project folder holding ``.mldeploy/``; relative paths are read
            against ``start``.
        start: Where relative paths and the search start (default: the current directory; the Jupyter
            server passes its ``root_dir``).

    Returns:
        WorkspaceLocation
    """
    base = Path(start).expanduser().resolve() if start is not None else Path.cwd().resolve()
    given = path if path is not None else settings.MLDEPLOY_WORKSPACE.get()
    if given is not None and str(given) != "":
        candidate = (base / Path(given).expanduser()).resolve()
        source = "given" if path is not None else "$MLDEPLOY_WORKSPACE"
        nested = candidate / DEFAULT_DIRNAME
        for folder in (candidate, nested):
            if is_workspace(folder):
                return WorkspaceLocation(folder, True, (candidate, nested), source)
        return WorkspaceLocation(candidate, False, (candidate, nested), source)
    searched = tuple(folder / DEFAULT_DIRNAME for folder in (base, *base.parents))
    for folder in searched:
        if is_workspace(folder):
            return WorkspaceLocation(folder, True, searched, "nearest .mldeploy")
    return WorkspaceLocation(base / DEFAULT_DIRNAME, False, searched, "default")


def _migrate(conn: sqlite3.Connection, database: Path) -> int:
    """Bring an older layout up to :data:`LAYOUT_VERSION`, one step per :data:`_MIGRATIONS` entry.

    Runs in one ``BEGIN IMMEDIATE`` transaction and reads the version again under the write lock, so two
    processes opening the same old workspace migrate it once; a failure rolls every step back (SQLite's
    ``ALTER TABLE`` is transactional), leaving the workspace as it was.

    Args:
        conn: An open connection to ``database``.
        database: The database's path, for messages.

    Returns:
        The layout version now stored (:data:`LAYOUT_VERSION`, or the older one a missing step stops at).

    Raises:
        WorkspaceError: When a step fails; names the step, and nothing was changed.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()[0])
        start = found
        while found < LAYOUT_VERSION and found in _MIGRATIONS:
            for statement in _MIGRATIONS[found]:
                try:
                    conn.execute(statement)
                except sqlite3.Error as exc:
                    raise WorkspaceError(
                        f"Could not bring {database} from layout version {start} to "
                        f"{LAYOUT_VERSION} ({statement!r} failed: {exc}); nothing was changed. Open it with the "
                        "jupyter-mldeploy that wrote it, or restore registry.sqlite from a backup."
                    ) from exc
            found += 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'layout_version'", (str(found),))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found


class Workspace:
    """A local workspace folder, the v1 ``Workspace`` without Azure.

    ``Workspace(path)`` opens (and if needed lays out) the folder at ``path``.

    Args:
        path: The workspace folder. Created with its layout when missing.

    Attributes:
        path (Path): The folder (absolute).
        created (bool): True when this call laid the folder out (writing faces say "Created workspace at").

    Raises:
        WorkspaceError: When the folder holds a workspace of another layout version, or its database cannot
            be opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().resolve()
        self.created = not is_workspace(self.path)
        self._init_layout()

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], exist_ok: bool = True) -> Workspace:
        """Create a workspace folder (v1: ``Workspace.create``).

        Args:
            path: Folder to create.
            exist_ok: When False, an existing workspace at ``path`` is an error.

        Returns:
            The workspace.

        Raises:
            Conflict: When ``exist_ok`` is False and a workspace exists at ``path``.
        """
        target = Path(path).expanduser().resolve()
        if not exist_ok and is_workspace(target):
            raise Conflict(f"A workspace already exists at {target}; pass exist_ok=True to open it.")
        return cls(target)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, create: bool = True) -> Workspace:
        """Find the workspace to use, as v1's ``Workspace.from_config`` finds ``config.json``.

        The folder is chosen by :func:`locate_workspace`: ``path`` when given; else ``$MLDEPLOY_WORKSPACE``;
        else the nearest ``.mldeploy/`` in the current folder or its parents; else ``./.mldeploy``.

        Args:
            path: A workspace folder, or a folder holding ``.mldeploy/``.
            create: Lay out a new workspace when none exists (the default, for code about to register);
                False for reading: a missing workspace is then an error instead of a new empty folder.

        Returns:
            The workspace; its ``created`` is True when this call created it.

        Raises:
            NotFound: When ``create`` is False and no workspace exists; the message names the folders
                searched and how to create one.
        """
        location = locate_workspace(path)
        if not location.exists and not create:
            raise NotFound(location.missing_message())
        return cls(location.path)

    @classmethod
    def get(cls, path: str | os.PathLike[str]) -> Workspace:
        """Open an existing workspace without creating one.

        Args:
            path: The workspace folder.

        Raises:
            NotFound: When ``path`` holds no workspace.
        """
        target = Path(path).expanduser().resolve()
        if not is_workspace(target):
            raise NotFound(f"No workspace at {target}: create one with Workspace.create({str(target)!r}).")
        return cls(target)

    # -- layout ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The workspace's name: its folder name (the parent's for a ``.mldeploy`` folder)."""
        return self.path.parent.name if self.path.name == DEFAULT_DIRNAME else self.path.name

    @property
    def registry_path(self) -> Path:
        """Path of ``registry.sqlite``."""
        return self.path / REGISTRY_FILENAME

    @property
    def models_dir(self) -> Path:
        """Folder of registered model files: ``models/<name>/<version>/``."""
        return self.path / "models"

    @property
    def environments_dir(self) -> Path:
        """Folder of registered environments: ``environments/<name>/<version>/``."""
        return self.path / "environments"

    @property
    def deployments_dir(self) -> Path:
        """Folder of services: ``deployments/<service>/``."""
        return self.path / "deployments"

    def drop_stale_service_rows(self, conn: sqlite3.Connection) -> list[str]:
        """Delete the ``services``/``service_models`` rows of services whose record file is gone.

        A deploy killed between its rows and its record, or a service folder removed by hand, leaves rows
        that would block ``Model.delete`` for a service nobody can list or delete. Call inside a transaction.

        Args:
            conn: A connection inside :meth:`transaction`.

        Returns:
            list[str]: The names whose rows were dropped.
        """
        names = [row[0] for row in conn.execute("SELECT name FROM services")]
        stale = [n for n in names if not (self.deployments_dir / n / SERVICE_RECORD_FILENAME).is_file()]
        for name in stale:
            conn.execute("DELETE FROM service_models WHERE service = ?", (name,))
            conn.execute("DELETE FROM services WHERE name = ?", (name,))
        return stale

    @property
    def runs_dir(self) -> Path:
        """Folder of run files: ``runs/<run_id>/`` (created by the first run)."""
        return self.path / "runs"

    def _init_layout(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise WorkspaceError(f"{self.path} is a file, not a workspace folder; choose another path.")
        fresh = not self.registry_path.exists()
        if fresh and self.path.is_dir() and any(self.path.iterdir()):
            unexpected = {p.name for p in self.path.iterdir()} - {
                "models", "environments", "deployments", "runs", REGISTRY_FILENAME,
            }
            if unexpected:
                raise WorkspaceError(
                    f"{self.path} is not empty and is not a workspace (it holds {sorted(unexpected)[:5]}); "
                    "choose an empty or new folder."
                )
        for folder in (self.path, self.models_dir, self.environments_dir, self.deployments_dir):
            folder.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            row = None
            with contextlib.suppress(sqlite3.OperationalError):
                row = conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()
            if row is None:
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('layout_version', ?)", (str(LAYOUT_VERSION),)
                )
                conn.commit()
                row = conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()
            found = int(row[0])
            if found < LAYOUT_VERSION and found in _MIGRATIONS:
                found = _migrate(conn, self.registry_path)
            if found != LAYOUT_VERSION:
                hint = (
                    "upgrade jupyter-mldeploy to open it"
                    if found > LAYOUT_VERSION
                    else "export its models with an older jupyter-mldeploy, or start a new workspace"
                )
                raise WorkspaceError(
                    f"Workspace {self.path} has layout version {found}, this jupyter-mldeploy reads version "
                    f"{LAYOUT_VERSION}: {hint}."
                )

    # -- database -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """Open the registry database for one unit of work.

        The connection runs in WAL mode with a 30 s busy timeout and foreign keys on, in autocommit-off
        mode; the caller commits. Use ``BEGIN IMMEDIATE`` for read-then-write transactions (such as
        assigning the next version) so two processes never assign the same number.

        Yields:
            sqlite3.Connection: closed when the block exits.

        Raises:
            WorkspaceError: When the file is not a SQLite database.
        """
        try:
            conn = sqlite3.connect(self.registry_path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:  # pragma: no cover - OS-level failure
            raise WorkspaceError(f"Cannot open {self.registry_path}: {exc}") from exc
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as exc:
                raise WorkspaceError(
                    f"{self.registry_path} is not a readable registry database ({exc}); restore it from a "
                    "backup or move it away to start a new workspace."
                ) from exc
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error.

        Yields:
            sqlite3.Connection: holding the database's write lock until the block ends.
        """
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __repr__(self) -> str:
        return f"Workspace(path={str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)
