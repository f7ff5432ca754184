"""The image the exported manifests name, built (Model.package) and run with ``docker run`` as the pod would be.

The container gets the Deployment's own environment, user and group, read-only root filesystem with a
writable ``/tmp`` (the pod's ``emptyDir``), dropped capabilities, no privilege escalation and the CPU and
memory limits; the readiness/liveness path and ``/score`` must answer on 127.0.0.1 as they would in a pod.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests
from conftest import Diabetes

from jupyter_mldeploy.deploy.ports import free_port
from jupyter_mldeploy.kubernetes import AksWebservice, export_manifests
from jupyter_mldeploy.kubernetes.manifests import read_manifests
from jupyter_mldeploy.registry import Model


def _cpu(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _mebibytes(value: str) -> int:
    assert value.endswith("Mi"), value
    return int(value[:-2])


def test_the_manifests_image_serves_under_the_pods_constraints(engine, diabetes: Diabetes, tmp_path: Path) -> None:
    config = AksWebservice.deploy_configuration(num_replicas=1, cpu_cores=0.5, memory_gb=0.5, memory_gb_limit=1,
                                                cpu_cores_limit=1, scoring_timeout_ms=10000, auth_enabled=False)
    exported = export_manifests(diabetes.workspace, "diabetes", [diabetes.model_id], diabetes.inference_config(),
                                config, tmp_path / "k8s")
    deployment = next(o for o in read_manifests(exported.directory) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]

    # The same inputs name the same image: building the package now gives the tag the manifests carry.
    package = Model.package(diabetes.workspace, [diabetes.model_id], diabetes.inference_config())
    assert package.location == container["image"]
    started = time.monotonic()
    package.wait_for_creation(show_output=False)
    print(f"\n[k8s] package image {package.location} built in {time.monotonic() - started:.1f} s")

    security = container["securityContext"]
    limits = container["resources"]["limits"]
    probe = container["readinessProbe"]["httpGet"]
    assert container["livenessProbe"]["httpGet"]["path"] == probe["path"] == "/"
    port = free_port("127.0.0.1")
    run = engine.containers.run(
        container["image"], detach=True,
        environment={e["name"]: e["value"] for e in container["env"]},
        user=f"{security['runAsUser']}:{security['runAsGroup']}",
        read_only=security["readOnlyRootFilesystem"],
        tmpfs={m["mountPath"]: "" for m in container["volumeMounts"]},  # the pod's emptyDir
        cap_drop=security["capabilities"]["drop"],
        security_opt=["no-new-privileges"] if not security["allowPrivilegeEscalation"] else [],
        nano_cpus=int(_cpu(limits["cpu"]) * 1e9), mem_limit=f"{_mebibytes(limits['memory'])}m",
        ports={f"{container['ports'][0]['containerPort']}/tcp": ("127.0.0.1", port)},
        labels={"mldeploy.kind": "k8s-smoke"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # the readiness probe: GET / answers only once init() returned
            try:
                ready = requests.get(base + probe["path"], timeout=container["readinessProbe"]["timeoutSeconds"])
                if ready.status_code == 200:
                    break
            except requests.RequestException:
                pass
            run.reload()
            assert run.status == "running", run.logs().decode(errors="replace")
            assert time.monotonic() < deadline, run.logs().decode(errors="replace")
            time.sleep(0.5)
        log = run.logs().decode(errors="replace")
        assert ready.text == "Healthy"
        answer = requests.post(base + "/score", json={"data": diabetes.samples}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert [round(v, 6) for v in answer.json()] == [round(v, 6) for v in diabetes.expected]
        assert requests.get(base + "/", timeout=2).status_code == 200  # the liveness probe, after a request
        run.reload()
        config_seen = run.attrs["HostConfig"]
        assert config_seen["ReadonlyRootfs"] and config_seen["NanoCpus"] == 1_000_000_000
        assert config_seen["Memory"] == 1024 * 1024 * 1024
        # A read-only root: nothing outside /tmp can be written; /tmp can.
        denied = run.exec_run(["python", "-c", "open('/var/azureml-app/x', 'w')"], user="1000:1000")
        allowed = run.exec_run(["python", "-c", "open('/tmp/x', 'w').write('ok')"], user="1000:1000")
        assert denied.exit_code != 0 and b"Read-only file system" in denied.output
        assert allowed.exit_code == 0
        assert "Traceback" not in log
    finally:
        run.remove(force=True)
