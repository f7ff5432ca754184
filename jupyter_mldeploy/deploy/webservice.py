"""``Webservice`` / ``LocalWebservice`` and ``deploy_model``: a deployed model on the process runtime.

A service lives in ``deployments/<service>/``::

    service.json      the record (JSON, replaced atomically): pid, port, models, configurations
    spec.json         what the supervisor runs; re-read on SIGHUP
    status.json       written by the supervisor: state, worker generation, last reload
    server.log        the supervisor's and workers' output
    app-<n>/          the app folder of generation n (source copy + azureml-models/)

Every property reads the files again, so two Python processes (a notebook and the CLI, or a kernel before
and after a restart) always see the same service, and ``state`` reflects reality: the record's pid is
checked (with its start time) and ``GET /`` is asked.

Zero-downtime ``reload``/``update``: a new app folder ``app-<n+1>`` is laid out next to the running one,
``spec.json`` is rewritten and the supervisor gets SIGHUP. It keeps its listening socket, starts a new
worker generation from the new spec, waits until every new worker's ``init()`` returned, and only then stops
the old workers (which finish their in-flight requests). Clients keep connecting to the same port
throughout, so no request fails. When the new ``init()`` fails, the old workers keep serving, the old spec
is restored and the caller gets a ``DeploymentError`` with the new generation's log. Only a change of port or
host needs a second supervisor: the new one is started on the new port and must be healthy before the old
one is stopped.
"""

from __future__ import annotations

import contextlib
import html
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from filelock import FileLock

from jupyter_mldeploy.deploy import process
from jupyter_mldeploy.deploy.app_folder import AppFolder, ModelSource, build_app_folder, remove_app_folder
from jupyter_mldeploy.deploy.client import send_request
from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.deploy.ports import ensure_port_free, free_port
from jupyter_mldeploy.deploy.state import (
    ModelRef,
    ServiceRecord,
    ServiceState,
    read_json,
    utc_now,
    write_json_atomic,
)
from jupyter_mldeploy.errors import (
    Conflict,
    DeploymentError,
    InvalidArgument,
    MLDeployError,
    NotFound,
)
from jupyter_mldeploy.names import parse_name_version, validate_name
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.inference_config import InferenceConfig
    from jupyter_mldeploy.registry import Model

RUNTIME = "process"
#: Seconds a reload or update waits for the new worker generation to become healthy.
SWITCH_TIMEOUT_SEC = 300.0
#: Seconds a stopping server gets to finish in-flight requests before SIGKILL.
STOP_TIMEOUT_SEC = 10.0
#: Seconds a finished switch waits for the old workers to exit (they finish in-flight requests first).
RETIRE_TIMEOUT_SEC = 30.0
#: Lines of the server log attached to a DeploymentError.
ERROR_LOG_LINES = 200


def _service_folder(workspace: Workspace, name: str) -> Path:
    return workspace.deployments_dir / name


@contextlib.contextmanager
def _service_lock(workspace: Workspace, name: str) -> Iterator[None]:
    """Serialize changes to one service across processes (deploy, reload, update and delete)."""
    locks = workspace.deployments_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{name}.lock"), timeout=SWITCH_TIMEOUT_SEC + 60):
        yield


def _tail(text: str, num_lines: int) -> str:
    lines = text.splitlines()
    return "\n".join(lines[-num_lines:]) if num_lines > 0 else ""


def _error_tail(text: str, num_lines: int = ERROR_LOG_LINES) -> str:
    """The end of a log for an error message, without the per-request access lines that drown a traceback."""
    kept = [line for line in text.splitlines() if " mldeploy.access - " not in line]
    return "\n".join(kept[-num_lines:])


# -- inputs ---------------------------------------------------------------------------------------------


def _resolve_models(workspace: Workspace, models: Any) -> list[ModelSource]:
    """Turn ``Model`` objects or ``"name:version"`` strings into registered version folders."""
    from jupyter_mldeploy.registry import Model

    if models is None or isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
        models = [models] if models is not None else []
    if not models:
        raise InvalidArgument("models is empty: pass the registered Model objects (or 'name:version') to serve.")
    resolved: list[ModelSource] = []
    for item in models:
        if isinstance(item, str):
            name, version = parse_name_version(item)
        elif hasattr(item, "name") and hasattr(item, "version"):
            name, version = str(item.name), int(item.version)
        else:
            raise InvalidArgument(f"Cannot serve {item!r}: pass a registered Model or a 'name:version' string.")
        model = Model(workspace, name, version=version)
        source = ModelSource(name=model.name, version=int(model.version), folder=Path(model.url))
        if not source.folder.is_dir():
            raise NotFound(f"Model '{model.id}' has no files at {source.folder}; register it again.")
        if any(m.name == source.name and m.version == source.version for m in resolved):
            raise InvalidArgument(f"Model '{model.id}' is listed twice; list each model version once.")
        resolved.append(source)
    return resolved


def _check_inputs(inference_config: Any, deployment_config: Any) -> DeploymentConfiguration:
    from jupyter_mldeploy.inference_config import InferenceConfig

    if not isinstance(inference_config, InferenceConfig):
        raise InvalidArgument(
            "inference_config is required: pass InferenceConfig(entry_script='score.py', "
            f"source_directory=..., environment=...), not {type(inference_config).__name__}."
        )
    config = deployment_config if deployment_config is not None else local_deploy_configuration()
    if not isinstance(config, DeploymentConfiguration):
        raise InvalidArgument(
            "deployment_config must come from LocalWebservice.deploy_configuration() or "
            f"DeploymentConfiguration.from_file(), not {type(config).__name__}."
        )
    config.check_runnable()
    inference_config.validate()
    return config


