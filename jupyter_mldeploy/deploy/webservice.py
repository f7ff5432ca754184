"""``Webservice``: a deployed model, written once on top of whichever target runs it (v1 ``Webservice``).

``Webservice(ws, name)`` re-attaches from any process (a restarted kernel, the CLI, the Jupyter server):
everything is read from the service's record and from its target on each access, so two processes always
see the same service and ``state`` reflects reality. What differs per target (process, Docker, plug-ins)
lives behind :class:`~jupyter_mldeploy.deploy.targets.base.ServiceTarget`; this class only waits, calls,
describes and forwards. ``LocalWebservice`` and ``DockerWebservice`` are v1's names for the same façade.
"""

from __future__ import annotations

import html
import importlib
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from jupyter_mldeploy.deploy.client import send_request
from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.deploy.no_code import inference_config_from_record
from jupyter_mldeploy.deploy.plan import plan_update
from jupyter_mldeploy.deploy.service_keys import publish_keys, read_keys, regenerated
from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.state import ServiceRecord, ServiceState
from jupyter_mldeploy.deploy.targets.base import Observation, ServiceTarget
from jupyter_mldeploy.deploy.targets.registry import get_target
from jupyter_mldeploy.deploy.targets.supervised import SWITCH_TIMEOUT_SEC
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument, NotFound
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.monitoring.store import read_collected_data
from jupyter_mldeploy.names import validate_name
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.registry import Model

#: Lines of the server log attached to a DeploymentError.
ERROR_LOG_LINES = 200


