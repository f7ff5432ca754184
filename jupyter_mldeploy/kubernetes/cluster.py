"""The few Kubernetes API calls the target makes, through the official client, on plain dicts.

Objects go out as the rendered manifests (dicts) and come back as parsed JSON (``_preload_content=False``),
so the target reads the same shapes it renders and never depends on the client's model classes. Every call
has the bounded timeouts of :data:`~jupyter_mldeploy.kubernetes.compute.REQUEST_TIMEOUT`.

Writes are server-side apply (``PATCH`` with ``application/apply-patch+yaml``, field manager
``jupyter-mldeploy``, ``force``), as ``kubectl apply --server-side``: creating and updating are one call,
and fields another manager owns (an HPA's replica count) are left alone.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.errors import DeploymentError
from jupyter_mldeploy.kubernetes.compute import REQUEST_TIMEOUT, load_client_package

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

FIELD_MANAGER = "jupyter-mldeploy"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

#: Kind -> (API class, method suffix) of the typed client.
KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("AppsV1Api", "namespaced_deployment"),
    "Service": ("CoreV1Api", "namespaced_service"),
    "Secret": ("CoreV1Api", "namespaced_secret"),
    "HorizontalPodAutoscaler": ("AutoscalingV2Api", "namespaced_horizontal_pod_autoscaler"),
    "PodDisruptionBudget": ("PolicyV1Api", "namespaced_pod_disruption_budget"),
}


class Cluster:
    """One namespace of one cluster, reached through an API client.

    Args:
        client: From :func:`~jupyter_mldeploy.kubernetes.compute.connect`.
        namespace: The namespace every call works in.
    """

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self._k8s = load_client_package().client
        self.client = client
        self.namespace = namespace

    def _api(self, kind: str) -> tuple[Any, str]:
        api_class, suffix = KINDS[kind]
        return getattr(self._k8s, api_class)(self.client), suffix

    @staticmethod
    def _json(response: Any) -> Any:
        data = response.data
        return json.loads(data) if data else {}

    def is_not_found(self, exc: BaseException) -> bool:
        """True for the client's 404 ``ApiException``."""
        return isinstance(exc, self._k8s.ApiException) and exc.status == 404

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply one object; return it as the server now has it.

        Raises:
            DeploymentError: When the server refuses it (names the object and the server's message).
        """
        api, suffix = self._api(obj["kind"])
        name = obj["metadata"]["name"]
        try:
            response = getattr(api, f"patch_{suffix}")(
                name, self.namespace, obj, field_manager=FIELD_MANAGER, force=True,
                _content_type=APPLY_CONTENT_TYPE, _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
            )
        except self._k8s.ApiException as exc:
            raise DeploymentError(
                f"The cluster refused {obj['kind']} {self.namespace}/{name} ({exc.status} {exc.reason}): "
                f"{_server_message(exc)}"
            ) from None
        except Exception as exc:  # urllib3 connection and timeout errors
            raise DeploymentError(f"The cluster did not answer while applying {obj['kind']} {self.namespace}/{name}: "
                                  f"{type(exc).__name__}: {exc}") from None
        result: dict[str, Any] = self._json(response)
        return result

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        api, suffix = self._api(kind)
        try:
            response = getattr(api, f"read_{suffix}")(
                name, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except self._k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self._json(response)
        return result

    def delete(self, kind: str, name: str) -> bool:
        """Delete an object (its pods and ReplicaSets go with it, in the background); False when absent.

        Raises:
            DeploymentError: When the cluster refuses or does not answer.
        """
        api, suffix = self._api(kind)
        try:
            getattr(api, f"delete_{suffix}")(
                name, self.namespace, propagation_policy="Background", _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except self._k8s.ApiException as exc:
            if exc.status == 404:
                return False
            raise DeploymentError(f"The cluster refused to delete {kind} {self.namespace}/{name} ({exc.status} "
                                  f"{exc.reason}): {_server_message(exc)}") from None
        except Exception as exc:  # urllib3 connection and timeout errors
            raise DeploymentError(f"The cluster did not answer while deleting {kind} {self.namespace}/{name}: "
                                  f"{type(exc).__name__}: {exc}") from None
        return True

    def pods(self, label_selector: str) -> list[dict[str, Any]]:
        """The pods matching a label selector (``a=b,c=d``), oldest first."""
        response = self._k8s.CoreV1Api(self.client).list_namespaced_pod(
            self.namespace, label_selector=label_selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
        items: list[dict[str, Any]] = self._json(response).get("items") or []
        return sorted(items, key=lambda p: (p.get("metadata", {}).get("creationTimestamp") or "",
                                            p.get("metadata", {}).get("name") or ""))

    def pod_log(self, pod: str, tail_lines: int | None = None) -> str:
        """The scoring container's log of a pod ("" when it has none yet)."""
        kwargs: dict[str, Any] = {"container": "scoring"}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        try:
            response = self._k8s.CoreV1Api(self.client).read_namespaced_pod_log(
                pod, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except self._k8s.ApiException as exc:
            if exc.status in (400, 404):  # 400: the container has not started yet
                return ""
            raise
        return bytes(response.data or b"").decode("utf-8", errors="replace")

    def events(self, object_name: str) -> list[dict[str, Any]]:
        """Events about the object called ``object_name`` (a pod), oldest first."""
        response = self._k8s.CoreV1Api(self.client).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={object_name}", _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        items: list[dict[str, Any]] = self._json(response).get("items") or []
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def _server_message(exc: Any) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, else the raw body."""
    try:
        return str(json.loads(exc.body).get("message") or exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body)