def _resolve_python(
    workspace: Workspace, inference_config: InferenceConfig, show_output: bool
) -> tuple[str, dict[str, Any] | None]:
    """Return the interpreter to serve with and a description of its environment (None: this one).

    A declared environment is built (or reused from the cache) by ``build_local`` before anything of the
    service is written, so a build failure changes nothing.
    """
    environment = inference_config.resolve_environment(workspace)
    if environment is None:
        return sys.executable, None
    # build_local also serves user-managed environments: it checks their interpreter has the server's needs.
    built = environment.build_local(workspace, show_output=show_output)
    return str(built.python), {
        "name": environment.name,
        "version": environment.version,
        "spec_hash": built.spec_hash,
        "reused": bool(built.reused),
        "user_managed": bool(getattr(built, "user_managed", False)),
    }


def _server_env(app: AppFolder, config: DeploymentConfiguration, inference_config: InferenceConfig) -> dict[str, str]:
    """The variables the scoring process gets (names as azureml-inference-server-http reads them)."""
    env: dict[str, str] = {}
    environment = inference_config.environment
    declared = getattr(environment, "environment_variables", None)
    if isinstance(declared, dict):
        env.update({str(k): str(v) for k, v in declared.items()})
    env.update(config.environment_variables)
    env.update(
        {
            "AZUREML_MODEL_DIR": str(app.model_dir),
            "AZUREML_ENTRY_SCRIPT": str(app.entry_script),
            "AZUREML_SOURCE_DIRECTORY": str(app.root),
            "AML_APP_ROOT": str(app.root),
            "WORKER_COUNT": str(config.worker_count),
        }
    )
    if config.scoring_timeout_ms is not None:
        env["SCORING_TIMEOUT_MS"] = str(config.scoring_timeout_ms)
    if config.cors_origins:
        env["AML_CORS_ORIGINS"] = ",".join(config.cors_origins)
    return env


def _layout(
    workspace: Workspace, folder: Path, generation: int, inference_config: InferenceConfig, models: list[ModelSource]
) -> AppFolder:
    return build_app_folder(
        folder / f"app-{generation}",
        entry_script=inference_config.entry_script,
        source_directory=inference_config.source_directory,
        models=models,
        exclude=[workspace.path],
    )


def _service_record(
    name: str,
    runtime: str,
    python: str,
    port: int,
    sources: list[ModelSource],
    inference_config: InferenceConfig,
    config: DeploymentConfiguration,
    environment: dict[str, Any] | None,
    **fields: Any,
) -> ServiceRecord:
    """Build the record of a service serving ``sources`` on ``port`` (both runtimes, deploy and update).

    Sets ``config.port`` to ``port`` first, so the stored deployment configuration names the port in use.
    ``fields`` are the further :class:`ServiceRecord` fields (times, generations, pid, ...).
    """
    config.port = port
    return ServiceRecord(
        name=name,
        runtime=runtime,
        host=config.host,
        port=port,
        python=python,
        models=[ModelRef(s.name, s.version) for s in sources],
        inference_config=inference_config.serialize(),
        deployment_config=config.serialize(),
        environment=environment,
        **fields,
    )


def _reload_base(status: dict[str, Any]) -> int:
    """The generation a new reload's outcome is compared with (see :func:`_switch_outcome`).

    The supervisor numbers every attempt, failed ones too: the new one is above both numbers.
    """
    return max(int(status.get("generation") or 0), int((status.get("last_reload") or {}).get("generation") or 0))


@dataclass(frozen=True)
class _UpdateInputs:
    """What an update serves, resolved and checked before anything changes.

    Attributes:
        inference_config: The new inference configuration, or the service's current one.
        config: The new deployment configuration (checked), or the current one.
        sources: The model versions to serve.
        port: The port to serve on: the new configuration's, else the current one.
    """

    inference_config: InferenceConfig
    config: DeploymentConfiguration
    sources: list[ModelSource]
    port: int


def _write_db(workspace: Workspace, record: ServiceRecord) -> None:
    """Mirror the service and its model versions in the registry (the registry refuses to delete those)."""
    with workspace.transaction() as conn:
        conn.execute(
            "INSERT INTO services (name, runtime, created_time, updated_time) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET runtime = excluded.runtime, updated_time = excluded.updated_time",
            (record.name, record.runtime, record.created_time, record.updated_time),
        )
        conn.execute("DELETE FROM service_models WHERE service = ?", (record.name,))
        conn.executemany(
            "INSERT INTO service_models (service, model_name, model_version) VALUES (?, ?, ?)",
            [(record.name, m.name, m.version) for m in record.models],
        )


def _delete_db(workspace: Workspace, name: str) -> None:
    with workspace.transaction() as conn:
        conn.execute("DELETE FROM service_models WHERE service = ?", (name,))
        conn.execute("DELETE FROM services WHERE name = ?", (name,))


# -- the service ----------------------------------------------------------------------------------------


