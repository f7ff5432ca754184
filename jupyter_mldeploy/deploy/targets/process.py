"""The ``process`` target (the default): the scoring server as a detached local process.

A service lives in ``deployments/<service>/``::

    service.json      the record (JSON, replaced atomically); ``target_state`` holds pid, generations, files
    spec.json         what the supervisor runs; re-read on SIGHUP (:class:`~jupyter_mldeploy.server.protocol.SpecFile`)
    status.json       written by the supervisor (:class:`~jupyter_mldeploy.server.protocol.SupervisorStatus`)
    server.log        the supervisor's and workers' output
    app-<n>/          the app folder of generation n (source copy + azureml-models/)

The server runs in the environment's interpreter (built once with uv into the cache), or in the deploying
interpreter when the inference config declares none. A change of code, models or environment is a SIGHUP
switch on the same listening socket (:mod:`~jupyter_mldeploy.deploy.targets.supervised`): no request fails.
Only a change of port or host needs a second supervisor: the new one is started on the new port and must be
healthy before the old one is stopped.

Crash safety: the record is written *before* the supervisor starts (with no pid), and every supervisor's
command line names its status file inside the service folder, so a deploy killed at any step leaves nothing
that :meth:`ProcessTarget.delete` or the next deploy of that name cannot find and stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jupyter_mldeploy.deploy.app_folder import remove_app_folder
from jupyter_mldeploy.deploy.plan import DeploymentPlan
from jupyter_mldeploy.deploy.ports import ensure_port_free, free_port
from jupyter_mldeploy.deploy.service_keys import ensure_keys, keys_variables
from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.state import ServiceRecord, ServiceState, read_json
from jupyter_mldeploy.deploy.targets import local_process
from jupyter_mldeploy.deploy.targets.base import Observation
from jupyter_mldeploy.deploy.targets.supervised import (
    SWITCH_TIMEOUT_SEC,
    SupervisedState,
    SupervisedTarget,
    error_tail,
    probe_health,
    read_status,
    running_state,
    wait_until,
    write_spec,
)
from jupyter_mldeploy.errors import DeploymentError, MLDeployError
from jupyter_mldeploy.server.protocol import SpecFile, SupervisorStatus

#: Seconds a stopping server gets to finish in-flight requests before SIGKILL.
STOP_TIMEOUT_SEC = 10.0
#: Seconds a recorded deploy may take to start its server before a record with no pid reads ``Failed``.
START_GRACE_SEC = 60.0
LOG_FILENAME = "server.log"


def _read_log(store: ServiceStore, name: str, offset: int = 0) -> str:
    try:
        with open(store.folder(name) / LOG_FILENAME, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _log_size(store: ServiceStore, name: str) -> int:
    path = store.folder(name) / LOG_FILENAME
    return path.stat().st_size if path.exists() else 0


class ProcessTarget(SupervisedTarget):
    """Services as detached local processes (see the module docstring)."""

    name = "process"
    compute_type = "Local"

    def check_available(self) -> None:
        """Always available: it needs only this machine's Python."""

    # -- environment ---------------------------------------------------------------------------------

    @staticmethod
    def _python(plan: DeploymentPlan, show_output: bool) -> tuple[str, dict[str, Any] | None]:
        """Return the interpreter to serve with and a description of its environment (None: this one).

        A declared environment is built (or reused from the cache) before anything of the service is
        written, so a build failure changes nothing. ``build_local`` also serves user-managed environments:
        it checks their interpreter has what the server needs.
        """
        environment = plan.environment()
        if environment is None:
            return sys.executable, None
        built = environment.build_local(plan.workspace, show_output=show_output)
        return str(built.python), {
            "name": environment.name,
            "version": environment.version,
            "spec_hash": built.spec_hash,
            "reused": bool(built.reused),
            "user_managed": bool(getattr(built, "user_managed", False)),
        }

    # -- create ----------------------------------------------------------------------------------------

    def create(self, store: ServiceStore, plan: DeploymentPlan, show_output: bool) -> ServiceRecord:
        """Lay out ``app-1``, record the service, then start its supervisor (see :meth:`ServiceTarget.create`)."""
        python, environment = self._python(plan, show_output)
        host = plan.deployment_config.host
        port = plan.port if plan.port is not None else free_port(host)
        ensure_port_free(port, host)
        folder = store.folder(plan.name)
        self._stop_strays(store, plan.name)
        remove_app_folder(folder)  # a leftover of a crash before service.json was written: nothing serves from it
        folder.mkdir(parents=True)
        try:
            app = plan.layout(folder / "app-1")
            state = SupervisedState(python=python, log_offset=_log_size(store, plan.name))
            record = plan.record(port, environment, state.to_json())
            ensure_keys(folder, plan.deployment_config)
            env = {**plan.scoring_variables(app), **keys_variables(plan.deployment_config, folder)}
            write_spec(folder / state.spec_file, SpecFile(python, str(app.root), env, plan.deployment_config.worker_count))
            store.save(record)  # before the start: a crash from here on leaves a record naming the folder
            record = self._start(store, record, app.root, app.entry_script)
        except BaseException:
            with contextlib.suppress(MLDeployError):
                self.delete(store, plan.name)
            raise
        return record

    def _start(self, store: ServiceStore, record: ServiceRecord, cwd: Path, entry_script: Path) -> ServiceRecord:
        """Start the supervisor of ``record`` and save its pid into the record."""
        state = SupervisedState.of(record)
        folder = store.folder(record.name)
        env = SpecFile.from_json(read_json_dict(folder / state.spec_file)).env
        started = local_process.start_server(
            folder / LOG_FILENAME, folder / state.status_file, folder / state.spec_file, state.python, cwd,
            entry_script, record.host, record.port, env,
        )
        state.pid, state.pid_create_time, state.log_offset = started.pid, started.create_time, started.log_offset
        record.target_state = state.to_json()
        store.save_file_only(record)
        return record

    # -- update ----------------------------------------------------------------------------------------

    def update(
        self, store: ServiceStore, record: ServiceRecord, plan: DeploymentPlan, wait: bool, show_output: bool
    ) -> None:
        """Switch in place with SIGHUP; a new port or host (or a server that is not healthy) restarts."""
        state = SupervisedState.of(record)
        if plan.new_environment or not state.python or not _exists(state.python):
            python, environment = self._python(plan, show_output)
        else:
            python, environment = state.python, record.environment
        new_port = plan.port if plan.port is not None else record.port
        host = plan.deployment_config.host
        restart = new_port != record.port or host != record.host
        running = local_process.is_running(state.pid, state.pid_create_time)
        if running and not restart and not self.observe(store, record).state.is_(ServiceState.HEALTHY):
            # A server that is still starting, or no longer answers, cannot switch generations: replace it.
            restart = True
        if restart and new_port != record.port:
            ensure_port_free(new_port, host)
        generation = state.app_generation + 1
        app = plan.layout(self.app_root(store, record, generation), previous=self.app_root(store, record))
        new_state = SupervisedState(
            app_generation=generation, server_generation=state.server_generation, status_file=state.status_file,
            spec_file=state.spec_file, python=python, pid=state.pid, pid_create_time=state.pid_create_time,
            log_offset=state.log_offset,
        )
        new_record = plan.record(new_port, environment, new_state.to_json(), previous=record)
        folder = store.folder(record.name)
        ensure_keys(folder, plan.deployment_config)
        env = {**plan.scoring_variables(app), **keys_variables(plan.deployment_config, folder)}
        spec = SpecFile(python, str(app.root), env, plan.deployment_config.worker_count)
        try:
            if running and not restart:
                self.switch_in_place(store, record, new_record, spec, wait)
            else:
                self._switch_by_restart(store, record, new_record, spec, app.entry_script, running, wait)
        except BaseException:
            remove_app_folder(app.root)
            raise

    def _switch_by_restart(
        self,
        store: ServiceStore,
        record: ServiceRecord,
        new_record: ServiceRecord,
        spec: SpecFile,
        entry_script: Path,
        running: bool,
        wait: bool,
    ) -> None:
        """Run the new version in a second supervisor.

        On a new address while the old server runs: start the new one, wait until it is healthy, then stop the
        old one (a failure stops the new one and leaves the old serving). Otherwise (the old server is gone,
        or not healthy and holding the same address): stop what is left of the old one first, then start,
        and with ``wait`` return once it is healthy.
        """
        old = SupervisedState.of(record)
        new = SupervisedState.of(new_record)
        new.status_file = f"status-{new.app_generation}.json"
        new.spec_file = f"spec-{new.app_generation}.json"
        new_record.target_state = new.to_json()
        folder = store.folder(record.name)
        replace_first = not running or (record.port == new_record.port and record.host == new_record.host)
        if replace_first:
            local_process.stop_server(old.pid, old.pid_create_time, timeout=STOP_TIMEOUT_SEC)
            ensure_port_free(new_record.port, new_record.host)
        write_spec(folder / new.spec_file, spec)
        started = local_process.start_server(
            folder / LOG_FILENAME, folder / new.status_file, folder / new.spec_file, new.python, Path(spec.cwd or ""),
            entry_script, new_record.host, new_record.port, spec.env,
        )
        new.pid, new.pid_create_time, new.log_offset = started.pid, started.create_time, started.log_offset
        new_record.target_state = new.to_json()
        if not replace_first:
            try:
                self._wait_healthy(store, new_record, SWITCH_TIMEOUT_SEC)
            except DeploymentError:
                local_process.stop_server(started.pid, started.create_time, timeout=STOP_TIMEOUT_SEC)
                (folder / new.status_file).unlink(missing_ok=True)
                (folder / new.spec_file).unlink(missing_ok=True)
                raise
            local_process.stop_server(old.pid, old.pid_create_time, timeout=STOP_TIMEOUT_SEC)
        store.save(new_record)
        if old.status_file != new.status_file:
            (folder / old.status_file).unlink(missing_ok=True)
        if old.spec_file != new.spec_file:
            (folder / old.spec_file).unlink(missing_ok=True)
        remove_app_folder(self.app_root(store, record))
        if replace_first and wait:
            self._wait_healthy(store, new_record, SWITCH_TIMEOUT_SEC, replaced=True)

    def _wait_healthy(self, store: ServiceStore, record: ServiceRecord, timeout: float, replaced: bool = False) -> None:
        """Wait until the server of ``record`` (not necessarily the saved one) answers healthy; else raise."""
        state = SupervisedState.of(record)
        status_path = store.folder(record.name) / state.status_file

        def healthy_or_done() -> bool:
            status = read_status(status_path)
            alive = local_process.is_running(state.pid, state.pid_create_time)
            if not alive or (status is not None and status.state == "Failed"):
                return True
            return status is not None and status.state == "Healthy" and probe_health(record.host, record.port)

        wait_until(healthy_or_done, timeout)
        status = read_status(status_path)
        alive = local_process.is_running(state.pid, state.pid_create_time)
        if alive and status is not None and status.state == "Healthy":
            return
        reason = (status.error if status else None) or ("it exited" if not alive else f"not healthy after {timeout:g} s")
        outcome = "nothing serves now" if replaced else "the previous one keeps serving"
        raise DeploymentError(
            f"The new version of service {record.name!r} failed to start ({reason}); {outcome}.",
            logs=error_tail(_read_log(store, record.name, state.log_offset)),
        )

    # -- SupervisedTarget hooks ------------------------------------------------------------------------

    def send_reload(self, store: ServiceStore, record: ServiceRecord) -> None:
        """``os.kill(pid, SIGHUP)``."""
        pid = SupervisedState.of(record).pid
        if pid is None:
            raise ProcessLookupError("no pid recorded")
        os.kill(pid, signal.SIGHUP)

    def supervisor_alive(self, store: ServiceStore, record: ServiceRecord) -> bool:
        """The recorded pid runs (and is the process recorded, not a reuse of the number)."""
        state = SupervisedState.of(record)
        return local_process.is_running(state.pid, state.pid_create_time)

    def log_cursor(self, store: ServiceStore, record: ServiceRecord) -> int:
        """The log's size in bytes."""
        return _log_size(store, record.name)

    def log_since(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> str:
        """The log from byte ``cursor`` on."""
        return _read_log(store, record.name, int(cursor or 0))

    def retiring_workers(self, status: SupervisorStatus | None) -> list[Any]:
        """``[pid, create_time]`` of the serving workers (they are this machine's processes)."""
        return local_process.identify(status.workers if status is not None else [])

    def wait_retired(self, workers: list[Any], timeout: float) -> None:
        """Wait for the old workers: until they exited, one of them could still accept a connection."""
        local_process.wait_for_exit(workers, timeout=timeout)

    # -- observe and logs ------------------------------------------------------------------------------

    def observe(self, store: ServiceStore, record: ServiceRecord) -> Observation:
        """Read the status file, the pid and ``GET /`` (a status file written by another pid is ignored)."""
        state = SupervisedState.of(record)
        details = {"pid": state.pid, "python": state.python, "appFolder": str(self.app_root(store, record))}
        status = read_status(self.status_path(store, record))
        if status is not None and state.pid is not None and status.pid not in (None, state.pid):
            status = None  # a stray server of an earlier, killed deploy wrote it: not this service's truth
        reported = status.state if status is not None else "Transitioning"
        error = (status.error if status is not None else None) or record.last_error
        alive = local_process.is_running(state.pid, state.pid_create_time)
        started = _started_time(state) if alive else None
        if state.pid is None:
            recorded = datetime.fromisoformat(record.updated_time)
            if datetime.now(timezone.utc) - recorded < timedelta(seconds=START_GRACE_SEC):
                return Observation(ServiceState(ServiceState.TRANSITIONING), None, None, details)
            return Observation(
                ServiceState(ServiceState.FAILED),
                "The deploy stopped before the scoring server started; deploy again with overwrite=True.",
                None, details,
            )
        if state.pending is not None and alive and self.pending_outcome(store, record) is None:
            return Observation(ServiceState(ServiceState.TRANSITIONING), None, started, details)
        if not alive:
            if reported == "Healthy":
                return Observation(ServiceState(ServiceState.UNHEALTHY), error or (
                    f"The scoring server (pid {state.pid}) is no longer running; see get_logs(), then reload()."
                ), None, details)
            code = local_process.exit_code(state.pid)
            if code == local_process.EXIT_PORT_TAKEN:
                error = error or f"Port {record.port} was taken before the server could bind it."
            return Observation(ServiceState(ServiceState.FAILED), error or self._last_log_error(store, record),
                               None, details)
        live_state, live_error = running_state(record, reported, error)
        return Observation(live_state, live_error, started, details)

    @staticmethod
    def _last_log_error(store: ServiceStore, record: ServiceRecord) -> str:
        log = _read_log(store, record.name, SupervisedState.of(record).log_offset).strip().splitlines()
        if log:
            return f"The scoring server exited before it was healthy: {log[-1].strip()}"
        return "The scoring server exited before it was healthy (its log is empty)."

    def logs(self, store: ServiceStore, record: ServiceRecord, num_lines: int | None) -> str:
        """``server.log``, its last ``num_lines`` lines."""
        text = _read_log(store, record.name)
        if num_lines is None:
            return text
        lines = text.splitlines()
        return "\n".join(lines[-num_lines:]) if num_lines > 0 else ""

    def follow_logs(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> tuple[str, Any]:
        """Complete lines of ``server.log`` from byte ``cursor`` (None: the latest start)."""
        offset = int(cursor) if cursor is not None else SupervisedState.of(record).log_offset
        text = _read_log(store, record.name, offset)
        complete = text[: text.rfind("\n") + 1]
        return complete, offset + len(complete.encode("utf-8", errors="replace"))

    def failure_logs(self, store: ServiceStore, record: ServiceRecord) -> str:
        """The log of the latest start without access lines, for an error message."""
        return error_tail(_read_log(store, record.name, SupervisedState.of(record).log_offset))

    # -- delete ----------------------------------------------------------------------------------------

    def delete(self, store: ServiceStore, name: str) -> None:
        """Stop the recorded server, a pending one and any stray of the folder, then remove folder and rows."""
        with contextlib.suppress(MLDeployError):
            record = store.read(name)
            state = SupervisedState.of(record)
            local_process.stop_server(state.pid, state.pid_create_time, timeout=STOP_TIMEOUT_SEC)
            pending = ((state.pending or {}).get("record") or {}).get("target_state") or {}
            if pending.get("pid") and pending.get("pid") != state.pid:
                local_process.stop_server(pending["pid"], pending.get("pid_create_time"), timeout=STOP_TIMEOUT_SEC)
        self._stop_strays(store, name)
        store.remove(name)

    @staticmethod
    def _stop_strays(store: ServiceStore, name: str) -> None:
        folder = store.folder(name)
        if folder.exists():
            local_process.stop_processes(local_process.servers_of(folder), timeout=STOP_TIMEOUT_SEC)


def _started_time(state: SupervisedState) -> datetime | None:
    if not state.pid_create_time:
        return None
    return datetime.fromtimestamp(state.pid_create_time, tz=timezone.utc)


def _exists(path: str) -> bool:
    return Path(path).exists()


def read_json_dict(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when missing)."""
    data = read_json(path)
    return data if isinstance(data, dict) else {}
