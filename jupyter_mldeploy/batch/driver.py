"""The driver of a batch job: ``python -m jupyter_mldeploy.batch.driver JOB_FOLDER``.

Started detached by :meth:`~jupyter_mldeploy.batch.job.BatchJob.submit` and ``resume``, so a notebook
interrupt or a kernel restart does not stop the job, and a killed driver loses nothing the journal holds.
It opens the backend first (loky's workers load the script and call ``init()`` meanwhile), cuts the input
into mini-batches on its first start, submits every mini-batch that is not done (at most two per worker
slot in flight, so it holds only those), journals each result (writing its part file when the worker
could not), retries a try that raised or timed out up to ``run_max_try``, stops as soon as a threshold is
crossed, and assembles the output when every mini-batch is done. ``SIGTERM`` (``BatchJob.cancel``) stops it
as ``Canceled``.

A loky driver then stays warm for the job's ``keep_warm`` seconds (:mod:`~jupyter_mldeploy.batch.warm`): it
keeps its workers, listens for the next job of its workspace and runs it as a freshly started driver would
(same :class:`Driver`, its pid in ``driver.json``), its output moved to that job's log.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mldeploy.batch.backends import OpenBackend, open_backend
from jupyter_mldeploy.batch.config import APPEND_ROW, ParallelRunConfig
from jupyter_mldeploy.batch.inputs import MiniBatch, ResolvedInput, plan_mini_batches
from jupyter_mldeploy.batch.journal import CANCELED, COMPLETED, FAILED, RUNNING, JobFolder
from jupyter_mldeploy.batch.warm import WarmListener, fingerprint, socket_path
from jupyter_mldeploy.batch.worker import (
    LOG_FORMAT,
    ScriptSpec,
    TryOutcome,
    TryRequest,
    point_output_at,
    score_mini_batch,
)

log = logging.getLogger("jupyter_mldeploy.batch")
#: Seconds a warm driver waits for its kept workers to answer before starting fresh ones.
PROBE_TIMEOUT_S = 10.0
#: Tries in flight per worker slot: enough to keep workers busy while the driver writes results.
IN_FLIGHT_PER_WORKER = 2


class JobStopped(Exception):
    """The job must stop: a threshold was crossed, ``init()`` failed, or it was cancelled."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass
class Tally:
    """The counts thresholds are checked against (done mini-batches of earlier runs included).

    Attributes:
        total: Mini-batches in the plan.
        items: Items of processed mini-batches.
        failed_items: Items not returned.
        failed_batches: Mini-batches counted failed.
    """

    total: int
    items: int = 0
    failed_items: int = 0
    failed_batches: int = 0

    def add(self, items: int, succeeded: int, batch_failed: bool) -> None:
        """Count one processed mini-batch."""
        self.items += items
        self.failed_items += items - succeeded
        self.failed_batches += int(batch_failed)

    def crossed(self, config: ParallelRunConfig) -> str | None:
        """Return the message naming the threshold crossed, or None."""
        if config.error_threshold != -1 and self.failed_items > config.error_threshold:
            return (
                f"error_threshold={config.error_threshold} crossed: {self.failed_items} input items failed "
                f"(of {self.items} processed)."
            )
        if config.allowed_failed_count is not None and self.failed_batches > config.allowed_failed_count:
            return (
                f"allowed_failed_count={config.allowed_failed_count} crossed: {self.failed_batches} mini-batches "
                f"failed (of {self.total})."
            )
        percent = config.allowed_failed_percent
        if percent is not None and self.total and 100.0 * self.failed_batches / self.total > percent:
            return (
                f"allowed_failed_percent={percent:g} crossed: {self.failed_batches} of {self.total} mini-batches "
                f"failed ({100.0 * self.failed_batches / self.total:.1f}%)."
            )
        return None


