"""Rendered manifests: strict schema validation (oldest >= 1.29 and newest Kubernetes that
kubernetes-validate ships), a semantic lint for what schemas cannot say, the export and its CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import Diabetes

from jupyter_mldeploy.cli import main
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesSettings, export_manifests, render_manifests
from jupyter_mldeploy.kubernetes.manifests import ManifestSpec, read_manifests, secret_keys, write_manifests
from jupyter_mldeploy.server.keys import OPEN_PATHS

kubernetes_validate = pytest.importorskip("kubernetes_validate")


def _shipped_versions() -> list[str]:
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = sorted({tuple(int(x) for x in m.groups()) for d in os.listdir(folder)
                    if (m := re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", d))})
    eligible = [v for v in found if v >= (1, 29, 0)]
    oldest, newest = (".".join(map(str, v)) for v in (eligible[0], eligible[-1]))
    return [oldest, newest] if oldest != newest else [newest]


VERSIONS = _shipped_versions()

#: Configurations the manifests are rendered for: fixed replicas, autoscale, auth on/off, limits, namespace.
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "fixed-replicas-no-auth": {"num_replicas": 3, "auth_enabled": False},
    "autoscale-limits": {"autoscale_min_replicas": 2, "autoscale_max_replicas": 6, "autoscale_target_utilization": 50,
                         "cpu_cores": 0.25, "cpu_cores_limit": 1, "memory_gb": 1, "memory_gb_limit": 2},
    "namespace-keys-gpu": {"namespace": "ml-team", "primary_key": "k1" * 8, "secondary_key": "k2" * 8,
                           "gpu_cores": 1, "num_replicas": 1, "scoring_timeout_ms": 5000,
                           "replica_max_concurrent_requests": 4, "period_seconds": 5, "initial_delay_seconds": 15},
    "token-auth": {"token_auth_enabled": True, "num_replicas": 2},
}
SERVICE_TYPES = {"defaults": "ClusterIP", "fixed-replicas-no-auth": "LoadBalancer", "autoscale-limits": "NodePort"}


def _spec(name: str, config_name: str) -> ManifestSpec:
    config = AksWebservice.deploy_configuration(**CONFIGS[config_name])
    settings = KubernetesSettings.of(config)
    return ManifestSpec(
        name=name, image="registry.local:5000/mldeploy-package:0123456789abcdef01234567",
        environment={"AML_APP_ROOT": "/var/azureml-app", "AZUREML_ENTRY_SCRIPT": "src/score.py",
                     "SCORING_TIMEOUT_MS": str(settings.scoring_timeout_ms), "WORKER_COUNT": "1"},
        settings=settings, models=("diabetes:1",), service_type=SERVICE_TYPES.get(config_name, "ClusterIP"),
        namespace=settings.namespace,
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_every_manifest_passes_strict_validation(config_name: str, version: str) -> None:
    for obj in render_manifests(_spec("diabetes", config_name)):
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_can_fail() -> None:
    deployment = next(o for o in render_manifests(_spec("diabetes", "defaults")) if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_cli_validator_accepts_the_written_files(tmp_path: Path) -> None:
    files = write_manifests(render_manifests(_spec("diabetes", "namespace-keys-gpu")), tmp_path / "out", "ml-team")
    yaml_files = [str(p) for p in files if p.name != "kustomization.yaml"]
    for version in VERSIONS:
        done = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *yaml_files],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# -- semantic lint: what a schema cannot express ---------------------------------------------------------

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CPU = re.compile(r"^(\d+m|\d+(\.\d+)?)$")
MEMORY = re.compile(r"^\d+(Ki|Mi|Gi|Ti)?$")


def _cpu(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _memory(value: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(value[: -len(suffix)]) * factor
    return int(value)


def lint(objects: list[dict[str, Any]]) -> list[str]:
    """Problems a schema cannot see; [] when the manifests hang together."""
    problems = []
    by_kind = {o["kind"]: o for o in objects}
    for obj in objects:
        name = obj["metadata"]["name"]
        if not DNS1123.match(name) or len(name) > 63:
            problems.append(f"{obj['kind']} name {name!r} is not a DNS-1123 label")
        for key, value in obj["metadata"].get("labels", {}).items():
            if len(value) > 63 or not re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]?", value):
                problems.append(f"label {key}={value!r} is not a valid label value")
    namespaces = {o["metadata"].get("namespace") for o in objects}
    if len(namespaces) != 1:
        problems.append(f"objects in several namespaces: {namespaces}")
    deployment = by_kind["Deployment"]
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    if not selector.items() <= template["metadata"]["labels"].items():
        problems.append("the Deployment's selector does not match its template's labels")
    for kind in ("Service", "PodDisruptionBudget"):
        if kind in by_kind:
            chosen = by_kind[kind]["spec"]["selector"]
            chosen = chosen.get("matchLabels", chosen)
            if not chosen.items() <= template["metadata"]["labels"].items():
                problems.append(f"the {kind}'s selector does not select the Deployment's pods")
    for container in template["spec"]["containers"]:
        ports = {p["containerPort"] for p in container["ports"]} | {p["name"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            if container[probe]["httpGet"]["port"] not in ports:
                problems.append(f"{probe} port {container[probe]['httpGet']['port']} is no container port")
        resources = container["resources"]
        for resource, value in {**resources["requests"], **resources["limits"]}.items():
            pattern = CPU if resource == "cpu" else MEMORY if resource == "memory" else re.compile(r"^\d+$")
            if not pattern.match(value):
                problems.append(f"{resource} quantity {value!r} is malformed")
        for resource, parse in (("cpu", _cpu), ("memory", _memory)):
            request, limit = resources["requests"].get(resource), resources["limits"].get(resource)
            if request and limit and parse(request) > parse(limit):
                problems.append(f"{resource} request {request} exceeds its limit {limit}")
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if container["securityContext"].get("readOnlyRootFilesystem") and "/tmp" not in mounts:
            problems.append("a read-only root filesystem without a writable /tmp")
    if "Service" in by_kind:
        port_names = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
        for port in by_kind["Service"]["spec"]["ports"]:
            if port["targetPort"] not in port_names and port["targetPort"] not in {5001}:
                problems.append(f"Service targetPort {port['targetPort']} is no container port")
    hpa = by_kind.get("HorizontalPodAutoscaler")
    if hpa is not None:
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["apiVersion"], ref["kind"], ref["name"]) != ("apps/v1", "Deployment", deployment["metadata"]["name"]):
            problems.append("the HPA does not target the Deployment")
        if "replicas" in deployment["spec"]:
            problems.append("the Deployment sets replicas while an HPA scales it")
        if hpa["spec"]["minReplicas"] > hpa["spec"]["maxReplicas"]:
            problems.append("HPA minReplicas > maxReplicas")
    elif "replicas" not in deployment["spec"]:
        problems.append("no HPA and no replicas")
    for container in template["spec"]["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            if container[probe]["httpGet"]["path"] not in OPEN_PATHS:
                problems.append(f"{probe} path {container[probe]['httpGet']['path']} needs a key: kubelet sends none")
    problems += _keys_problems(by_kind.get("Secret"), template)
    return problems


def _keys_problems(secret: dict[str, Any] | None, template: dict[str, Any]) -> list[str]:
    """The keys Secret reaches the server: mounted whole (kubelet updates no subPath), read-only, named by
    MLDEPLOY_KEYS_FILE, holding the keys file the server reads; without a Secret, nothing names one."""
    problems = []
    volumes = [v for v in template["spec"].get("volumes", []) if "secret" in v]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if secret is None:
        if volumes or "MLDEPLOY_KEYS_FILE" in env:
            problems.append("a keys volume or MLDEPLOY_KEYS_FILE without a keys Secret")
        return problems
    try:
        document = json.loads(base64.b64decode(secret["data"]["keys.json"]))
        if not (document["primaryKey"] and document["secondaryKey"]):
            problems.append("the keys Secret has an empty key")
    except (KeyError, ValueError):
        problems.append("the keys Secret holds no keys.json with primaryKey and secondaryKey")
    mine = [v for v in volumes if v["secret"]["secretName"] == secret["metadata"]["name"]]
    if not mine:
        return [*problems, "no volume mounts the keys Secret"]
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] == mine[0]["name"]]
    if not mounts:
        return [*problems, "the container does not mount the keys volume"]
    mount = mounts[0]
    if mount.get("subPath"):
        problems.append("the keys volume is mounted with subPath: kubelet never updates it")
    if not mount.get("readOnly"):
        problems.append("the keys volume is writable")
    items = {i["key"]: i["path"] for i in mine[0]["secret"].get("items", [])} or {"keys.json": "keys.json"}
    if env.get("MLDEPLOY_KEYS_FILE") != f"{mount['mountPath']}/{items.get('keys.json')}":
        problems.append(f"MLDEPLOY_KEYS_FILE {env.get('MLDEPLOY_KEYS_FILE')!r} is not the mounted keys.json")
    if mine[0]["secret"].get("defaultMode", 0o644) & 0o007:
        problems.append("the keys file is readable by others")
    return problems


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_manifests_pass_the_semantic_lint(config_name: str) -> None:
    assert lint(render_manifests(_spec("diabetes", config_name))) == []


def test_the_lint_can_fail() -> None:
    objects = render_manifests(_spec("diabetes", "autoscale-limits"))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["port"] = 8080
    container["resources"]["requests"]["memory"] = "9Gi"
    deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "x"
    problems = " | ".join(lint(objects))
    for fragment in ("livenessProbe port 8080", "memory request 9Gi exceeds", "selector does not match",
                     "HPA does not target"):
        assert fragment in problems


@pytest.mark.parametrize(("breakage", "fragment"), [
    (lambda c, pod: c["volumeMounts"][1].update(subPath="keys.json"), "kubelet never updates it"),
    (lambda c, pod: c["volumeMounts"][1].pop("readOnly"), "keys volume is writable"),
    (lambda c, pod: next(e for e in c["env"] if e["name"] == "MLDEPLOY_KEYS_FILE").update(value="/etc/keys.json"),
     "is not the mounted keys.json"),
    (lambda c, pod: pod["volumes"][1]["secret"].update(defaultMode=0o444), "readable by others"),
    (lambda c, pod: c["volumeMounts"].pop(1), "does not mount the keys volume"),
    (lambda c, pod: c["readinessProbe"]["httpGet"].update(path="/score"), "readinessProbe path /score needs a key"),
])
def test_the_keys_lint_can_fail(breakage: Any, fragment: str) -> None:
    objects = render_manifests(_spec("diabetes", "defaults"))
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert lint(objects) == []
    breakage(pod["containers"][0], pod)
    assert fragment in " | ".join(lint(objects))


def test_keys_are_enforced_by_default_and_only_with_key_auth() -> None:
    for config_name, auth in (("defaults", True), ("namespace-keys-gpu", True), ("fixed-replicas-no-auth", False),
                              ("token-auth", False)):
        objects = {o["kind"]: o for o in render_manifests(_spec("diabetes", config_name))}
        pod = objects["Deployment"]["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert ("Secret" in objects) is auth
        assert (env.get("MLDEPLOY_KEYS_FILE") == "/var/mldeploy/keys/keys.json") is auth
        assert ({"name": "keys", "mountPath": "/var/mldeploy/keys", "readOnly": True}
                in pod["containers"][0]["volumeMounts"]) is auth
    secret = render_manifests(_spec("diabetes", "defaults"))[0]
    primary, secondary = secret_keys(secret)
    # generated as v1: 32 random bytes, URL-safe; and the keys never appear anywhere else in the manifests
    assert len(primary) == len(secondary) == 43 and primary != secondary
    rest = json.dumps(render_manifests(replace(_spec("diabetes", "defaults"), keys=(primary, secondary)))[1:])
    assert primary not in rest and secondary not in rest


def test_settings_reach_the_manifests() -> None:
    objects = {o["kind"]: o for o in render_manifests(_spec("diabetes", "namespace-keys-gpu"))}
    deployment = objects["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 1 and "HorizontalPodAutoscaler" not in objects
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"},
                                      "limits": {"cpu": "100m", "memory": "512Mi", "nvidia.com/gpu": "1"}}
    assert container["livenessProbe"]["periodSeconds"] == 5 and container["livenessProbe"]["initialDelaySeconds"] == 15
    assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["runAsNonRoot"]
    assert not container["securityContext"]["allowPrivilegeEscalation"]
    assert secret_keys(objects["Secret"]) == ("k1" * 8, "k2" * 8)
    assert set(objects["Secret"]["data"]) == {"keys.json"} and "stringData" not in objects["Secret"]
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"ml-team"}
    auto = {o["kind"]: o for o in render_manifests(_spec("diabetes", "autoscale-limits"))}
    hpa = auto["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    assert auto["Service"]["spec"]["type"] == "NodePort"
    assert "Secret" not in {o["kind"] for o in render_manifests(_spec("diabetes", "token-auth"))}


def test_bad_names_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="Invalid service name 'Diabetes_1'.*DNS-1123"):
        render_manifests(_spec("Diabetes_1", "defaults"))
    with pytest.raises(InvalidArgument, match="at most 58 characters"):
        render_manifests(_spec("a" * 60, "defaults"))


# -- export and CLI (no cluster, no kubernetes client needed) -------------------------------------------------

def test_export_writes_a_kustomization_and_the_image_context(diabetes: Diabetes, tmp_path: Path) -> None:
    config = AksWebservice.deploy_configuration(num_replicas=2, namespace="ml-team", scoring_timeout_ms=3000,
                                                replica_max_concurrent_requests=3)
    result = export_manifests(diabetes.workspace, "diabetes", [diabetes.model_id], diabetes.inference_config(),
                              config, tmp_path / "k8s")
    names = [p.name for p in result.files]
    assert names == ["secret.yaml", "deployment.yaml", "service.yaml", "poddisruptionbudget.yaml", "kustomization.yaml"]
    kustomization = yaml.safe_load((tmp_path / "k8s" / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "ml-team" and kustomization["resources"] == names[:-1]
    objects = read_manifests(tmp_path / "k8s")
    assert lint(objects) == []
    assert stat.S_IMODE((tmp_path / "k8s" / "secret.yaml").stat().st_mode) == 0o600  # it holds the keys
    assert stat.S_IMODE((tmp_path / "k8s" / "deployment.yaml").stat().st_mode) & 0o044
    for obj in objects:
        kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["image"] == result.image and result.image.startswith("mldeploy-package:")
    assert env["AML_APP_ROOT"] == "/var/azureml-app" and env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/diabetes/1"
    assert (env["SCORING_TIMEOUT_MS"], env["WORKER_COUNT"], env["HOME"]) == ("3000", "3", "/tmp")
    # over the concurrency limit a request waits v1's default 500 ms (as behind v1's front end), not a 503 at once
    assert (env["MLDEPLOY_MAX_CONCURRENT_REQUESTS"], env["MLDEPLOY_MAX_QUEUE_WAIT_MS"]) == ("3", "500")
    assert (result.build_context / "Dockerfile").is_file()  # type: ignore[operator]
    assert deployment["metadata"]["annotations"]["mldeploy.io/models"] == diabetes.model_id


def test_export_refuses_bad_inputs(diabetes: Diabetes, tmp_path: Path) -> None:
    from jupyter_mldeploy.deploy.config import local_deploy_configuration

    ic = diabetes.inference_config()
    aks = AksWebservice.deploy_configuration()
    with pytest.raises(InvalidArgument, match="must be a Kubernetes configuration"):
        export_manifests(diabetes.workspace, "diabetes", [diabetes.model_id], ic, local_deploy_configuration(), tmp_path / "a")
    with pytest.raises(InvalidArgument, match="DNS-1123"):
        export_manifests(diabetes.workspace, "Diabetes", [diabetes.model_id], ic, aks, tmp_path / "b")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidArgument, match="is not empty"):
        export_manifests(diabetes.workspace, "diabetes", [diabetes.model_id], ic, aks, tmp_path / "full")
    with pytest.raises(InvalidArgument, match="Invalid service type"):
        export_manifests(diabetes.workspace, "diabetes", [diabetes.model_id], ic, aks, tmp_path / "c", service_type="Ingress")


def test_cli_manifests_command(diabetes: Diabetes, tmp_path: Path) -> None:
    ic = diabetes.inference_config().to_file(tmp_path / "inferenceconfig.json")
    dc = tmp_path / "deploymentconfig.json"
    dc.write_text(json.dumps({"computeType": "aks", "numReplicas": 2, "authEnabled": False,
                              "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1}}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "kubernetes", "manifests", "diabetes", "-w", str(diabetes.workspace.path), "-m", diabetes.model_id,
        "--ic", str(ic), "--dc", str(dc), "--image", "registry.local/diabetes:1", "--service-type", "LoadBalancer",
        "-o", str(out), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["image"] == "registry.local/diabetes:1" and summary["buildContext"] is None
    assert summary["apply"] == f"kubectl apply -k {out}"
    objects = {o["kind"]: o for o in read_manifests(out)}
    assert objects["Service"]["spec"]["type"] == "LoadBalancer" and "Secret" not in objects
    assert lint(list(objects.values())) == []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"computeType": "aks", "numReplicas": 2, "autoScaler": {"autoscaleEnabled": True}}))
    refused = CliRunner().invoke(main, [
        "kubernetes", "manifests", "diabetes", "-w", str(diabetes.workspace.path), "-m", diabetes.model_id,
        "--ic", str(ic), "--dc", str(bad), "-o", str(tmp_path / "out2"),
    ])
    assert refused.exit_code == 1 and "autoscale_enabled and num_replicas cannot both be set" in refused.output
