"""``BatchJob``: submit, follow, cancel and resume a batch scoring job (v1's ``ParallelRunStep`` run).

A job is recorded in the workspace (``jobs/<name>/<id>/``, see :mod:`~jupyter_mldeploy.batch.journal`)
and run by a detached driver process (:mod:`~jupyter_mldeploy.batch.driver`): for loky, the warm driver of
an earlier job when one is listening (:mod:`~jupyter_mldeploy.batch.warm`), else a new one. The ``BatchJob``
object only reads the record and the journal, so any process (a notebook, ``mldeploy batch show``, the
panel) sees the same progress, and a job survives the kernel that submitted it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from jupyter_mldeploy.batch.backends import check_backend, worker_count
from jupyter_mldeploy.batch.config import APPEND_ROW, ParallelRunConfig
from jupyter_mldeploy.batch.inputs import FILES, resolve_input
from jupyter_mldeploy.batch.journal import (
    CANCELED,
    COMPLETED,
    FAILED,
    FINAL_STATES,
    NOT_STARTED,
    RUNNING,
    BatchProgress,
    JobFolder,
    job_folders,
    jobs_dir,
)
from jupyter_mldeploy.batch.warm import hand_off, resolve_keep_warm
from jupyter_mldeploy.deploy.app_folder import build_app_folder
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.deploy.state import utc_now, write_json_atomic
from jupyter_mldeploy.deploy.targets.local_process import is_running
from jupyter_mldeploy.errors import Conflict, InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.names import validate_name

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.workspace import Workspace

DRIVER_MODULE = "jupyter_mldeploy.batch.driver"
#: Seconds between two reads of the journal while waiting.
POLL_S = 0.1
#: Width of the text progress bar, in characters.
BAR_WIDTH = 24

# Popen handles of drivers started here, so their exit status is collected (no zombie read as alive).
_DRIVERS: dict[int, subprocess.Popen[bytes]] = {}


class JobFailed(MLDeployError):
    """A batch job ended Failed or Canceled (raised by ``wait_for_completion(raise_on_error=True)``)."""


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _new_id(name: str) -> str:
    # v1 run ids read "<experiment>_<unix time>_<hex>": sortable by time, unique without a lock.
    return f"{name}_{int(time.time())}_{secrets.token_hex(4)}"


def _record_driver(folder: JobFolder, pid: int, starts: int) -> None:
    """Write ``driver.json``: the driver serving start ``starts`` of the job (what ``state`` and ``cancel`` use)."""
    try:
        import psutil

        create_time = psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - exited at once: still identified by its pid and the start number
        create_time = 0.0
    write_json_atomic(folder.driver_path, {"pid": pid, "createTime": create_time, "start": starts})


def _start_driver(folder: JobFolder, starts: int, record: dict[str, Any], workspace_path: Path) -> None:
    """Hand the job to the warm loky driver of its workspace, or start a driver detached (its own session)
    with its output appended to the job log."""
    if record["backend"] == "loky":
        workers = worker_count(record["config"].get("process_count_per_node"))
        if hand_off(workspace_path, workers, folder, lambda pid: _record_driver(folder, pid, starts)) is not None:
            return
    folder.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", DRIVER_MODULE, str(folder.path)],
            cwd=str(folder.path), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True, close_fds=True,
        )
    _DRIVERS[proc.pid] = proc
    _record_driver(folder, proc.pid, starts)


class BatchJob:
    """A batch scoring job in a workspace.

    Args:
        workspace: The workspace.
        job_id: The job's id (``<name>_<unix time>_<hex>``).
        folder: Its folder when already known (listing); else found from the id.

    Raises:
        NotFound: When no job has this id (the message lists how to see the jobs).
    """

    def __init__(self, workspace: Workspace, job_id: str, folder: Path | None = None) -> None:
        self.workspace = workspace
        self.id = job_id
        if folder is None:
            # Ids are unique across names (they hold a random part), so the id alone finds the folder.
            folder = next((f for f in job_folders(workspace.path) if f.name == job_id), None)
        if folder is None:
            raise NotFound(f"No batch job {job_id!r} in {workspace.path}; list them with `mldeploy batch list`.")
        self.folder = JobFolder(folder)

    def __repr__(self) -> str:
        return f"BatchJob(id={self.id!r}, state={self.state!r})"

    # -- submit / resume ------------------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        workspace: Workspace,
        name: str,
        config: ParallelRunConfig,
        inputs: Any,
        models: Any,
        output_dir: str | os.PathLike[str],
        backend: str = "loky",
        scheduler: str | None = None,
        keep_warm: float | None = None,
    ) -> BatchJob:
        """Check everything, record the job and start its driver; return at once.

        Args:
            workspace: The workspace the job is recorded in and the models come from.
            name: The job's name (as a v1 step name): ``jobs/<name>/<id>/``.
            config: How to run the entry script.
            inputs: A path or glob, ``TabularInput(path)`` or ``FileInput(path)``.
            models: Registered models (``Model``, ``"name:version"``, ``"name"``, or a list); None for none.
            output_dir: Folder the ``append_row`` file is written to (created when missing).
            backend: ``"loky"`` (this machine) or ``"dask"``.
            scheduler: For dask: ``"local"`` (default) or ``"tcp://host:port"``.
            keep_warm: loky: seconds the driver keeps its workers after the job, for the next job of this
                workspace (see docs/batch.md, "Warm workers"); 0 exits at once. None reads
                ``MLDEPLOY_BATCH_KEEP_WARM``, else 300 (loky's own idle timeout). Ignored for dask.

        Returns:
            BatchJob: The running job.

        Raises:
            InvalidArgument: A bad name, config, backend, ``keep_warm``, input (missing, unreadable, of the
                wrong type), output folder (already holding the output file), or an ``environment`` this
                interpreter does not satisfy (the message lists what is missing); nothing is recorded.
            NotFound: A model that is not registered.
        """
        validate_name(name, "job name")
        if not isinstance(config, ParallelRunConfig):
            raise InvalidArgument(f"config must be a ParallelRunConfig, not {type(config).__name__}.")
        check_backend(backend, scheduler, config.node_count)
        warm_seconds = resolve_keep_warm(keep_warm) if backend == "loky" else 0.0
        _check_environment(config, backend, scheduler)
        resolved = resolve_input(inputs)
        limit = config.batch_limit(resolved.kind == FILES)
        entry, source_dir = _entry_script(config)
        sources = resolve_model_sources(workspace, models)
        output_folder = Path(output_dir).expanduser().resolve()
        output_file = output_folder / config.output_file_name
        if output_folder.exists() and not output_folder.is_dir():
            raise InvalidArgument(f"output_dir {output_folder} is a file; pass a folder.")
        if config.output_action == APPEND_ROW and output_file.exists():
            raise InvalidArgument(
                f"{output_file} already exists (an earlier job's output); pass another output_dir or delete it."
            )
        job_id = _new_id(name)
        folder = JobFolder(jobs_dir(workspace.path) / name / job_id)
        folder.path.mkdir(parents=True)
        try:
            app = build_app_folder(folder.app_dir, entry, source_dir, sources, exclude=[workspace.path])
            environment = {**app.scoring_environment(), **(config.environment_variables or {})}
            folder.write_record({
                "id": job_id, "name": name, "kind": "batch", "state": RUNNING, "error": None,
                "config": config.to_dict(),
                "input": {"source": resolved.source, "kind": resolved.kind, "files": len(resolved.files),
                          "miniBatchLimit": limit},
                "models": [s.id for s in sources], "backend": backend, "scheduler": scheduler,
                "outputDir": str(output_folder),
                "outputFile": str(output_file) if config.output_action == APPEND_ROW else None,
                # The driver cuts the input into mini-batches (a CSV is read once to find its row ends) while
                # its workers start: None until then.
                "environment": environment, "totalMiniBatches": None, "driverStarts": 1, "keepWarm": warm_seconds,
                "inputStamps": [_stamp(f) for f in resolved.files],
                "submitTime": utc_now(), "startTime": utc_now(), "endTime": None,
            })
        except BaseException:
            shutil.rmtree(folder.path, ignore_errors=True)
            raise
        _start_driver(folder, 1, folder.read_record(), workspace.path)
        return cls(workspace, job_id, folder.path)

    @classmethod
    def resume(cls, workspace: Workspace, job_id: str, keep_warm: float | None = None) -> BatchJob:
        """Start a driver (or hand the job to a warm one) for a job that stopped before completing; done
        mini-batches are kept.

        Args:
            workspace: The workspace.
            job_id: The job.
            keep_warm: As for :meth:`submit`.

        Returns:
            BatchJob: The running job.

        Raises:
            InvalidArgument: A bad ``keep_warm``.
            NotFound: No such job.
            Conflict: The job completed, its driver is still running, or an input file changed since submit.
        """
        job = cls(workspace, job_id)
        state = job.state
        if state == COMPLETED:
            raise Conflict(f"Batch job {job_id} already completed; its output is {job.folder.read_record().get('outputFile')}.")
        if state == RUNNING:
            raise Conflict(f"Batch job {job_id} is still running; cancel it first (mldeploy batch cancel {job_id}).")
        record = job.folder.read_record()
        warm_seconds = resolve_keep_warm(keep_warm) if record.get("backend") == "loky" else 0.0
        for path, *stamp in record.get("inputStamps", []):
            if not os.path.exists(path) or _stamp(path)[1:] != stamp:
                raise Conflict(
                    f"Input file {path} changed or was removed since batch job {job_id} was submitted, so its done "
                    "mini-batches no longer match it; submit a new job."
                )
        starts = int(record.get("driverStarts", 1)) + 1
        record = job.folder.update_record(state=RUNNING, error=None, endTime=None, driverStarts=starts,
                                          keepWarm=warm_seconds)
        _start_driver(job.folder, starts, record, workspace.path)
        return job

    @classmethod
    def list(cls, workspace: Workspace) -> list[BatchJob]:
        """Every batch job of the workspace, newest first."""
        folders = sorted(job_folders(workspace.path),
                         key=lambda f: JobFolder(f).read_record().get("submitTime") or "", reverse=True)
        return [cls(workspace, f.name, f) for f in folders]

    # -- state ----------------------------------------------------------------------------------------

    def _driver_alive(self, record: dict[str, Any]) -> bool:
        driver = self.folder.read_driver()
        if int(driver.get("start", 0)) != int(record.get("driverStarts", 1)):
            return True  # being started: the submitter has not written the new driver's pid yet
        pid = int(driver.get("pid", 0))
        proc = _DRIVERS.get(pid)
        if proc is not None and proc.poll() is not None:
            return False
        return is_running(pid, float(driver.get("createTime", 0.0)))

    @property
    def state(self) -> str:
        """``Running``, ``Completed``, ``Failed`` or ``Canceled`` (v1's run statuses).

        A job recorded Running whose driver is gone (killed) reads ``Failed``; ``resume`` finishes it.
        """
        record = self.folder.read_record()
        state = record.get("state", NOT_STARTED)
        if state == RUNNING and not self._driver_alive(self.folder.read_record()):
            # The driver may have finished between the two reads: read the record again.
            state = self.folder.read_record().get("state", NOT_STARTED)
            if state == RUNNING:
                return FAILED
        return state

    def get_details(self) -> dict[str, Any]:
        """The job's counts and settings (v1's ``get_details`` plus the ParallelRunStep counts).

        Returns:
            dict: ``id``, ``name``, ``state``, ``error``, ``backend``, ``input``, ``models``, ``outputFile``,
            ``miniBatches`` (total / done / failed), ``items`` (total processed / succeeded / failed),
            ``retries``, ``elapsedSeconds``, ``rowsPerSecond``, ``etaSeconds``, ``errors`` (the last error of
            up to 20 failed mini-batches, by index), ``startTime``, ``endTime``.
        """
        record = self.folder.read_record()
        state = self.state
        progress = self.folder.progress()
        error = record.get("error")
        if state == FAILED and record.get("state") == RUNNING:
            error = (f"The driver process stopped without finishing (killed?); resume with "
                     f"`mldeploy batch resume {self.id}`.")
        return _details(record, state, error, progress)

    def get_logs(self) -> str:
        """The job log: the driver's lines (tries, retries, errors with tracebacks) and the loky workers' output."""
        try:
            return self.folder.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_completion(
        self, show_output: bool = False, timeout: float | None = None, raise_on_error: bool = True,
        stream: TextIO | None = None, on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until the job ends; with ``show_output``, print a progress line as it changes.

        Args:
            show_output: Print ``[####----] 12/40 mini-batches | 3,456 rows/s | 0 failed | ETA 8s`` lines.
            timeout: Seconds to wait at most (None: until it ends).
            raise_on_error: Raise :class:`JobFailed` when the job ends Failed or Canceled (as v1).
            stream: Where to print (default: stdout).
            on_progress: Called with :meth:`get_details` at every poll (the magic's live view).

        Returns:
            dict: :meth:`get_details` at the end.

        Raises:
            JobFailed: The job failed or was cancelled (the message is the job's error).
            TimeoutError: ``timeout`` passed first (the job keeps running).
        """
        out = stream or sys.stdout
        deadline = None if timeout is None else time.monotonic() + timeout
        shown: tuple[Any, ...] = ()
        while True:
            details = self.get_details()
            if on_progress is not None:
                on_progress(details)
            if show_output and progress_key(details) != shown:
                print(progress_line(details), file=out, flush=True)
                shown = progress_key(details)
            if details["state"] in FINAL_STATES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Batch job {self.id} still running after {timeout:g} s.")
            time.sleep(POLL_S)
        if raise_on_error and details["state"] != COMPLETED:
            raise JobFailed(f"Batch job {self.id} {details['state'].lower()}: {details['error']}")
        return details

    def cancel(self, timeout: float = 30.0) -> None:
        """Stop the job (its driver gets SIGTERM, stops the workers and records ``Canceled``); ``resume``
        continues it later.

        Raises:
            MLDeployError: When the driver does not stop within ``timeout`` seconds.
        """
        record = self.folder.read_record()
        if record.get("state") != RUNNING:
            return
        driver = self.folder.read_driver()
        if self._driver_alive(record) and driver.get("pid"):
            os.kill(int(driver["pid"]), signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._driver_alive(self.folder.read_record()):
                if time.monotonic() > deadline:
                    raise MLDeployError(f"The driver of batch job {self.id} (pid {driver['pid']}) did not stop in {timeout:g} s.")
                time.sleep(0.1)
        if self.folder.read_record().get("state") == RUNNING:
            self.folder.update_record(state=CANCELED, error="Cancelled.", endTime=utc_now())


def _stamp(path: str) -> list[Any]:
    """``[path, size, mtime_ns]``: what a resume checks to know the input is the one the plan was cut from."""
    stat = os.stat(path)
    return [path, stat.st_size, stat.st_mtime_ns]


def _check_environment(config: ParallelRunConfig, backend: str, scheduler: str | None) -> None:
    """Refuse a config whose ``environment`` the workers' interpreter does not satisfy.

    Workers on this machine (loky, a local Dask cluster) run this interpreter: loky starts them with
    ``sys.executable``. A ``tcp://`` Dask cluster's workers run their own, which the cluster provides.
    """
    env = config.environment
    if env is None or isinstance(env, dict) or (backend == "dask" and scheduler not in (None, "local")):
        return
    from jupyter_mldeploy.environment.satisfied import unsatisfied_requirements

    missing = unsatisfied_requirements(env)
    if missing:
        raise InvalidArgument(
            f"environment {env.name!r} is not satisfied by {sys.executable}, the interpreter this job's workers "
            f"run (batch workers are not started in a built environment): missing {'; '.join(missing)}. Install "
            "them into this interpreter, run the job from one that has them, or pass environment=None."
        )


def _entry_script(config: ParallelRunConfig) -> tuple[Path, Path | None]:
    """The entry script and source folder, absolute; checked to exist (v1: entry relative to the source)."""
    source_dir = Path(config.source_directory).expanduser().resolve() if config.source_directory else None
    if source_dir is not None and not source_dir.is_dir():
        raise InvalidArgument(f"source_directory {config.source_directory!r} is not a folder.")
    entry = Path(config.entry_script).expanduser()
    entry = (source_dir / entry if source_dir is not None and not entry.is_absolute() else entry).resolve()
    if not entry.is_file():
        raise InvalidArgument(f"entry_script {str(entry)!r} does not exist; write the batch script (init() and run(mini_batch)) first.")
    if source_dir is not None and not entry.is_relative_to(source_dir):
        raise InvalidArgument(f"entry_script {str(entry)!r} is outside source_directory {str(source_dir)!r}.")
    return entry, source_dir


def _details(record: dict[str, Any], state: str, error: str | None, progress: BatchProgress) -> dict[str, Any]:
    total = int(record.get("totalMiniBatches") or 0)
    start, end = _parse_time(record.get("startTime")), _parse_time(record.get("endTime"))
    elapsed = ((end or datetime.now(timezone.utc)) - start).total_seconds() if start else 0.0
    processed = progress.done + len(progress.terminal_failures)
    rate = progress.items / elapsed if elapsed > 0 else 0.0
    eta = None
    if state == RUNNING and processed and elapsed > 0:
        eta = round(elapsed / processed * (total - processed), 1)
    return {
        "id": record.get("id"), "name": record.get("name"), "state": state, "error": error,
        "backend": record.get("backendDescription") or record.get("backend"), "input": record.get("input"),
        "models": record.get("models", []), "outputFile": record.get("outputFile"),
        "miniBatches": {"total": total, "done": progress.done, "failed": progress.failed_batches},
        "items": {"total": progress.items, "succeeded": progress.succeeded, "failed": progress.failed_items},
        "retries": progress.retries, "elapsedSeconds": round(elapsed, 3), "rowsPerSecond": round(rate, 1),
        "etaSeconds": eta, "errors": {str(k): v for k, v in progress.errors.items()},
        "startTime": record.get("startTime"), "endTime": record.get("endTime"),
    }


def progress_key(details: dict[str, Any]) -> tuple[Any, ...]:
    """What a new progress line is shown for: the state, mini-batches done and failed items (not the rate,
    which changes at every read)."""
    return details["state"], details["miniBatches"]["done"], details["items"]["failed"]


def progress_line(details: dict[str, Any]) -> str:
    """One line of progress: ``Running [######----------] 12/40 mini-batches | 3,456 rows/s | 0 failed | ETA 8s``."""
    batches = details["miniBatches"]
    total = max(batches["total"], 1)
    filled = int(BAR_WIDTH * (batches["done"]) / total)
    eta = details.get("etaSeconds")
    tail = f" | ETA {eta:.0f}s" if eta is not None else ""
    return (
        f"{details['state']} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {batches['done']}/{batches['total']} "
        f"mini-batches | {details['rowsPerSecond']:,.0f} rows/s | {details['items']['failed']} failed{tail}"
    )


def list_jobs(workspace: Workspace) -> list[dict[str, Any]]:
    """Every batch job as a row, newest first: what ``mldeploy batch list`` and the deployments panel show.

    Args:
        workspace: The workspace.

    Returns:
        list[dict]: ``id``, ``name``, ``state``, ``progress`` (0..1 of mini-batches), ``miniBatches``
        (``"done/total"``), ``items``, ``failed``, ``rowsPerSecond``, ``backend``, ``startTime``,
        ``endTime``, ``outputFile``, ``error``.
    """
    rows = []
    for job in BatchJob.list(workspace):
        details = job.get_details()
        batches = details["miniBatches"]
        rows.append({
            "id": details["id"], "name": details["name"], "state": details["state"],
            "progress": round(batches["done"] / batches["total"], 4) if batches["total"] else float(
                details["state"] == COMPLETED),
            "miniBatches": f"{batches['done']}/{batches['total']}", "items": details["items"]["total"],
            "failed": details["items"]["failed"], "rowsPerSecond": details["rowsPerSecond"],
            "backend": job.folder.read_record().get("backend"), "startTime": details["startTime"],
            "endTime": details["endTime"], "outputFile": details["outputFile"], "error": details["error"],
        })
    return rows
