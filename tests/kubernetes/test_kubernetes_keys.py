"""Service keys on the Kubernetes target: the Secret, its mount in the pod, enforcement and rotation.

Three parts, each labelled for what is real:

- the API path (create the Secret, apply it again on ``regen_key``, delete it) runs against the MOCK API
  server of ``kube_api_mock.py`` (THIS IS NOT A CLUSTER; no API server can run here);
- the pod is the real image the target built, run with ``docker run`` as the Deployment the mock received
  says (env, user, read-only root, limits, mounts), with the Secret the mock holds published into the keys
  volume the way kubelet does it (``kubelet_volume.py``: a timestamped folder behind a swapped ``..data``
  link): a real scoring server answering real 401s and 200s;
- the workspace and the logs are searched for every key that ever existed.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Diabetes
from kube_api_mock import KubeApiMock
from kubelet_volume import publish

from jupyter_mldeploy.deploy.ports import free_port
from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesCompute
from jupyter_mldeploy.kubernetes.manifests import read_manifests, secret_keys

pytest.importorskip("kubernetes")

KEYS_FILE = Path("keys") / "keys.json"


def _secret(kube_api: KubeApiMock, name: str) -> dict[str, Any]:
    return kube_api.objects[("secrets", "ml", f"{name}-keys")]


def _secret_applies(kube_api: KubeApiMock, name: str) -> list[dict[str, Any]]:
    return [r.body for r in kube_api.requests if r.method == "PATCH" and r.path.endswith(f"/secrets/{name}-keys")]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the API path, against the MOCK API server ------------------------------------------------------------

def test_the_secret_is_created_applied_on_regen_and_deleted(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-keys", compute, num_replicas=1)  # key auth on by default, as v1 AKS
    folder = diabetes.workspace.deployments_dir / "diab-keys"
    try:
        primary, secondary = service.get_keys()
        assert len(primary) == len(secondary) == 43 and primary != secondary  # 32 random bytes, URL-safe
        assert secret_keys(_secret(kube_api, "diab-keys")) == (primary, secondary)
        deployment = kube_api.objects[("deployments", "ml", "diab-keys")]
        pod = deployment["spec"]["template"]["spec"]
        assert {"name": "keys", "secret": {"secretName": "diab-keys-keys", "defaultMode": 0o440,
                                           "items": [{"key": "keys.json", "path": "keys.json"}]}} in pod["volumes"]
        assert {"name": "MLDEPLOY_KEYS_FILE", "value": "/var/mldeploy/keys/keys.json"} in pod["containers"][0]["env"]
        assert service.serialize()["authEnabled"] is True
        assert service.auth_headers() == bearer(primary)  # every face sends the primary key

        service.regen_key("Secondary")
        _, new_secondary = service.get_keys()
        assert new_secondary != secondary and service.get_keys()[0] == primary
        assert secret_keys(_secret(kube_api, "diab-keys")) == (primary, new_secondary)
        service.regen_key("Primary", set_key="chosen-primary-key-0123456789")
        assert service.get_keys() == ("chosen-primary-key-0123456789", new_secondary)
        assert secret_keys(_secret(kube_api, "diab-keys")) == service.get_keys()
        assert len(_secret_applies(kube_api, "diab-keys")) == 3  # create + two regenerations; no pod restarted
        assert kube_api.objects[("deployments", "ml", "diab-keys")]["metadata"]["generation"] == 1

        keys_file = folder / KEYS_FILE
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(keys_file.parent.stat().st_mode) == 0o700

        # an update keeps the keys; the Secret goes out again with them, before the new Deployment
        service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=2))
        assert service.get_keys() == ("chosen-primary-key-0123456789", new_secondary)
        kinds = [r.body["kind"] for r in kube_api.requests if r.method == "PATCH"]
        assert kinds[-4:] == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
        assert secret_keys(_secret(kube_api, "diab-keys")) == service.get_keys()

        # export: the manifests the service runs, with its current keys in an owner-only secret.yaml
        exported = service.export_manifests(diabetes.workspace.path.parent / "exported-keys")
        objects = {o["kind"]: o for o in read_manifests(exported)}
        assert secret_keys(objects["Secret"]) == service.get_keys()
        assert stat.S_IMODE((exported / "secret.yaml").stat().st_mode) == 0o600
        assert objects["Deployment"]["spec"]["template"]["spec"]["volumes"] == pod["volumes"]
    finally:
        service.delete()
    assert ("secrets", "ml", "diab-keys-keys") not in kube_api.objects and not folder.exists()


def test_regen_key_refused_by_the_cluster_changes_nothing_and_names_no_key(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-refuse", compute, num_replicas=1,
                      primary_key="given-primary-0123456789", secondary_key="given-secondary-0123456789")
    try:
        assert service.get_keys() == ("given-primary-0123456789", "given-secondary-0123456789")
        kube_api.refuse.add("secrets")
        with pytest.raises(DeploymentError) as caught:
            service.regen_key("Primary", set_key="never-applied-key-0123456789")
        message = caught.value.message
        assert "Secret ml/diab-refuse-keys" in message and "the keys were not changed" in message
        for key in ("given-primary-0123456789", "given-secondary-0123456789", "never-applied-key-0123456789"):
            assert key not in message
        assert service.get_keys() == ("given-primary-0123456789", "given-secondary-0123456789")
        assert secret_keys(_secret(kube_api, "diab-refuse")) == service.get_keys()
        kube_api.refuse.clear()
        with pytest.raises(InvalidArgument, match="use 'Primary' or 'Secondary'"):
            service.regen_key("Tertiary")
        with pytest.raises(InvalidArgument, match="Invalid set_key") as bad:
            service.regen_key("Primary", set_key="tiny-key")
        assert "tiny-key" not in bad.value.message
    finally:
        service.delete()


def test_an_update_refused_half_way_puts_the_previous_keys_back(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-half-keys", compute, num_replicas=1)
    try:
        service.wait_for_deployment(timeout_sec=60)
        before = service.get_keys()
        kube_api.refuse.add("poddisruptionbudgets")  # the Secret and Deployment go through, the PDB is refused
        with pytest.raises(DeploymentError, match="refused PodDisruptionBudget"):
            service.update(deployment_config=AksWebservice.deploy_configuration(
                num_replicas=2, primary_key="update-primary-0123456789", secondary_key="update-secondary-0123456789"))
        kube_api.refuse.clear()
        assert service.get_keys() == before
        assert secret_keys(_secret(kube_api, "diab-half-keys")) == before  # re-applied, not deleted
        applied = [secret_keys(body) for body in _secret_applies(kube_api, "diab-half-keys")]
        assert applied == [before, ("update-primary-0123456789", "update-secondary-0123456789"), before]
    finally:
        service.delete()


def test_turning_auth_off_removes_the_secret_once_the_new_version_serves(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-off", compute, num_replicas=1)
    folder = diabetes.workspace.deployments_dir / "diab-off"
    try:
        service.wait_for_deployment(timeout_sec=60)
        service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=1, auth_enabled=False))
        assert ("secrets", "ml", "diab-off-keys") not in kube_api.objects and not (folder / "keys").exists()
        pod = kube_api.objects[("deployments", "ml", "diab-off")]["spec"]["template"]["spec"]
        assert "MLDEPLOY_KEYS_FILE" not in {e["name"] for e in pod["containers"][0]["env"]}
        assert service.serialize()["authEnabled"] is False and service.auth_headers() is None
        with pytest.raises(DeploymentError, match="key auth is off"):
            service.get_keys()
        with pytest.raises(DeploymentError, match="key auth is off"):
            service.regen_key("Primary")
        # and on again: new keys, a new Secret
        service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=1))
        assert secret_keys(_secret(kube_api, "diab-off")) == service.get_keys()
    finally:
        service.delete()


# -- the pod: the real image and server, under the Deployment's spec, keys published as kubelet does ---------

def _cpu(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _mebibytes(value: str) -> int:
    assert value.endswith("Mi"), value
    return int(value[:-2])


def _publish_secret(volume: Path, secret: dict[str, Any], pod: dict[str, Any]) -> None:
    """kubelet's part: the Secret's items into the volume, with the volume's mode and the pod's fsGroup."""
    source = next(v["secret"] for v in pod["volumes"] if v["name"] == "keys")
    items = {item["path"]: base64.b64decode(secret["data"][item["key"]]) for item in source["items"]}
    group = pod["securityContext"]["fsGroup"] if os.geteuid() == 0 else None
    # without root the files cannot be given the pod's group: then other users must read them
    mode = source["defaultMode"] if group is not None else 0o444
    publish(volume, items, mode=mode, group=group)


def _run_pod(engine: Any, deployment: dict[str, Any], volume: Path) -> tuple[Any, str]:
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    limits = container["resources"]["limits"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmpfs, binds = {}, {}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]]
        if "emptyDir" in source:
            tmpfs[mount["mountPath"]] = ""
        else:
            assert "secret" in source and mount["readOnly"] and "subPath" not in mount
            binds[str(volume)] = {"bind": mount["mountPath"], "mode": "ro"}
    port = free_port("127.0.0.1")
    run = engine.containers.run(
        container["image"], detach=True,
        environment={e["name"]: e["value"] for e in container["env"]},
        user=f"{security['runAsUser']}:{security['runAsGroup']}",
        read_only=security["readOnlyRootFilesystem"], tmpfs=tmpfs, volumes=binds,
        cap_drop=security["capabilities"]["drop"],
        security_opt=["no-new-privileges"] if not security["allowPrivilegeEscalation"] else [],
        nano_cpus=int(_cpu(limits["cpu"]) * 1e9), mem_limit=f"{_mebibytes(limits['memory'])}m",
        ports={f"{container['ports'][0]['containerPort']}/tcp": ("127.0.0.1", port)},
        labels={"mldeploy.kind": "k8s-keys"},
    )
    return run, f"http://127.0.0.1:{port}"


def _wait_ready(run: Any, url: str, probe: dict[str, Any]) -> None:
    deadline = time.monotonic() + 120
    while True:  # kubelet's readiness probe: no Authorization header
        try:
            if requests.get(url + probe["httpGet"]["path"], timeout=probe["timeoutSeconds"]).status_code == 200:
                return
        except requests.RequestException:
            pass
        run.reload()
        assert run.status == "running", run.logs().decode(errors="replace")
        assert time.monotonic() < deadline, run.logs().decode(errors="replace")
        time.sleep(0.5)


def test_the_pod_enforces_the_keys_and_follows_a_regenerated_key_with_no_failed_request(
    engine: Any, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute, tmp_path: Path,
) -> None:
    service = diabetes.deploy("diab-pod", compute, num_replicas=1, cpu_cores=0.5, cpu_cores_limit=1,
                      memory_gb=0.5, memory_gb_limit=1, scoring_timeout_ms=10000)
    volume = tmp_path / "keys-volume"
    deployment = kube_api.objects[("deployments", "ml", "diab-pod")]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    seen_keys: set[str] = set(service.get_keys())
    _publish_secret(volume, _secret(kube_api, "diab-pod"), pod)
    run, url = _run_pod(engine, deployment, volume)
    try:
        _wait_ready(run, url, container["readinessProbe"])
        primary, secondary = service.get_keys()
        for probe in ("readinessProbe", "livenessProbe"):
            assert requests.get(url + container[probe]["httpGet"]["path"], timeout=5).status_code == 200
        score = url + "/score"
        body = {"data": diabetes.samples}
        refused = requests.post(score, json=body, timeout=30)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert requests.post(score, json=body, headers=bearer("not-a-key-0123456789abc"), timeout=30).status_code == 401
        for key in (primary, secondary):
            answer = requests.post(score, json=body, headers=bearer(key), timeout=30)
            assert answer.status_code == 200, answer.text
            assert [round(v, 6) for v in answer.json()] == [round(v, 6) for v in diabetes.expected]
        assert requests.post(url + "/invocations", json={"inputs": diabetes.samples}, timeout=30).status_code == 401

        # rotation: regen_key applies the Secret (mock API server), kubelet publishes it (emulated), the server
        # follows with no restart; a caller on the secondary key runs throughout
        outcomes: list[int] = []
        stop = threading.Event()

        def caller() -> None:
            while not stop.is_set():
                outcomes.append(requests.post(score, json=body, headers=bearer(secondary), timeout=30).status_code)

        thread = threading.Thread(target=caller)
        thread.start()
        try:
            old = primary
            for _ in range(5):
                service.regen_key("Primary")
                new = service.get_keys()[0]
                seen_keys.add(new)
                # until kubelet publishes the Secret, the pod takes the replaced key
                assert requests.post(score, json=body, headers=bearer(old), timeout=30).status_code == 200
                _publish_secret(volume, _secret(kube_api, "diab-pod"), pod)
                assert requests.post(score, json=body, headers=bearer(new), timeout=30).status_code == 200
                assert requests.post(score, json=body, headers=bearer(old), timeout=30).status_code == 401
                old = new
        finally:
            stop.set()
            thread.join(60)
        assert len(outcomes) >= 5 and set(outcomes) == {200}, outcomes
        run.reload()
        assert run.attrs["RestartCount"] == 0 and run.status == "running"

        # no key in the container's environment, labels or log
        visible = json.dumps([run.attrs["Config"]["Env"], run.attrs["Config"]["Labels"]]) + run.logs().decode(
            errors="replace")
        for key in seen_keys:
            assert key not in visible
        assert "Key auth is on but" not in visible
        # the key file is read-only in the pod
        denied = run.exec_run(["python", "-c", "open('/var/mldeploy/keys/keys.json', 'a')"], user="1000:1000")
        assert denied.exit_code != 0
    finally:
        run.remove(force=True)

    # no key anywhere in the workspace but the owner-only keys file, nor in the logs, listings, records
    workspace = diabetes.workspace
    keys_file = workspace.deployments_dir / "diab-pod" / KEYS_FILE
    shown = json.dumps([service.serialize(), [s.serialize() for s in Webservice.list(workspace)],
                        service.deployment_config.serialize(), repr(service)]) + service.get_logs()
    sent = json.dumps([r.body for r in kube_api.requests if r.body and r.body.get("kind") != "Secret"])
    try:
        for key in seen_keys:
            assert key not in shown and key not in sent
            holders = [p for p in workspace.path.rglob("*") if p.is_file() and p != keys_file
                       and key.encode() in p.read_bytes()]
            assert holders == []
    finally:
        service.delete()