class Webservice:
    """A deployed service (v1 ``azureml.core.Webservice``); ``Webservice(ws, name)`` re-attaches to it.

    Re-attaching works from any process (a restarted kernel, the CLI): everything is read from the
    service's folder. Properties are read afresh on each access.

    Args:
        workspace: The workspace holding the service.
        name: The service name.

    Raises:
        NotFound: When no such service exists; the message lists the services that do.
    """

    #: v1's ``compute_type`` for local services.
    compute_type = "Local"

    def __new__(cls, *args: Any, **kwargs: Any) -> Webservice:
        # Runtime dispatch: a service deployed with runtime="docker" re-attaches as a DockerWebservice.
        workspace = args[0] if args else kwargs.get("workspace")
        name = args[1] if len(args) > 1 else kwargs.get("name")
        if cls in (Webservice, LocalWebservice) and isinstance(workspace, Workspace) and isinstance(name, str):
            data = read_json(_service_folder(workspace, name) / "service.json") if "/" not in name else None
            if isinstance(data, dict) and data.get("runtime") == "docker":
                from jupyter_mldeploy.docker.service import DockerWebservice

                cls = DockerWebservice
        # As in v1, Webservice(ws, name) returns the subclass of the service's compute type.
        return super().__new__(LocalWebservice if cls is Webservice else cls)

    def __init__(self, workspace: Workspace, name: str) -> None:
        if not isinstance(workspace, Workspace):
            raise InvalidArgument(f"workspace must be a Workspace, not {type(workspace).__name__}.")
        validate_name(name, "service name")
        self.workspace = workspace
        self.name = name
        self._folder = _service_folder(workspace, name)
        self._deleted = False
        if not self._record_path.exists():
            known = ", ".join(repr(s) for s in _service_names(workspace)) or "none"
            raise NotFound(f"No service named {name!r} in workspace {workspace.path} (services: {known}).")

    # -- files ----------------------------------------------------------------------------------------

    @property
    def _record_path(self) -> Path:
        return self._folder / "service.json"

    def _record(self) -> ServiceRecord:
        data = read_json(self._record_path)
        if data is None:
            self._deleted = True
            raise NotFound(f"Service {self.name!r} was deleted.")
        return ServiceRecord.from_dict(data, self._record_path)

    def _save(self, record: ServiceRecord) -> None:
        write_json_atomic(self._record_path, record.to_dict())

    def _files(self, record: ServiceRecord | None = None) -> process.ServerFiles:
        record = record or self._record()
        return process.ServerFiles(self._folder, record.status_file)

    # -- v1 factory -----------------------------------------------------------------------------------

    #: Build a local deployment configuration (v1 ``LocalWebservice.deploy_configuration``): the same
    #: function as :func:`jupyter_mldeploy.deploy.config.local_deploy_configuration`, so the arguments and
    #: their checks are defined once. ``port=None`` picks a free port at deploy time.
    deploy_configuration = staticmethod(local_deploy_configuration)

    @classmethod
    def list(cls, workspace: Workspace, compute_type: str | None = None) -> list[Webservice]:
        """List the services of a workspace, sorted by name (v1 ``Webservice.list``).

        Args:
            workspace: The workspace.
            compute_type: v1 filter; ``"Local"`` (any case) or None list every service, others list none.

        Returns:
            list[Webservice]: One object per service.
        """
        if compute_type is not None and compute_type.lower() != "local":
            return []
        services = []
        for name in _service_names(workspace):
            with contextlib.suppress(NotFound):
                services.append(LocalWebservice(workspace, name))
        return services

    # -- properties -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the service listens on."""
        return self._record().port

    @property
    def scoring_uri(self) -> str:
        """``http://127.0.0.1:<port>/score``."""
        record = self._record()
        host = "127.0.0.1" if record.host in ("0.0.0.0", "") else record.host
        return f"http://{host}:{record.port}/score"

    @property
    def swagger_uri(self) -> str:
        """``http://127.0.0.1:<port>/swagger.json``."""
        return self.scoring_uri[: -len("/score")] + "/swagger.json"

    @property
    def model_ids(self) -> list[str]:
        """The served model versions as ``"name:version"``."""
        return [m.id for m in self._record().models]

    @property
    def models(self) -> list[Model]:
        """The served model versions as registry ``Model`` objects (versions deleted since are left out)."""
        from jupyter_mldeploy.registry import Model

        found = []
        for ref in self._record().models:
            with contextlib.suppress(NotFound):
                found.append(Model(self.workspace, ref.name, version=ref.version))
        return found

    @property
    def created_time(self) -> datetime:
        """When the service was first deployed (timezone-aware UTC)."""
        return datetime.fromisoformat(self._record().created_time)

    @property
    def updated_time(self) -> datetime:
        """When the service was last deployed, reloaded or updated (timezone-aware UTC)."""
        return datetime.fromisoformat(self._record().updated_time)

    @property
    def runtime(self) -> str:
        """``"process"``."""
        return self._record().runtime

    @property
    def pid(self) -> int | None:
        """The supervisor's pid, or None."""
        return self._record().pid

    @property
    def app_folder(self) -> Path:
        """The app folder in use (``deployments/<service>/app-<n>``)."""
        record = self._record()
        return self._folder / f"app-{record.app_generation}"

    @property
    def inference_config(self) -> InferenceConfig:
        """The inference configuration the service was deployed with."""
        from jupyter_mldeploy.inference_config import InferenceConfig

        return InferenceConfig.from_dict(self._record().inference_config, workspace=self.workspace)

    @property
    def deployment_config(self) -> DeploymentConfiguration:
        """The deployment configuration the service was deployed with (with the port in use)."""
        record = self._record()
        config = DeploymentConfiguration.from_dict(record.deployment_config)
        config.port = record.port
        return config

    def _observe(self) -> tuple[ServiceState, str | None]:
        """Return the live state and error (reading the record, the status file, the pid and ``GET /``)."""
        try:
            record = self._record()
        except NotFound:
            return ServiceState(ServiceState.DELETED), None
        files = self._files(record)
        status = process.read_status(files) or {}
        reported = str(status.get("state") or "Transitioning")
        error = status.get("error") or record.last_error
        if record.pending is not None:
            outcome = _switch_outcome(status, record.pending["base_server_generation"])
            if outcome is None and process.is_running(record.pid, record.pid_create_time):
                return ServiceState(ServiceState.TRANSITIONING), None
        if not process.is_running(record.pid, record.pid_create_time):
            if reported == "Healthy" and status.get("pid") == record.pid:
                return ServiceState(ServiceState.UNHEALTHY), error or (
                    f"The scoring server (pid {record.pid}) is no longer running; see get_logs(), then reload()."
                )
            code = process.exit_code(record.pid) if record.pid else None
            if code == process.EXIT_PORT_TAKEN:
                error = error or f"Port {record.port} was taken before the server could bind it."
            return ServiceState(ServiceState.FAILED), error or self._last_log_error(record)
        return _running_state(record, reported, error)

    def _last_log_error(self, record: ServiceRecord) -> str:
        log = process.read_log(self._files(record), record.log_offset).strip().splitlines()
        if log:
            return f"The scoring server exited before it was healthy: {log[-1].strip()}"
        return "The scoring server exited before it was healthy (its log is empty)."

    @property
    def state(self) -> ServiceState:
        """``Transitioning``, ``Healthy``, ``Unhealthy``, ``Failed`` or ``Deleted``, observed now.

        Compares equal to v1's names too (``service.state == "running"`` when Healthy).
        """
        return self._observe()[0]

    @property
    def error(self) -> str | None:
        """Why the service is ``Failed``/``Unhealthy``, or None."""
        return self._observe()[1]

    def state_is(self, *states: str) -> bool:
        """Return True when the current state is any of ``states`` (v1 aliases such as ``running`` accepted)."""
        return self.state.is_(*states)

    # -- waiting and logs -----------------------------------------------------------------------------

    def get_logs(self, num_lines: int = 5000) -> str:
        """Return the last ``num_lines`` lines of the scoring server's log (v1 ``get_logs``).

        Args:
            num_lines: How many lines, from the end.

        Raises:
            NotFound: When the service was deleted.
        """
        return _tail(process.read_log(self._files()), num_lines)

    def _failure(self, message: str, record: ServiceRecord) -> DeploymentError:
        logs = _error_tail(process.read_log(self._files(record), record.log_offset))
        return DeploymentError(message, logs=logs)

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float = 300) -> None:
        """Wait until the service is ``Healthy`` (v1 ``wait_for_deployment``).

        Args:
            show_output: Print the server's log lines as they are written while waiting.
            timeout_sec: Seconds to wait.

        Raises:
            DeploymentError: When the service is ``Failed``/``Unhealthy`` (its ``logs`` hold the ``init()``
                traceback and the ``AZUREML_MODEL_DIR`` listing), a pending reload failed, or it is not
                healthy after ``timeout_sec`` (it may still be starting then).
        """
        deadline = time.monotonic() + timeout_sec
        record = self._record()
        shown = record.log_offset
        while True:
            if show_output:
                shown = self._stream_log(record, shown)
            if self._record().pending is not None:
                with _service_lock(self.workspace, self.name):
                    self._settle(timeout=max(0.0, deadline - time.monotonic()))
            state, error = self._observe()
            if state == ServiceState.HEALTHY:
                if show_output:
                    self._stream_log(record, shown)
                    sys.stdout.write(f"Service {self.name!r} is Healthy at {self.scoring_uri}\n")
                return
            if state.is_(ServiceState.FAILED, ServiceState.UNHEALTHY, ServiceState.DELETED):
                if show_output:
                    self._stream_log(record, shown)
                raise self._failure(f"Service {self.name!r} is {state}: {error}", self._record())
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"Service {self.name!r} is still {state} after {timeout_sec:g} s; it may still be starting: "
                    "call wait_for_deployment() again, or read get_logs().",
                    self._record(),
                )
            time.sleep(0.1)

    def _stream_log(self, record: ServiceRecord, offset: int) -> int:
        text = process.read_log(self._files(record), offset)
        complete = text.rfind("\n") + 1
        if complete:
            sys.stdout.write(text[:complete])
            sys.stdout.flush()
        return offset + len(text[:complete].encode("utf-8", errors="replace"))

    # -- scoring --------------------------------------------------------------------------------------

    def run(self, input_data: Any, headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """Call ``/score`` and return the parsed JSON answer (v1 ``run``).

        Args:
            input_data: A JSON string (sent as is), or a dict/list (JSON-encoded), or bytes.
            headers: Extra request headers (``x-request-id`` ...).
            timeout: Seconds to wait for the answer; default: the service's scoring timeout plus 10 s.

        Returns:
            The JSON-decoded response body (the text itself when it is not JSON).

        Raises:
            ScoringError: When the service answers an error status; carries the server's message, the
                status and the request id.
            DeploymentError: When the service does not answer at all (names its state and what to do).
        """
        record = self._record()
        timeout_ms = record.deployment_config.get("scoringTimeoutMs") or 3_600_000
        read_timeout = timeout if timeout is not None else timeout_ms / 1000 + 10
        try:
            response = send_request(self.scoring_uri, input_data, headers, read_timeout)
        except requests.RequestException as exc:
            state, error = self._observe()
            raise DeploymentError(
                f"Service {self.name!r} did not answer at {self.scoring_uri} (state {state}"
                f"{': ' + error if error else ''}); see get_logs(), then reload() or redeploy. ({exc})"
            ) from exc
        response.raise_for_status()
        return response.body

    # -- changes --------------------------------------------------------------------------------------

    def reload(self, wait: bool = True) -> None:
        """Serve the current content of the entry script and source directory, with zero downtime.

        Copies them again into a new app folder (same models, environment, port) and switches the running
        server to it: the old workers keep serving until the new ones finished ``init()``.

        Args:
            wait: Wait for the switch; with False, return at once (``state`` reads ``Transitioning``) and
                call :meth:`wait_for_deployment` later to learn the outcome.

        Raises:
            DeploymentError: When the new code fails to start (the old keeps serving; the error carries the
                log), or a served model version was deleted from the registry.
        """
        self.update(wait=wait)

    def update(
        self,
        models: Sequence[Model | str] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfiguration | None = None,
        wait: bool = True,
    ) -> None:
        """Change what the service serves, with zero downtime (v1 ``update``).

        What is not given is kept. The entry script and source directory are copied again in any case. A new
        environment is built (or reused) before anything changes. A new port or host starts a second server
        on it and stops the old one once the new one is healthy (callers of the old port are cut then).

        Args:
            models: New model versions, replacing the served ones.
            inference_config: A new inference configuration.
            deployment_config: A new deployment configuration.
            wait: Wait for the switch (see :meth:`reload`); a port change always waits.

        Raises:
            InvalidArgument: For bad input (checked before anything changes).
            DeploymentError: When the new version fails to start; the running one keeps serving.
            Conflict: When a new port is taken.
        """
        with _service_lock(self.workspace, self.name):
            self._update_locked(models, inference_config, deployment_config, wait=wait, show_output=False)

    def _update_locked(
        self,
        models: Sequence[Model | str] | None,
        inference_config: InferenceConfig | None,
        deployment_config: DeploymentConfiguration | None,
        wait: bool,
        show_output: bool,
    ) -> None:
        self._settle(timeout=SWITCH_TIMEOUT_SEC)
        record = self._record()
        inputs = self._update_inputs(record, models, inference_config, deployment_config)
        ic, config, new_port = inputs.inference_config, inputs.config, inputs.port
        if inference_config is not None or not Path(record.python).exists():
            python, environment = _resolve_python(self.workspace, ic, show_output)
        else:
            python, environment = record.python, record.environment
        restart = new_port != record.port or config.host != record.host
        running = process.is_running(record.pid, record.pid_create_time)
        if running and not restart and not self._observe()[0].is_(ServiceState.HEALTHY):
            # A server that is still starting, or no longer answers, cannot switch generations: replace it.
            restart = True
        if restart and new_port != record.port:
            ensure_port_free(new_port, config.host)

        generation = record.app_generation + 1
        app = _layout(self.workspace, self._folder, generation, ic, inputs.sources)
        new_record = _service_record(
            record.name, RUNTIME, python, new_port, inputs.sources, ic, config, environment,
            pid=record.pid,
            pid_create_time=record.pid_create_time,
            app_generation=generation,
            server_generation=record.server_generation,
            created_time=record.created_time,
            updated_time=utc_now(),
            log_offset=record.log_offset,
            status_file=record.status_file,
        )
        env = _server_env(app, config, ic)
        try:
            if running and not restart:
                self._switch_in_place(record, new_record, app, env, config, wait)
            else:
                self._switch_by_restart(record, new_record, app, env, config, running=running, wait=wait)
        except BaseException:
            remove_app_folder(app.root)
            raise

    def _update_inputs(
        self,
        record: ServiceRecord,
        models: Sequence[Model | str] | None,
        inference_config: InferenceConfig | None,
        deployment_config: DeploymentConfiguration | None,
    ) -> _UpdateInputs:
        """Resolve and check an update's inputs against ``record``; what is not given is kept.

        Raises:
            InvalidArgument: For a bad configuration.
            DeploymentError: When a model version to serve no longer exists.
        """
        ic = inference_config if inference_config is not None else self.inference_config
        config = deployment_config if deployment_config is not None else self.deployment_config
        config = _check_inputs(ic, config)
        self._check_update_config(config)
        model_refs = models if models is not None else [m.id for m in record.models]
        try:
            sources = _resolve_models(self.workspace, model_refs)
        except NotFound as exc:
            raise DeploymentError(
                f"Cannot update service {self.name!r}: {exc} Update it with models=[...] naming existing versions."
            ) from exc
        port = config.port if deployment_config is not None and config.port is not None else record.port
        return _UpdateInputs(inference_config=ic, config=config, sources=sources, port=port)

    def _check_update_config(self, config: DeploymentConfiguration) -> None:
        """Refuse a deployment configuration this runtime cannot switch to (the process runtime takes any)."""

    def _switch_in_place(
        self,
        record: ServiceRecord,
        new_record: ServiceRecord,
        app: AppFolder,
        env: dict[str, str],
        config: DeploymentConfiguration,
        wait: bool,
    ) -> None:
        files = self._files(record)
        status = process.read_status(files) or {}
        base = _reload_base(status)
        previous_spec = read_json(files.spec)
        process.write_spec(files, new_record.python, app.root, env, config.worker_count)
        record.pending = {
            "record": new_record.to_dict(),
            "base_server_generation": base,
            "previous_spec": previous_spec,
            "log_offset": files.log.stat().st_size if files.log.exists() else 0,
            "retiring_workers": process.identify(status.get("workers") or []),
        }
        self._save(record)
        try:
            process.send_reload(record.pid)  # type: ignore[arg-type]
        except ProcessLookupError:
            # The server died between the check and the signal: give up the switch, report it.
            self._abandon_pending(record)
            raise DeploymentError(f"Service {self.name!r} stopped during the update; reload() restarts it.") from None
        if wait:
            self._settle(timeout=SWITCH_TIMEOUT_SEC)

    def _settle(self, timeout: float) -> None:
        """Finish a pending in-place switch: adopt the new generation, or restore the old and raise."""
        record = self._record()
        pending = record.pending
        if pending is None:
            return
        files = self._files(record)
        base = int(pending["base_server_generation"])
        outcome: bool | None = None

        def decided() -> bool:
            nonlocal outcome
            outcome = _switch_outcome(process.read_status(files) or {}, base)
            return outcome is not None or not process.is_running(record.pid, record.pid_create_time)

        if not process.wait_until(decided, timeout):
            outcome = False
        new_record = ServiceRecord.from_dict(pending["record"], self._record_path)
        if outcome:
            # The old workers finish their in-flight requests and exit; until they have, one of them could
            # still accept a connection, so "reload returned" would not yet mean "only the new code answers".
            process.wait_for_exit(pending.get("retiring_workers") or [], timeout=RETIRE_TIMEOUT_SEC)
            status = process.read_status(files) or {}
            new_record.server_generation = status.get("generation")
            new_record.pending = None
            new_record.last_error = None
            self._save(new_record)
            _write_db(self.workspace, new_record)
            remove_app_folder(self._folder / f"app-{record.app_generation}")
            return
        status = process.read_status(files) or {}
        detail = str((status.get("last_reload") or {}).get("error") or "")
        reason = _one_line(detail) or (
            "the server stopped" if not process.is_running(record.pid, record.pid_create_time)
            else f"no answer within {timeout:g} s"
        )
        self._abandon_pending(record)
        remove_app_folder(self._folder / f"app-{new_record.app_generation}")
        logs = _error_tail(process.read_log(files, int(pending.get("log_offset", 0))))
        if detail and detail.strip() not in logs:
            logs = f"{logs}\n{detail.strip()}" if logs else detail.strip()
        message = f"Update of service {self.name!r} failed ({reason}); the previous version keeps serving."
        record = self._record()
        record.last_error = message
        self._save(record)
        raise DeploymentError(message, logs=logs)

    def _abandon_pending(self, record: ServiceRecord) -> None:
        pending = record.pending or {}
        previous_spec = pending.get("previous_spec")
        if isinstance(previous_spec, dict):
            write_json_atomic(self._files(record).spec, previous_spec)
        record.pending = None
        self._save(record)

    def _switch_by_restart(
        self,
        record: ServiceRecord,
        new_record: ServiceRecord,
        app: AppFolder,
        env: dict[str, str],
        config: DeploymentConfiguration,
        running: bool,
        wait: bool,
    ) -> None:
        """Run the new version in a second supervisor.

        On a new port while the old server runs: start the new one, wait until it is healthy, then stop the
        old one (a failure stops the new one and leaves the old serving). Otherwise (the old server is gone,
        or not healthy and holding the same port): stop what is left of the old one first, then start.
        """
        new_record.status_file = f"status-{new_record.app_generation}.json"
        new_files = process.ServerFiles(self._folder, new_record.status_file)
        old_files = self._files(record)
        same_address = record.port == new_record.port and record.host == new_record.host
        replace_first = not running or same_address
        if replace_first:
            process.stop_server(record.pid, record.pid_create_time, timeout=STOP_TIMEOUT_SEC)
            ensure_port_free(new_record.port, new_record.host)
        process.write_spec(new_files, new_record.python, app.root, env, config.worker_count)
        started = process.start_server(
            new_files, new_record.python, app.root, app.entry_script, new_record.host, new_record.port, env
        )
        new_record.pid, new_record.pid_create_time = started.pid, started.create_time
        new_record.log_offset = started.log_offset
        if not replace_first:
            try:
                _wait_healthy(self.name, new_record, new_files, SWITCH_TIMEOUT_SEC)
            except DeploymentError:
                process.stop_server(started.pid, started.create_time, timeout=STOP_TIMEOUT_SEC)
                new_files.status.unlink(missing_ok=True)
                raise
            process.stop_server(record.pid, record.pid_create_time, timeout=STOP_TIMEOUT_SEC)
        self._save(new_record)
        _write_db(self.workspace, new_record)
        if old_files.status != new_files.status:
            old_files.status.unlink(missing_ok=True)
        remove_app_folder(self._folder / f"app-{record.app_generation}")
        if replace_first and wait:
            self.wait_for_deployment(timeout_sec=SWITCH_TIMEOUT_SEC)

    def delete(self) -> None:
        """Stop the server and remove the service's folder and registry rows (v1 ``delete``); idempotent.

        The server gets SIGTERM (in-flight requests finish), then SIGKILL after a timeout.
        """
        with _service_lock(self.workspace, self.name):
            _delete_service(self.workspace, self.name)
        self._deleted = True

    # -- output ---------------------------------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """Return a JSON-safe description (v1 ``serialize``): name, state, URIs, models, times, error."""
        state, error = self._observe()
        if state == ServiceState.DELETED:
            return {"name": self.name, "state": str(state), "computeType": self.compute_type}
        record = self._record()
        return {
            "name": self.name,
            "computeType": self.compute_type,
            "runtime": record.runtime,
            "state": str(state),
            "scoringUri": self.scoring_uri,
            "swaggerUri": self.swagger_uri,
            "port": record.port,
            "models": [m.id for m in record.models],
            "environment": record.environment,
            "python": record.python,
            "pid": record.pid,
            "appFolder": str(self._folder / f"app-{record.app_generation}"),
            "createdTime": record.created_time,
            "updatedTime": record.updated_time,
            "error": error,
        }

    def __repr__(self) -> str:
        try:
            record = self._record()
        except NotFound:
            return f"{type(self).__name__}(name={self.name!r}, state='Deleted')"
        return (
            f"{type(self).__name__}(workspace={str(self.workspace.path)!r}, name={self.name!r}, "
            f"state={str(self.state)!r}, scoring_uri={self.scoring_uri!r}, "
            f"models={[m.id for m in record.models]!r})"
        )

    def _repr_html_(self) -> str:
        data = self.serialize()
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(_display(v))}</td></tr>"
            for k, v in data.items()
            if v not in (None, "", [])
        )
        return f"<table class='mldeploy-service'>{rows}</table>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Webservice) and other.workspace == self.workspace and other.name == self.name

    def __hash__(self) -> int:
        return hash((self.workspace, self.name))

    @classmethod
    def _attach(cls, workspace: Workspace, name: str) -> LocalWebservice:
        service = LocalWebservice.__new__(LocalWebservice)
        service.workspace = workspace
        service.name = name
        service._folder = _service_folder(workspace, name)
        service._deleted = False
        return service


