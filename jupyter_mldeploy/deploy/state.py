"""Service states and the JSON record of a service (``deployments/<service>/service.json``).

The record is the only thing a new Python process needs to re-attach to a running service
(``Webservice(ws, name)``): the target that runs it, the port, the models, and the configurations the
service was deployed with, plus ``target_state``, the target's own JSON (a process target's pid and start
time, a Docker target's container generation), which only the target interprets. It is JSON (never pickle) and replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_mldeploy.errors import DeploymentError

#: Version of the ``service.json`` format; a record of another version is refused, not misread.
RECORD_FORMAT = 2


class ServiceState(str):
    """A service state: ``Transitioning``, ``Healthy``, ``Unhealthy``, ``Failed`` or ``Deleted``.

    A ``str`` whose comparisons accept Azure ML v1's names as aliases, so v1 notebook code such as
    ``service.state == "running"`` keeps working: ``ServiceState("Healthy") == "running"`` is True.
    """

    TRANSITIONING = "Transitioning"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    FAILED = "Failed"
    #: v1's AKS state for a replica no node can take (insufficient CPU, memory or GPU): Kubernetes target.
    UNSCHEDULABLE = "Unschedulable"
    DELETED = "Deleted"

    #: v1 names (local and AKS) and lower-case spellings, mapped to ours.
    ALIASES: dict[str, str] = {
        "transitioning": TRANSITIONING,
        "creating": TRANSITIONING,
        "updating": TRANSITIONING,
        "starting": TRANSITIONING,
        "healthy": HEALTHY,
        "running": HEALTHY,
        "succeeded": HEALTHY,
        "unhealthy": UNHEALTHY,
        "exited": UNHEALTHY,
        "stopped": UNHEALTHY,
        "failed": FAILED,
        "crashloopbackoff": FAILED,
        "unschedulable": UNSCHEDULABLE,
        "deleted": DELETED,
    }

    @classmethod
    def canonical(cls, name: str) -> str:
        """Return our name for ``name`` (any case, v1 aliases accepted).

        Raises:
            ValueError: For a name that is no state; the message lists the states.
        """
        found = cls.ALIASES.get(str(name).strip().lower())
        if found is None:
            raise ValueError(
                f"Unknown service state {name!r}: use one of Transitioning, Healthy, Unhealthy, Failed, Unschedulable, Deleted "
                f"(or v1's {', '.join(sorted(k for k in cls.ALIASES if k not in {'healthy', 'failed'}))})."
            )
        return found

    def __new__(cls, value: str) -> ServiceState:
        return super().__new__(cls, cls.canonical(value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                return str.__eq__(self, self.canonical(other))
            except ValueError:
                return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = str.__hash__

    def is_(self, *names: str) -> bool:
        """Return True when this state is any of ``names`` (aliases accepted)."""
        return any(self == name for name in names)


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string (seconds precision with microseconds)."""
    return datetime.now(timezone.utc).isoformat()


@dataclass
class ModelRef:
    """A model version a service serves.

    Attributes:
        name: Model name.
        version: Model version.
    """

    name: str
    version: int

    @property
    def id(self) -> str:
        """``"name:version"``."""
        return f"{self.name}:{self.version}"


#: Fields of a format-1 record that belonged to the process and Docker targets; format 2 keeps them in
#: ``target_state``.
_FORMAT1_TARGET_FIELDS = (
    "pid", "pid_create_time", "python", "app_generation", "server_generation", "log_offset", "status_file",
    "pending",
)


@dataclass
class ServiceRecord:
    """The content of ``service.json``: what every target's service has, plus the target's own JSON.

    Attributes:
        name: Service name.
        target: The deployment target's name (``"process"``, ``"docker"``, or a plug-in's).
        host: Interface the service binds (``127.0.0.1`` unless configured otherwise).
        port: TCP port callers use.
        models: The model versions served (empty for a deployment serving its source directory only).
        inference_config: The inference configuration, as ``InferenceConfig.serialize()`` (absolute paths).
        deployment_config: The deployment configuration, as ``DeploymentConfiguration.serialize()``.
        environment: A description of the environment (name, version, spec hash or image), or None for the
            deploying interpreter.
        created_time: ISO 8601 UTC.
        updated_time: ISO 8601 UTC.
        last_error: The latest failure message from a deploy, reload or update, or None.
        target_state: The target's own JSON (pids, container ids, generations...); only the target reads it.
        format: :data:`RECORD_FORMAT`.
    """

    name: str
    target: str
    host: str
    port: int
    models: list[ModelRef]
    inference_config: dict[str, Any]
    deployment_config: dict[str, Any]
    environment: dict[str, Any] | None = None
    created_time: str = field(default_factory=utc_now)
    updated_time: str = field(default_factory=utc_now)
    last_error: str | None = None
    target_state: dict[str, Any] = field(default_factory=dict)
    format: int = RECORD_FORMAT

    @property
    def model_ids(self) -> list[str]:
        """The served versions as ``"name:version"``."""
        return [m.id for m in self.models]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe content."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> ServiceRecord:
        """Build a record from ``service.json`` content, migrating a format-1 record (releases up to 0.1).

        Raises:
            DeploymentError: When the content is of an unknown format or lacks fields; names the file.
        """
        if data.get("format") == 1:
            data = _migrate_format1(data)
        if data.get("format") != RECORD_FORMAT:
            raise DeploymentError(
                f"{source} has record format {data.get('format')!r}, this jupyter-mldeploy reads "
                f"{RECORD_FORMAT}; delete the service folder or use the matching jupyter-mldeploy."
            )
        try:
            models = [ModelRef(str(m["name"]), int(m["version"])) for m in data["models"]]
            known = {f for f in cls.__dataclass_fields__ if f != "models"}
            record = cls(models=models, **{k: v for k, v in data.items() if k in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentError(f"{source} is damaged ({exc!r}); delete the service and deploy it again.") from exc
        if not isinstance(record.target_state, dict):
            raise DeploymentError(f"{source} is damaged (target_state is not an object); deploy the service again.")
        return record


def _migrate_format1(data: dict[str, Any]) -> dict[str, Any]:
    """Turn a format-1 record (runtime fields at the top) into format 2 (``target`` + ``target_state``)."""
    migrated = {k: v for k, v in data.items() if k not in _FORMAT1_TARGET_FIELDS and k != "runtime"}
    migrated["target"] = data.get("runtime") or "process"
    migrated["target_state"] = {k: data[k] for k in _FORMAT1_TARGET_FIELDS if k in data}
    pending = migrated["target_state"].get("pending")
    if isinstance(pending, dict) and isinstance(pending.get("record"), dict):
        # A switch in progress stored the whole new record: migrate it the same way.
        pending["record"] = _migrate_format1({**pending["record"], "format": 1})
    migrated["format"] = RECORD_FORMAT
    return migrated


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder and ``os.replace``.

    A reader sees the old content or the new, never a partial file; a crash leaves at most a stray
    ``.tmp`` file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """Return the JSON content of ``path``, or None when missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
