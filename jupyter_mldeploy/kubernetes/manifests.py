"""Kubernetes manifests of a service, rendered as plain data (dicts), written as YAML with PyYAML.

No Kubernetes client is needed to render or write them. One service gives:

- ``Deployment`` ``<name>``: the packaged image (``Model.package``), ``replicas`` (or none when the HPA
  scales), requests and limits from ``containerResourceRequirements``, the scoring server's environment
  (:func:`~jupyter_mldeploy.deploy.plan.scoring_variables`: ``SCORING_TIMEOUT_MS``, ``WORKER_COUNT`` ...), a
  readiness probe on ``GET /`` (the server listens only once ``init()`` returned, so a pod is Ready only then),
  v1's liveness probe, a non-root user, a read-only root filesystem with a writable ``/tmp`` volume, no
  privilege escalation, and a rolling update with ``maxUnavailable: 0`` (the old pods serve until new ones
  are Ready);
- ``Service`` ``<name>`` (``ClusterIP`` by default, port 80 to the container's 5001);
- ``HorizontalPodAutoscaler`` ``<name>`` (``autoscaling/v2``, CPU utilization) when autoscaling;
- ``PodDisruptionBudget`` ``<name>`` (``maxUnavailable: 1``: a node drain never takes every replica at once);
- ``Secret`` ``<name>-keys`` with ``primaryKey``/``secondaryKey`` when key auth is on.

Every object carries the ``app.kubernetes.io/*`` labels; the selector is ``name`` + ``instance``. The
template also carries ``mldeploy.io/generation``, bumped by every update so each one rolls out.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.docker.dockerfile import CONTAINER_PORT
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.kubernetes.compute import SERVICE_TYPES
from jupyter_mldeploy.kubernetes.config import KubernetesSettings, check_dns1123_label

#: The container's name in the pod.
CONTAINER_NAME = "scoring"
#: The Service's port (the container serves on :data:`~jupyter_mldeploy.docker.dockerfile.CONTAINER_PORT`).
SERVICE_PORT = 80
#: The non-root user and group the container runs as (the image's files are world-readable).
RUN_AS_USER = 1000
#: The writable temp volume (the root filesystem is read-only).
TMP_DIR = "/tmp"
LABEL_GENERATION = "mldeploy.io/generation"
ANNOTATION_MODELS = "mldeploy.io/models"


@dataclass(frozen=True)
class ManifestSpec:
    """What the manifests of one service say.

    Attributes:
        name: Service name (a DNS-1123 label): the name of the Deployment, Service, HPA and PDB.
        image: The image reference (``Model.package``'s location, with the registry when pushed).
        environment: The scoring server's variables (from the plan's one builder).
        settings: The resolved Kubernetes settings.
        models: The served ``"name:version"`` ids (an annotation).
        service_type: ``ClusterIP``, ``LoadBalancer`` or ``NodePort``.
        generation: The rollout generation (a template label; bumped by each update).
        namespace: The namespace written into every object, or None (the context's / kustomize's).
        image_pull_policy: ``IfNotPresent`` (the image tag is a content hash, so it never changes meaning).
        keys: ``(primary, secondary)`` for the keys Secret; None: the configuration's, else generated.
    """

    name: str
    image: str
    environment: dict[str, str]
    settings: KubernetesSettings
    models: Sequence[str] = ()
    service_type: str = "ClusterIP"
    generation: int = 1
    namespace: str | None = None
    image_pull_policy: str = "IfNotPresent"
    keys: tuple[str, str] | None = None


def labels(name: str) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels of every object of service ``name``."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "scoring",
        "app.kubernetes.io/part-of": "jupyter-mldeploy",
        "app.kubernetes.io/managed-by": "jupyter-mldeploy",
        "app.kubernetes.io/version": __version__.replace("+", "_")[:63],
    }


def selector(name: str) -> dict[str, str]:
    """The labels that select the pods of service ``name`` (stable across versions and updates)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}


def cpu_quantity(cores: float) -> str:
    """CPU as a Kubernetes quantity in millicores (``0.1`` -> ``"100m"``; at least 1m)."""
    return f"{max(1, round(cores * 1000))}m"


def memory_quantity(gib: float) -> str:
    """Memory as a Kubernetes quantity in MiB (``0.5`` -> ``"512Mi"``; at least 1Mi)."""
    return f"{max(1, round(gib * 1024))}Mi"


def _metadata(spec: ManifestSpec, name: str | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or spec.name, "labels": labels(spec.name)}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def _container(spec: ManifestSpec) -> dict[str, Any]:
    s = spec.settings
    env = dict(spec.environment)
    # Python and the libraries a script loads write caches under HOME and TMPDIR: both on the writable volume.
    env.setdefault("HOME", TMP_DIR)
    env.setdefault("TMPDIR", TMP_DIR)
    requests = {"cpu": cpu_quantity(s.cpu), "memory": memory_quantity(s.memory_gb)}
    limits = {"cpu": cpu_quantity(s.cpu_limit), "memory": memory_quantity(s.memory_gb_limit)}
    if s.gpu:
        limits["nvidia.com/gpu"] = str(s.gpu)
    http_get = {"path": "/", "port": "http", "scheme": "HTTP"}
    return {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        "resources": {"requests": requests, "limits": limits},
        # Ready only once a worker's init() returned: the server does not listen before.
        "readinessProbe": {
            "httpGet": http_get, "periodSeconds": 5, "timeoutSeconds": s.probe["timeoutSeconds"],
            "successThreshold": 1, "failureThreshold": 3,
        },
        "livenessProbe": {"httpGet": http_get, **s.probe},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}],
    }


