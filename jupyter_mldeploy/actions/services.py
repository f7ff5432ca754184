"""Deployed services as every face deploys, lists, shows, reloads and deletes them.

Only the deploy layer's public API is used (``deploy_model``, ``Webservice(ws, name)``, ``Webservice.list``,
``serialize()``, ``get_logs``, ``reload``, ``delete``), so the rows are the same for every runtime: uptime
comes from the service's ``startedTime`` (when its scoring server started, whatever the target), not from a
process id.

Deploying from a face (``mldeploy model deploy``, ``%deploy_local``, the panel's Registry tab, the sidebar's
Deploy action) goes through :func:`deploy_service`: without an entry script, one model registered with a
supported ``model_framework`` is served by a built-in entry script (v1 no-code deployment,
:func:`jupyter_mldeploy.deploy.no_code.no_code_inference_config`), so every face makes the same choice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.actions.formats import parse_time
from jupyter_mldeploy.deploy import DeploymentConfiguration, Webservice, deploy_model
from jupyter_mldeploy.deploy.no_code import no_code_inference_config, no_code_note
from jupyter_mldeploy.deploy.plan import no_model_note
from jupyter_mldeploy.errors import Conflict, InvalidArgument, MLDeployError
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.names import validate_name
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.environment import Environment
    from jupyter_mldeploy.registry import Model

#: States in which a service has a running scoring server (so an uptime).
RUNNING_STATES = ("Healthy", "Transitioning", "Unhealthy")
#: The most log lines a face may ask for at once.
MAX_LOG_LINES = 100_000


@dataclass(frozen=True)
class ServiceRow:
    """One service as listed, observed once.

    Attributes:
        name: Service name.
        state: ``Healthy``, ``Transitioning``, ``Unhealthy``, ``Failed`` or ``Deleted``.
        runtime: The deployment target (``process``, ``docker``, ...).
        port: TCP port on 127.0.0.1, or None.
        models: Served model versions, ``"name:version"``.
        scoring_uri: ``http://127.0.0.1:<port>/score``, or None.
        started_time: When the running scoring server started, or None when it is not running.
        updated_time: When the service was last deployed or updated, or None.
        uptime_s: Seconds since ``started_time`` at the moment of listing, or None.
        error: Why the service is ``Failed``/``Unhealthy``, or None.
    """

    name: str
    state: str
    runtime: str
    port: int | None
    models: tuple[str, ...]
    scoring_uri: str | None
    started_time: datetime | None
    updated_time: datetime | None
    uptime_s: float | None
    error: str | None = None


def service_row(service: Webservice) -> ServiceRow:
    """Describe one service from one observation (``serialize()``).

    Raises:
        NotFound: When the service was deleted meanwhile (``Webservice(ws, name)`` itself raises it).
    """
    data = service.serialize()
    state = str(data.get("state") or "Deleted")
    started = parse_time(data.get("startedTime")) if state in RUNNING_STATES else None
    uptime = (datetime.now(timezone.utc) - started).total_seconds() if started is not None else None
    return ServiceRow(
        name=service.name,
        state=state,
        runtime=str(data.get("runtime") or data.get("computeType") or "-"),
        port=data.get("port"),
        models=tuple(data.get("models") or ()),
        scoring_uri=data.get("scoringUri"),
        started_time=started,
        updated_time=parse_time(data.get("updatedTime")),
        uptime_s=uptime,
        error=data.get("error"),
    )


def list_services(workspace: Workspace) -> list[ServiceRow]:
    """Every service of the workspace, sorted by name; services deleted meanwhile are left out."""
    rows = []
    for service in Webservice.list(workspace):
        with contextlib.suppress(MLDeployError):
            row = service_row(service)
            if row.state != "Deleted":
                rows.append(row)
    return rows


def service_dicts(workspace: Workspace) -> list[dict[str, Any]]:
    """Every service's ``serialize()`` (the stable JSON of ``-o json`` and the sidebar), sorted by name."""
    found = []
    for service in Webservice.list(workspace):
        with contextlib.suppress(MLDeployError):
            data = service.serialize()
            if data.get("state") != "Deleted":
                found.append(data)
    return found


def get_service(workspace: Workspace, name: str) -> Webservice:
    """The service ``name``.

    Raises:
        NotFound: Naming the services that exist.
        InvalidArgument: For a malformed name.
    """
    return Webservice(workspace, name)


def service_names(workspace: Workspace) -> list[str]:
    """The names of the workspace's services, sorted."""
    return [service.name for service in Webservice.list(workspace)]


def service_logs(workspace: Workspace, name: str, num_lines: int = 5000) -> str:
    """The last ``num_lines`` lines of the service's log.

    Raises:
        InvalidArgument: When ``num_lines`` is not 1..:data:`MAX_LOG_LINES`.
        NotFound: For an unknown service.
    """
    if isinstance(num_lines, bool) or not isinstance(num_lines, int) or not 1 <= num_lines <= MAX_LOG_LINES:
        raise InvalidArgument(f"The number of log lines ({num_lines!r}) must be a whole number from 1 to "
                              f"{MAX_LOG_LINES}.")
    return Webservice(workspace, name).get_logs(num_lines=num_lines)