class Driver:
    """Runs one job's remaining mini-batches.

    Args:
        folder: The job folder.
        record: Its record (``job.json``), as read at start.

    Attributes:
        state: The job's final state once :meth:`run` returned.
        kept_backend: The loky backend kept warm after the job (None: closed).
        listener: Where the warm driver waits for its next job (bound while ``kept_backend`` is set).
        fingerprint: The job's :func:`~jupyter_mldeploy.batch.warm.fingerprint`, when its backend is kept.
        worker_pids: The pids of the workers its tries ran on (checked before a warm driver reuses them).
    """

    def __init__(self, folder: JobFolder, record: dict[str, Any]) -> None:
        self.folder = folder
        self.record = record
        self.config = ParallelRunConfig.from_dict(self.record["config"])
        loky = self.record["backend"] == "loky"
        self.script = ScriptSpec(job_key=str(self.folder.path), environment=dict(self.record["environment"]),
                                 log_path=str(self.folder.log_path) if loky else None)
        self.keep_warm = float(self.record.get("keepWarm") or 0) if loky else 0.0
        self.cancelled = False
        self.state = RUNNING
        self.kept_backend: OpenBackend | None = None
        self.listener: WarmListener | None = None
        self.fingerprint: str | None = None
        self.worker_pids: set[int] = set()
        #: False when a worker died, the backend failed, or a try of this job still runs: the executor is
        #: not kept for another job.
        self._workers_reusable = True
        #: Next try number of mini-batches waiting for a retry.
        self._attempts: dict[int, int] = {}

    def _request(self, batch: MiniBatch, attempt: int, backend: OpenBackend) -> TryRequest:
        keep_rows = self.config.output_action == APPEND_ROW
        return TryRequest(
            script=self.script, batch=batch, attempt=attempt, timeout=float(self.config.run_invocation_timeout),
            keep_rows=keep_rows, part_dir=str(self.folder.path) if keep_rows and backend.local else None,
        )

    def open_backend(self) -> OpenBackend:
        """Start or connect to the job's backend (loky workers start loading the script at once)."""
        backend = open_backend(self.record["backend"], self.record.get("scheduler"), self.config.process_count_per_node,
                               self.script, self.config.logging_level)
        log.info("Backend: %s.", backend.description)
        return backend

    def _record_outcome(self, outcome: TryOutcome, batch: MiniBatch, tally: Tally) -> bool:
        """Journal one finished try; return True when the mini-batch must be tried again."""
        worker_pid = outcome.worker.rpartition(":")[2]
        if worker_pid.isdigit():
            self.worker_pids.add(int(worker_pid))
        if outcome.error is None:
            if self.config.output_action == APPEND_ROW and not outcome.part_written:
                self.folder.write_part(batch.index, outcome.rows)
            self.folder.append({
                "batch": batch.index, "event": "done", "items": outcome.items, "succeeded": outcome.succeeded,
                "attempt": outcome.attempt, "seconds": round(outcome.seconds, 4), "worker": outcome.worker,
            })
            tally.add(outcome.items, outcome.succeeded, outcome.succeeded < outcome.items)
            if outcome.succeeded < outcome.items:
                log.warning("Mini-batch %d: run() returned %d of %d items.", batch.index, outcome.succeeded, outcome.items)
            return False
        if outcome.init_failed:
            log.error("%s", outcome.error)
            raise JobStopped(FAILED, outcome.error)
        if outcome.attempt < self.config.run_max_try:
            log.warning("Mini-batch %d try %d of %d failed on %s; retrying. %s", batch.index, outcome.attempt,
                        self.config.run_max_try, outcome.worker, outcome.error)
            self.folder.append({"batch": batch.index, "event": "retry", "attempt": outcome.attempt, "error": outcome.error})
            return True
        log.error("Mini-batch %d failed all %d tries (last on %s). %s", batch.index, self.config.run_max_try,
                  outcome.worker, outcome.error)
        self.folder.append({
            "batch": batch.index, "event": "failed", "items": outcome.items, "attempt": outcome.attempt,
            "error": outcome.error,
        })
        tally.add(outcome.items, 0, True)
        return False

    def run(self, backend: OpenBackend | None = None, opening_error: Exception | None = None) -> str:
        """Run the remaining mini-batches; return the final state. Writes the record's state and error.

        Args:
            backend: A backend already opened by the caller (so its workers start while this reads the
                journal); else one is opened when a mini-batch is left to run. Closed at the end.
            opening_error: Why the caller could not open the backend: raised (and recorded) when a
                mini-batch is left to run, rather than trying again (an unreachable scheduler would make
                the job wait for its connection timeout twice).
        """
        state, error = COMPLETED, None
        try:
            if not self.folder.has_plan():
                self._plan()
            plan = list(self.folder.read_plan())
            # Done mini-batches of an earlier run count towards the thresholds; ones that failed every try
            # are tried again.
            done_entries = self.folder.progress().finished
            tally = self._tally_of_done(len(plan), done_entries)
            pending = collections.deque(b for b in plan if b.index not in done_entries)
            log.info("Job %s: %d mini-batches, %d done earlier, %d to run.", self.record["id"], len(plan),
                     len(done_entries), len(pending))
            if pending:
                if opening_error is not None:
                    raise opening_error
                backend = backend or self.open_backend()
                self.folder.update_record(backendDescription=backend.description)
                self._loop(pending, backend, tally)
            if self.config.output_action == APPEND_ROW:
                output = Path(self.record["outputFile"])
                size = self.folder.assemble(self.folder.progress().finished, output)
                log.info("Output: %s (%d bytes).", output, size)
        except JobStopped as stop:
            state, error = stop.state, stop.message
            log.error("Job %s: %s", state, stop.message)
        except Exception as exc:  # noqa: BLE001 - a dead worker or an unreachable scheduler ends the job
            state = FAILED
            self._workers_reusable = False
            error = (
                f"{type(exc).__name__}: {exc}. Mini-batches done so far are kept; resume with "
                f"`mldeploy batch resume {self.record['id']}`."
            )
            log.exception("Job failed")
        # The state is final before the workers are stopped: the output is in place (or the job failed),
        # and whoever waits for the job need not wait for the pool's shutdown too. A driver staying warm
        # listens before that, so a job submitted as soon as this one reads final finds it.
        kept = backend if backend is not None and self._stays_warm(backend) else None
        try:
            self.folder.update_record(state=state, error=error, endTime=_utc_now())
        finally:
            if backend is not None and kept is None:
                backend.close()
        self.state, self.kept_backend = state, kept
        return state

    def _stays_warm(self, backend: OpenBackend) -> bool:
        """Whether to keep the workers for the next job: a loky job with ``keep_warm`` that was not cancelled
        and whose workers are sound, when no other driver of the workspace listens already."""
        if self.keep_warm <= 0 or self.cancelled or not self._workers_reusable:
            return False
        listener = WarmListener(socket_path(self.folder.workspace_path, backend.workers), self.folder.workspace_path)
        try:
            self.fingerprint = fingerprint(self.folder, self.record)
            if not listener.bind():
                log.info("Another warm driver listens for this workspace's jobs: this one exits.")
                return False
        except OSError as exc:
            log.warning("Not staying warm: %s", exc)
            listener.close()
            return False
        self.listener = listener
        return True

    def _plan(self) -> None:
        """Cut the input into mini-batches (the files and limit submit recorded) and record their count."""
        started = time.perf_counter()
        recorded = self.record["input"]
        resolved = ResolvedInput(kind=recorded["kind"], files=tuple(path for path, *_ in self.record["inputStamps"]),
                                 source=recorded["source"])
        total = self.folder.write_plan(plan_mini_batches(resolved, int(recorded["miniBatchLimit"])))
        self.record = self.folder.update_record(totalMiniBatches=total)
        log.info("Planned %d mini-batches in %.2f s.", total, time.perf_counter() - started)

    def _tally_of_done(self, total: int, done: set[int]) -> Tally:
        tally = Tally(total=total)
        latest: dict[int, dict[str, Any]] = {}
        for entry in self.folder.entries():
            if entry.get("event") == "done" and int(entry["batch"]) in done:
                latest[int(entry["batch"])] = entry
        for entry in latest.values():
            items, succeeded = int(entry.get("items", 0)), int(entry.get("succeeded", 0))
            tally.add(items, succeeded, succeeded < items)
        return tally

    def _loop(self, pending: collections.deque[MiniBatch], backend: OpenBackend, tally: Tally) -> None:
        in_flight: dict[Future[TryOutcome], tuple[MiniBatch, int]] = {}
        try:
            self._submit_and_record(pending, backend, tally, in_flight)
        except BaseException:
            # A stopped job's tries left running would write this job's parts and load its script again on
            # workers already serving the next job: such workers are not kept.
            left_running = [future for future in in_flight if not future.done() and not future.cancel()]
            if left_running:
                self._workers_reusable = False
            raise

    def _submit_and_record(self, pending: collections.deque[MiniBatch], backend: OpenBackend, tally: Tally,
                           in_flight: dict[Future[TryOutcome], tuple[MiniBatch, int]]) -> None:
        limit = max(1, backend.workers * IN_FLIGHT_PER_WORKER)
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                batch = pending.popleft()
                attempt = self._attempts.pop(batch.index, 1)
                in_flight[backend.executor.submit(score_mini_batch, self._request(batch, attempt, backend))] = (batch, attempt)
            finished, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
            if self.cancelled:
                raise JobStopped(CANCELED, "Cancelled; resume with `mldeploy batch resume "
                                 f"{self.record['id']}` to finish it.")
            for future in finished:
                batch, attempt = in_flight.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker process died, or the cluster lost the task
                    self._workers_reusable = False
                    log.exception("Mini-batch %d: no result from the backend", batch.index)
                    first_line = (str(exc).strip().splitlines() or [""])[0]
                    raise JobStopped(FAILED, (
                        f"A worker stopped while running mini-batch {batch.index} ({type(exc).__name__}: "
                        f"{first_line}). Mini-batches done so far are kept; resume with "
                        f"`mldeploy batch resume {self.record['id']}`."
                    )) from exc
                if self._record_outcome(outcome, batch, tally):
                    self._attempts[batch.index] = attempt + 1
                    pending.appendleft(batch)
                message = tally.crossed(self.config)
                if message:
                    raise JobStopped(FAILED, message)

    def start(self, backend: OpenBackend | None = None) -> str:
        """Run the job with ``SIGTERM`` as cancel; return its final state.

        The backend is opened first when mini-batches may be left to run (loky's workers then import the
        script's libraries and call ``init()`` while this process plans the mini-batches, reads its journal
        and imports the rest); a job whose every mini-batch is done only assembles its output.

        Args:
            backend: The warm workers of this driver's previous job, to run this one on.
        """
        signal.signal(signal.SIGTERM, self._on_term)
        done = sum(1 for entry in self.folder.entries() if entry.get("event") == "done")
        opening_error = None
        if backend is None and (not self.folder.has_plan() or done < int(self.record.get("totalMiniBatches") or 0)):
            try:
                backend = self.open_backend()
            except Exception as exc:  # noqa: BLE001 - run() records it as the job's failure
                opening_error = exc
        return self.run(backend, opening_error)

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self.cancelled = True


