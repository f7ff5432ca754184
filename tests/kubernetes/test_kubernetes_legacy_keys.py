"""Kubernetes services recorded before the pods enforced keys: their keys move to the keys file on first use.

Until commit be6779e the target kept the keys in the record (``target_state.keys``), left ``authEnabled`` out
of a default configuration (key auth on, as v1 AKS), kept user-given keys in the configuration's ``keys`` and
wrote the keys Secret (``stringData`` primaryKey/secondaryKey) into ``manifests-<generation>/`` with the other
objects; its Deployment mounted no Secret. The tests rebuild that shape from a service deployed now (only the
key-related parts differ; ``git show be6779e^:jupyter_mldeploy/kubernetes/target.py`` is what wrote them),
then use the service through the façade. The cluster is the MOCK API server of ``kube_api_mock.py`` (THIS IS
NOT A CLUSTER).
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Diabetes
from kube_api_mock import KubeApiMock

from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.state import ServiceRecord
from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesCompute, KubernetesWebservice
from jupyter_mldeploy.kubernetes.manifests import read_manifests, remove_secret, secret_keys
from jupyter_mldeploy.kubernetes.target import KubernetesTarget, has_legacy_keys
from jupyter_mldeploy.registry import Model

pytest.importorskip("kubernetes")

LEGACY = ("legacy-primary-0123456789abcdef", "legacy-secondary-0123456789abcdef")


def _old_manifests(folder: Path, keys: tuple[str, str]) -> None:
    """Rewrite ``folder`` as the old ``write_manifests`` left it: the Secret first, in clear, mode 0644."""
    objects = read_manifests(folder)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "keys"]  # the old pods mounted no Secret
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "keys"]
    container["env"] = [e for e in container["env"] if e["name"] != "MLDEPLOY_KEYS_FILE"]
    secret = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": f"{deployment['metadata']['name']}-keys", "labels": deployment["metadata"]["labels"],
                     "namespace": deployment["metadata"]["namespace"]},
        "type": "Opaque",
        "stringData": {"primaryKey": keys[0], "secondaryKey": keys[1]},
    }
    old = [secret, *[o for o in objects if o["kind"] != "Secret"]]
    namespace = yaml.safe_load((folder / "kustomization.yaml").read_text())["namespace"]
    shutil.rmtree(folder)
    folder.mkdir()
    for obj in old:
        (folder / f"{obj['kind'].lower()}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
        (folder / f"{obj['kind'].lower()}.yaml").chmod(0o644)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": [f"{o['kind'].lower()}.yaml" for o in old], "namespace": namespace}
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))


def _old_record(data: dict[str, Any], keys: tuple[str, str] | None, given: bool = False) -> dict[str, Any]:
    """A record's JSON as the old target saved it (``KubeState`` with ``keys`` between generation and pending)."""
    state = data["target_state"]
    old_state = {"compute": state["compute"], "namespace": state["namespace"], "image": state["image"],
                 "generation": state["generation"], "keys": list(keys) if keys else None,
                 "pending": state.get("pending")}
    config = {k: v for k, v in data["deployment_config"].items() if k != "authEnabled"}  # default: left out
    if given and keys:
        config["keys"] = {"primaryKey": keys[0], "secondaryKey": keys[1]}
    return {**data, "target_state": old_state, "deployment_config": config}


def _make_legacy(service: Webservice, kube_api: KubeApiMock, keys: tuple[str, str], given: bool = False) -> Path:
    """Turn a service deployed now into what the old code left: record, manifests, no keys file, old Secret."""
    workspace = service.workspace
    folder = workspace.deployments_dir / service.name
    record_path = folder / "service.json"
    data = json.loads(record_path.read_text())
    record_path.write_text(json.dumps(_old_record(data, keys, given), indent=2))
    shutil.rmtree(folder / "keys")
    _old_manifests(folder / f"manifests-{data['target_state']['generation']}", keys)
    # what the API server kept of the old Secret: stringData stored as base64 data, one item per key
    secret = kube_api.objects[("secrets", "ml", f"{service.name}-keys")]
    secret["data"] = {"primaryKey": base64.b64encode(keys[0].encode()).decode(),
                      "secondaryKey": base64.b64encode(keys[1].encode()).decode()}
    return folder


def _holders(root: Path, keys: tuple[str, str], allowed: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p != allowed
            and any(k.encode() in p.read_bytes() for k in keys)]