class LocalWebservice(Webservice):
    """A service on this machine (v1 ``azureml.core.webservice.LocalWebservice``).

    Same API as :class:`Webservice`; ``LocalWebservice.deploy_configuration(port=None)`` builds its
    configuration.
    """


def _display(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _one_line(text: str) -> str:
    """Summarize a server error report (often a traceback) as its first line plus the exception line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    exception = next(
        (line for line in reversed(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", line)),
        None,
    )
    first = lines[0].rstrip(":")
    return f"{first}: {exception}" if exception and exception != lines[0] else first


def _running_state(record: ServiceRecord, reported: str, error: str | None) -> tuple[ServiceState, str | None]:
    """The state of a running server from what its supervisor reports; ``Healthy`` is confirmed by ``GET /``."""
    if reported == "Failed":
        return ServiceState(ServiceState.FAILED), error
    if reported == "Healthy":
        if process.probe_health(record.host, record.port):
            return ServiceState(ServiceState.HEALTHY), None
        return ServiceState(ServiceState.UNHEALTHY), f"GET / on port {record.port} does not answer 200."
    return ServiceState(ServiceState.TRANSITIONING), None


def _switch_outcome(status: dict[str, Any], base_generation: int) -> bool | None:
    """Read a reload's outcome from the status file: True adopted, False refused, None not decided yet."""
    generation = status.get("generation")
    last = status.get("last_reload") or {}
    if isinstance(generation, int) and generation > base_generation and status.get("state") == "Healthy":
        return True
    if isinstance(last.get("generation"), int) and last["generation"] > base_generation and last.get("ok") is False:
        return False
    return None


def _wait_healthy(name: str, record: ServiceRecord, files: process.ServerFiles, timeout: float) -> None:
    """Wait until the server of ``record`` (not necessarily the saved one) answers healthy; else raise."""
    deadline = time.monotonic() + timeout
    while True:
        status = process.read_status(files) or {}
        alive = process.is_running(record.pid, record.pid_create_time)
        if alive and status.get("state") == "Healthy" and process.probe_health(record.host, record.port):
            return
        if not alive or status.get("state") == "Failed" or time.monotonic() >= deadline:
            reason = status.get("error") or ("it exited" if not alive else f"not healthy after {timeout:g} s")
            logs = _error_tail(process.read_log(files, record.log_offset))
            raise DeploymentError(
                f"The new version of service {name!r} failed to start ({reason}); the previous one "
                "keeps serving.",
                logs=logs,
            )
        time.sleep(0.1)


def _service_names(workspace: Workspace) -> list[str]:
    folder = workspace.deployments_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "service.json").is_file())