def _utc_now() -> str:
    """``deploy.state.utc_now``, imported when first needed (see :func:`main`)."""
    from jupyter_mldeploy.deploy.state import utc_now

    return utc_now()


def _run_job(folder: JobFolder, record: dict[str, Any], backend: OpenBackend | None) -> Driver:
    started = time.time()
    driver = Driver(folder, record)
    driver.start(backend)
    log.info("Job %s after %.1f s.", driver.state, time.time() - started)
    return driver


def _wait_warm(driver: Driver) -> JobFolder | None:
    """Wait, with the kept workers, for the next job handed off to this driver; None to exit."""
    assert driver.listener is not None
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    log.info("Staying warm for %g s (pid %d, workers kept) for the next job of this workspace.", driver.keep_warm,
             os.getpid())
    try:
        folder = driver.listener.wait_for_job(driver.keep_warm, lambda: bool(stop))
    finally:
        driver.listener.close()
    if folder is None:
        why = "SIGTERM" if stop else ("the workspace folder is gone" if not driver.folder.workspace_path.is_dir()
                                      else f"idle for {driver.keep_warm:g} s")
        log.info("Warm driver %d exits: %s.", os.getpid(), why)
    return folder


def _next_job(previous: Driver, folder: JobFolder) -> Driver:
    """Run a job handed off to this warm driver, on the kept workers when its fingerprint is the same."""
    # As a freshly spawned driver: running in the job folder, writing to the job log.
    os.chdir(folder.path)
    point_output_at(folder.log_path)
    record = json.loads(folder.record_path.read_text(encoding="utf-8"))
    logging.getLogger().setLevel(getattr(logging, record.get("config", {}).get("logging_level", "INFO"), logging.INFO))
    backend = previous.kept_backend
    assert backend is not None
    if fingerprint(folder, record) != previous.fingerprint:
        log.info("Warm driver %d: starting fresh workers (script, source files, environment_variables or "
                 "logging_level differ from job %s).", os.getpid(), previous.record["id"])
        backend.close()
        backend = None
    elif not _workers_answer(backend, previous.worker_pids):
        log.warning("Warm driver %d: a worker kept from job %s died while idle; starting fresh workers.",
                    os.getpid(), previous.record["id"])
        backend.close()
        backend = None
    else:
        log.info("Warm driver %d: reusing the workers of job %s.", os.getpid(), previous.record["id"])
    return _run_job(folder, record, backend)


