"""The cluster path of the Kubernetes target, driven against a MOCK API server (kube_api_mock.py).

THIS IS NOT A CLUSTER: no Kubernetes API server can run on these machines. The mock speaks the API's wire
format to the official ``kubernetes`` client and plays a tiny Deployment controller, so these tests check
what the target sends (server-side apply of every object, deletes, selectors) and how it reads what comes
back (pod statuses -> v1 states, logs, events). The image the Deployment names is really built (Docker).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import Diabetes
from kube_api_mock import KubeApiMock

from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesCompute, KubernetesWebservice
from jupyter_mldeploy.registry import Model

pytest.importorskip("kubernetes")


def test_deploy_applies_every_object_and_becomes_healthy(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
    capsys: pytest.CaptureFixture,
) -> None:
    service = diabetes.deploy("diab-ok", compute, num_replicas=2, primary_key="pk" * 8)
    try:
        assert isinstance(service, KubernetesWebservice) and service.compute_type == "AKS"
        applies = [r for r in kube_api.requests if r.method == "PATCH"]
        assert [r.body["kind"] for r in applies] == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
        assert all(r.content_type == "application/apply-patch+yaml" and r.query["fieldManager"] == ["jupyter-mldeploy"]
                   and r.query["force"] == ["true"] and "/namespaces/ml/" in r.path for r in applies)
        image = applies[1].body["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.startswith("mldeploy-package:") and engine.images.get(image)  # type: ignore[attr-defined]
        assert service.state == "Transitioning"  # pods Running, not Ready: init() is running
        service.wait_for_deployment(show_output=True, timeout_sec=60)
        printed = capsys.readouterr().out
        assert "Scheduled: Successfully assigned ml/diab-ok-g1-0" in printed
        assert "[diab-ok-g1-1] Users's init has completed successfully" in printed
        assert service.state == "Healthy" and service.get_keys()[0] == "pk" * 8
        details = service.target_details
        assert details["replicas"] == "2/2" and details["namespace"] == "ml" and service.namespace == "ml"
        assert service.scoring_uri == f"http://127.0.0.1:{service.port}/score"
        assert details["portForward"] == f"kubectl port-forward -n ml service/diab-ok {service.port}:80"
        assert "==> pod diab-ok-g1-0 <==" in service.get_logs()
        with pytest.raises(DeploymentError, match="forward its port first.*kubectl port-forward -n ml service/diab-ok"):
            service.run({"data": diabetes.samples}, timeout=2)  # nothing forwards the port in this test
        assert Webservice.list(diabetes.workspace, compute_type="AKS") == [service]
        exported = service.export_manifests(diabetes.workspace.path.parent / "exported-ok")
        assert (exported / "kustomization.yaml").is_file() and (exported / "deployment.yaml").is_file()
    finally:
        service.delete()
    assert {r.path.rsplit("/", 2)[-2] for r in kube_api.requests if r.method == "DELETE"} >= {
        "deployments", "services", "secrets", "poddisruptionbudgets"}
    assert not [k for k in kube_api.objects if k[0] in ("deployments", "services", "secrets")]
    assert service.state == "Deleted"


@pytest.mark.parametrize(("behaviour", "state", "fragments"), [
    ("image-pull", "Failed", ["cannot pull image", "ImagePullBackOff", "image_registry"]),
    ("init-fails", "Failed", ["init() failed", "see get_logs()"]),
    ("unschedulable", "Unschedulable", ["0/3 nodes are available: 3 Insufficient cpu.", "Lower cpu_cores"]),
])
def test_pod_conditions_map_to_v1_states(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
    behaviour: str, state: str, fragments: list[str],
) -> None:
    kube_api.failing(behaviour)
    service = diabetes.deploy(f"diab-{behaviour}", compute, num_replicas=1, auth_enabled=False)
    try:
        assert service.state == state
        with pytest.raises(DeploymentError) as caught:
            service.wait_for_deployment(timeout_sec=30)
        for fragment in fragments:
            assert fragment in caught.value.message
        if behaviour == "init-fails":
            assert "RuntimeError: cannot load the model" in (caught.value.logs or "")
    finally:
        service.delete()


def test_update_rolls_out_a_new_generation_and_a_refused_one_is_rolled_back(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-upd", compute, autoscale_max_replicas=3, auth_enabled=False)
    try:
        service.wait_for_deployment(timeout_sec=60)
        assert kube_api.objects[("horizontalpodautoscalers", "ml", "diab-upd")]
        # autoscale -> fixed replicas: a new generation, and the HPA goes away
        service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=2, auth_enabled=False))
        assert service.state == "Healthy" and service.target_details["generation"] == 2
        assert ("horizontalpodautoscalers", "ml", "diab-upd") not in kube_api.objects
        assert service.target_details["pods"] == ["diab-upd-g2-0", "diab-upd-g2-1"]
        # a new version whose init() fails: refused, the previous manifests re-applied, generation 2 serves on
        kube_api.failing("init-fails")
        with pytest.raises(DeploymentError, match="was refused.*re-applied and keeps serving") as caught:
            service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=2, auth_enabled=False,
                                                                               scoring_timeout_ms=9000))
        assert "RuntimeError" in (caught.value.logs or "")
        assert service.state == "Healthy" and service.target_details["generation"] == 2
        template = kube_api.objects[("deployments", "ml", "diab-upd")]["spec"]["template"]
        assert template["metadata"]["labels"]["mldeploy.io/generation"] == "2"
        # update(wait=False): Transitioning until wait_for_deployment settles it
        kube_api.failing("healthy")
        kube_api.ready_after = 2.0
        service.update(wait=False)
        assert service.state == "Transitioning"
        service.wait_for_deployment(timeout_sec=60)
        assert service.state == "Healthy" and service.target_details["generation"] == 3
        with pytest.raises(InvalidArgument, match="delete it and deploy it again"):
            service.update(deployment_config=AksWebservice.deploy_configuration(namespace="other"))
    finally:
        service.delete()


def test_no_cluster_configured_is_a_clear_error(diabetes: Diabetes, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    started = time.monotonic()
    with pytest.raises(DeploymentError) as caught:
        diabetes.deploy("diab-none", KubernetesCompute())
    message = caught.value.message
    assert "No Kubernetes cluster is configured" in message and str(tmp_path / "missing-kubeconfig") in message
    assert "mldeploy kubernetes manifests" in message and "kubectl apply -k" in message
    assert time.monotonic() - started < 10
    assert not (diabetes.workspace.deployments_dir / "diab-none").exists()


def test_an_unknown_context_is_named(diabetes: Diabetes, kube_api: KubeApiMock, tmp_path: Path) -> None:
    compute = KubernetesCompute(kubeconfig=str(kube_api.kubeconfig(tmp_path / "kc")), context="prod")
    with pytest.raises(DeploymentError, match="context 'prod'.*kubectl config get-contexts"):
        diabetes.deploy("diab-ctx", compute)


def test_an_api_server_that_never_answers_fails_within_the_timeouts(
    diabetes: Diabetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jupyter_mldeploy.kubernetes.compute as compute_module

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers: a hung API server
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    port = silent.getsockname()[1]
    mock = KubeApiMock()
    mock.server = type("S", (), {"server_address": ("127.0.0.1", port)})()  # only its URL is used
    monkeypatch.setattr(compute_module, "REQUEST_TIMEOUT", (1.0, 2.0))
    started = time.monotonic()
    try:
        with pytest.raises(DeploymentError, match=rf"127\.0\.0\.1:{port}.*did not answer"):
            diabetes.deploy("diab-hang", KubernetesCompute(kubeconfig=str(mock.kubeconfig(tmp_path / "kc"))))
    finally:
        silent.close()
    assert time.monotonic() - started < 10  # (1 s connect + 2 s read) x 2 tries at most


def test_a_deployment_target_of_another_runtime_is_refused(diabetes: Diabetes) -> None:
    from jupyter_mldeploy.deploy.config import local_deploy_configuration

    with pytest.raises(InvalidArgument, match="deploys to the 'kubernetes' runtime"):
        Model.deploy(diabetes.workspace, "diab-mix", [diabetes.model_id], diabetes.inference_config(),
                     local_deploy_configuration(), deployment_target=KubernetesCompute())


def test_cli_model_deploy_with_an_aks_file_uses_the_current_context(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from click.testing import CliRunner

    from jupyter_mldeploy.cli import main

    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig(tmp_path / "kc", namespace="team-a")))
    ic = diabetes.inference_config().to_file(tmp_path / "inferenceconfig.json")
    dc = tmp_path / "aks.json"
    dc.write_text(json.dumps({"computeType": "aks", "numReplicas": 1, "authEnabled": False}))
    workspace = ["-w", str(diabetes.workspace.path)]
    deployed = CliRunner().invoke(main, ["model", "deploy", "-n", "diab-cli", "-m", diabetes.model_id, "--ic", str(ic),
                                         "--dc", str(dc), "--timeout", "60", "-o", "json", *workspace])
    try:
        assert deployed.exit_code == 0, deployed.output
        shown = json.loads(deployed.output)
        assert (shown["state"], shown["computeType"], shown["namespace"]) == ("Healthy", "AKS", "team-a")
        assert ("deployments", "team-a", "diab-cli") in kube_api.objects  # the context's namespace
        listed = CliRunner().invoke(main, ["service", "list", "-o", "json", *workspace])
        assert {"name": "diab-cli", "state": "Healthy"}.items() <= next(
            s for s in json.loads(listed.output) if s["name"] == "diab-cli").items()
    finally:
        CliRunner().invoke(main, ["service", "delete", "diab-cli", *workspace])
    assert ("deployments", "team-a", "diab-cli") not in kube_api.objects


def test_a_load_balancer_service_is_scored_at_its_address(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, tmp_path: Path,
) -> None:
    compute = KubernetesCompute(kubeconfig=str(kube_api.kubeconfig(tmp_path / "kc")), service_type="LoadBalancer")
    service = diabetes.deploy("diab-lb", compute, num_replicas=1, auth_enabled=False)
    try:
        assert service.scoring_uri == "http://203.0.113.10:80/score"
        assert service.swagger_uri == "http://203.0.113.10:80/swagger.json"
        assert kube_api.objects[("services", "default", "diab-lb")]["spec"]["type"] == "LoadBalancer"
    finally:
        service.delete()


def test_a_deployment_this_workspace_does_not_own_is_not_overwritten(
    diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    from jupyter_mldeploy.errors import Conflict

    kube_api.objects[("deployments", "ml", "diab-taken")] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "diab-taken", "namespace": "ml", "generation": 1},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {}}, "spec": {"containers": []}}}, "status": {},
    }
    with pytest.raises(Conflict, match="already exists in the cluster"):
        diabetes.deploy("diab-taken", compute)
    assert kube_api.count("PATCH") == 0 and kube_api.count("DELETE") == 0
    assert not (diabetes.workspace.deployments_dir / "diab-taken").exists()


def test_an_update_refused_half_way_puts_the_previous_generation_back(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-half", compute, num_replicas=1, auth_enabled=False)
    try:
        service.wait_for_deployment(timeout_sec=60)
        kube_api.refuse.add("poddisruptionbudgets")
        with pytest.raises(DeploymentError, match="refused PodDisruptionBudget ml/diab-half.*admission webhook"):
            service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=2, auth_enabled=False))
        template = kube_api.objects[("deployments", "ml", "diab-half")]["spec"]
        assert template["replicas"] == 1 and template["template"]["metadata"]["labels"]["mldeploy.io/generation"] == "1"
        assert service.target_details["generation"] == 1 and service.state == "Healthy"
        kube_api.refuse.clear()
    finally:
        service.delete()


def test_a_cluster_that_goes_away_reads_unhealthy_and_delete_keeps_the_record(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, compute: KubernetesCompute,
) -> None:
    service = diabetes.deploy("diab-gone", compute, num_replicas=1, auth_enabled=False)
    service.wait_for_deployment(timeout_sec=60)
    port = kube_api.server.server_address[1]  # type: ignore[union-attr]
    kube_api.stop()
    started = time.monotonic()
    assert service.state == "Unhealthy" and "did not answer" in (service.error or "")
    assert time.monotonic() - started < 10
    assert "cannot be read" in service.get_logs()
    with pytest.raises(DeploymentError, match="was not deleted.*kubectl delete -k"):
        service.delete()
    assert service.state != "Deleted"  # the record is kept: delete can be called again
    back = KubeApiMock().start(port)  # the cluster is back (empty): delete finishes
    try:
        service.delete()
        assert service.state == "Deleted"
    finally:
        back.stop()
