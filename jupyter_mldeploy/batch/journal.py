"""A batch job's folder: its record, plan, journal and part files; how exactly-once output is kept.

Layout, ``<workspace>/jobs/<name>/<id>/``::

    job.json          the record: config, input, models, backend, state, keep_warm, times, error
    driver.json       the driver running the job: pid, create time, which start of the job it serves
    plan.jsonl        the mini-batches, one JSON line each, written once by the job's first driver
    journal.jsonl     one line per event, appended: {"batch": i, "event": "retry" | "done" | "failed", ...}
    parts/000042.txt  the rows of mini-batch 42 (``append_row``), made visible by an atomic rename
    app/              the app folder: the script (and source directory) and ``azureml-models/``, as a service's
    logs/driver.log   the driver's log (and the loky workers' output)

Exactly once: a mini-batch's rows are written to ``parts/.<n>.<pid>.tmp`` and renamed to ``parts/<n>.txt``
(by the loky or local Dask worker that ran it, or by the driver for a remote Dask worker); only then is its
``done`` line appended to the journal by the driver. A mini-batch counts as done when both exist; a part
without a ``done`` line (the driver died between the two) is written again by the next run, replacing it
whole. The output file is assembled from the done parts in mini-batch order into a temporary file in the
output folder and renamed into place when every mini-batch is done, so no half-written output is ever
visible. A journal line is written with one ``write`` call; a truncated last line (a crash mid-write) is
ignored.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mldeploy.batch.inputs import MiniBatch

JOBS_DIRNAME = "jobs"
RECORD = "job.json"
PLAN = "plan.jsonl"
JOURNAL = "journal.jsonl"
PARTS = "parts"
APP = "app"
DRIVER_LOG = "logs/driver.log"
DRIVER = "driver.json"

#: Job states, v1's run statuses.
NOT_STARTED = "NotStarted"
RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"
FINAL_STATES = (COMPLETED, FAILED, CANCELED)


def jobs_dir(workspace_path: Path) -> Path:
    """``<workspace>/jobs``."""
    return workspace_path / JOBS_DIRNAME


def job_folders(workspace_path: Path) -> Iterator[Path]:
    """Every job folder of a workspace (``jobs/<name>/<id>`` holding a ``job.json``)."""
    root = jobs_dir(workspace_path)
    if root.is_dir():
        for record in root.glob(f"*/*/{RECORD}"):
            yield record.parent


@dataclass
class BatchProgress:
    """Counts read from a journal.

    Attributes:
        done: Mini-batches whose ``run()`` returned (``done`` line and part file present).
        failed_batches: Mini-batches counted failed: raised or timed out every try, or returned fewer
            elements than they got.
        items: Input items of the processed mini-batches.
        succeeded: Elements returned.
        retries: Tries after a first one.
        finished: Indices of the done mini-batches.
        terminal_failures: Indices of the mini-batches that failed every try.
        errors: The last error of each failed try, by mini-batch (the latest 20).
        run_seconds: Sum of ``run()`` wall times.
    """

    done: int = 0
    failed_batches: int = 0
    items: int = 0
    succeeded: int = 0
    retries: int = 0
    finished: set[int] = field(default_factory=set)
    terminal_failures: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)
    run_seconds: float = 0.0

    @property
    def failed_items(self) -> int:
        """Items not returned."""
        return self.items - self.succeeded


class JobFolder:
    """The files of one job.

    Args:
        path: ``<workspace>/jobs/<name>/<id>``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def record_path(self) -> Path:
        """``job.json``."""
        return self.path / RECORD

    @property
    def parts_dir(self) -> Path:
        """``parts/``."""
        return self.path / PARTS

    @property
    def app_dir(self) -> Path:
        """``app/``: the app folder the workers load the script and models from."""
        return self.path / APP

    @property
    def driver_path(self) -> Path:
        """``driver.json``: ``{"pid", "createTime", "start"}`` of the driver serving start ``start`` of the job."""
        return self.path / DRIVER

    @property
    def workspace_path(self) -> Path:
        """The workspace the job is recorded in (``<workspace>/jobs/<name>/<id>``)."""
        return self.path.parents[2]

    def read_driver(self) -> dict[str, Any]:
        """``driver.json`` (``{}`` when missing or being replaced)."""
        try:
            data = json.loads((self.path / DRIVER).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def log_path(self) -> Path:
        """``logs/driver.log``."""
        return self.path / DRIVER_LOG

    def read_record(self) -> dict[str, Any]:
        """The job record (``{}`` while it is being written)."""
        # Imported here: the deploy package costs a quarter of a second to import, which a loky worker
        # (it writes part files through this class, never the record) must not pay at start.
        from jupyter_mldeploy.deploy.state import read_json

        data = read_json(self.record_path)
        return data if isinstance(data, dict) else {}

    def write_record(self, record: dict[str, Any]) -> None:
        """Replace the job record atomically."""
        from jupyter_mldeploy.deploy.state import write_json_atomic

        write_json_atomic(self.record_path, record)

    def update_record(self, **changes: Any) -> dict[str, Any]:
        """Read, change and write back the record; return it. Only the job's one driver writes it."""
        record = self.read_record()
        record.update(changes)
        self.write_record(record)
        return record

    # -- plan -----------------------------------------------------------------------------------------

    def has_plan(self) -> bool:
        """Whether the plan is written (a driver killed while planning left none: the next one plans)."""
        return (self.path / PLAN).exists()

    def write_plan(self, batches: Iterable[MiniBatch]) -> int:
        """Write the plan (once, by the first driver) through a temporary file; return the mini-batch count."""
        tmp = self.path / f".{PLAN}.tmp"
        count = 0
        with open(tmp, "w", encoding="utf-8") as handle:
            for batch in batches:
                handle.write(json.dumps(batch.to_dict()) + "\n")
                count += 1
        os.replace(tmp, self.path / PLAN)
        return count

    def read_plan(self) -> Iterator[MiniBatch]:
        """The mini-batches, in order."""
        with open(self.path / PLAN, encoding="utf-8") as handle:
            for line in handle:
                yield MiniBatch.from_dict(json.loads(line))

    # -- journal --------------------------------------------------------------------------------------

    def append(self, entry: dict[str, Any]) -> None:
        """Append one journal line with one ``write`` (a kill leaves the line whole or absent/truncated)."""
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self) -> Iterator[dict[str, Any]]:
        """The journal's lines, a truncated last one skipped."""
        try:
            handle = open(self.path / JOURNAL, encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill mid-write: its mini-batch is run again
                if isinstance(entry, dict):
                    yield entry

    def progress(self) -> BatchProgress:
        """Count the journal; a ``done`` line counts only when its part file exists (append_row)."""
        progress = BatchProgress()
        has_parts = self.read_record().get("config", {}).get("output_action") == "append_row"
        latest: dict[int, dict[str, Any]] = {}
        for entry in self.entries():
            index = int(entry["batch"])
            if entry["event"] == "retry":
                progress.retries += 1
                progress.errors[index] = entry.get("error", "")
            elif entry["event"] in ("done", "failed"):
                if entry["event"] == "done" and has_parts and not self.part_path(index).exists():
                    continue
                latest[index] = entry
        for index, entry in latest.items():
            progress.items += int(entry.get("items", 0))
            progress.run_seconds += float(entry.get("seconds", 0.0))
            if entry["event"] == "done":
                progress.done += 1
                progress.finished.add(index)
                progress.succeeded += int(entry.get("succeeded", 0))
                if int(entry.get("succeeded", 0)) < int(entry.get("items", 0)):
                    progress.failed_batches += 1
            else:
                progress.failed_batches += 1
                progress.terminal_failures.add(index)
                progress.errors[index] = entry.get("error", "")
        if len(progress.errors) > 20:
            progress.errors = dict(sorted(progress.errors.items())[-20:])
        return progress

    # -- parts and output -----------------------------------------------------------------------------

    def part_path(self, index: int) -> Path:
        """``parts/<index>.txt``."""
        return self.parts_dir / f"{index:06d}.txt"

    def write_part(self, index: int, rows: bytes) -> None:
        """Write a mini-batch's rows and make them visible with one rename (replacing an earlier copy).

        Called by the driver (Dask) or by the loky worker that ran the mini-batch. The temporary name holds
        the writer's pid, so a worker of a killed driver still finishing cannot mix its bytes with a new one's.
        """
        self.parts_dir.mkdir(exist_ok=True)
        tmp = self.parts_dir / f".{index:06d}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(rows)
        os.replace(tmp, self.part_path(index))

    def assemble(self, done: Iterable[int], output: Path) -> int:
        """Concatenate the parts of the done mini-batches, in mini-batch order, into ``output`` through a
        temporary file and one rename (mini-batches that failed every try have no part and are left out).

        Args:
            done: Indices of the done mini-batches.
            output: The output file.

        Returns:
            int: Bytes written.
        """
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.parent / f".{output.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as target:
                for index in sorted(done):
                    with open(self.part_path(index), "rb") as part:
                        shutil.copyfileobj(part, target, 1 << 20)
            os.replace(tmp, output)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return output.stat().st_size