def reload_service(workspace: Workspace, name: str, wait: bool = True) -> Webservice:
    """Serve the service's current entry script and source folder again, with zero downtime.

    Raises:
        DeploymentError: When the new code fails to start (the old one keeps serving).
    """
    service = Webservice(workspace, name)
    service.reload(wait=wait)
    return service


def delete_service(workspace: Workspace, name: str) -> str:
    """Stop the service and remove it; returns its name.

    Raises:
        NotFound: For an unknown service.
    """
    Webservice(workspace, name).delete()
    return name


def deployment_inference_config(workspace: Workspace, models: Sequence[Model | str],
                                inference_config: InferenceConfig | None = None,
                                environment: Environment | str | None = None) -> InferenceConfig:
    """The inference configuration a face deploys with: the one given, else no-code for one framework model.

    Args:
        workspace: The workspace holding the models.
        models: Registered ``Model`` objects or ``"name[:version]"`` strings.
        inference_config: The entry script, source directory and environment the user gave; None for no-code
            deployment (exactly one model, registered with ``model_framework`` scikit-learn, ONNX or MLflow).
        environment: Replaces the environment no-code deployment chooses (``--env``/``--requirements``/
            ``--current``); ignored when ``inference_config`` is given (it names its own).

    Returns:
        InferenceConfig: ``inference_config`` itself, or the built-in entry script with its environment.

    Raises:
        InvalidArgument: Without an inference configuration, for no model or several, a model registered without
            a framework (the message says to give an entry script), or one no built-in script serves.
        NotFound: For a model version that is not registered.
    """
    if inference_config is not None:
        return inference_config
    config = no_code_inference_config(workspace, list(models))
    if environment is not None:
        config.environment = environment
    return config


def deployment_notes(models: Sequence[Model | str], inference_config: InferenceConfig) -> list[str]:
    """What every face says before deploying: no registered model served, and which built-in script serves."""
    notes = [] if models else [no_model_note(inference_config)]
    no_code = no_code_note(inference_config)
    if no_code:
        notes.append(no_code)
    return notes


def check_service_name(workspace: Workspace, name: str, overwrite: bool = False) -> str:
    """Check a new service's name before a face starts a deployment that may take a while.

    The deployer checks again under the service's lock; this answers at once.

    Returns:
        The name.

    Raises:
        InvalidArgument: For a malformed name.
        Conflict: When the service exists and ``overwrite`` is False.
    """
    validate_name(name, "service name")
    if not overwrite and name in service_names(workspace):
        raise Conflict(f"Service {name!r} already exists: update it (overwrite), or choose another name.")
    return name


def deploy_service(workspace: Workspace, name: str, models: Sequence[Model | str],
                   inference_config: InferenceConfig | None = None,
                   deployment_config: DeploymentConfiguration | None = None, overwrite: bool = False,
                   show_output: bool = False, environment: Environment | str | None = None) -> Webservice:
    """Deploy model versions as a service, as every face does (v1 ``Model.deploy``); does not wait for health.

    Args:
        workspace: The workspace holding the models.
        name: The service name.
        models: Registered ``Model`` objects or ``"name[:version]"`` strings; none serves the source folder
            alone (``inference_config`` required then).
        inference_config: The entry script and its environment; None: no-code
            (:func:`deployment_inference_config`).
        deployment_config: The target and its options; None: the process target on a free port.
        overwrite: Update the service in place when it exists (zero downtime) instead of raising ``Conflict``.
        show_output: Print the environment build and the server log, and wait until the service is healthy.
        environment: Replaces the environment no-code deployment chooses.

    Returns:
        Webservice: ``Transitioning`` until ``init()`` returned; ``wait_for_deployment`` waits for it.

    Raises:
        InvalidArgument: For a bad name, models or configuration (nothing started).
        NotFound: For a model version or environment that is not registered.
        Conflict: When the name is taken and ``overwrite`` is False.
        EnvironmentBuildError: When the environment cannot be built.
        DeploymentError: When the target is not available (or, with ``show_output``, the service fails).
    """
    config = deployment_inference_config(workspace, models, inference_config, environment)
    return deploy_model(workspace, name, list(models), config, deployment_config, overwrite=overwrite,
                        show_output=show_output)


__all__ = [
    "MAX_LOG_LINES",
    "RUNNING_STATES",
    "ServiceRow",
    "check_service_name",
    "delete_service",
    "deploy_service",
    "deployment_inference_config",
    "deployment_notes",
    "get_service",
    "list_services",
    "reload_service",
    "service_dicts",
    "service_logs",
    "service_names",
    "service_row",
]