def test_an_old_record_keeps_its_keys_in_the_keys_file_and_loses_them_everywhere_else(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Model.deploy(diabetes.workspace, "diab-legacy", [diabetes.model_id], diabetes.inference_config(),
                           AksWebservice.deploy_configuration(num_replicas=1), deployment_target=compute)
    try:
        service.wait_for_deployment(timeout_sec=60)
        folder = _make_legacy(service, kube_api, LEGACY, given=True)
        keys_file = folder / "keys" / "keys.json"
        assert has_legacy_keys(ServiceStore(diabetes.workspace).read("diab-legacy"))

        caplog.set_level(logging.WARNING, logger="jupyter_mldeploy.kubernetes.target")
        reattached = Webservice(diabetes.workspace, "diab-legacy")  # a new process re-attaching
        assert isinstance(reattached, KubernetesWebservice)
        assert reattached.get_keys() == LEGACY  # not "key auth is off"
        warnings = [r.getMessage() for r in caplog.records if r.name == "jupyter_mldeploy.kubernetes.target"]
        assert len(warnings) == 1 and "'diab-legacy'" in warnings[0] and "service.update()" in warnings[0]
        assert not any(k in warnings[0] for k in LEGACY)

        # the keys file is the only copy: owner-only; the record states authEnabled and holds no key
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(keys_file.parent.stat().st_mode) == 0o700
        data = json.loads((folder / "service.json").read_text())
        assert "keys" not in data["target_state"] and "keys" not in data["deployment_config"]
        assert data["deployment_config"]["authEnabled"] is True
        assert not (folder / "manifests-1" / "secret.yaml").exists()
        assert [o["kind"] for o in read_manifests(folder / "manifests-1")] == [
            "Deployment", "Service", "PodDisruptionBudget"]
        assert _holders(diabetes.workspace.path, LEGACY, keys_file) == []

        # a second use finds nothing to move and says nothing
        before = (folder / "service.json").read_text()
        assert reattached.get_keys() == LEGACY and (folder / "service.json").read_text() == before
        assert len([r for r in caplog.records if r.name == "jupyter_mldeploy.kubernetes.target"]) == 1

        # every face sends the key; the listing says authEnabled and holds no key
        assert reattached.auth_headers() == {"Authorization": f"Bearer {LEGACY[0]}"}
        assert reattached.serialize()["authEnabled"] is True
        assert reattached.deployment_config.keys is None
        listed = json.dumps([s.serialize() for s in Webservice.list(diabetes.workspace)])
        assert not any(k in listed for k in LEGACY)

        # regen_key and update work on the adopted keys: the new Secret carries them, the new pods mount it
        reattached.regen_key("Secondary", set_key="rotated-secondary-0123456789")
        keys = (LEGACY[0], "rotated-secondary-0123456789")
        assert reattached.get_keys() == keys == secret_keys(kube_api.objects[("secrets", "ml", "diab-legacy-keys")])
        reattached.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=1))
        assert reattached.get_keys() == keys
        assert secret_keys(kube_api.objects[("secrets", "ml", "diab-legacy-keys")]) == keys
        pod = kube_api.objects[("deployments", "ml", "diab-legacy")]["spec"]["template"]["spec"]
        assert {"name": "MLDEPLOY_KEYS_FILE", "value": "/var/mldeploy/keys/keys.json"} in pod["containers"][0]["env"]
        assert _holders(diabetes.workspace.path, (*LEGACY, keys[1]), keys_file) == []
    finally:
        service.delete()
    assert ("secrets", "ml", "diab-legacy-keys") not in kube_api.objects


