"""Storage of experiments and runs: rows in the workspace's SQLite database plus files under ``runs/``.

Layout inside the workspace::

    registry.sqlite      tables experiments, runs, run_metrics (see jupyter_mldeploy.workspace)
    runs/<run_id>/       the run's files: uploaded files, its outputs/ folder, an executed notebook

Rules:

* Every write is one short transaction on its own connection (WAL mode, 30 s busy timeout), so several
  processes can log into the same workspace at once, and a panel can read while they do.
* Metrics are append-only: ``log`` inserts a row, never updates one; reading folds them (see
  :mod:`jupyter_mldeploy.runs.metrics`).
* A run records the process that owns it (host, pid and psutil create time). Reading a ``Running`` run
  whose process is gone (on this host) marks it ``Failed`` then and there, so a killed notebook or pipeline
  never reads ``Running`` forever, as the deploy layer judges a service process.
* A file is written to a temporary name in its folder and renamed into place: a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any

import psutil

from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.names import validate_name
from jupyter_mldeploy.workspace import Workspace

#: Run statuses, as Azure ML v1 names them.
RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"
STATUSES = (RUNNING, COMPLETED, FAILED, CANCELED)

#: How a run was started: ``Experiment.start_logging`` (interactive) or ``run_notebook`` (pipeline).
INTERACTIVE = "interactive"
PIPELINE = "pipeline"

#: Experiment names are model-style names (jupyter_mldeploy.names) of at most this many characters, so that
#: a run id (``<experiment>_<unix time>_<8 hex>``) is itself a valid name.
MAX_EXPERIMENT_NAME = 200


@dataclass(frozen=True)
class RunRecord:
    """One run as stored (a plain value object).

    Attributes:
        id: Run id, ``<experiment>_<unix seconds>_<8 hex digits>`` (as v1's ``<experiment>_<timestamp>_<hash>``).
        experiment: Experiment name.
        number: 1, 2, 3 ... within the experiment (v1 ``run.number``).
        kind: ``"interactive"`` or ``"pipeline"``.
        status: ``Running``, ``Completed``, ``Failed`` or ``Canceled``.
        tags: ``str -> str`` labels.
        parameters: The parameters a pipeline ran with (JSON values); empty for interactive runs.
        start_time: When it started (UTC).
        end_time: When it ended (UTC), or None while running.
        error: Why it failed (a message or traceback), or None.
        host: The host of the owning process.
        pid: The owning process.
        pid_create_time: That process's psutil create time (seconds since the epoch).
        source: The notebook a pipeline ran, or None.
    """

    id: str
    experiment: str
    number: int
    kind: str
    status: str
    tags: dict[str, str]
    parameters: dict[str, Any]
    start_time: datetime
    end_time: datetime | None
    error: str | None
    host: str
    pid: int
    pid_create_time: float
    source: str | None = None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, or None while running."""
        return None if self.end_time is None else (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True)
class MetricRow:
    """One logged value (a row of the append-only ``run_metrics`` table).

    Attributes:
        run_id: The run.
        name: Metric name.
        kind: ``scalar``, ``list``, ``row``, ``table`` or ``image``.
        value: The JSON value logged (an image's artifact path for ``image``).
        logged_time: When it was logged (UTC).
    """

    run_id: str
    name: str
    kind: str
    value: Any
    logged_time: datetime = field(compare=False)


def validate_experiment_name(name: object) -> str:
    """Check an experiment name and return it.

    Raises:
        InvalidArgument: When it breaks the naming rule of models (letters, digits, ``_ . -``) or is longer
            than :data:`MAX_EXPERIMENT_NAME` characters.
    """
    validate_name(name, "experiment name")
    assert isinstance(name, str)
    if len(name) > MAX_EXPERIMENT_NAME:
        raise InvalidArgument(
            f"Experiment name {name[:40]!r}... is {len(name)} characters long; use at most {MAX_EXPERIMENT_NAME}."
        )
    return name


def validate_run_id(run_id: object) -> str:
    """Check the form of a run id and return it.

    Raises:
        InvalidArgument: When it is not a name-like string (run ids look like ``myexp_1700000000_1a2b3c4d``).
    """
    if not isinstance(run_id, str):
        raise InvalidArgument(f"A run id is a string such as 'myexp_1700000000_1a2b3c4d', got {type(run_id).__name__}.")
    return validate_name(run_id, "run id")


def artifact_name(name: object) -> str:
    """Normalise the name of a run file: a relative POSIX path inside the run folder.

    Args:
        name: ``"outputs/model.pkl"``, ``"plots/loss.png"`` ...

    Returns:
        The path with ``.`` segments and duplicate slashes removed.

    Raises:
        InvalidArgument: For an empty, absolute or escaping (``..``) name.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"A run file name must be a non-empty string such as 'outputs/model.pkl', got {name!r}.")
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [part for part in path.parts if part not in ("", ".")]
    if path.is_absolute() or not parts or ".." in parts:
        raise InvalidArgument(
            f"Run file name {name!r} must be a relative path inside the run, such as 'outputs/model.pkl' "
            "(no leading '/', no '..')."
        )
    return "/".join(parts)


def process_alive(pid: int, create_time: float) -> bool:
    """Return True when ``pid`` runs and is the process recorded (same create time, not a zombie)."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) > 0.5:
            return False  # the pid was reused by another process
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class RunStore:
    """Experiments, runs, metrics and run files of one workspace.

    Args:
        workspace: The workspace whose database and ``runs/`` folder are used.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    # -- experiments ----------------------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> datetime:
        """Create the experiment when missing; return its creation time."""
        validate_experiment_name(name)
        with self.workspace.connect() as conn:
            row = conn.execute("SELECT created_time FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is not None:  # the common case takes no write lock: opening a run from a panel only reads
            return datetime.fromisoformat(row[0])
        with self.workspace.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO experiments (name, created_time) VALUES (?, ?)", (name, _now().isoformat())
            )
            row = conn.execute("SELECT created_time FROM experiments WHERE name = ?", (name,)).fetchone()
        return datetime.fromisoformat(row[0])

    def experiments(self) -> list[tuple[str, datetime]]:
        """Return ``(name, created_time)`` of every experiment, sorted by name."""
        with self.workspace.connect() as conn:
            rows = conn.execute("SELECT name, created_time FROM experiments ORDER BY name").fetchall()
        return [(row[0], datetime.fromisoformat(row[1])) for row in rows]

    # -- runs -----------------------------------------------------------------------------------------

    def create_run(
        self,
        experiment: str,
        kind: str,
        parameters: dict[str, Any] | None = None,
        source: str | None = None,
        pid: int | None = None,
    ) -> RunRecord:
        """Start a new ``Running`` run owned by process ``pid`` (default: this process).

        The experiment is created when missing; the run number is assigned in the same write transaction,
        so two processes starting runs at once get different numbers.
        """
        validate_experiment_name(experiment)
        owner = psutil.Process(pid if pid is not None else os.getpid())
        started = _now()
        run_id = f"{experiment}_{int(started.timestamp())}_{uuid.uuid4().hex[:8]}"
        with self.workspace.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO experiments (name, created_time) VALUES (?, ?)", (experiment, started.isoformat())
            )
            number = conn.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE experiment = ?", (experiment,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO runs (id, experiment, number, kind, status, parameters, start_time, host, pid, "
                "pid_create_time, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, experiment, number, kind, RUNNING, json.dumps(parameters or {}, sort_keys=True),
                    started.isoformat(), platform.node(), owner.pid, owner.create_time(), source,
                ),
            )
        return self.get(run_id)

    def get(self, run_id: str) -> RunRecord:
        """Return one run (a dead owner turns ``Running`` into ``Failed`` first).

        Raises:
            InvalidArgument: For a malformed run id.
            NotFound: When no such run exists; the message says how to list runs.
        """
        validate_run_id(run_id)
        with self.workspace.connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(
                f"Run {run_id!r} not found in workspace {self.workspace.path}; list the runs with "
                "'mldeploy run list' (Experiment(ws, name).get_runs() in Python)."
            )
        return self._settle([self._record(row)])[0]

    def list(self, experiment: str | None = None) -> list[RunRecord]:
        """Return runs, newest first (of one experiment when given)."""
        with self.workspace.connect() as conn:
            if experiment is None:
                rows = conn.execute("SELECT * FROM runs ORDER BY start_time DESC, number DESC").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM runs WHERE experiment = ? ORDER BY number DESC", (experiment,)
                ).fetchall()
        return self._settle([self._record(row) for row in rows])

    def end(self, run_id: str, status: str, error: str | None = None) -> RunRecord:
        """End a run.

        A ``Running`` run takes the new status. An ended run keeps its status, except that ``Failed``
        replaces ``Completed`` (a failure found after completion, such as a pipeline cell failing after
        the notebook called ``run.complete()``, wins).

        Returns:
            The run as now stored.
        """
        if status not in (COMPLETED, FAILED, CANCELED):
            raise InvalidArgument(f"A run ends as Completed, Failed or Canceled, not {status!r}.")
        allowed = (RUNNING, COMPLETED) if status == FAILED else (RUNNING,)
        with self.workspace.transaction() as conn:
            conn.execute(
                f"UPDATE runs SET status = ?, end_time = ?, error = ? WHERE id = ? "
                f"AND status IN ({','.join('?' * len(allowed))})",
                (status, _now().isoformat(), error, run_id, *allowed),
            )
        return self.get(run_id)

    def update_tags(self, run_id: str, tags: dict[str, str]) -> dict[str, str]:
        """Merge ``tags`` into a run's tags in one transaction; return the tags now stored."""
        with self.workspace.transaction() as conn:
            row = conn.execute("SELECT tags FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"Run {run_id!r} no longer exists in workspace {self.workspace.path}.")
            merged = {**json.loads(row[0]), **tags}
            conn.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(merged, sort_keys=True), run_id))
        return merged

    def _settle(self, records: list[RunRecord]) -> list[RunRecord]:
        """Mark runs whose owning process is gone as Failed (only for processes on this host)."""
        host = platform.node()
        settled = []
        for record in records:
            if record.status == RUNNING and record.host == host and not process_alive(record.pid, record.pid_create_time):
                reason = (
                    f"The process that ran it (pid {record.pid} on {record.host}) ended without completing the "
                    "run: it was killed or crashed (for a pipeline, see the executed notebook in its files)."
                )
                with self.workspace.transaction() as conn:
                    conn.execute(
                        "UPDATE runs SET status = ?, end_time = ?, error = ? WHERE id = ? AND status = ?",
                        (FAILED, _now().isoformat(), reason, record.id, RUNNING),
                    )
                    row = conn.execute("SELECT * FROM runs WHERE id = ?", (record.id,)).fetchone()
                record = self._record(row)
            settled.append(record)
        return settled

    @staticmethod
    def _record(row: Any) -> RunRecord:
        return RunRecord(
            id=row["id"],
            experiment=row["experiment"],
            number=row["number"],
            kind=row["kind"],
            status=row["status"],
            tags=json.loads(row["tags"]),
            parameters=json.loads(row["parameters"]),
            start_time=datetime.fromisoformat(row["start_time"]),
            end_time=_time(row["end_time"]),
            error=row["error"],
            host=row["host"],
            pid=row["pid"],
            pid_create_time=row["pid_create_time"],
            source=row["source"],
        )

    # -- metrics --------------------------------------------------------------------------------------

    def append_metric(self, run_id: str, name: str, kind: str, value: Any) -> None:
        """Append one logged value (``value`` must already be JSON-safe)."""
        with self.workspace.transaction() as conn:
            conn.execute(
                "INSERT INTO run_metrics (run_id, name, kind, value, logged_time) VALUES (?, ?, ?, ?, ?)",
                (run_id, name, kind, json.dumps(value), _now().isoformat()),
            )

    def metrics(self, run_ids: Iterable[str], name: str | None = None) -> dict[str, list[MetricRow]]:
        """Return the logged rows of several runs in logging order, keyed by run id."""
        ids = list(run_ids)
        found: dict[str, list[MetricRow]] = {run_id: [] for run_id in ids}
        with self.workspace.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT * FROM run_metrics WHERE run_id IN ({marks})"
                arguments: list[Any] = list(chunk)
                if name is not None:
                    query += " AND name = ?"
                    arguments.append(name)
                for row in conn.execute(query + " ORDER BY seq", arguments):
                    found[row["run_id"]].append(
                        MetricRow(row["run_id"], row["name"], row["kind"], json.loads(row["value"]),
                                  datetime.fromisoformat(row["logged_time"]))
                    )
        return found

    # -- files ----------------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """Folder of a run's files: ``runs/<run_id>/``."""
        return self.workspace.runs_dir / validate_run_id(run_id)

    def file_path(self, run_id: str, name: str) -> Path:
        """Where the run file ``name`` is (or would be) stored."""
        return self.run_dir(run_id) / artifact_name(name)

    def put_file(self, run_id: str, name: str, source: str | os.PathLike[str] | IO[Any]) -> str:
        """Store a file of the run, replacing one of the same name.

        Args:
            run_id: The run.
            name: Its name inside the run (``"outputs/model.pkl"``).
            source: A path to copy, or a binary or text stream to read.

        Returns:
            The normalised name.

        Raises:
            NotFound: When ``source`` is a path that is not a file.
        """
        clean = artifact_name(name)
        target = self.run_dir(run_id) / clean
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise NotFound(f"Cannot upload {os.fspath(source)!r} as {clean!r}: it is not a file.")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, (str, os.PathLike)):
                    with open(source, "rb") as src:
                        shutil.copyfileobj(src, out)
                else:
                    while block := source.read(1024 * 1024):
                        out.write(block.encode() if isinstance(block, str) else block)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return clean

    def file_names(self, run_id: str, prefix: str | None = None) -> list[str]:
        """Return the names of the run's files (POSIX, sorted), under ``prefix`` when given."""
        folder = self.run_dir(run_id)
        names = sorted(
            path.relative_to(folder).as_posix()
            for path in _walk(folder)
            if not path.name.startswith(".upload-")
        )
        if prefix is None:
            return names
        clean = artifact_name(prefix)
        return [n for n in names if n == clean or n.startswith(clean + "/")]


def _walk(folder: Path) -> Iterator[Path]:
    for current, _dirs, names in os.walk(folder):
        for file_name in names:
            yield Path(current) / file_name

