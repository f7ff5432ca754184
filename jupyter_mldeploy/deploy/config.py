"""``DeploymentConfiguration``: where and how a service runs, read from and written to v1's
``deploymentconfig.json`` (the v1 file format, see docs/deploy.md).

Services run as local processes (``runtime="process"``) or in Docker containers (``runtime="docker"``,
see :mod:`jupyter_mldeploy.docker.target`, which also turns ``containerResourceRequirements`` into container
CPU and memory limits). The Kubernetes keys of the v1 file (``autoScaler``, ``numReplicas`` ...) are parsed,
checked and kept, so one file serves every runtime and survives a round trip.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mldeploy.deploy.ports import validate_port
from jupyter_mldeploy.deploy.service_keys import check_key
from jupyter_mldeploy.deploy.targets.registry import check_target_name, get_target
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.inference_config import read_config_file

_COMPUTE_TYPES = {"local": "local", "docker": "local", "aks": "aks", "kubernetes": "aks"}

#: ``deploymentconfig.json`` keys and the attribute each fills.
_KEY_MAP = {
    "computeType": "compute_type",
    "port": "port",
    "runtime": "runtime",
    "host": "host",
    "workerCount": "worker_count",
    "scoringTimeoutMs": "scoring_timeout_ms",
    "corsOrigins": "cors_origins",
    "containerResourceRequirements": "container_resource_requirements",
    "autoScaler": "auto_scaler",
    "numReplicas": "num_replicas",
    "authEnabled": "auth_enabled",
    "tokenAuthEnabled": "token_auth_enabled",
    "maxConcurrentRequestsPerContainer": "max_concurrent_requests_per_container",
    "appInsightsEnabled": "app_insights_enabled",
    "enableAppInsights": "app_insights_enabled",
    "description": "description",
    "tags": "tags",
    "properties": "properties",
    "environmentVariables": "environment_variables",
    "livenessProbeRequirements": "liveness_probe_requirements",
    "maxQueueWaitMs": "max_queue_wait_ms",
    "keys": "keys",
    "allowUnauthenticated": "allow_unauthenticated",
    "namespace": "namespace",
    "gpuCores": "gpu_cores",
    "batching": "batching",
    "dataCollection": "collect_model_data",
}

#: ``batching`` keys: the Python spelling (``batching={"max_batch_size": 32}``) -> deploymentconfig.json's.
_BATCHING_KEYS = {"max_batch_size": "maxBatchSize", "max_latency_ms": "maxLatencyMs"}


@dataclass
class DeploymentConfiguration:
    """How a service runs. Build one with :meth:`LocalWebservice.deploy_configuration` or :meth:`from_file`.

    Attributes:
        compute_type: ``"local"`` or ``"aks"`` (v1's ``computeType``; ``"aks"``: the ``kubernetes`` runtime).
        runtime: ``"process"`` (a detached local process in the environment's interpreter) or ``"docker"``
            (a container of the environment's image; also set by ``"computeType": "docker"``).
        port: TCP port, or None for a free one chosen at deploy time.
        host: Interface to bind; ``127.0.0.1`` keeps the service private to this machine.
        worker_count: Scoring worker processes (azmlinfsrv's ``WORKER_COUNT``), each running ``init()``.
        scoring_timeout_ms: Per-request limit for ``run()`` in milliseconds (``SCORING_TIMEOUT_MS``);
            None keeps the server's default (3600000).
        cors_origins: Allowed CORS origins (``AML_CORS_ORIGINS``); None leaves CORS off.
        environment_variables: Extra variables set for the scoring process.
        container_resource_requirements: v1 ``{"cpu", "memoryInGB", ...}``: the Docker runtime's container
            limits (``cpuLimit``/``memoryInGBLimit`` win when given); kept for Kubernetes.
        auto_scaler: v1 autoscaler settings, kept for Kubernetes.
        num_replicas: v1 replica count, kept for Kubernetes.
        auth_enabled: v1 key auth: callers need ``Authorization: Bearer <key>`` (default off for local and
            Docker services, as v1 local; on for Kubernetes, as v1 AKS). See docs/protocols.md#service-keys.
        token_auth_enabled: v1 token auth flag (kept).
        max_concurrent_requests_per_container: v1 setting (kept).
        app_insights_enabled: v1 setting (kept).
        description: Free text.
        tags: Free ``str -> str`` labels.
        properties: Free ``str -> str`` facts.
        liveness_probe_requirements: v1 ``{"periodSeconds", "initialDelaySeconds", ...}`` (Kubernetes).
        max_queue_wait_ms: v1 ``maxQueueWaitMs`` (Kubernetes).
        keys: v1 ``{"primaryKey", "secondaryKey"}``; a key left out is generated (32 random bytes). A local
            service's keys are stored owner-only in its folder and never saved with the record.
        allow_unauthenticated: Ours: allow a local service without key auth on a non-loopback host.
        namespace: Kubernetes namespace (v1 ``namespace``).
        gpu_cores: v1 ``gpuCores`` (Kubernetes).
        batching: Ours: adaptive request batching, ``{"maxBatchSize": 32, "maxLatencyMs": 10}`` (also
            given as ``{"max_batch_size", "max_latency_ms"}``); None = off. Merges the rows of concurrent
            requests into one ``run()`` call (docs/throughput.md); ``run()`` must return one element per row.
        collect_model_data: v1's flag: ``ModelDataCollector`` records go to ``<workspace>/modeldata/<service>``
            (``"dataCollection": {"storageEnabled": true}`` in deploymentconfig.json; docs/monitoring.md).

    ``computeType: "aks"`` (or ``"kubernetes"``) selects the ``kubernetes`` runtime, and the Kubernetes
    target then checks v1's AKS rules (:meth:`ServiceTarget.check_configuration`).
    """

    compute_type: str = "local"
    runtime: str = "process"
    port: int | None = None
    host: str = "127.0.0.1"
    worker_count: int = 1
    scoring_timeout_ms: int | None = None
    cors_origins: list[str] | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)
    container_resource_requirements: dict[str, Any] | None = None
    auto_scaler: dict[str, Any] | None = None
    num_replicas: int | None = None
    auth_enabled: bool | None = None
    token_auth_enabled: bool | None = None
    max_concurrent_requests_per_container: int | None = None
    app_insights_enabled: bool | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    liveness_probe_requirements: dict[str, Any] | None = None
    max_queue_wait_ms: int | None = None
    keys: dict[str, str] | None = None
    namespace: str | None = None
    gpu_cores: int | None = None
    batching: dict[str, Any] | None = None
    allow_unauthenticated: bool = False
    collect_model_data: bool | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field.

        Raises:
            InvalidArgument: Naming the field, the bad value and the accepted values.
        """
        compute = _COMPUTE_TYPES.get(str(self.compute_type).lower())
        if compute is None:
            raise InvalidArgument(
                f"Unknown computeType {self.compute_type!r}: use 'local' (also 'docker', 'aks', 'kubernetes')."
            )
        if str(self.compute_type).lower() == "docker":
            self.runtime = "docker"
        if compute == "aks":
            self.runtime = "kubernetes"
        elif self.runtime == "kubernetes":
            compute = "aks"
        self.compute_type = compute
        check_target_name(self.runtime)
        if self.port is not None:
            validate_port(self.port)
        if not isinstance(self.host, str) or not self.host:
            raise InvalidArgument(f"Invalid host {self.host!r}: use an interface address such as '127.0.0.1'.")
        if isinstance(self.worker_count, bool) or not isinstance(self.worker_count, int) or not 1 <= self.worker_count <= 64:
            raise InvalidArgument(f"Invalid worker_count {self.worker_count!r}: use an integer from 1 to 64.")
        if self.scoring_timeout_ms is not None and (
            isinstance(self.scoring_timeout_ms, bool) or not isinstance(self.scoring_timeout_ms, int)
            or self.scoring_timeout_ms < 1
        ):
            raise InvalidArgument(
                f"Invalid scoring_timeout_ms {self.scoring_timeout_ms!r}: use a positive number of milliseconds."
            )
        if isinstance(self.cors_origins, str):
            self.cors_origins = [o.strip() for o in self.cors_origins.split(",") if o.strip()]
        if not isinstance(self.environment_variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.environment_variables.items()
        ):
            raise InvalidArgument("environment_variables must map variable names to string values.")
        requirements = self.container_resource_requirements
        if requirements is not None:
            if not isinstance(requirements, dict):
                raise InvalidArgument("containerResourceRequirements must be an object such as {\"cpu\": 1}.")
            for key in ("cpu", "memoryInGB", "cpuLimit", "memoryInGBLimit", "gpu"):
                value = requirements.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                    raise InvalidArgument(f"containerResourceRequirements.{key} must be a number >= 0, not {value!r}.")
        if self.batching is not None:
            self.batching = _check_batching(self.batching)
        if isinstance(self.collect_model_data, dict):  # deploymentconfig.json's {"storageEnabled": true}
            self.collect_model_data = self.collect_model_data.get("storageEnabled")
        if self.collect_model_data is not None and not isinstance(self.collect_model_data, bool):
            raise InvalidArgument(
                f"Invalid collect_model_data {self.collect_model_data!r}: use True or False "
                '(deploymentconfig.json: "dataCollection": {"storageEnabled": true}).'
            )
        if self.compute_type == "local":
            self._check_local_auth()
        if self.compute_type == "aks":
            get_target(self.runtime).check_configuration(self)

    def _check_local_auth(self) -> None:
        if self.keys is not None:
            if not isinstance(self.keys, dict) or set(self.keys) - {"primaryKey", "secondaryKey"}:
                raise InvalidArgument('keys must be {"primaryKey": ..., "secondaryKey": ...} (either may be left out).')
            for name, value in self.keys.items():
                check_key(value, name)
            if not self.auth_enabled:
                raise InvalidArgument("Keys were given but auth_enabled is not True: pass auth_enabled=True "
                                      '("authEnabled": true) to use them, or leave the keys out.')
        if not self.auth_enabled and not self.allow_unauthenticated and not _is_loopback(self.host):
            raise InvalidArgument(
                f"Refusing to serve on {self.host!r} without key auth: anyone who can reach that address could call "
                "the model. Pass auth_enabled=True (callers then send 'Authorization: Bearer <key>'), bind to "
                "'127.0.0.1', or pass allow_unauthenticated=True if the network is trusted."
            )

    def check_runnable(self) -> None:
        """Raise unless this configuration can be deployed here.

        Raises:
            DeploymentError: When the target is not available (for Docker: no engine answers within seconds;
                for Kubernetes: the client package is missing), saying what to use.
        """
        get_target(self.runtime).check_available()

    # -- files ----------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "deployment config") -> DeploymentConfiguration:
        """Build a configuration from ``deploymentconfig.json`` content (camelCase v1 keys).

        Raises:
            InvalidArgument: For unknown keys (listed, with the known ones) or bad values.
        """
        if not isinstance(data, dict):
            raise InvalidArgument(f"{source} must hold a JSON object, not {type(data).__name__}.")
        unknown = sorted(set(data) - set(_KEY_MAP))
        if unknown:
            raise InvalidArgument(f"{source} has unknown keys {unknown}; known keys: {sorted(_KEY_MAP)}.")
        if "computeType" not in data:
            raise InvalidArgument(f"{source} has no 'computeType'; add \"computeType\": \"local\".")
        kwargs = {_KEY_MAP[key]: value for key, value in data.items()}
        if kwargs.get("environment_variables") is None:
            kwargs.pop("environment_variables", None)
        try:
            return cls(**kwargs)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DeploymentConfiguration:
        """Read a v1 ``deploymentconfig.json`` such as ``{"computeType": "local", "port": 6789}``.

        Args:
            path: The JSON file.

        Raises:
            NotFound: When the file does not exist.
            InvalidArgument: When it is not JSON, lacks ``computeType`` or holds unknown keys or bad values.
        """
        file, data = read_config_file(path, "Deployment config")
        return cls.from_dict(data, source=f"Deployment config {file}")

    def serialize(self) -> dict[str, Any]:
        """Return the ``deploymentconfig.json`` content; unset optional keys are left out."""
        data: dict[str, Any] = {}
        for key, attr in _KEY_MAP.items():
            if key == "enableAppInsights":
                continue
            value = getattr(self, attr)
            if value is None or (attr == "environment_variables" and not value):
                continue
            if attr == "keys" and self.compute_type == "local":
                continue  # a local service's keys live in its owner-only keys file only
            if attr == "allow_unauthenticated" and not value:
                continue
            if attr in ("host", "worker_count", "runtime") and value == getattr(DeploymentConfiguration(), attr):
                continue
            data[key] = {"storageEnabled": value} if attr == "collect_model_data" else value
        return data

    def to_file(self, path: str | os.PathLike[str]) -> Path:
        """Write ``deploymentconfig.json`` atomically and return its path."""
        file = Path(path).expanduser().resolve()
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(json.dumps(self.serialize(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, file)
        return file


def local_deploy_configuration(
    port: int | None = None,
    runtime: str = "process",
    *,
    host: str = "127.0.0.1",
    worker_count: int = 1,
    scoring_timeout_ms: int | None = None,
    cors_origins: list[str] | str | None = None,
    environment_variables: dict[str, str] | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    cpu_cores: float | None = None,
    memory_gb: float | None = None,
    batching: dict[str, Any] | None = None,
    collect_model_data: bool | None = None,
    auth_enabled: bool = False,
    primary_key: str | None = None,
    secondary_key: str | None = None,
    allow_unauthenticated: bool = False,
) -> DeploymentConfiguration:
    """Build a local deployment configuration (v1: ``LocalWebservice.deploy_configuration(port=None)``).

    Args:
        port: TCP port; None picks a free one when the service is deployed.
        runtime: ``"process"`` (the default) or ``"docker"`` (needs a Docker engine).
        host: Interface to bind (``127.0.0.1``: reachable from this machine only).
        worker_count: Scoring worker processes.
        scoring_timeout_ms: Per-request limit for ``run()``, in milliseconds.
        cors_origins: Allowed origins for browser callers (list or comma-separated string), or ``"*"``.
        environment_variables: Extra variables for the scoring process.
        description: Free text.
        tags: Free labels.
        cpu_cores: Docker runtime: CPU limit of the container (``containerResourceRequirements.cpu``).
        memory_gb: Docker runtime: memory limit of the container in GiB (``containerResourceRequirements.memoryInGB``).
        batching: Adaptive request batching, ``{"max_batch_size": 32, "max_latency_ms": 10}``; None = off.
        collect_model_data: Record what ``ModelDataCollector`` collects in ``<workspace>/modeldata/<service>``
            (v1's flag; off by default).
        auth_enabled: Key auth (v1): every route that runs the model needs ``Authorization: Bearer <key>``;
            ``service.get_keys()`` returns the keys. Off by default, as v1 local services.
        primary_key: The primary key (16+ URL-safe characters); None generates one (32 random bytes).
        secondary_key: The secondary key; None generates one.
        allow_unauthenticated: Serve on a non-loopback ``host`` without key auth anyway (refused otherwise).

    Returns:
        DeploymentConfiguration: with ``compute_type="local"``.

    Raises:
        InvalidArgument: For a bad value (names the parameter).
    """
    origins = [o.strip() for o in cors_origins.split(",") if o.strip()] if isinstance(cors_origins, str) else cors_origins
    return DeploymentConfiguration(
        compute_type="local",
        runtime=runtime,
        port=port,
        host=host,
        worker_count=worker_count,
        scoring_timeout_ms=scoring_timeout_ms,
        cors_origins=origins,
        environment_variables=dict(environment_variables or {}),
        description=description,
        tags=tags,
        container_resource_requirements=_resources(cpu_cores, memory_gb),
        batching=batching,
        collect_model_data=collect_model_data,
        auth_enabled=auth_enabled or None,  # None: left out of deploymentconfig.json, as before
        keys=_keys(primary_key, secondary_key),
        allow_unauthenticated=allow_unauthenticated,
    )


def _keys(primary_key: str | None, secondary_key: str | None) -> dict[str, str] | None:
    given = {"primaryKey": primary_key, "secondaryKey": secondary_key}
    keys = {name: value for name, value in given.items() if value is not None}
    return keys or None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_batching(value: Any) -> dict[str, Any]:
    """Return ``batching`` in deploymentconfig.json's spelling, checked.

    Raises:
        InvalidArgument: Not an object, an unknown key, or a size that is not an integer >= 1 or a latency
            that is not a number >= 0.
    """
    if not isinstance(value, dict):
        raise InvalidArgument('batching must be an object such as {"max_batch_size": 32, "max_latency_ms": 10}.')
    checked: dict[str, Any] = {}
    for key, item in value.items():
        name = _BATCHING_KEYS.get(key, key)
        if name not in _BATCHING_KEYS.values():
            raise InvalidArgument(f"batching has unknown key {key!r}; use max_batch_size and max_latency_ms.")
        checked[name] = item
    size = checked.get("maxBatchSize")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidArgument(f"batching.max_batch_size must be an integer >= 1 (rows per run() call), not {size!r}.")
    latency = checked.get("maxLatencyMs", 10)
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not latency >= 0:
        raise InvalidArgument(f"batching.max_latency_ms must be a number of milliseconds >= 0, not {latency!r}.")
    return {"maxBatchSize": size, "maxLatencyMs": latency}


def _resources(cpu_cores: float | None, memory_gb: float | None) -> dict[str, Any] | None:
    """``containerResourceRequirements`` for the given limits, or None when neither is given."""
    resources = {key: value for key, value in (("cpu", cpu_cores), ("memoryInGB", memory_gb)) if value is not None}
    return resources or None
