"""``KubernetesCompute``: which cluster a Kubernetes service deploys to (v1's ``deployment_target``).

v1 passed an ``AksCompute`` to ``Model.deploy(..., deployment_target=aks_target)``. Here the cluster is any
kubeconfig context, as ``kubectl`` sees it::

    target = KubernetesCompute(context="kind-ml", namespace="models", image_registry="registry.local:5000")
    service = Model.deploy(ws, "diabetes", [model], inference_config, aks_config, deployment_target=target)

The official ``kubernetes`` client (the optional extra ``jupyter-mldeploy[kubernetes]``) is imported only
when a cluster is used: rendering and exporting manifests never need it. Every API call made through
:func:`connect` has bounded timeouts (:data:`CONNECT_TIMEOUT_SEC`, :data:`READ_TIMEOUT_SEC`), so an
unreachable cluster fails in seconds, never hangs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.kubernetes.config import check_dns1123_label

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

#: Seconds to open a connection to the API server, and to wait for an answer.
CONNECT_TIMEOUT_SEC = 5.0
READ_TIMEOUT_SEC = 20.0
REQUEST_TIMEOUT = (CONNECT_TIMEOUT_SEC, READ_TIMEOUT_SEC)
#: Retries of a failed connection or read (urllib3's default is 3).
RETRIES = 1
#: Service types the manifests can ask for.
SERVICE_TYPES = ("ClusterIP", "LoadBalancer", "NodePort")
#: What every "no cluster" error points to.
EXPORT_HINT = (
    "To deploy without a configured cluster, export the manifests instead: "
    "`mldeploy kubernetes manifests NAME -m MODEL:VERSION --ic inferenceconfig.json --dc deploymentconfig.json "
    "-o DIR` (or jupyter_mldeploy.kubernetes.export_manifests(...)), then `kubectl apply -k DIR`."
)
INSTALL_HINT = "pip install 'jupyter-mldeploy[kubernetes]'"


def load_client_package() -> Any:
    """Import and return the ``kubernetes`` package.

    Raises:
        DeploymentError: When it is not installed (names the extra to install and the export route).
    """
    try:
        import kubernetes
    except ImportError as exc:
        raise DeploymentError(
            f"The Kubernetes target needs the official 'kubernetes' client: {INSTALL_HINT}. {EXPORT_HINT}"
        ) from exc
    return kubernetes


@dataclass(frozen=True)
class KubernetesCompute:
    """A Kubernetes cluster to deploy to: a kubeconfig context (v1 ``deployment_target``).

    Attributes:
        context: The kubeconfig context; None: the current context.
        kubeconfig: The kubeconfig file; None: ``$KUBECONFIG`` or ``~/.kube/config``, as kubectl.
        namespace: Namespace when the deployment configuration names none; None: ``default``.
        image_registry: Registry to push the service's image to (``registry.example:5000/team``), tagged
            ``<registry>/mldeploy-package:<hash>``; None: the image is not pushed (a cluster that shares this
            machine's Docker images, such as kind with ``kind load``, or a pre-loaded node).
        service_type: ``ClusterIP`` (default; reach it with ``kubectl port-forward``), ``LoadBalancer``
            or ``NodePort``.
    """

    context: str | None = None
    kubeconfig: str | None = None
    namespace: str | None = None
    image_registry: str | None = None
    service_type: str = "ClusterIP"

    #: The deployment target's runtime (checked against the deployment configuration's).
    runtime: ClassVar[str] = "kubernetes"

    def __post_init__(self) -> None:
        if self.namespace is not None:
            check_dns1123_label(self.namespace, "namespace")
        if self.service_type not in SERVICE_TYPES:
            raise InvalidArgument(
                f"Invalid service_type {self.service_type!r}: use one of {', '.join(SERVICE_TYPES)}."
            )
        if self.image_registry is not None and (
            not self.image_registry or any(c.isspace() or c.isupper() for c in self.image_registry)
            or self.image_registry.endswith("/")
        ):
            raise InvalidArgument(
                f"Invalid image_registry {self.image_registry!r}: give a lower-case 'host[:port][/path]' without "
                "a trailing '/'."
            )

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (kept in the service record, so any process reaches the same cluster)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> KubernetesCompute:
        """Read :meth:`to_json`'s output; anything unreadable gives the defaults."""
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except (TypeError, InvalidArgument):
            return cls()

    def kubeconfig_path(self) -> str:
        """The kubeconfig file used: ``kubeconfig``, else the first of ``$KUBECONFIG``, else ``~/.kube/config``."""
        if self.kubeconfig:
            return str(Path(self.kubeconfig).expanduser())
        env = os.environ.get("KUBECONFIG", "")
        first = next((p for p in env.split(os.pathsep) if p), None)
        return str(Path(first).expanduser()) if first else str(Path("~/.kube/config").expanduser())


def context_namespace(compute: KubernetesCompute) -> str | None:
    """The namespace the kubeconfig context names (as kubectl uses it), or None."""
    kubernetes = load_client_package()
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=compute.kubeconfig_path())
    except (kubernetes.config.ConfigException, ValueError, OSError, TypeError):
        return None
    chosen = next((c for c in contexts if c.get("name") == compute.context), None) if compute.context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def connect(compute: KubernetesCompute) -> ApiClient:
    """Return an API client for ``compute``'s cluster, after checking the server answers.

    Raises:
        DeploymentError: Naming what is missing (the client package, the kubeconfig file, the context) or
            the server that does not answer within the timeouts, and pointing to the manifest export.
    """
    kubernetes = load_client_package()
    path = compute.kubeconfig_path()
    if not Path(path).is_file():
        raise DeploymentError(
            f"No Kubernetes cluster is configured: the kubeconfig file {path} does not exist. Give "
            "KubernetesCompute(kubeconfig=..., context=...) or set KUBECONFIG to a cluster's kubeconfig. "
            f"{EXPORT_HINT}"
        )
    try:
        configuration = kubernetes.client.Configuration()
        # One retry, not urllib3's three: a call is bounded by 2 x the timeouts, so no face waits long.
        configuration.retries = RETRIES
        client = kubernetes.config.new_client_from_config(
            config_file=path, context=compute.context, client_configuration=configuration
        )
    except (kubernetes.config.ConfigException, ValueError, OSError, TypeError) as exc:
        context = f"context {compute.context!r}" if compute.context else "the current context"
        raise DeploymentError(
            f"No usable Kubernetes cluster in {path} ({context}): {exc}. Name an existing context with "
            f"KubernetesCompute(context=...) (see `kubectl config get-contexts`). {EXPORT_HINT}"
        ) from None
    host = client.configuration.host
    try:
        kubernetes.client.VersionApi(client).get_code(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    except kubernetes.client.ApiException as exc:
        client.close()
        raise DeploymentError(
            f"The Kubernetes API server {host} (kubeconfig {path}) refused the request ({exc.status} {exc.reason}): "
            "check the credentials of the context. " + EXPORT_HINT
        ) from None
    except Exception as exc:  # urllib3 connection and timeout errors, TLS errors
        client.close()
        raise DeploymentError(
            f"The Kubernetes API server {host} (kubeconfig {path}) did not answer within "
            f"{CONNECT_TIMEOUT_SEC:g} s/{READ_TIMEOUT_SEC:g} s: {type(exc).__name__}: {exc}. Start the cluster or "
            f"fix the context. {EXPORT_HINT}"
        ) from None
    return client
