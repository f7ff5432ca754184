"""The deployment-target contract, run against every target available here.

Each test runs once per target in :data:`TARGETS` (``process`` always; ``docker`` when an engine answers and
the offline base image exists, as ``scripts/docker-setup`` makes it). A new target passes the contract by
being added to that list. Every server is real: started on 127.0.0.1, called over HTTP, stopped by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from fixtures.deploy_support import LoadGenerator, source_dir, train_ridge

from jupyter_mldeploy import DeploymentError, InferenceConfig, LocalWebservice, Model, Webservice
from jupyter_mldeploy.errors import MLDeployError

#: Every target the contract runs against. Add a new target's name here.
TARGETS = ["process", "docker"]


def _docker_skip_reason() -> str | None:
    """Why the Docker target cannot run here, or None when it can."""
    try:
        from jupyter_mldeploy.docker.build import local_tags
        from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE
        from jupyter_mldeploy.docker.engine import docker_client

        client = docker_client()
    except MLDeployError as exc:
        return f"no Docker engine answers: {exc.message}"
    try:
        if LOCAL_BASE_IMAGE not in local_tags(client):
            return f"no local base image {LOCAL_BASE_IMAGE}: run scripts/docker-setup"
    finally:
        client.close()
    return None


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """The name of the target under test (skipped with the reason when it cannot run here)."""
    if request.param == "docker":
        reason = _docker_skip_reason()
        if reason:
            pytest.skip(f"docker target: {reason}")
    return str(request.param)


@pytest.fixture
def app(tmp_path: Path, workspace):
    """A registered Ridge model and a source folder running score_version.py (answers its VERSION)."""
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    src = source_dir(tmp_path, "score_version.py")
    return registered, src, samples, model


@pytest.fixture
def deployed(workspace, app, target: str):
    """A Healthy service of ``app`` on ``target``; deleted afterwards whatever happened."""
    registered, src, samples, model = app
    services: list[Webservice] = []

    def deploy(name: str = "contract", source: Path = src, **config) -> Webservice:
        ic = InferenceConfig("score.py", source_directory=source)
        service = Model.deploy(
            workspace, name, [registered], ic, LocalWebservice.deploy_configuration(runtime=target, **config)
        )
        services.append(service)
        return service

    yield deploy
    for service in services:
        try:
            service.delete()
        except MLDeployError:
            pass


def set_version(src: Path, version: str) -> None:
    script = src / "score.py"
    text = script.read_text()
    start = text.index('VERSION = "') + len('VERSION = "')
    script.write_text(text[:start] + version + text[text.index('"', start):])


def test_deploy_call_reattach_delete(deployed, app, workspace, target: str) -> None:
    _registered, _src, samples, model = app
    service = deployed()
    service.wait_for_deployment(timeout_sec=180)
    assert service.state == "Healthy" and service.runtime == target
    answer = service.run({"data": samples})
    assert answer["version"] == "v1" and answer["predictions"] == pytest.approx(model.predict(samples).tolist())

    # uptime: the server's start time is known and recent
    started = service.started_time
    assert started is not None and 0 <= (datetime.now(timezone.utc) - started).total_seconds() < 600
    assert service.serialize()["startedTime"] == started.isoformat()

    # re-attach from a new Python process: same state, same answer
    code = (
        "import json, sys\n"
        "from jupyter_mldeploy import Workspace, Webservice\n"
        f"s = Webservice(Workspace({str(workspace.path)!r}), 'contract')\n"
        f"print(json.dumps([type(s).__name__, str(s.state), s.run({{'data': {samples!r}}})['version']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    kind, state, version = json.loads(out.stdout.strip().splitlines()[-1])
    assert (kind, state, version) == (type(service).__name__, "Healthy", "v1")

    uri = service.scoring_uri
    service.delete()
    assert service.state == "Deleted"
    with pytest.raises(requests.RequestException):
        requests.get(uri.replace("/score", "/"), timeout=2)
    service.delete()  # idempotent


def test_init_failure_is_failed_with_traceback(deployed, tmp_path: Path) -> None:
    broken = source_dir(tmp_path / "broken", "score_init_fails.py")
    service = deployed("broken", source=broken)
    with pytest.raises(DeploymentError) as info:
        service.wait_for_deployment(timeout_sec=180)
    assert service.state == "Failed"
    assert "weights are missing" in (info.value.logs or "") + str(info.value)


def test_killed_server_reads_unhealthy_and_reload_revives_it(deployed, app, target: str) -> None:
    _registered, _src, samples, _model = app
    service = deployed()
    service.wait_for_deployment(timeout_sec=180)
    if target == "process":
        assert service.pid is not None
        os.killpg(service.pid, signal.SIGKILL)
    else:
        from jupyter_mldeploy.docker.engine import docker_client

        client = docker_client()
        client.containers.get(service.container_id).kill()
        client.close()
    deadline = time.monotonic() + 30
    while service.state != "Unhealthy":
        assert time.monotonic() < deadline, f"state is {service.state}, not Unhealthy, 30 s after the kill"
        time.sleep(0.1)
    assert service.error
    service.reload()
    service.wait_for_deployment(timeout_sec=180)
    assert service.run({"data": samples})["version"] == "v1"


def test_reload_and_update_under_load_lose_no_request(deployed, app, workspace, tmp_path: Path) -> None:
    registered, src, samples, _model = app
    service = deployed()
    service.wait_for_deployment(timeout_sec=180)
    body = json.dumps({"data": samples})
    path, _other, _ = train_ridge(tmp_path / "train2", alpha=0.5)
    second = Model.register(workspace, model_path=str(path), model_name="diabetes")
    with LoadGenerator(service.scoring_uri, body) as load:
        set_version(src, "v2")
        service.reload()
        load.wait_for_more(5)
        service.update(models=[second])
        load.wait_for_more(5)
    assert load.failures == []
    assert len(load.results) > 10
    assert service.run(body)["version"] == "v2" and service.model_ids == [second.id]
    assert service.state == "Healthy" and registered.id not in service.model_ids


def test_update_without_waiting_then_wait_for_deployment(deployed, app) -> None:
    _registered, src, samples, _model = app
    service = deployed()
    service.wait_for_deployment(timeout_sec=180)
    set_version(src, "v3")
    service.update(wait=False)
    assert service.state in ("Transitioning", "Healthy")
    service.wait_for_deployment(timeout_sec=180)
    assert service.state == "Healthy"
    assert service.run({"data": samples})["version"] == "v3"
    assert service._record().target_state.get("pending") is None


LOCAL_MODEL_SCORE = '''
import json
import os

import joblib

model = None


def init():
    global model
    # v1's "deploy using a local model": the file sits beside the script, AZUREML_MODEL_DIR is the empty root
    assert os.listdir(os.environ["AZUREML_MODEL_DIR"]) == []
    model = joblib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.pkl"))


def run(raw_data):
    return model.predict(json.loads(raw_data)["data"]).tolist()
'''


def test_deploy_without_a_registered_model(workspace, tmp_path: Path, target: str, capsys) -> None:
    """v1's "deploy using a local model": no registered model, the files come from the source directory."""
    path, model, samples = train_ridge(tmp_path / "local")
    (path.parent / "score.py").write_text(LOCAL_MODEL_SCORE)
    for models in ([], None):
        name = f"local-{target}-{'empty' if models == [] else 'none'}"
        service = Model.deploy(workspace, name, models, InferenceConfig("score.py", source_directory=path.parent),
                               LocalWebservice.deploy_configuration(runtime=target), show_output=True)
        try:
            assert "No registered model is served" in capsys.readouterr().out
            assert service.model_ids == [] and service.state == "Healthy"
            assert service.run({"data": samples}) == pytest.approx(model.predict(samples).tolist())
        finally:
            service.delete()
