"""``AksWebservice.deploy_configuration``: v1's arguments, defaults and validation rules; the file round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.kubernetes import (
    AksWebservice,
    KubernetesCompute,
    KubernetesSettings,
    KubernetesWebservice,
)


def test_v1_defaults_are_applied_when_rendered_not_stored() -> None:
    config = AksWebservice.deploy_configuration()
    assert config.compute_type == "aks" and config.runtime == "kubernetes"
    assert config.serialize() == {"computeType": "aks", "runtime": "kubernetes"}
    s = KubernetesSettings.of(config)
    assert s.autoscale and (s.min_replicas, s.max_replicas, s.refresh_seconds, s.target_utilization) == (1, 10, 1, 70)
    assert (s.cpu, s.memory_gb, s.cpu_limit, s.memory_gb_limit, s.gpu) == (0.1, 0.5, 0.1, 0.5, 0)
    assert (s.scoring_timeout_ms, s.max_concurrent_requests, s.max_queue_wait_ms) == (60000, 1, 500)
    assert s.probe == {"periodSeconds": 10, "initialDelaySeconds": 310, "timeoutSeconds": 2,
                       "successThreshold": 1, "failureThreshold": 3}
    assert s.auth_enabled and not s.token_auth_enabled and s.namespace is None
    assert KubernetesWebservice.deploy_configuration is AksWebservice.deploy_configuration


def test_every_argument_reaches_its_v1_key_and_round_trips(tmp_path: Path) -> None:
    config = AksWebservice.deploy_configuration(
        autoscale_enabled=True, autoscale_min_replicas=2, autoscale_max_replicas=5, autoscale_refresh_seconds=3,
        autoscale_target_utilization=60, auth_enabled=True, cpu_cores=0.5, memory_gb=1.5, cpu_cores_limit=1,
        memory_gb_limit=2, gpu_cores=1, scoring_timeout_ms=5000, replica_max_concurrent_requests=4,
        max_request_wait_time=800, period_seconds=5, initial_delay_seconds=20, timeout_seconds=3,
        success_threshold=1, failure_threshold=4, namespace="ml-team", primary_key="p" * 16, secondary_key="s" * 16,
        tags={"team": "a"}, properties={"k": "v"}, description="d",
    )
    data = config.serialize()
    assert data["autoScaler"] == {"autoscaleEnabled": True, "minReplicas": 2, "maxReplicas": 5,
                                  "refreshPeriodInSeconds": 3, "targetUtilization": 60}
    assert data["containerResourceRequirements"] == {"cpu": 0.5, "memoryInGB": 1.5, "cpuLimit": 1,
                                                     "memoryInGBLimit": 2, "gpu": 1}
    assert data["livenessProbeRequirements"] == {"periodSeconds": 5, "initialDelaySeconds": 20, "timeoutSeconds": 3,
                                                 "successThreshold": 1, "failureThreshold": 4}
    assert (data["maxConcurrentRequestsPerContainer"], data["maxQueueWaitMs"], data["scoringTimeoutMs"]) == (4, 800, 5000)
    assert data["keys"] == {"primaryKey": "p" * 16, "secondaryKey": "s" * 16}
    assert (data["namespace"], data["authEnabled"], data["gpuCores"]) == ("ml-team", True, 1)
    path = config.to_file(tmp_path / "deploymentconfig.json")
    again = DeploymentConfiguration.from_file(path)
    assert again.serialize() == data and again.runtime == "kubernetes"


@pytest.mark.parametrize("compute_type", ["aks", "kubernetes", "AKS"])
def test_a_v1_aks_file_reads_as_the_kubernetes_runtime(tmp_path: Path, compute_type: str) -> None:
    v1 = {"computeType": compute_type, "autoScaler": {"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 3,
                                                       "refreshPeriodInSeconds": 1, "targetUtilization": 70},
          "authEnabled": True, "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0}}
    (tmp_path / "dc.json").write_text(json.dumps(v1))
    config = DeploymentConfiguration.from_file(tmp_path / "dc.json")
    assert (config.compute_type, config.runtime) == ("aks", "kubernetes")
    assert KubernetesSettings.of(config).max_replicas == 3


def test_local_configurations_are_unchanged() -> None:
    config = local_deploy_configuration(port=6789)
    assert (config.compute_type, config.runtime) == ("local", "process")
    assert local_deploy_configuration(runtime="kubernetes").compute_type == "aks"


#: (arguments, words the message must hold): one row per v1 rule.
RULES = [
    ({"cpu_cores": 0}, "cpu_cores must be a positive number"),
    ({"memory_gb": 0}, "memory_gb must be a positive number"),
    ({"cpu_cores_limit": 0}, "cpu_cores_limit must be a positive number"),
    ({"memory_gb_limit": 0}, "memory_gb_limit must be a positive number"),
    ({"gpu_cores": 0}, "gpu_cores must be a positive integer"),
    ({"autoscale_min_replicas": 0}, "autoscale_min_replicas must be a positive integer"),
    ({"autoscale_max_replicas": 0}, "autoscale_max_replicas must be a positive integer"),
    ({"autoscale_refresh_seconds": 0}, "autoscale_refresh_seconds must be a positive integer"),
    ({"autoscale_target_utilization": 0}, "autoscale_target_utilization must be a positive integer"),
    ({"autoscale_target_utilization": 120}, "autoscale_target_utilization must be a percentage"),
    ({"scoring_timeout_ms": 0}, "scoring_timeout_ms"),
    ({"replica_max_concurrent_requests": 0}, "replica_max_concurrent_requests must be a positive integer"),
    ({"max_request_wait_time": 0}, "max_request_wait_time must be a positive integer"),
    ({"num_replicas": 0}, "num_replicas must be a positive integer"),
    ({"period_seconds": 0}, "period_seconds must be a positive integer"),
    ({"initial_delay_seconds": -5}, "initial_delay_seconds must be a positive integer"),
    ({"timeout_seconds": 0}, "timeout_seconds must be a positive integer"),
    ({"success_threshold": 0}, "success_threshold must be a positive integer"),
    ({"failure_threshold": 0}, "failure_threshold must be a positive integer"),
    ({"autoscale_enabled": True, "num_replicas": 2}, "autoscale_enabled and num_replicas cannot both be set"),
    ({"autoscale_enabled": False}, "num_replicas is required when autoscale_enabled is False"),
    ({"autoscale_enabled": False, "num_replicas": 2, "autoscale_max_replicas": 4},
     "autoscale_max_replicas given while autoscaling is off"),
    ({"num_replicas": 2, "autoscale_min_replicas": 2}, "autoscale_min_replicas given while autoscaling is off"),
    ({"autoscale_min_replicas": 5, "autoscale_max_replicas": 3},
     "autoscale_min_replicas (5) must be less than or equal to autoscale_max_replicas (3)"),
    ({"autoscale_min_replicas": 11}, "autoscale_min_replicas (11) must be less than or equal to autoscale_max_replicas (10)"),
    ({"cpu_cores": 1, "cpu_cores_limit": 0.5}, "cpu_cores_limit (0.5) must be greater than or equal to cpu_cores (1)"),
    ({"memory_gb_limit": 0.25}, "memory_gb_limit (0.25) must be greater than or equal to memory_gb (0.5)"),
    ({"auth_enabled": True, "token_auth_enabled": True}, "auth_enabled and token_auth_enabled cannot both be true"),
    ({"namespace": "ML_Team"}, "Invalid namespace 'ML_Team': a Kubernetes name must be a DNS-1123 label"),
    ({"namespace": "-team"}, "DNS-1123 label"),
    ({"namespace": "a" * 64}, "DNS-1123 label"),
    ({"primary_key": ""}, "Invalid keys.primaryKey: use a string of at least 16 characters"),
    ({"secondary_key": "short-secret"}, "Invalid keys.secondaryKey: use a string of at least 16 characters"),
    ({"primary_key": "a key with spaces in it"}, "from A-Z a-z 0-9 - . _ ~ + /"),
]


@pytest.mark.parametrize(("kwargs", "message"), RULES, ids=[str(sorted(k)) for k, _ in RULES])
def test_each_v1_rule_gives_its_message(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        AksWebservice.deploy_configuration(**kwargs)
    assert message in caught.value.message
    for key in ("primary_key", "secondary_key"):
        if kwargs.get(key):
            assert kwargs[key] not in caught.value.message  # a rejected key may be a real secret: never echoed


def test_the_rules_apply_to_files_too(tmp_path: Path) -> None:
    (tmp_path / "dc.json").write_text(json.dumps({"computeType": "aks", "numReplicas": 2,
                                                  "autoScaler": {"autoscaleEnabled": True}}))
    with pytest.raises(InvalidArgument, match="autoscale_enabled and num_replicas cannot both be set"):
        DeploymentConfiguration.from_file(tmp_path / "dc.json")
    (tmp_path / "dc.json").write_text(json.dumps({"computeType": "aks", "autoScaler": {"minReplica": 2}}))
    with pytest.raises(InvalidArgument, match=r"unknown keys \['minReplica'\]"):
        DeploymentConfiguration.from_file(tmp_path / "dc.json")


def test_valid_combinations_pass() -> None:
    fixed = AksWebservice.deploy_configuration(num_replicas=3, autoscale_enabled=False)
    assert KubernetesSettings.of(fixed).replicas == 3 and not KubernetesSettings.of(fixed).autoscale
    token = AksWebservice.deploy_configuration(token_auth_enabled=True)
    assert not KubernetesSettings.of(token).auth_enabled
    assert not KubernetesSettings.of(AksWebservice.deploy_configuration(auth_enabled=False)).auth_enabled


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"namespace": "Prod"}, "DNS-1123 label"),
    ({"service_type": "Ingress"}, "Invalid service_type 'Ingress'"),
    ({"image_registry": "Registry.io/"}, "Invalid image_registry"),
])
def test_kubernetes_compute_checks_its_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        KubernetesCompute(**kwargs)


def test_compute_json_round_trip_and_kubeconfig_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    compute = KubernetesCompute(context="kind-ml", kubeconfig=str(tmp_path / "kc"), namespace="ml",
                                image_registry="registry.local:5000/team", service_type="LoadBalancer")
    assert KubernetesCompute.from_json(compute.to_json()) == compute
    assert KubernetesCompute.from_json({"service_type": "Bogus"}) == KubernetesCompute()
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert KubernetesCompute().kubeconfig_path() == str(tmp_path / "a")
    monkeypatch.delenv("KUBECONFIG")
    assert KubernetesCompute().kubeconfig_path().endswith(".kube/config")