def _delete_service(workspace: Workspace, name: str) -> None:
    folder = _service_folder(workspace, name)
    data = read_json(folder / "service.json")
    if isinstance(data, dict):
        with contextlib.suppress(MLDeployError):
            record = ServiceRecord.from_dict(data, folder / "service.json")
            process.stop_server(record.pid, record.pid_create_time, timeout=STOP_TIMEOUT_SEC)
            pending = (record.pending or {}).get("record") or {}
            if pending.get("pid") and pending.get("pid") != record.pid:
                process.stop_server(pending["pid"], pending.get("pid_create_time"), timeout=STOP_TIMEOUT_SEC)
    _delete_db(workspace, name)
    if folder.exists():
        remove_app_folder(folder)


def deploy_model(
    workspace: Workspace,
    name: str,
    models: Sequence[Model | str],
    inference_config: InferenceConfig | None = None,
    deployment_config: DeploymentConfiguration | None = None,
    overwrite: bool = False,
    show_output: bool = False,
) -> LocalWebservice:
    """Deploy model versions as a local service (v1 ``Model.deploy``).

    Everything that can be checked is checked before a process starts: the name, the models, the entry
    script (parsed, not imported), the port. A declared environment is built (or reused) first.

    Args:
        workspace: The workspace holding the models; the service lives in its ``deployments/``.
        name: Service name (letters, digits, ``_.-``).
        models: Registered ``Model`` objects or ``"name:version"`` strings.
        inference_config: The entry script, source directory and environment.
        deployment_config: From ``LocalWebservice.deploy_configuration()``; default: a free port.
        overwrite: When a service of that name exists, update it in place (zero downtime) instead of
            raising ``Conflict``.
        show_output: Print the environment build and the server log, and wait until the service is healthy.

    Returns:
        LocalWebservice: The service, ``Transitioning`` until ``init()`` returned (``Healthy`` when
        ``show_output`` waited).

    Raises:
        InvalidArgument: For a bad name, models, configuration or entry script (nothing started).
        NotFound: For a model version or environment that is not registered.
        Conflict: When the name is taken and ``overwrite`` is False, or the port is in use (names the holder).
        EnvironmentBuildError: When the environment cannot be built.
        DeploymentError: For an unsupported runtime, or (with ``show_output``) when the service fails to start.
    """
    if not isinstance(workspace, Workspace):
        raise InvalidArgument(f"workspace must be a Workspace, not {type(workspace).__name__}.")
    validate_name(name, "service name")
    config = _check_inputs(inference_config, deployment_config)
    assert inference_config is not None  # checked by _check_inputs
    if config.runtime == "docker":
        from jupyter_mldeploy.docker.service import deploy_docker

        return deploy_docker(workspace, name, models, inference_config, config, overwrite, show_output)
    sources = _resolve_models(workspace, models)
    with _service_lock(workspace, name):
        existing = _service_to_overwrite(workspace, name, overwrite)
        if existing is not None:
            existing._update_locked(sources_to_ids(sources), inference_config, config, wait=show_output,
                                    show_output=show_output)
            service = existing
        else:
            service = _create(workspace, name, sources, inference_config, config, show_output)
    if show_output:
        service.wait_for_deployment(show_output=True)
    return service


