"""The Docker runtime with a real engine: deploy, call, limits, reload under load, re-attach, failures, delete."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from conftest import FIXTURES, DiabetesSetup
from deploy_support import LoadGenerator

from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Webservice
from jupyter_mldeploy.deploy.ports import free_port
from jupyter_mldeploy.errors import Conflict, DeploymentError


def _deploy(diabetes: DiabetesSetup, name: str, script_dir=None, **config_kwargs):
    config = LocalWebservice.deploy_configuration(runtime="docker", **config_kwargs)
    inference = InferenceConfig("score.py", source_directory=script_dir or diabetes.source)
    return Model.deploy(diabetes.workspace, name, [diabetes.model_id], inference, config)


@pytest.fixture(scope="module")
def service(engine, env_image: str, diabetes: DiabetesSetup):
    """One Healthy container for the module (the image is the session's)."""
    started = time.monotonic()
    svc = _deploy(diabetes, "dk-main", cpu_cores=0.5, memory_gb=0.5)
    svc.wait_for_deployment(timeout_sec=120)
    print(f"\n[docker] deploy with cached image: Healthy in {time.monotonic() - started:.1f} s")
    yield svc
    svc.delete()


def test_deploy_and_call(service, diabetes: DiabetesSetup, env_image: str) -> None:
    assert service.state == "Healthy" and service.state == "running"
    assert service.runtime == "docker" and service.image == env_image
    assert service.run({"data": diabetes.samples}) == pytest.approx(diabetes.expected)
    response = requests.post(service.scoring_uri, json={"data": diabetes.samples}, timeout=10)
    assert response.status_code == 200 and response.headers["x-ms-run-function-failed"] == "False"
    assert requests.get(service.swagger_uri, timeout=10).json()["swagger"] == "2.0"
    logs = service.get_logs()
    assert "init" in logs and "POST /score 200" in logs
    data = service.serialize()
    assert data["state"] == "Healthy" and data["container"].startswith("mldeploy-dk-main-")


def test_container_is_locked_down_and_limited(service, engine, diabetes: DiabetesSetup) -> None:
    attrs = engine.containers.get(service.container_id).attrs
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 512 * 1024**2
    bindings = host["PortBindings"]["5001/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(service.port)}]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/var/mldeploy/service"]["RW"] is False
    assert mounts["/var/mldeploy/run"]["RW"] is True
    labels = attrs["Config"]["Labels"]
    assert labels["mldeploy.service"] == "dk-main"
    assert labels["mldeploy.workspace"] == str(diabetes.workspace.path.resolve())
    record = json.loads(labels["mldeploy.record"])
    assert record["target"] == "docker" and record["port"] == service.port
    # The models are visible read-only inside: writing fails.
    result = engine.containers.get(service.container_id).exec_run(
        ["sh", "-c", "touch $AZUREML_MODEL_DIR/x 2>/dev/null && echo writable || echo read-only"]
    )
    assert result.output.decode().strip().endswith("read-only")


def test_reattach_from_a_new_process(service, diabetes: DiabetesSetup) -> None:
    code = (
        "import json, sys\n"
        "from jupyter_mldeploy import Webservice, Workspace\n"
        f"svc = Webservice(Workspace({str(diabetes.workspace.path)!r}), 'dk-main')\n"
        f"out = svc.run({{'data': {diabetes.samples!r}}})\n"
        "print(json.dumps([type(svc).__name__, str(svc.state), svc.scoring_uri, out]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    kind, state, uri, out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (kind, state, uri) == ("DockerWebservice", "Healthy", service.scoring_uri)
    assert out == pytest.approx(diabetes.expected)
    listed = {s.name: type(s).__name__ for s in Webservice.list(diabetes.workspace)}
    assert listed["dk-main"] == "DockerWebservice"


def test_changed_score_reloads_without_rebuild_and_no_failed_request(service, engine, diabetes: DiabetesSetup) -> None:
    container_before, image_before = service.container_id, service.image
    script = diabetes.source / "score.py"
    original = script.read_text()
    script.write_text(original.replace("return result.tolist()", "return {'version': 2, 'predictions': result.tolist()}"))
    try:
        with LoadGenerator(service.scoring_uri, json.dumps({"data": diabetes.samples})) as load:
            started = time.monotonic()
            service.reload()
            elapsed = time.monotonic() - started
            time.sleep(0.3)
        print(f"\n[docker] reload of a changed score.py (no image build): {elapsed:.2f} s, "
              f"{len(load.results)} requests during it")
        statuses = [status for status, _ in load.results]
        assert statuses and all(status == 200 for status in statuses), [s for s in statuses if s != 200][:3]
        assert any(isinstance(body, dict) and body.get("version") == 2 for _, body in load.results)
        assert service.run({"data": diabetes.samples})["predictions"] == pytest.approx(diabetes.expected)
        assert (service.container_id, service.image) == (container_before, image_before)
        assert service.app_folder.name == "app-2" and not (service.app_folder.parent / "app-1").exists()
        assert elapsed < 30
    finally:
        script.write_text(original)


def test_update_port_and_limits_starts_a_new_container(engine, env_image: str, diabetes: DiabetesSetup,
                                                       cleanup_services: list) -> None:
    svc = _deploy(diabetes, "dk-update")
    cleanup_services.append(svc)
    svc.wait_for_deployment(timeout_sec=120)
    old_container = svc.container_id
    assert engine.containers.get(old_container).attrs["HostConfig"]["NanoCpus"] == 0
    new_port = free_port()
    config = LocalWebservice.deploy_configuration(port=new_port, runtime="docker", cpu_cores=1, memory_gb=1)
    svc.update(deployment_config=config)
    assert svc.port == new_port and svc.state == "Healthy" and svc.container_id != old_container
    assert svc.run({"data": diabetes.samples}) == pytest.approx(diabetes.expected)
    assert engine.containers.get(svc.container_id).attrs["HostConfig"]["NanoCpus"] == 1_000_000_000
    from docker.errors import NotFound

    with pytest.raises(NotFound):
        engine.containers.get(old_container)


def test_init_failure_is_failed_with_traceback(engine, env_image: str, diabetes: DiabetesSetup, tmp_path,
                                               cleanup_services: list) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "score.py").write_text((FIXTURES / "score_init_fails.py").read_text())
    svc = _deploy(diabetes, "dk-bad", script_dir=folder)
    cleanup_services.append(svc)
    with pytest.raises(DeploymentError) as info:
        svc.wait_for_deployment(timeout_sec=120)
    assert "Failed" in info.value.summary
    assert "weights are missing" in info.value.logs
    assert svc.state == "Failed"


def test_name_taken_and_delete(engine, env_image: str, diabetes: DiabetesSetup, cleanup_services: list) -> None:
    svc = _deploy(diabetes, "dk-delete")
    cleanup_services.append(svc)
    svc.wait_for_deployment(timeout_sec=120)
    with pytest.raises(Conflict, match="already exists"):
        _deploy(diabetes, "dk-delete")
    container, folder = svc.container_id, diabetes.workspace.deployments_dir / "dk-delete"
    svc.delete()
    assert svc.state == "Deleted" and not folder.exists()
    from docker.errors import NotFound

    with pytest.raises(NotFound):
        engine.containers.get(container)
    assert engine.images.get(env_image)  # delete_image=False keeps the shared environment image