def _workers_answer(backend: OpenBackend, worker_pids: set[int]) -> bool:
    """Whether the kept loky pool can run the next job.

    A worker may die while idle (the OOM killer, a signal): loky then marks the whole pool broken, but only
    some time after the death, and every later submit fails, which would fail the next job's first
    mini-batches. So every worker the last job heard from must still be alive (not a zombie), and one no-op
    task must come back.

    Args:
        backend: The kept loky backend.
        worker_pids: The pids of the workers that ran the last job's tries (:attr:`Driver.worker_pids`).
    """
    import psutil

    for pid in worker_pids:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
    try:
        backend.executor.submit(os.getpid).result(timeout=PROBE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - loky's TerminatedWorkerError / BrokenProcessPool, or no answer
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the job in the given folder, then the jobs handed off while warm; exit 0 when the last completed."""
    parser = argparse.ArgumentParser(prog="python -m jupyter_mldeploy.batch.driver")
    parser.add_argument("job_folder")
    args = parser.parse_args(argv)
    folder = JobFolder(Path(args.job_folder))
    # Read without JobFolder.read_record, which imports the deploy package (a quarter of a second): the
    # workers are started first. submit and resume write the record (atomically) before starting us.
    record = json.loads(folder.record_path.read_text(encoding="utf-8"))
    level = record.get("config", {}).get("logging_level", "INFO")
    logging.basicConfig(stream=sys.stdout, level=getattr(logging, level, logging.INFO), format=LOG_FORMAT)
    driver = _run_job(folder, record, None)
    while driver.kept_backend is not None:
        next_folder = _wait_warm(driver)
        if next_folder is None:
            driver.kept_backend.close()
            break
        driver = _next_job(driver, next_folder)
    return 0 if driver.state == COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