def deployment(spec: ManifestSpec) -> dict[str, Any]:
    """The ``apps/v1`` Deployment (see the module docstring)."""
    s = spec.settings
    annotations = {
        ANNOTATION_MODELS: ",".join(spec.models),
        # v1 settings a plain Deployment cannot enforce (v1's front end did); kept for the record.
        "mldeploy.io/max-request-wait-ms": str(s.max_queue_wait_ms),
        "mldeploy.io/autoscale-refresh-seconds": str(s.refresh_seconds),
    }
    template_labels = {**labels(spec.name), LABEL_GENERATION: str(spec.generation)}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, annotations=annotations),
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(spec.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    # In-flight requests finish on SIGTERM: give them the scoring timeout.
                    "terminationGracePeriodSeconds": s.scoring_timeout_ms // 1000 + 10,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                        "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_container(spec)],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    if s.replicas is not None:
        body["spec"]["replicas"] = s.replicas
    return body


def service(spec: ManifestSpec) -> dict[str, Any]:
    """The ``v1`` Service: port 80 to the container's ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec),
        "spec": {
            "type": spec.service_type,
            "selector": selector(spec.name),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(spec: ManifestSpec) -> dict[str, Any]:
    """The ``autoscaling/v2`` HorizontalPodAutoscaler on CPU utilization of the request."""
    s = spec.settings
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": s.min_replicas,
            "maxReplicas": s.max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": s.target_utilization}},
            }],
        },
    }


def disruption_budget(spec: ManifestSpec) -> dict[str, Any]:
    """The ``policy/v1`` PodDisruptionBudget: at most one replica evicted at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(spec.name)}},
    }


def keys_secret(spec: ManifestSpec, primary_key: str, secondary_key: str) -> dict[str, Any]:
    """The ``v1`` Secret ``<name>-keys`` holding the service keys (v1 ``get_keys()``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, name=secret_name(spec.name)),
        "type": "Opaque",
        "stringData": {"primaryKey": primary_key, "secondaryKey": secondary_key},
    }


def secret_name(name: str) -> str:
    """The keys Secret of service ``name``."""
    return f"{name}-keys"


def service_keys(spec: ManifestSpec) -> tuple[str, str]:
    """The keys of the Secret: ``spec.keys``, else the configuration's, each generated when not given (as v1)."""
    if spec.keys is not None:
        return spec.keys
    s = spec.settings
    return s.primary_key or secrets.token_urlsafe(24), s.secondary_key or secrets.token_urlsafe(24)


def render_manifests(spec: ManifestSpec) -> list[dict[str, Any]]:
    """Render every object of the service, in apply order (the Secret first, the PDB last).

    Raises:
        InvalidArgument: For a name or namespace that is not a DNS-1123 label, or an unknown service type.
    """
    check_dns1123_label(spec.name, "service name")
    if len(secret_name(spec.name)) > 63:
        raise InvalidArgument(f"Invalid service name {spec.name!r}: use at most 58 characters (the keys Secret "
                              f"{secret_name(spec.name)!r} must fit 63).")
    if spec.namespace is not None:
        check_dns1123_label(spec.namespace, "namespace")
    if spec.service_type not in SERVICE_TYPES:
        raise InvalidArgument(f"Invalid service type {spec.service_type!r}: use one of {', '.join(SERVICE_TYPES)}.")
    objects: list[dict[str, Any]] = []
    s = spec.settings
    if s.auth_enabled:
        objects.append(keys_secret(spec, *service_keys(spec)))
    objects += [deployment(spec), service(spec)]
    if s.autoscale:
        objects.append(autoscaler(spec))
    objects.append(disruption_budget(spec))
    return objects


def file_name(obj: dict[str, Any]) -> str:
    """The YAML file of an object (``deployment.yaml``, ``horizontalpodautoscaler.yaml`` ...)."""
    return f"{obj['kind'].lower()}.yaml"


def write_manifests(objects: Sequence[dict[str, Any]], directory: Path, namespace: str | None = None) -> list[Path]:
    """Write one YAML file per object and a ``kustomization.yaml`` listing them (``kubectl apply -k DIR``).

    Args:
        objects: From :func:`render_manifests`.
        directory: A new or empty folder (created).
        namespace: Written into the kustomization too, when given.

    Returns:
        The written files, the kustomization last.

    Raises:
        InvalidArgument: When the folder exists and is not empty.
    """
    directory = Path(directory).expanduser()
    if directory.exists() and any(directory.iterdir()):
        raise InvalidArgument(f"Output directory {directory} is not empty: give a new or empty folder.")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for obj in objects:
        path = directory / file_name(obj)
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        written.append(path)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [p.name for p in written],
    }
    if namespace:
        kustomization["namespace"] = namespace
    path = directory / "kustomization.yaml"
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    return [*written, path]


def read_manifests(directory: Path) -> list[dict[str, Any]]:
    """Read back the objects a :func:`write_manifests` folder lists, in its order."""
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    return [yaml.safe_load((directory / name).read_text(encoding="utf-8")) for name in kustomization["resources"]]