def _service_to_overwrite(workspace: Workspace, name: str, overwrite: bool) -> LocalWebservice | None:
    """Return the existing service ``name`` for a deploy to update in place, or None when the name is free.

    Call it under the service's lock.

    Raises:
        Conflict: When the service exists and ``overwrite`` is False.
    """
    if not (_service_folder(workspace, name) / "service.json").exists():
        return None
    if not overwrite:
        raise Conflict(f"Service {name!r} already exists; pass overwrite=True to update it, or choose another name.")
    return LocalWebservice(workspace, name)


def sources_to_ids(sources: list[ModelSource]) -> list[str]:
    """Return ``"name:version"`` for each model source."""
    return [f"{s.name}:{s.version}" for s in sources]


def _create(
    workspace: Workspace,
    name: str,
    sources: list[ModelSource],
    inference_config: InferenceConfig,
    config: DeploymentConfiguration,
    show_output: bool,
) -> LocalWebservice:
    python, environment = _resolve_python(workspace, inference_config, show_output)
    port = config.port if config.port is not None else free_port(config.host)
    ensure_port_free(port, config.host)
    folder = _service_folder(workspace, name)
    if folder.exists():  # a leftover of a crash before service.json was written: nothing serves from it
        remove_app_folder(folder)
    folder.mkdir(parents=True)
    started: process.StartedProcess | None = None
    try:
        app = _layout(workspace, folder, 1, inference_config, sources)
        record = _service_record(name, RUNTIME, python, port, sources, inference_config, config, environment)
        env = _server_env(app, config, inference_config)
        files = process.ServerFiles(folder, record.status_file)
        process.write_spec(files, python, app.root, env, config.worker_count)
        _write_db(workspace, record)
        started = process.start_server(files, python, app.root, app.entry_script, config.host, port, env)
        record.pid, record.pid_create_time, record.log_offset = started.pid, started.create_time, started.log_offset
        write_json_atomic(folder / "service.json", record.to_dict())
    except BaseException:
        if started is not None:
            process.stop_server(started.pid, started.create_time, timeout=STOP_TIMEOUT_SEC)
        with contextlib.suppress(MLDeployError):
            _delete_db(workspace, name)
        remove_app_folder(folder)
        raise
    return LocalWebservice(workspace, name)
