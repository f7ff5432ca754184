"""Pod and Deployment JSON (shaped as the API server returns it) -> v1 states, rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_mldeploy.kubernetes.status import rollout_status


def _deployment(replicas: int = 2, ready: int = 2, updated: int = 2, total: int = 2, generation: int = 1,
                observed: int = 1, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": ready, "conditions": conditions or []}}


def _pod(name: str = "p-0", phase: str = "Running", ready: bool = True, state: dict[str, Any] | None = None,
         restarts: int = 0, last: dict[str, Any] | None = None, conditions: list[dict[str, Any]] | None = None,
         started: bool | None = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase, "startTime": "2026-11-27T18:00:00Z", "conditions": conditions or [],
        "containerStatuses": [{"name": "scoring", "image": "img:1", "ready": ready, "restartCount": restarts,
                               "started": started, "state": state or {"running": {}}, "lastState": last or {}}],
    }
    return {"metadata": {"name": name}, "status": status}


CASES = [
    ("healthy", _deployment(), [_pod(), _pod("p-1")], "Healthy", None),
    ("starting", _deployment(ready=0), [_pod(ready=False), _pod("p-1", ready=False)], "Transitioning", None),
    ("old pods still draining", _deployment(total=3), [_pod(), _pod("p-1")], "Transitioning", None),
    ("not observed yet", _deployment(generation=2, observed=1), [_pod()], "Transitioning", None),
    ("image pull", _deployment(ready=0), [_pod(phase="Pending", ready=False, state={
        "waiting": {"reason": "ErrImagePull", "message": "not found"}})], "Failed", "cannot pull image 'img:1'"),
    ("bad config", _deployment(ready=0), [_pod(phase="Pending", ready=False, state={
        "waiting": {"reason": "CreateContainerConfigError", "message": "secret missing"}})], "Failed",
     "CreateContainerConfigError"),
    ("init failed", _deployment(ready=0), [_pod(ready=False, restarts=1, started=False, state={
        "waiting": {"reason": "CrashLoopBackOff"}}, last={"terminated": {"exitCode": 3}})], "Failed", "init() failed"),
    ("exited", _deployment(ready=0), [_pod(ready=False, started=False, state={
        "terminated": {"exitCode": 137, "reason": "OOMKilled"}})], "Failed", "exited with code 137; OOMKilled"),
    ("unschedulable", _deployment(ready=0), [_pod(phase="Pending", ready=False, conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/2 nodes are available: 2 Insufficient memory."}])], "Unschedulable", "2 Insufficient memory."),
    ("deadline", _deployment(ready=0), [_pod(ready=False)], "Failed", None),
    ("liveness kills it", _deployment(ready=0), [_pod(ready=False, restarts=2, last={
        "terminated": {"exitCode": 137, "reason": "Error"}})], "Unhealthy", "liveness probe"),
    ("out of memory", _deployment(ready=0), [_pod(ready=False, restarts=1, last={
        "terminated": {"exitCode": 137, "reason": "OOMKilled"}})], "Failed", "OOMKilled"),
]
CASES[9] = ("deadline", _deployment(ready=0, conditions=[{"type": "Progressing", "status": "False",
                                                          "reason": "ProgressDeadlineExceeded",
                                                          "message": "ReplicaSet has timed out"}]),
            [_pod(ready=False)], "Failed", "made no progress in time: ReplicaSet has timed out")


@pytest.mark.parametrize(("deployment", "pods", "state", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rollout_state(deployment: dict, pods: list, state: str, fragment: str | None) -> None:
    status = rollout_status(deployment, pods)
    assert status.state == state
    if fragment is None:
        assert status.error is None
    else:
        assert fragment in (status.error or "")
    assert status.desired == deployment["spec"]["replicas"]


def test_an_hpa_managed_deployment_without_replicas_counts_one() -> None:
    deployment = _deployment()
    del deployment["spec"]["replicas"]
    assert rollout_status(deployment, [_pod()]).desired == 1
    assert rollout_status(deployment, [_pod()]).started_time is not None
