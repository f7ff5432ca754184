"""What the targets that run our supervisor share: spec and status files, health, and the SIGHUP switch.

The process target and the Docker target both run ``python -m jupyter_mldeploy.server`` (the supervisor of
:mod:`jupyter_mldeploy.server.supervisor`) and drive it through the files of
:mod:`jupyter_mldeploy.server.protocol`. A zero-downtime switch is the same for both, whatever delivers the
signal (``os.kill`` or ``docker kill --signal``):

1. lay out ``app-<n+1>/`` and rewrite the spec file; remember the old spec and the status's generation in the
   record's ``target_state["pending"]``;
2. send ``SIGHUP``: the supervisor starts a new worker generation on the same listening socket;
3. :meth:`SupervisedTarget.settle` reads the outcome from the status file: a higher generation that is
   ``Healthy`` is adopted (the record takes the new state, the old app folder goes); a ``last_reload`` with
   ``ok: false`` is refused (the old spec is restored, the old workers never stopped serving).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from jupyter_mldeploy.deploy.app_folder import remove_app_folder
from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.state import ServiceRecord, ServiceState, read_json, write_json_atomic
from jupyter_mldeploy.deploy.targets.base import ServiceTarget
from jupyter_mldeploy.errors import DeploymentError, headline
from jupyter_mldeploy.server.protocol import ProtocolError, SpecFile, SupervisorStatus

#: Seconds a switch waits for the new worker generation to become healthy.
SWITCH_TIMEOUT_SEC = 300.0
#: Lines of the server log attached to a DeploymentError.
ERROR_LOG_LINES = 200


@dataclass
class SupervisedState:
    """``target_state`` of a supervised service.

    Attributes:
        app_generation: Number of the app folder in use (``app-<n>``).
        server_generation: The supervisor's worker generation serving it, from its status file.
        status_file: The status file, relative to the service folder.
        spec_file: The spec file, relative to the service folder.
        python: The interpreter the workers run (as the server sees it).
        pid: The supervisor's pid on this machine (process target), or None.
        pid_create_time: Its ``psutil`` create time, against pid reuse, or None.
        log_offset: Where the latest start's output begins in the log (bytes; process target).
        pending: A switch under way: ``{"record", "base_server_generation", "previous_spec", "log_cursor",
            "retiring_workers"}``; None otherwise.
        extra: Further target facts (the Docker target's container reference).
    """

    app_generation: int = 1
    server_generation: int | None = None
    status_file: str = "status.json"
    spec_file: str = "spec.json"
    python: str = ""
    pid: int | None = None
    pid_create_time: float | None = None
    log_offset: int = 0
    pending: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON stored as the record's ``target_state``."""
        return asdict(self)

    @classmethod
    def of(cls, record: ServiceRecord) -> SupervisedState:
        """Read a record's ``target_state`` (unknown keys ignored, missing ones defaulted)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in record.target_state.items() if k in known})


def read_status(path: Path) -> SupervisorStatus | None:
    """Return the supervisor's status, or None when not written yet (or unreadable mid-write)."""
    try:
        return SupervisorStatus.from_json(read_json(path))
    except ProtocolError:
        return None


def write_spec(path: Path, spec: SpecFile) -> None:
    """Write a spec file atomically (the supervisor may re-read it at any moment)."""
    write_json_atomic(path, spec.to_json())


def reload_base(status: SupervisorStatus | None) -> int:
    """The generation a new switch's outcome is compared with (see :func:`switch_outcome`).

    The supervisor numbers every attempt, failed ones too: the new one is above both numbers.
    """
    if status is None:
        return 0
    last = status.last_reload.generation if status.last_reload is not None else 0
    return max(status.generation or 0, last)


def switch_outcome(status: SupervisorStatus | None, base_generation: int) -> bool | None:
    """Read a switch's outcome: True adopted, False refused, None not decided yet."""
    if status is None:
        return None
    if status.generation is not None and status.generation > base_generation and status.state == "Healthy":
        return True
    last = status.last_reload
    if last is not None and last.generation > base_generation and not last.ok:
        return False
    return None


def probe_health(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True when ``GET /`` on the service answers 200 (liveness)."""
    address = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in address:
        address = f"[{address}]"
    try:
        response = requests.get(f"http://{address}:{port}/", timeout=timeout)
    except requests.RequestException:
        return False
    return response.status_code == 200


def running_state(record: ServiceRecord, reported: str, error: str | None) -> tuple[ServiceState, str | None]:
    """The state of a running server from what its supervisor reports; ``Healthy`` is confirmed by ``GET /``."""
    if reported == "Failed":
        return ServiceState(ServiceState.FAILED), error
    if reported == "Healthy":
        if probe_health(record.host, record.port):
            return ServiceState(ServiceState.HEALTHY), None
        return ServiceState(ServiceState.UNHEALTHY), f"GET / on port {record.port} does not answer 200."
    return ServiceState(ServiceState.TRANSITIONING), None


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed; return whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def error_tail(text: str, num_lines: int = ERROR_LOG_LINES) -> str:
    """The end of a log for an error message, without the per-request access lines that drown a traceback."""
    kept = [line for line in text.splitlines() if " mldeploy.access - " not in line]
    return "\n".join(kept[-num_lines:])


class SupervisedTarget(ServiceTarget):
    """Base of the targets that run the supervisor; implements the zero-downtime SIGHUP switch.

    Subclasses say how to deliver the signal, whether the supervisor is alive, and how to read its log.
    """

    @abstractmethod
    def send_reload(self, store: ServiceStore, record: ServiceRecord) -> None:
        """Deliver ``SIGHUP`` to the service's supervisor.

        Raises:
            ProcessLookupError: When the supervisor is gone.
        """

    @abstractmethod
    def supervisor_alive(self, store: ServiceStore, record: ServiceRecord) -> bool:
        """True while the service's supervisor runs."""

    @abstractmethod
    def log_since(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> str:
        """The log written since ``cursor`` (as returned by :meth:`log_cursor`)."""

    @abstractmethod
    def log_cursor(self, store: ServiceStore, record: ServiceRecord) -> Any:
        """A JSON-safe position at the log's current end."""

    def wait_retired(self, workers: list[Any], timeout: float) -> None:
        """Wait until the retired generation's workers exited (they finish in-flight requests first).

        Default: no wait (a target whose worker pids are not this machine's cannot watch them).
        """
        del workers, timeout

    def retiring_workers(self, status: SupervisorStatus | None) -> list[Any]:
        """Identify the workers a switch retires, for :meth:`wait_retired`; default none."""
        del status
        return []

    # -- files -----------------------------------------------------------------------------------------

    @staticmethod
    def status_path(store: ServiceStore, record: ServiceRecord) -> Path:
        """The service's status file."""
        return store.folder(record.name) / SupervisedState.of(record).status_file

    @staticmethod
    def spec_path(store: ServiceStore, record: ServiceRecord) -> Path:
        """The service's spec file."""
        return store.folder(record.name) / SupervisedState.of(record).spec_file

    @staticmethod
    def app_root(store: ServiceStore, record: ServiceRecord, generation: int | None = None) -> Path:
        """``app-<n>`` of the service (the one in use by default)."""
        number = generation if generation is not None else SupervisedState.of(record).app_generation
        return store.folder(record.name) / f"app-{number}"

    # -- the switch ------------------------------------------------------------------------------------

    def switch_in_place(
        self, store: ServiceStore, record: ServiceRecord, new_record: ServiceRecord, spec: SpecFile, wait: bool
    ) -> None:
        """Switch the running supervisor to ``new_record``'s app folder with ``SIGHUP`` (see the module doc).

        Raises:
            DeploymentError: When the supervisor is gone, or (with ``wait``) the new generation is refused.
        """
        spec_path = self.spec_path(store, record)
        status = read_status(self.status_path(store, record))
        previous_spec = read_json(spec_path)
        write_spec(spec_path, spec)
        state = SupervisedState.of(record)
        state.pending = {
            "record": new_record.to_dict(),
            "base_server_generation": reload_base(status),
            "previous_spec": previous_spec,
            "log_cursor": self.log_cursor(store, record),
            "retiring_workers": self.retiring_workers(status),
        }
        record.target_state = state.to_json()
        store.save_file_only(record)
        try:
            self.send_reload(store, record)
        except ProcessLookupError:
            self._abandon(store, record)
            raise DeploymentError(f"Service {record.name!r} stopped during the update; reload() restarts it.") from None
        if wait:
            self.settle(store, record, SWITCH_TIMEOUT_SEC)

    def pending_outcome(self, store: ServiceStore, record: ServiceRecord) -> bool | None:
        """The outcome of the switch under way (see :func:`switch_outcome`), or None when none is decided."""
        pending = SupervisedState.of(record).pending
        if pending is None:
            return None
        return switch_outcome(read_status(self.status_path(store, record)), int(pending["base_server_generation"]))

    def settle(self, store: ServiceStore, record: ServiceRecord, timeout: float) -> None:
        """Adopt a decided switch, or restore the old spec and raise (see :meth:`ServiceTarget.settle`)."""
        record = store.read(record.name)
        state = SupervisedState.of(record)
        pending = state.pending
        if pending is None:
            return
        status_path = self.status_path(store, record)
        base = int(pending["base_server_generation"])
        outcome: bool | None = None

        def decided() -> bool:
            nonlocal outcome
            outcome = switch_outcome(read_status(status_path), base)
            return outcome is not None or not self.supervisor_alive(store, record)

        if not wait_until(decided, timeout):
            outcome = False
        new_record = ServiceRecord.from_dict(pending["record"], store.record_path(record.name))
        new_state = SupervisedState.of(new_record)
        if outcome:
            self.wait_retired(pending.get("retiring_workers") or [], timeout=30.0)
            status = read_status(status_path)
            new_state.server_generation = status.generation if status is not None else None
            new_state.pending = None
            new_record.target_state = new_state.to_json()
            new_record.last_error = None
            store.save(new_record)
            remove_app_folder(self.app_root(store, record))
            return
        status = read_status(status_path)
        detail = str((status.last_reload.error if status and status.last_reload else None) or "")
        reason = headline(detail) or (
            "the server stopped" if not self.supervisor_alive(store, record) else f"no answer within {timeout:g} s"
        )
        self._abandon(store, record)
        remove_app_folder(self.app_root(store, new_record))
        logs = error_tail(self.log_since(store, record, pending.get("log_cursor")))
        if detail and detail.strip() not in logs:
            logs = f"{logs}\n{detail.strip()}" if logs else detail.strip()
        message = f"Update of service {record.name!r} failed ({reason}); the previous version keeps serving."
        record = store.read(record.name)
        record.last_error = message
        store.save_file_only(record)
        raise DeploymentError(message, logs=logs)

    def _abandon(self, store: ServiceStore, record: ServiceRecord) -> None:
        """Forget a switch: restore the previous spec and clear ``pending``."""
        state = SupervisedState.of(record)
        previous_spec = (state.pending or {}).get("previous_spec")
        if isinstance(previous_spec, dict):
            write_json_atomic(self.spec_path(store, record), previous_spec)
        state.pending = None
        record.target_state = state.to_json()
        store.save_file_only(record)
