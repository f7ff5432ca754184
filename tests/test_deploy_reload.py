"""reload() and update() under continuous load: every request answers 200 while the service switches."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psutil
import pytest
import requests
from fixtures.deploy_support import LoadGenerator, source_dir, train_ridge

from jupyter_mldeploy import DeploymentError, Model
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig


@pytest.fixture
def versioned(tmp_path: Path, workspace):
    """A healthy service running score_version.py (answers {"version": VERSION, ...}) and its source folder."""
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    src = source_dir(tmp_path, "score_version.py")
    ic = InferenceConfig("score.py", source_directory=src)
    service = Model.deploy(workspace, "live", [registered], ic, LocalWebservice.deploy_configuration())
    try:
        service.wait_for_deployment(timeout_sec=120)
        yield service, src, samples, model
    finally:
        service.delete()


def set_version(src: Path, version: str, init_fails: bool = False) -> None:
    script = src / "score.py"
    text = script.read_text()
    start = text.index('VERSION = "')
    end = text.index('"', start + len('VERSION = "'))
    text = text[:start] + f'VERSION = "{version}' + text[end:]
    if init_fails:
        text = text.replace("def init():\n", "def init():\n    raise ValueError('broken on purpose')\n")
    script.write_text(text)


def versions(load: LoadGenerator) -> list[str]:
    return [payload["version"] for status, payload in load.results if status == 200]


def test_reload_under_load_loses_no_request(versioned):
    service, src, samples, _model = versioned
    body = json.dumps({"data": samples})
    first_app = service.app_folder
    set_version(src, "v2")
    assert service.run(body)["version"] == "v1"  # editing the source changes nothing until reload
    with LoadGenerator(service.scoring_uri, body) as load:
        service.reload()
        load.wait_for_more(5)
    assert load.failures == []
    seen = versions(load)
    # Both generations answer while they overlap; once the switch is done only the new one does.
    assert seen[0] == "v1" and set(seen[-5:]) == {"v2"}
    assert len(seen) > 10
    assert service.run(body)["version"] == "v2"
    assert not first_app.exists() and service.app_folder.exists()
    assert service.state == "Healthy"


def test_update_models_under_load(versioned, tmp_path: Path, workspace):
    service, _src, samples, model = versioned
    path, other, _ = train_ridge(tmp_path / "train2", alpha=0.01)
    v2 = Model.register(workspace, model_path=str(path), model_name="diabetes")
    body = json.dumps({"data": samples})
    old = model.predict(samples).tolist()
    new = other.predict(samples).tolist()
    assert old != pytest.approx(new)
    with LoadGenerator(service.scoring_uri, body) as load:
        service.update(models=[v2])
        load.wait_for_more(5)
    assert load.failures == []
    predictions = [payload["predictions"] for status, payload in load.results]
    assert predictions[0] == pytest.approx(old) and predictions[-1] == pytest.approx(new)
    assert service.model_ids == ["diabetes:2"]
    with workspace.connect() as conn:
        rows = conn.execute("SELECT model_name, model_version FROM service_models").fetchall()
    assert [tuple(r) for r in rows] == [("diabetes", 2)]
    model_dir = service.app_folder / "azureml-models" / "diabetes"
    assert sorted(p.name for p in model_dir.iterdir()) == ["2"]


def test_failed_reload_keeps_the_old_version_serving(versioned):
    service, src, samples, _model = versioned
    body = json.dumps({"data": samples})
    app = service.app_folder
    set_version(src, "v3", init_fails=True)
    with LoadGenerator(service.scoring_uri, body) as load:
        with pytest.raises(DeploymentError) as info:
            service.reload()
    assert "previous version keeps serving" in info.value.summary
    assert "broken on purpose" in info.value.logs
    assert load.failures == [] and set(versions(load)) == {"v1"}
    assert service.run(body)["version"] == "v1"
    assert service.state == "Healthy" and service.app_folder == app
    assert not (app.parent / f"app-{int(app.name.split('-')[1]) + 1}").exists()
    # fixed code reloads fine afterwards
    set_version(src, "v4")
    src.joinpath("score.py").write_text(src.joinpath("score.py").read_text().replace(
        "    raise ValueError('broken on purpose')\n", ""))
    service.reload()
    assert service.run(body)["version"] == "v4"


def test_reload_without_waiting_then_wait(versioned):
    service, src, samples, _model = versioned
    set_version(src, "v5")
    service.reload(wait=False)
    assert service.state in ("Transitioning", "Healthy")
    service.wait_for_deployment(timeout_sec=120)
    assert service.run({"data": samples})["version"] == "v5"
    assert service._record().target_state.get("pending") is None
    assert len([p for p in service.app_folder.parent.iterdir() if p.name.startswith("app-")]) == 1


def test_overwrite_deploy_updates_in_place(versioned, workspace):
    service, src, samples, _model = versioned
    pid = service.pid
    set_version(src, "v6")
    ic = InferenceConfig("score.py", source_directory=src)
    again = Model.deploy(workspace, "live", ["diabetes:1"], ic, overwrite=True, show_output=False)
    again.wait_for_deployment(timeout_sec=120)
    assert again.pid == pid  # same supervisor: zero downtime, no restart
    assert again.run({"data": samples})["version"] == "v6"


def test_update_to_a_new_port_starts_new_then_stops_old(versioned):
    service, _src, samples, _model = versioned
    old_port, old_pid = service.port, service.pid
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]
    service.update(deployment_config=LocalWebservice.deploy_configuration(port=new_port))
    assert service.port == new_port and service.pid != old_pid
    assert service.run({"data": samples})["version"] == "v1"
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{old_port}/", timeout=2)
