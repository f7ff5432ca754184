"""``collect_model_data=True`` on the Kubernetes target: kept in the configuration, not honoured, and said so.

Pods cannot reach the workspace's ``modeldata/`` folder, so their server gets no collection variables and
``ModelDataCollector.collect()`` records nothing. A deploy, an update and an export warn (logged; printed with
the deploy output). The deploy runs against the MOCK API server of ``kube_api_mock.py`` (NOT A CLUSTER).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import Diabetes
from kube_api_mock import KubeApiMock

from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesCompute
from jupyter_mldeploy.kubernetes.config import collection_note
from jupyter_mldeploy.kubernetes.export import export_manifests
from jupyter_mldeploy.kubernetes.manifests import read_manifests
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.server import data_collector

NOTE = "collect_model_data=True is not honoured on the Kubernetes target"
COLLECTION_VARIABLES = {data_collector.ENABLED_VARIABLE, data_collector.FOLDER_VARIABLE,
                        data_collector.SERVICE_VARIABLE}


def _notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("jupyter_mldeploy.kubernetes") and r.levelno == logging.WARNING and NOTE in r.getMessage()]


def test_the_flag_is_kept_and_the_note_names_the_ways_to_collect() -> None:
    config = AksWebservice.deploy_configuration(collect_model_data=True)
    assert config.collect_model_data is True
    assert config.serialize()["dataCollection"] == {"storageEnabled": True}  # v1's deploymentconfig.json key
    note = collection_note(config)
    assert note is not None and note.startswith(NOTE)
    for way in ("deploy the same model locally or with Docker with collect_model_data=True",
                "service.get_collected_data()", "score.py write them to storage of the pod's own"):
        assert way in note
    from_file = DeploymentConfiguration.from_dict(
        {"computeType": "aks", "dataCollection": {"storageEnabled": True}})
    assert collection_note(from_file) == note
    assert collection_note(AksWebservice.deploy_configuration()) is None
    assert collection_note(AksWebservice.deploy_configuration(collect_model_data=False)) is None


def test_export_warns_and_the_pods_get_no_collection_variables(
    diabetes: Diabetes, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    config = AksWebservice.deploy_configuration(num_replicas=1, collect_model_data=True)
    export_manifests(diabetes.workspace, "diab-dc", [diabetes.model_id], diabetes.inference_config(), config,
                     tmp_path / "k8s")
    assert _notes(caplog) == [f"Service 'diab-dc': {collection_note(config)}"]
    deployment = next(o for o in read_manifests(tmp_path / "k8s") if o["kind"] == "Deployment")
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env & COLLECTION_VARIABLES == set()  # collect() is a no-op without them

    caplog.clear()
    export_manifests(diabetes.workspace, "diab-nodc", [diabetes.model_id], diabetes.inference_config(),
                     AksWebservice.deploy_configuration(num_replicas=1), tmp_path / "k8s-off")
    assert _notes(caplog) == []


def test_deploy_and_update_say_it_in_the_output_and_the_log(
    engine: object, diabetes: Diabetes, kube_api: KubeApiMock, tmp_path: Path,
    capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    compute = KubernetesCompute(kubeconfig=str(kube_api.kubeconfig(tmp_path / "kubeconfig")), namespace="ml")
    config = AksWebservice.deploy_configuration(num_replicas=1, collect_model_data=True)
    service = Model.deploy(diabetes.workspace, "diab-dc", [diabetes.model_id], diabetes.inference_config(), config,
                           deployment_target=compute, show_output=True)
    try:
        printed = capsys.readouterr().out
        assert f"Service 'diab-dc': {NOTE}" in printed and "is Healthy" in printed
        assert len(_notes(caplog)) == 1
        pod = kube_api.objects[("deployments", "ml", "diab-dc")]["spec"]["template"]["spec"]
        assert {e["name"] for e in pod["containers"][0]["env"]} & COLLECTION_VARIABLES == set()
        assert service.deployment_config.collect_model_data is True  # kept with the service

        caplog.clear()
        service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=1, collect_model_data=True))
        assert len(_notes(caplog)) == 1 and NOTE not in capsys.readouterr().out  # update() prints nothing
        caplog.clear()
        service.update(deployment_config=AksWebservice.deploy_configuration(num_replicas=1))
        assert _notes(caplog) == []
    finally:
        service.delete()