def test_an_old_record_updated_before_any_read_keeps_its_keys(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    """``Model.deploy(..., overwrite=True)`` reaches the target under the lock: the migration runs there."""
    config = AksWebservice.deploy_configuration(num_replicas=1)
    service = Model.deploy(diabetes.workspace, "diab-legacy-up", [diabetes.model_id], diabetes.inference_config(),
                           config, deployment_target=compute)
    try:
        service.wait_for_deployment(timeout_sec=60)
        _make_legacy(service, kube_api, LEGACY)
        Model.deploy(diabetes.workspace, "diab-legacy-up", [diabetes.model_id], diabetes.inference_config(),
                     config, deployment_target=compute, overwrite=True)
        assert not has_legacy_keys(ServiceStore(diabetes.workspace).read("diab-legacy-up"))
        assert service.get_keys() == LEGACY  # kept, not regenerated
        assert secret_keys(kube_api.objects[("secrets", "ml", "diab-legacy-up-keys")]) == LEGACY
    finally:
        service.delete()


# -- the record and folder alone (no cluster is reached) -----------------------------------------------------

def _record(diabetes: Diabetes, name: str, generation: int, keys: tuple[str, str] | None,
            previous: dict[str, Any] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "compute": {"namespace": "ml"}, "namespace": "ml", "image": "mldeploy-package:x", "generation": generation,
        "keys": list(keys) if keys else None,
        "pending": {"generation": generation, "previous": previous} if previous else None,
    }
    return {"name": name, "target": "kubernetes", "host": "127.0.0.1", "port": 8080,
            "models": [{"name": "diabetes", "version": 1}], "inference_config": {},
            "deployment_config": {"computeType": "aks", "runtime": "kubernetes"}, "target_state": state,
            "format": 2}


def _folder_with_manifests(diabetes: Diabetes, name: str, generations: list[int], keys: tuple[str, str]) -> Path:
    folder = diabetes.workspace.deployments_dir / name
    for generation in generations:
        manifests = folder / f"manifests-{generation}"
        manifests.mkdir(parents=True)
        (manifests / "secret.yaml").write_text(yaml.safe_dump(
            {"kind": "Secret", "metadata": {"name": f"{name}-keys"}, "stringData": {"primaryKey": keys[0]}}))
        (manifests / "deployment.yaml").write_text(yaml.safe_dump({"kind": "Deployment", "metadata": {"name": name}}))
        (manifests / "kustomization.yaml").write_text(yaml.safe_dump(
            {"kind": "Kustomization", "resources": ["secret.yaml", "deployment.yaml"], "namespace": "ml"}))
    return folder


def test_a_pending_update_of_an_old_record_loses_the_keys_of_both_versions(diabetes: Diabetes) -> None:
    store = ServiceStore(diabetes.workspace)
    name = "legacy-pending"
    folder = _folder_with_manifests(diabetes, name, [1, 2], LEGACY)
    previous = _record(diabetes, name, 1, LEGACY)
    data = _record(diabetes, name, 2, LEGACY, previous=previous)
    store.save_file_only(ServiceRecord.from_dict(data, store.record_path(name)))
    try:
        record = store.read(name)
        migrated = KubernetesTarget().adopt_legacy_keys(store, record)
        assert not has_legacy_keys(migrated) and not has_legacy_keys(store.read(name))
        restored = migrated.target_state["pending"]["previous"]
        assert restored["deployment_config"]["authEnabled"] is True and "keys" not in restored["target_state"]
        assert restored["target_state"]["generation"] == 1
        for generation in (1, 2):
            assert [o["kind"] for o in read_manifests(folder / f"manifests-{generation}")] == ["Deployment"]
        assert _holders(folder, LEGACY, folder / "keys" / "keys.json") == []
        assert json.loads((folder / "keys" / "keys.json").read_text()) == {
            "primaryKey": LEGACY[0], "secondaryKey": LEGACY[1]}
        assert KubernetesTarget().adopt_legacy_keys(store, store.read(name)) == store.read(name)  # nothing left
    finally:
        shutil.rmtree(folder)


def test_an_old_record_without_key_auth_states_auth_off_and_writes_no_keys_file(diabetes: Diabetes) -> None:
    store = ServiceStore(diabetes.workspace)
    name = "legacy-open"
    folder = diabetes.workspace.deployments_dir / name
    data = _record(diabetes, name, 1, None)  # auth_enabled=False (or token auth): the old KubeState.keys was None
    store.save_file_only(ServiceRecord.from_dict(data, store.record_path(name)))
    try:
        migrated = KubernetesTarget().adopt_legacy_keys(store, store.read(name))
        assert migrated.deployment_config["authEnabled"] is False and "keys" not in migrated.target_state
        assert not (folder / "keys").exists()
    finally:
        shutil.rmtree(folder)


def test_remove_secret_finishes_what_a_crash_left_half_done(diabetes: Diabetes, tmp_path: Path) -> None:
    manifests = _folder_with_manifests(diabetes, "legacy-half", [1], LEGACY) / "manifests-1"
    try:
        # the kustomization was already replaced, the Secret's file not yet removed
        (manifests / "kustomization.yaml").write_text(yaml.safe_dump(
            {"kind": "Kustomization", "resources": ["deployment.yaml"], "namespace": "ml"}))
        assert remove_secret(manifests) is True
        assert not (manifests / "secret.yaml").exists()
        assert remove_secret(manifests) is False
        assert yaml.safe_load((manifests / "kustomization.yaml").read_text())["namespace"] == "ml"
    finally:
        shutil.rmtree(manifests.parent)