class Webservice:
    """A deployed service (v1 ``azureml.core.Webservice``); ``Webservice(ws, name)`` re-attaches to it.

    As in v1, ``Webservice(ws, name)`` returns the class of the service's target (``LocalWebservice`` for a
    process, ``DockerWebservice`` for a container). Properties are read afresh on each access.

    Args:
        workspace: The workspace holding the service.
        name: The service name.

    Raises:
        InvalidArgument: For a name that cannot be a service name (checked before any file is touched).
        NotFound: When no such service exists; the message lists the services that do.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Webservice:
        workspace = args[0] if args else kwargs.get("workspace")
        name = args[1] if len(args) > 1 else kwargs.get("name")
        if cls in (Webservice, LocalWebservice) and isinstance(workspace, Workspace) and isinstance(name, str):
            validate_name(name, "service name")
            store = ServiceStore(workspace)
            if store.exists(name):
                try:
                    cls = _facade_class(store.read(name).target)
                except (NotFound, DeploymentError):
                    cls = LocalWebservice
        return super().__new__(LocalWebservice if cls is Webservice else cls)

    def __init__(self, workspace: Workspace, name: str) -> None:
        if not isinstance(workspace, Workspace):
            raise InvalidArgument(f"workspace must be a Workspace, not {type(workspace).__name__}.")
        validate_name(name, "service name")
        self.workspace = workspace
        self.name = name
        self._store = ServiceStore(workspace)
        if not self._store.exists(name):
            known = ", ".join(repr(s) for s in self._store.names()) or "none"
            raise NotFound(f"No service named {name!r} in workspace {workspace.path} (services: {known}).")

    # -- record and target ----------------------------------------------------------------------------

    def _record(self) -> ServiceRecord:
        return self._store.read(self.name)

    @property
    def _target(self) -> ServiceTarget:
        return get_target(self._record().target)

    def _observe(self) -> Observation:
        try:
            record = self._record()
        except NotFound:
            return Observation(ServiceState(ServiceState.DELETED))
        return get_target(record.target).observe(self._store, record)

    # -- v1 factory and listing -----------------------------------------------------------------------

    #: Build a local deployment configuration (v1 ``LocalWebservice.deploy_configuration``): the same
    #: function as :func:`jupyter_mldeploy.deploy.config.local_deploy_configuration`, so the arguments and
    #: their checks are defined once. ``port=None`` picks a free port at deploy time.
    deploy_configuration = staticmethod(local_deploy_configuration)

    @classmethod
    def list(cls, workspace: Workspace, compute_type: str | None = None) -> list[Webservice]:
        """List the services of a workspace, sorted by name (v1 ``Webservice.list``).

        Args:
            workspace: The workspace.
            compute_type: v1 filter (``"Local"``, any case); None lists every service.

        Returns:
            list[Webservice]: One object per service.
        """
        services = []
        for name in ServiceStore(workspace).names():
            try:
                service = Webservice(workspace, name)
            except NotFound:
                continue
            if compute_type is None or service.compute_type.lower() == compute_type.lower():
                services.append(service)
        return services

    # -- properties -----------------------------------------------------------------------------------

    @property
    def compute_type(self) -> str:
        """v1's compute type of the service's target (``"Local"`` for the process and Docker targets)."""
        try:
            return self._target.compute_type
        except NotFound:
            return "Local"

    @property
    def runtime(self) -> str:
        """The name of the target running the service (``"process"``, ``"docker"`` ...)."""
        return self._record().target

    @property
    def port(self) -> int:
        """The TCP port callers use."""
        return self._record().port

    @property
    def scoring_uri(self) -> str:
        """``http://127.0.0.1:<port>/score`` (as the target publishes it)."""
        record = self._record()
        return get_target(record.target).scoring_uri(record)

    @property
    def swagger_uri(self) -> str:
        """``http://127.0.0.1:<port>/swagger.json``."""
        return self.scoring_uri[: -len("/score")] + "/swagger.json"

    @property
    def v2_uri(self) -> str:
        """``http://127.0.0.1:<port>/v2``: the Open Inference Protocol V2 root of the same server.

        ``<v2_uri>/models/<model name>/infer`` runs ``run()`` (docs/protocols.md).
        """
        return self.scoring_uri[: -len("/score")] + "/v2"

    @property
    def invocations_uri(self) -> str:
        """``http://127.0.0.1:<port>/invocations``: MLflow's scoring route of the same server (docs/protocols.md)."""
        return self.scoring_uri[: -len("/score")] + "/invocations"

    @property
    def model_ids(self) -> list[str]:
        """The served model versions as ``"name:version"``."""
        return self._record().model_ids

    @property
    def models(self) -> list[Model]:
        """The served model versions as registry ``Model`` objects (versions deleted since are left out)."""
        from jupyter_mldeploy.registry import Model  # the registry forwards Model.deploy here: a cycle

        found = []
        for ref in self._record().models:
            try:
                found.append(Model(self.workspace, ref.name, version=ref.version))
            except NotFound:
                continue
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
    def started_time(self) -> datetime | None:
        """When the server now answering started (timezone-aware), or None when nothing runs.

        Uptime is ``now - started_time``; it survives kernel restarts and zero-downtime switches (the
        supervisor keeps running through them).
        """
        return self._observe().started_time

    @property
    def inference_config(self) -> InferenceConfig:
        """The inference configuration the service was deployed with."""
        return inference_config_from_record(self._record().inference_config, self.workspace)

    @property
    def deployment_config(self) -> DeploymentConfiguration:
        """The deployment configuration the service was deployed with (with the port in use)."""
        record = self._record()
        config = DeploymentConfiguration.from_dict(record.deployment_config)
        config.port = record.port
        return config

    @property
    def target_details(self) -> dict[str, Any]:
        """The target's facts for display (pid, container, image ...); never interpreted by callers."""
        return dict(self._observe().details)

    @property
    def pid(self) -> int | None:
        """The scoring server's pid on this machine (process target), or None."""
        value = self._observe().details.get("pid")
        return int(value) if isinstance(value, int) else None

    @property
    def app_folder(self) -> Path | None:
        """The app folder in use (``deployments/<service>/app-<n>``), for targets that have one."""
        value = self._observe().details.get("appFolder")
        return Path(value) if value else None

    @property
    def state(self) -> ServiceState:
        """``Transitioning``, ``Healthy``, ``Unhealthy``, ``Failed``, ``Unschedulable`` or ``Deleted``, now.

        Compares equal to v1's names too (``service.state == "running"`` when Healthy).
        """
        return self._observe().state

    @property
    def error(self) -> str | None:
        """Why the service is ``Failed``/``Unhealthy``, or None."""
        return self._observe().error

    def state_is(self, *states: str) -> bool:
        """Return True when the current state is any of ``states`` (v1 aliases such as ``running`` accepted)."""
        return self.state.is_(*states)

    # -- collected model data --------------------------------------------------------------------------

    def get_collected_data(self, designation: str = "inputs", since: Any = None) -> Any:
        """Return what the service's ``ModelDataCollector`` recorded for ``designation``, as a DataFrame.

        Records exist when the service was deployed with ``collect_model_data=True``; they are written about
        once a second, and kept after the service is deleted (``<workspace>/modeldata/<service>``).

        Args:
            designation: ``"inputs"``, ``"predictions"``, ``"labels"``, ``"signals"`` or ``"general"``.
            since: Only rows scored at or after this time (``datetime``, ``date`` or ISO 8601 string).

        Returns:
            pandas.DataFrame: See :func:`jupyter_mldeploy.monitoring.read_collected_data`.

        Raises:
            InvalidArgument: For an unknown designation or a bad ``since``.
        """
        return read_collected_data(self.workspace, self.name, designation, since)

    # -- waiting and logs -----------------------------------------------------------------------------

    def get_logs(self, num_lines: int = 5000) -> str:
        """Return the last ``num_lines`` lines of the scoring server's log (v1 ``get_logs``).

        Raises:
            NotFound: When the service was deleted.
        """
        record = self._record()
        return get_target(record.target).logs(self._store, record, max(0, int(num_lines)))

    def _failure(self, message: str) -> DeploymentError:
        record = self._record()
        target = get_target(record.target)
        failure_logs = getattr(target, "failure_logs", None)
        logs = failure_logs(self._store, record) if failure_logs else target.logs(self._store, record, ERROR_LOG_LINES)
        return DeploymentError(message, logs=logs)

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float = 300) -> None:
        """Wait until the service is ``Healthy`` (v1 ``wait_for_deployment``).

        Finishes a switch left under way by ``update(wait=False)``/``reload(wait=False)`` first.

        Args:
            show_output: Print the server's log lines as they are written while waiting.
            timeout_sec: Seconds to wait.

        Raises:
            DeploymentError: When the service is ``Failed``/``Unhealthy``/``Unschedulable`` (its ``logs`` hold
                the ``init()`` traceback and the ``AZUREML_MODEL_DIR`` listing), a pending switch failed, or it
                is not healthy after ``timeout_sec`` (it may still be starting then).
        """
        deadline = time.monotonic() + timeout_sec
        cursor: Any = None
        while True:
            record = self._record()
            target = get_target(record.target)
            if show_output:
                cursor = self._stream(target, record, cursor)
            if record.target_state.get("pending") is not None:
                with self._store.lock(self.name):
                    target.settle(self._store, self._record(), timeout=max(0.0, deadline - time.monotonic()))
            observed = self._observe()
            if observed.state == ServiceState.HEALTHY:
                if show_output:
                    self._stream(target, self._record(), cursor)
                    sys.stdout.write(f"Service {self.name!r} is Healthy at {self.scoring_uri}\n")
                return
            if observed.state.is_(ServiceState.FAILED, ServiceState.UNHEALTHY, ServiceState.DELETED) or (
                observed.state == "Unschedulable"
            ):
                if show_output:
                    self._stream(target, self._record(), cursor)
                raise self._failure(f"Service {self.name!r} is {observed.state}: {observed.error}")
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"Service {self.name!r} is still {observed.state} after {timeout_sec:g} s; it may still be "
                    "starting: call wait_for_deployment() again, or read get_logs()."
                )
            time.sleep(target.poll_interval_sec)

    def _stream(self, target: ServiceTarget, record: ServiceRecord, cursor: Any) -> Any:
        text, cursor = target.follow_logs(self._store, record, cursor)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
        return cursor

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
        uri = get_target(record.target).scoring_uri(record)
        headers = self.auth_headers(headers)
        try:
            response = send_request(uri, input_data, headers, read_timeout)
        except requests.RequestException as exc:
            observed = self._observe()
            raise DeploymentError(
                f"Service {self.name!r} did not answer at {uri} (state {observed.state}"
                f"{': ' + observed.error if observed.error else ''}); see get_logs(), then reload() or redeploy. "
                f"({exc})"
            ) from exc
        response.raise_for_status()
        return response.body

    # -- keys -----------------------------------------------------------------------------------------

    def get_keys(self) -> tuple[str, str]:
        """Return ``(primary_key, secondary_key)`` (v1 ``get_keys``).

        Raises:
            DeploymentError: When key auth is off for this service.
        """
        return read_keys(self._store.folder(self.name), self.name)

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """Replace one key on the running service, with no restart (v1 ``regen_key``).

        The new key works at once and the replaced one is refused when this returns (the server looks at its
        keys file at least every 0.1 s, and at once for a key it does not know); callers using the other key
        see no failed request.

        Args:
            key: ``"Primary"`` or ``"Secondary"``.
            set_key: The new value (16+ URL-safe characters); None generates one (32 random bytes).

        Raises:
            InvalidArgument: For another ``key`` name or a bad ``set_key``.
            DeploymentError: When key auth is off for this service.
        """
        folder = self._store.folder(self.name)
        with self._store.lock(self.name):
            publish_keys(folder, *regenerated(folder, self.name, key, set_key))

    def auth_headers(self, headers: dict[str, str] | None = None) -> dict[str, str] | None:
        """``headers`` plus ``Authorization: Bearer <primary key>`` when the service has key auth.

        Every face calls a service through this, so none has to know where keys are kept. A caller's own
        ``Authorization`` header wins.
        """
        if not self._record().deployment_config.get("authEnabled"):
            return headers
        given = dict(headers or {})
        if not any(name.lower() == "authorization" for name in given):
            given["Authorization"] = f"Bearer {self.get_keys()[0]}"
        return given

    # -- changes --------------------------------------------------------------------------------------

    def reload(self, wait: bool = True) -> None:
        """Serve the current content of the entry script and source directory, with zero downtime.

        Copies them again into a new app folder (same models, environment, port) and switches the running
        server to it: the old workers keep serving until the new ones finished ``init()``.

        Args:
            wait: Wait for the switch; with False, return once it is under way (``state`` reads
                ``Transitioning``) and call :meth:`wait_for_deployment` later to learn the outcome.

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
        """Change what the service serves, with zero downtime where the target allows (v1 ``update``).

        What is not given is kept; the entry script and source directory are copied again in any case. A new
        environment is built (or reused) before anything changes.

        Args:
            models: New model versions, replacing the served ones.
            inference_config: A new inference configuration.
            deployment_config: A new deployment configuration (same target).
            wait: Wait for the switch (see :meth:`reload`). Every target honours it the same way.

        Raises:
            InvalidArgument: For bad input, or another target (checked before anything changes).
            DeploymentError: When the new version fails to start; the running one keeps serving.
            Conflict: When a new port is taken.
        """
        with self._store.lock(self.name):
            self._update_locked(models, inference_config, deployment_config, wait=wait, show_output=False)

    def _update_locked(
        self,
        models: Any,
        inference_config: InferenceConfig | None,
        deployment_config: DeploymentConfiguration | None,
        wait: bool,
        show_output: bool,
    ) -> None:
        """:meth:`update` for a caller that holds the service's lock (the deployer, with ``overwrite``)."""
        record = self._record()
        target = get_target(record.target)
        target.settle(self._store, record, timeout=SWITCH_TIMEOUT_SEC)
        record = self._record()
        plan = plan_update(self.workspace, record, models, inference_config, deployment_config)
        target.update(self._store, record, plan, wait=wait, show_output=show_output)

    def delete(self) -> None:
        """Stop the service and remove its folder and registry rows (v1 ``delete``); idempotent.

        Works from any process; in-flight requests finish first (SIGTERM, then SIGKILL after a timeout).
        """
        with self._store.lock(self.name):
            try:
                target_name = self._record().target
            except (NotFound, DeploymentError):
                target_name = "process"
            get_target(target_name).delete(self._store, self.name)

    # -- output ---------------------------------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """Return a JSON-safe description (v1 ``serialize``): name, state, URIs, models, times, error, details."""
        observed = self._observe()
        if observed.state == ServiceState.DELETED:
            return {"name": self.name, "state": str(observed.state), "computeType": self.compute_type}
        record = self._record()
        data: dict[str, Any] = {
            "name": self.name,
            "computeType": self.compute_type,
            "runtime": record.target,
            "state": str(observed.state),
            "scoringUri": self.scoring_uri,
            "swaggerUri": self.swagger_uri,
            "v2Uri": self.v2_uri,
            "invocationsUri": self.invocations_uri,
            "authEnabled": bool(record.deployment_config.get("authEnabled")),
            "port": record.port,
            "models": record.model_ids,
            "environment": record.environment,
            "createdTime": record.created_time,
            "updatedTime": record.updated_time,
            "startedTime": observed.started_time.isoformat() if observed.started_time else None,
            "error": observed.error,
        }
        data.update(observed.details)
        return data

    def __repr__(self) -> str:
        try:
            record = self._record()
        except NotFound:
            return f"{type(self).__name__}(name={self.name!r}, state='Deleted')"
        return (
            f"{type(self).__name__}(workspace={str(self.workspace.path)!r}, name={self.name!r}, "
            f"state={str(self.state)!r}, scoring_uri={self.scoring_uri!r}, models={record.model_ids!r})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(_display(v))}</td></tr>"
            for k, v in self.serialize().items()
            if v not in (None, "", [])
        )
        return f"<table class='mldeploy-service'>{rows}</table>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Webservice) and other.workspace == self.workspace and other.name == self.name

    def __hash__(self) -> int:
        return hash((self.workspace, self.name))


class LocalWebservice(Webservice):
    """A service on this machine (v1 ``azureml.core.webservice.LocalWebservice``).

    Same API as :class:`Webservice`; ``LocalWebservice.deploy_configuration(port=None)`` builds its
    configuration.
    """


def _facade_class(target: str) -> type[Webservice]:
    """The v1 class of a target's services (:attr:`ServiceTarget.webservice_class`)."""
    reference = get_target(target).webservice_class
    if not reference:
        return LocalWebservice
    module_name, _, class_name = reference.partition(":")
    facade: type[Webservice] = getattr(importlib.import_module(module_name), class_name)
    return facade


def _display(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
