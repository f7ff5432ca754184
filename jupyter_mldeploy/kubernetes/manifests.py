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
- ``Secret`` ``<name>-keys`` when key auth is on (the default, as v1 AKS): one item ``keys.json`` holding the
  keys file the scoring server reads (``{"primaryKey", "secondaryKey"}``). The Deployment mounts it read-only
  at ``/var/mldeploy/keys`` (a whole-volume mount, never ``subPath``, so kubelet keeps it current) and names
  ``/var/mldeploy/keys/keys.json`` in ``MLDEPLOY_KEYS_FILE``: the server then requires
  ``Authorization: Bearer <key>`` on every route that runs the model, and re-reads the file when kubelet
  publishes a changed Secret, with no restart. The probes' ``GET /`` stays open.

Every object carries the ``app.kubernetes.io/*`` labels; the selector is ``name`` + ``instance``. The
template also carries ``mldeploy.io/generation``, bumped by every update so each one rolls out.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.deploy.service_keys import KEYS_FILENAME, generate_key, keys_document
from jupyter_mldeploy.docker.dockerfile import CONTAINER_PORT
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.kubernetes.compute import SERVICE_TYPES
from jupyter_mldeploy.kubernetes.config import KubernetesSettings, check_dns1123_label
from jupyter_mldeploy.server.keys import KEYS_FILE_VARIABLE

#: The container's name in the pod.
CONTAINER_NAME = "scoring"
#: The Service's port (the container serves on :data:`~jupyter_mldeploy.docker.dockerfile.CONTAINER_PORT`).
SERVICE_PORT = 80
#: The non-root user and group the container runs as (the image's files are world-readable).
RUN_AS_USER = 1000
#: The writable temp volume (the root filesystem is read-only).
TMP_DIR = "/tmp"
#: Where the pod mounts the keys Secret (read-only); the server reads ``KEYS_MOUNT/keys.json``.
KEYS_MOUNT = "/var/mldeploy/keys"
#: The keys volume's file mode: owner and group (the pod's ``fsGroup``) read, nobody else.
KEYS_FILE_MODE = 0o440
#: The path the readiness and liveness probes ask: one of the scoring server's open routes (``OPEN_PATHS``: no key).
PROBE_PATH = "/"
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
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_DIR}]
    if s.auth_enabled:
        # The path, never the keys: they stay in the Secret's volume.
        env[KEYS_FILE_VARIABLE] = f"{KEYS_MOUNT}/{KEYS_FILENAME}"
        mounts.append({"name": "keys", "mountPath": KEYS_MOUNT, "readOnly": True})
    requests = {"cpu": cpu_quantity(s.cpu), "memory": memory_quantity(s.memory_gb)}
    limits = {"cpu": cpu_quantity(s.cpu_limit), "memory": memory_quantity(s.memory_gb_limit)}
    if s.gpu:
        limits["nvidia.com/gpu"] = str(s.gpu)
    http_get = {"path": PROBE_PATH, "port": "http", "scheme": "HTTP"}
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
        "volumeMounts": mounts,
    }


def _volumes(spec: ManifestSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if spec.settings.auth_enabled:
        volumes.append({"name": "keys", "secret": {
            "secretName": secret_name(spec.name), "defaultMode": KEYS_FILE_MODE,
            "items": [{"key": KEYS_FILENAME, "path": KEYS_FILENAME}],
        }})
    return volumes


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
                    "volumes": _volumes(spec),
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


def keys_secret(name: str, namespace: str | None, primary_key: str, secondary_key: str) -> dict[str, Any]:
    """The ``v1`` Secret ``<name>-keys``: one item, ``keys.json``, the keys file the scoring server reads.

    The item is base64 ``data`` (what the API server stores), so a server-side apply of new keys replaces it
    as it is.

    Args:
        name: The service name.
        namespace: The namespace, or None.
        primary_key: The primary key.
        secondary_key: The secondary key.
    """
    metadata: dict[str, Any] = {"name": secret_name(name), "labels": labels(name)}
    if namespace:
        metadata["namespace"] = namespace
    document = keys_document(primary_key, secondary_key).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {KEYS_FILENAME: base64.b64encode(document).decode("ascii")},
    }


def secret_keys(secret: dict[str, Any]) -> tuple[str, str]:
    """The ``(primary, secondary)`` keys a :func:`keys_secret` object holds.

    Raises:
        InvalidArgument: When the object holds no readable ``keys.json`` item.
    """
    try:
        data = json.loads(base64.b64decode(secret["data"][KEYS_FILENAME]))
        return str(data["primaryKey"]), str(data["secondaryKey"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"Secret {secret.get('metadata', {}).get('name')!r} holds no {KEYS_FILENAME} item with "
                              "primaryKey and secondaryKey.") from None


def secret_name(name: str) -> str:
    """The keys Secret of service ``name``."""
    return f"{name}-keys"


def service_keys(spec: ManifestSpec) -> tuple[str, str]:
    """The keys of the Secret: ``spec.keys``, else the configuration's, each generated when not given (as v1)."""
    if spec.keys is not None:
        return spec.keys
    s = spec.settings
    return s.primary_key or generate_key(), s.secondary_key or generate_key()


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
        objects.append(keys_secret(spec.name, spec.namespace, *service_keys(spec)))
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
        # A Secret's file is owner-only: it holds the service keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if obj["kind"] == "Secret" else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(yaml.safe_dump(obj, sort_keys=False))
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


def remove_secret(directory: Path) -> bool:
    """Take a keys Secret out of a :func:`write_manifests` folder (written there, in clear, before pods enforced keys).

    The kustomization is replaced atomically first, then the Secret's file removed, so a crash between the two
    leaves a folder ``kubectl apply -k`` and :func:`read_manifests` still take, and a second call finishes.

    Args:
        directory: A ``manifests-<generation>/`` folder.

    Returns:
        True when the folder listed or held a Secret.
    """
    directory = Path(directory)
    secret_file = directory / file_name({"kind": "Secret"})
    path = directory / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8"))
    listed = secret_file.name in kustomization["resources"]
    if listed:
        kustomization["resources"] = [name for name in kustomization["resources"] if name != secret_file.name]
        tmp = directory / f".kustomization.yaml.{os.getpid()}.tmp"
        tmp.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
        os.replace(tmp, path)
    held = secret_file.exists()
    secret_file.unlink(missing_ok=True)
    return listed or held
