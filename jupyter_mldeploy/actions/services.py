"""Deployed services as every face lists, shows, reloads and deletes them.

Only the deploy layer's public API is used (``Webservice(ws, name)``, ``Webservice.list``, ``serialize()``,
``get_logs``, ``reload``, ``delete``), so the rows are the same for every runtime: uptime comes from the
service's ``startedTime`` (when its scoring server started, whatever the target), not from a process id.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jupyter_mldeploy.actions.formats import parse_time
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError
from jupyter_mldeploy.workspace import Workspace

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


__all__ = [
    "MAX_LOG_LINES",
    "RUNNING_STATES",
    "ServiceRow",
    "delete_service",
    "get_service",
    "list_services",
    "reload_service",
    "service_dicts",
    "service_logs",
    "service_names",
    "service_row",
]
