"""``AksWebservice.deploy_configuration``: v1's AKS settings, its validation rules and their resolved values.

A Kubernetes deployment configuration is an ordinary
:class:`~jupyter_mldeploy.deploy.config.DeploymentConfiguration` with ``computeType: "aks"`` (runtime
``kubernetes``) holding v1's camelCase keys, so ``deploymentconfig.json`` files written for
``az ml model deploy --dc`` read and round-trip unchanged. Only what the user gave is stored; the v1
defaults are applied when manifests are rendered (:class:`KubernetesSettings`), so a file never grows keys
its author did not write.

The rules are v1's (``AksServiceDeploymentConfiguration.validate_configuration``): every number > 0;
``autoscale_enabled`` with ``num_replicas`` is an error, and so is ``autoscale_enabled=False`` without
``num_replicas``; autoscale settings without autoscaling are an error; min ≤ max; limits ≥ requests; key and
token auth are mutually exclusive; the namespace is a DNS-1123 label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.service_keys import check_key
from jupyter_mldeploy.errors import InvalidArgument

#: A DNS-1123 label (Kubernetes namespaces and service names): lower-case letters, digits and ``-``.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_MAX = 63

#: v1 defaults (``AksWebservice.deploy_configuration``).
DEFAULT_MIN_REPLICAS = 1
DEFAULT_MAX_REPLICAS = 10
DEFAULT_REFRESH_SECONDS = 1
DEFAULT_TARGET_UTILIZATION = 70
DEFAULT_CPU_CORES = 0.1
DEFAULT_MEMORY_GB = 0.5
DEFAULT_SCORING_TIMEOUT_MS = 60000
DEFAULT_MAX_CONCURRENT_REQUESTS = 1
DEFAULT_MAX_REQUEST_WAIT_MS = 500
DEFAULT_PROBE = {
    "periodSeconds": 10,
    "initialDelaySeconds": 310,
    "timeoutSeconds": 2,
    "successThreshold": 1,
    "failureThreshold": 3,
}

#: ``autoScaler`` keys -> v1 argument names (for messages).
_AUTOSCALE_ARGS = {
    "minReplicas": "autoscale_min_replicas",
    "maxReplicas": "autoscale_max_replicas",
    "refreshPeriodInSeconds": "autoscale_refresh_seconds",
    "targetUtilization": "autoscale_target_utilization",
}
_PROBE_ARGS = {
    "periodSeconds": "period_seconds",
    "initialDelaySeconds": "initial_delay_seconds",
    "timeoutSeconds": "timeout_seconds",
    "successThreshold": "success_threshold",
    "failureThreshold": "failure_threshold",
}
_RESOURCE_ARGS = {
    "cpu": "cpu_cores",
    "memoryInGB": "memory_gb",
    "cpuLimit": "cpu_cores_limit",
    "memoryInGBLimit": "memory_gb_limit",
    "gpu": "gpu_cores",
}


def check_dns1123_label(value: object, argument: str) -> str:
    """Return ``value`` when it is a DNS-1123 label; raise otherwise.

    Raises:
        InvalidArgument: Naming ``argument`` and the rule.
    """
    if not isinstance(value, str) or len(value) > DNS1123_MAX or not DNS1123_LABEL.fullmatch(value):
        raise InvalidArgument(
            f"Invalid {argument} {value!r}: a Kubernetes name must be a DNS-1123 label: 1-63 lower-case letters, "
            "digits or '-', starting and ending with a letter or digit (e.g. 'diabetes-svc')."
        )
    return value


def _positive(value: Any, argument: str, integer: bool) -> None:
    if value is None:
        return
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise InvalidArgument(f"Invalid configuration, {argument} must be {what}, not {value!r}.")


def check_aks_configuration(config: DeploymentConfiguration) -> None:
    """Apply v1's AKS validation rules to a configuration (``computeType: "aks"``).

    Args:
        config: The configuration (only the keys it holds are checked).

    Raises:
        InvalidArgument: For the first rule broken, naming the v1 argument and the rule.
    """
    scaler = config.auto_scaler or {}
    probe = config.liveness_probe_requirements or {}
    resources = config.container_resource_requirements or {}
    keys = config.keys or {}
    for name, value in (("auto_scaler", config.auto_scaler), ("liveness_probe_requirements", probe), ("keys", keys)):
        if value is not None and not isinstance(value, dict):
            raise InvalidArgument(f"Invalid configuration, {name} must be an object, not {type(value).__name__}.")
    unknown = sorted(set(scaler) - {"autoscaleEnabled", *_AUTOSCALE_ARGS}) + sorted(set(probe) - set(_PROBE_ARGS)) + \
        sorted(set(keys) - {"primaryKey", "secondaryKey"})
    if unknown:
        raise InvalidArgument(f"Invalid configuration, unknown keys {unknown} in autoScaler, "
                              "livenessProbeRequirements or keys.")
    for key, argument in _AUTOSCALE_ARGS.items():
        _positive(scaler.get(key), argument, integer=True)
    for key, argument in _PROBE_ARGS.items():
        _positive(probe.get(key), argument, integer=True)
    for key, argument in _RESOURCE_ARGS.items():
        _positive(resources.get(key), argument, integer=key == "gpu")
    for value, argument in (
        (config.num_replicas, "num_replicas"),
        (config.scoring_timeout_ms, "scoring_timeout_ms"),
        (config.max_concurrent_requests_per_container, "replica_max_concurrent_requests"),
        (config.max_queue_wait_ms, "max_request_wait_time"),
        (config.gpu_cores, "gpu_cores"),
    ):
        _positive(value, argument, integer=True)
    if "targetUtilization" in scaler and scaler["targetUtilization"] > 100:
        raise InvalidArgument("Invalid configuration, autoscale_target_utilization must be a percentage from 1 to 100.")
    enabled = scaler.get("autoscaleEnabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidArgument(f"Invalid configuration, autoscale_enabled must be True or False, not {enabled!r}.")
    if enabled and config.num_replicas is not None:
        raise InvalidArgument(
            "Invalid configuration, autoscale_enabled and num_replicas cannot both be set: give num_replicas for a "
            "fixed number of replicas, or autoscale_enabled=True (with autoscale_min/max_replicas) to scale."
        )
    if enabled is False and config.num_replicas is None:
        raise InvalidArgument(
            "Invalid configuration, num_replicas is required when autoscale_enabled is False."
        )
    given = [argument for key, argument in _AUTOSCALE_ARGS.items() if key in scaler]
    if given and (enabled is False or (enabled is None and config.num_replicas is not None)):
        raise InvalidArgument(
            f"Invalid configuration, {', '.join(given)} given while autoscaling is off: autoscale settings need "
            "autoscale_enabled=True (and no num_replicas)."
        )
    low = scaler.get("minReplicas", DEFAULT_MIN_REPLICAS)
    high = scaler.get("maxReplicas", DEFAULT_MAX_REPLICAS)
    if low > high:
        raise InvalidArgument(
            f"Invalid configuration, autoscale_min_replicas ({low}) must be less than or equal to "
            f"autoscale_max_replicas ({high})."
        )
    for request, limit in (("cpu", "cpuLimit"), ("memoryInGB", "memoryInGBLimit")):
        low_value = resources.get(request, DEFAULT_CPU_CORES if request == "cpu" else DEFAULT_MEMORY_GB)
        if resources.get(limit) is not None and resources[limit] < low_value:
            raise InvalidArgument(
                f"Invalid configuration, {_RESOURCE_ARGS[limit]} ({resources[limit]}) must be greater than or equal "
                f"to {_RESOURCE_ARGS[request]} ({low_value})."
            )
    if config.auth_enabled and config.token_auth_enabled:
        raise InvalidArgument(
            "Invalid configuration, auth_enabled and token_auth_enabled cannot both be true: use key auth or "
            "token auth."
        )
    for key, value in keys.items():
        check_key(value, f"keys.{key}")  # a key a Bearer header can carry; never echoed back
    if config.namespace is not None:
        check_dns1123_label(config.namespace, "namespace")


def aks_deploy_configuration(
    autoscale_enabled: bool | None = None,
    autoscale_min_replicas: int | None = None,
    autoscale_max_replicas: int | None = None,
    autoscale_refresh_seconds: int | None = None,
    autoscale_target_utilization: int | None = None,
    collect_model_data: bool | None = None,
    auth_enabled: bool | None = None,
    cpu_cores: float | None = None,
    memory_gb: float | None = None,
    enable_app_insights: bool | None = None,
    scoring_timeout_ms: int | None = None,
    replica_max_concurrent_requests: int | None = None,
    max_request_wait_time: int | None = None,
    num_replicas: int | None = None,
    primary_key: str | None = None,
    secondary_key: str | None = None,
    tags: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    description: str | None = None,
    gpu_cores: int | None = None,
    period_seconds: int | None = None,
    initial_delay_seconds: int | None = None,
    timeout_seconds: int | None = None,
    success_threshold: int | None = None,
    failure_threshold: int | None = None,
    namespace: str | None = None,
    token_auth_enabled: bool | None = None,
    cpu_cores_limit: float | None = None,
    memory_gb_limit: float | None = None,
    environment_variables: dict[str, str] | None = None,
) -> DeploymentConfiguration:
    """Build a Kubernetes deployment configuration (v1 ``AksWebservice.deploy_configuration``).

    Arguments and defaults are v1's: autoscaling is on (1 to 10 replicas at 70 % CPU) unless
    ``num_replicas`` is given; each replica requests 0.1 CPU and 0.5 GiB; the liveness probe waits 310 s,
    then checks every 10 s with a 2 s timeout and 3 failures allowed; the scoring timeout is 60 s; key auth
    is on. ``collect_model_data`` and ``enable_app_insights`` are accepted for v1 code and kept (there is no
    Application Insights here); ``collect_model_data=True`` is not honoured in pods, and a deploy says so
    (:func:`collection_note`).

    Args:
        autoscale_enabled: Scale with a HorizontalPodAutoscaler; default True when ``num_replicas`` is None.
        autoscale_min_replicas: Fewest replicas when autoscaling (default 1).
        autoscale_max_replicas: Most replicas when autoscaling (default 10).
        autoscale_refresh_seconds: v1's autoscaler refresh period (default 1); kept as an annotation, since
            the HPA controller's sync period is set cluster-wide.
        autoscale_target_utilization: Target CPU utilization in percent of the request (default 70).
        collect_model_data: v1 model data collection flag: kept (``dataCollection.storageEnabled``), but pods
            collect nothing; a deploy warns (:func:`collection_note`).
        auth_enabled: Key auth (default True unless token auth is on, as v1 AKS): the keys go into a Secret the
            pods mount, and every route that runs the model needs ``Authorization: Bearer <key>``.
        cpu_cores: CPU request per replica (default 0.1).
        memory_gb: Memory request per replica in GiB (default 0.5).
        enable_app_insights: v1 flag (kept).
        scoring_timeout_ms: Per-request limit of ``run()`` (default 60000), the server's ``SCORING_TIMEOUT_MS``.
        replica_max_concurrent_requests: Concurrent requests per replica (default 1): the server's
            ``WORKER_COUNT``.
        max_request_wait_time: v1's queue wait in ms (default 500); kept as an annotation (v1's front end
            enforced it; a plain Service has no queue).
        num_replicas: A fixed number of replicas (no autoscaling).
        primary_key: Key auth primary key, 16+ characters from ``A-Z a-z 0-9 - . _ ~ + /`` (generated when auth
            is on and none is given: 32 random bytes, URL-safe).
        secondary_key: Key auth secondary key (generated likewise).
        tags: Free labels.
        properties: Free facts.
        description: Free text.
        gpu_cores: GPUs per replica (``nvidia.com/gpu``).
        period_seconds: Liveness probe period (default 10).
        initial_delay_seconds: Liveness probe initial delay (default 310).
        timeout_seconds: Liveness probe timeout (default 2).
        success_threshold: Liveness probe success threshold (default 1).
        failure_threshold: Liveness probe failure threshold (default 3).
        namespace: Kubernetes namespace (a DNS-1123 label); default: the context's.
        token_auth_enabled: v1 token auth (default False); exclusive with key auth.
        cpu_cores_limit: CPU limit per replica (default: the request).
        memory_gb_limit: Memory limit per replica in GiB (default: the request).
        environment_variables: Extra variables for the scoring server.

    Returns:
        DeploymentConfiguration: ``compute_type="aks"``, ``runtime="kubernetes"``.

    Raises:
        InvalidArgument: For a value breaking one of v1's rules (names the argument and the rule).
    """
    scaler: dict[str, Any] = {}
    for key, value in (
        ("autoscaleEnabled", autoscale_enabled),
        ("minReplicas", autoscale_min_replicas),
        ("maxReplicas", autoscale_max_replicas),
        ("refreshPeriodInSeconds", autoscale_refresh_seconds),
        ("targetUtilization", autoscale_target_utilization),
    ):
        if value is not None:
            scaler[key] = value
    resources = {
        key: value for key, value in (
            ("cpu", cpu_cores), ("memoryInGB", memory_gb), ("cpuLimit", cpu_cores_limit),
            ("memoryInGBLimit", memory_gb_limit), ("gpu", gpu_cores),
        ) if value is not None
    }
    probe = {
        key: value for key, value in (
            ("periodSeconds", period_seconds), ("initialDelaySeconds", initial_delay_seconds),
            ("timeoutSeconds", timeout_seconds), ("successThreshold", success_threshold),
            ("failureThreshold", failure_threshold),
        ) if value is not None
    }
    keys = {k: v for k, v in (("primaryKey", primary_key), ("secondaryKey", secondary_key)) if v is not None}
    properties = dict(properties or {})
    if collect_model_data is not None:
        properties.setdefault("collectModelData", str(collect_model_data).lower())
    return DeploymentConfiguration(
        compute_type="aks",
        runtime="kubernetes",
        scoring_timeout_ms=scoring_timeout_ms,
        environment_variables=dict(environment_variables or {}),
        container_resource_requirements=resources or None,
        auto_scaler=scaler or None,
        num_replicas=num_replicas,
        auth_enabled=auth_enabled,
        token_auth_enabled=token_auth_enabled,
        max_concurrent_requests_per_container=replica_max_concurrent_requests,
        app_insights_enabled=enable_app_insights,
        description=description,
        tags=tags,
        properties=properties or None,
        liveness_probe_requirements=probe or None,
        max_queue_wait_ms=max_request_wait_time,
        keys=keys or None,
        namespace=namespace,
        gpu_cores=gpu_cores,
        collect_model_data=collect_model_data,
    )


def collection_note(config: DeploymentConfiguration) -> str | None:
    """The deploy note of ``collect_model_data=True``, which this target does not honour; None when it is off.

    Model data collection writes ``ModelDataCollector`` records into ``<workspace>/modeldata/<service>``
    (docs/monitoring.md). A pod cannot reach the workspace, so its server gets no collection variables and
    ``collect()`` is a no-op there, as with collection off: the note says so instead of accepting the flag
    silently, and names the ways to collect.

    Args:
        config: A Kubernetes deployment configuration (from the function or from ``"dataCollection":
            {"storageEnabled": true}`` in deploymentconfig.json).
    """
    if not config.collect_model_data:
        return None
    return (
        "collect_model_data=True is not honoured on the Kubernetes target: the pods cannot reach the workspace's "
        "modeldata/ folder, so ModelDataCollector.collect() records nothing there. To collect inputs and "
        "predictions, deploy the same model locally or with Docker with collect_model_data=True "
        "(service.get_collected_data() reads them back), or have score.py write them to storage of the pod's own "
        "(a volume you mount) and copy them out."
    )


@dataclass(frozen=True)
class KubernetesSettings:
    """A Kubernetes configuration with v1's defaults applied: what the manifests say.

    Attributes:
        replicas: Fixed replica count, or None when a HorizontalPodAutoscaler scales.
        min_replicas: Fewest replicas when autoscaling.
        max_replicas: Most replicas when autoscaling.
        refresh_seconds: v1's autoscaler refresh period (an annotation).
        target_utilization: Target CPU utilization, percent of the request.
        cpu: CPU request (cores).
        memory_gb: Memory request (GiB).
        cpu_limit: CPU limit (cores).
        memory_gb_limit: Memory limit (GiB).
        gpu: GPUs per replica (0: none).
        scoring_timeout_ms: The server's per-request limit.
        max_concurrent_requests: Concurrent requests per replica.
        max_queue_wait_ms: v1's queue wait (an annotation).
        probe: Liveness probe settings (v1 camelCase keys, Kubernetes names them the same).
        namespace: Namespace, or None for the context's.
        auth_enabled: Key auth (a Secret with the keys).
        token_auth_enabled: v1 token auth.
        primary_key: Given primary key, or None (generated when rendered).
        secondary_key: Given secondary key, or None.
    """

    replicas: int | None
    min_replicas: int
    max_replicas: int
    refresh_seconds: int
    target_utilization: int
    cpu: float
    memory_gb: float
    cpu_limit: float
    memory_gb_limit: float
    gpu: int
    scoring_timeout_ms: int
    max_concurrent_requests: int
    max_queue_wait_ms: int
    probe: dict[str, int]
    namespace: str | None
    auth_enabled: bool
    token_auth_enabled: bool
    primary_key: str | None
    secondary_key: str | None

    @property
    def autoscale(self) -> bool:
        """True when a HorizontalPodAutoscaler scales the Deployment."""
        return self.replicas is None

    @classmethod
    def of(cls, config: DeploymentConfiguration) -> KubernetesSettings:
        """Resolve ``config`` (checked by :func:`check_aks_configuration`) with v1's defaults.

        Raises:
            InvalidArgument: When ``config`` is not a Kubernetes configuration.
        """
        if config.compute_type != "aks":
            raise InvalidArgument(
                f"A Kubernetes deployment needs computeType 'aks' (AksWebservice.deploy_configuration()), not "
                f"{config.compute_type!r}."
            )
        scaler = config.auto_scaler or {}
        resources = config.container_resource_requirements or {}
        keys = config.keys or {}
        cpu = float(resources.get("cpu", DEFAULT_CPU_CORES))
        memory = float(resources.get("memoryInGB", DEFAULT_MEMORY_GB))
        token = bool(config.token_auth_enabled)
        return cls(
            replicas=config.num_replicas,
            min_replicas=int(scaler.get("minReplicas", DEFAULT_MIN_REPLICAS)),
            max_replicas=int(scaler.get("maxReplicas", DEFAULT_MAX_REPLICAS)),
            refresh_seconds=int(scaler.get("refreshPeriodInSeconds", DEFAULT_REFRESH_SECONDS)),
            target_utilization=int(scaler.get("targetUtilization", DEFAULT_TARGET_UTILIZATION)),
            cpu=cpu,
            memory_gb=memory,
            cpu_limit=float(resources.get("cpuLimit") or cpu),
            memory_gb_limit=float(resources.get("memoryInGBLimit") or memory),
            gpu=int(resources.get("gpu") or config.gpu_cores or 0),
            scoring_timeout_ms=config.scoring_timeout_ms or DEFAULT_SCORING_TIMEOUT_MS,
            max_concurrent_requests=config.max_concurrent_requests_per_container or DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_queue_wait_ms=config.max_queue_wait_ms or DEFAULT_MAX_REQUEST_WAIT_MS,
            probe={**DEFAULT_PROBE, **(config.liveness_probe_requirements or {})},
            namespace=config.namespace,
            auth_enabled=config.auth_enabled if config.auth_enabled is not None else not token,
            token_auth_enabled=token,
            primary_key=keys.get("primaryKey"),
            secondary_key=keys.get("secondaryKey"),
        )
