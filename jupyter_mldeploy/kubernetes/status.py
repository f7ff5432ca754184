"""A Deployment and its pods, as v1's service states (plain JSON in, state out; no client needed).

The mapping (v1's AKS state table), first match wins, over the pods of the current rollout generation:

1. a container waits with ``ErrImagePull``/``ImagePullBackOff``/``InvalidImageName`` or cannot be created
   (``CreateContainerConfigError`` ...): ``Failed``;
2. a container exited non-zero before it was ever Ready (exit 3: ``init()`` failed; ``OOMKilled``), or waits
   in ``CrashLoopBackOff``: ``Failed``;
3. a pod is not scheduled (``PodScheduled=False``, reason ``Unschedulable``: insufficient CPU, memory or
   GPU): ``Unschedulable``;
4. the Deployment's ``Progressing`` condition says ``ProgressDeadlineExceeded``: ``Failed``;
5. the rollout is complete (observed; updated and available = desired; no old pods) and a replica is Ready:
   ``Healthy``;
6. a container restarted by the kubelet (exit 137/143: the liveness probe) runs again, not Ready:
   ``Unhealthy``;
7. anything else (pulling, starting, ``init()`` running, old pods draining): ``Transitioning``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jupyter_mldeploy.deploy.state import ServiceState

IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
#: The scoring server's exit code when the first workers' ``init()`` failed (server/supervisor.py).
EXIT_INIT_FAILED = 3
#: Exit codes of a container the kubelet stopped (SIGKILL, SIGTERM).
KILLED_CODES = (137, 143)


@dataclass(frozen=True)
class RolloutStatus:
    """The state of a service's Deployment.

    Attributes:
        state: The v1 state.
        error: Why it is ``Failed``/``Unhealthy``/``Unschedulable``, or None.
        ready: Ready replicas of the current generation.
        desired: Desired replicas.
        started_time: When the oldest running pod of the generation started, or None.
    """

    state: ServiceState
    error: str | None
    ready: int
    desired: int
    started_time: datetime | None


def _pod_name(pod: dict[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def _pod_failure(pod: dict[str, Any]) -> tuple[str, str] | None:
    """``(state, error)`` when the pod shows a failure, else None."""
    name = _pod_name(pod)
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        message = waiting.get("message") or ""
        if reason in IMAGE_ERRORS:
            return ServiceState.FAILED, (
                f"Pod {name} cannot pull image {cs.get('image')!r} ({reason}): {message} Push the image to a "
                "registry the cluster reaches (KubernetesCompute(image_registry=...)) or load it into the nodes."
            ).strip()
        if reason in CONFIG_ERRORS:
            return ServiceState.FAILED, f"Pod {name} cannot start its container ({reason}): {message}".strip()
        terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        never_ready = not cs.get("ready") and not (cs.get("started") and (cs.get("restartCount") or 0) == 0)
        # SIGKILL/SIGTERM without OOM: the kubelet stopped it (a failed liveness probe): Unhealthy, below.
        killed = terminated and terminated.get("exitCode") in KILLED_CODES and terminated.get("reason") != "OOMKilled"
        if terminated and terminated.get("exitCode") not in (None, 0) and never_ready and not killed:
            code = terminated.get("exitCode")
            why = "init() failed" if code == EXIT_INIT_FAILED else f"it exited with code {code}"
            return ServiceState.FAILED, (
                f"The scoring server in pod {name} stopped before it was ready ({why}; "
                f"{terminated.get('reason') or 'Error'}); see get_logs() for the traceback."
            )
        if reason == "CrashLoopBackOff":
            return ServiceState.FAILED, f"Pod {name} keeps crashing (CrashLoopBackOff): {message}".strip()
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and (
            condition.get("reason") == "Unschedulable"
        ):
            return ServiceState.UNSCHEDULABLE, (
                f"Pod {name} cannot be scheduled: {condition.get('message') or 'no node fits'} Lower cpu_cores/"
                "memory_gb/gpu_cores or add nodes."
            )
    return None


def _restarted_not_ready(pod: dict[str, Any]) -> str | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if (cs.get("restartCount") or 0) > 0 and not cs.get("ready") and "running" in (cs.get("state") or {}):
            return f"Pod {_pod_name(pod)} was restarted {cs['restartCount']} time(s) and is not ready"
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def rollout_status(deployment: dict[str, Any], pods: Sequence[dict[str, Any]]) -> RolloutStatus:
    """Map a Deployment and the pods of its current generation to a v1 state (see the module table).

    Args:
        deployment: The Deployment as the API server returns it (JSON).
        pods: The pods of the current generation (JSON), any order.
    """
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    starts = [t for t in (_parse_time((p.get("status") or {}).get("startTime")) for p in running) if t]
    started = min(starts) if starts else None

    def result(state: str, error: str | None = None) -> RolloutStatus:
        return RolloutStatus(ServiceState(state), error, ready, desired, started)

    for pod in pods:
        failure = _pod_failure(pod)
        if failure is not None:
            return result(*failure)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return result(ServiceState.FAILED, f"The rollout made no progress in time: {condition.get('message')}")
    observed = int(status.get("observedGeneration") or 0) >= int(deployment.get("metadata", {}).get("generation") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    if observed and updated >= desired and available >= desired and total == updated and ready >= 1:
        return result(ServiceState.HEALTHY)
    for pod in pods:
        unhealthy = _restarted_not_ready(pod)
        if unhealthy is not None:
            return result(ServiceState.UNHEALTHY, f"{unhealthy}: the liveness probe failed; see get_logs().")
    return result(ServiceState.TRANSITIONING)
