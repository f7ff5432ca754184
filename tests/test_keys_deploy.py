"""Service keys on the process target: deploy with auth_enabled, call with and without the key, regen_key under
a continuous caller on the other key, and the keys nowhere but their owner-only file."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
import requests
from fixtures.deploy_support import source_dir, train_ridge

from jupyter_mldeploy import DeploymentError, InvalidArgument, Model, ScoringError
from jupyter_mldeploy.actions import call_endpoint
from jupyter_mldeploy.deploy import LocalWebservice, Webservice
from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.inference_config import InferenceConfig


@pytest.fixture
def keyed(workspace, tmp_path: Path):
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(workspace, "keyed", [registered], config,
                           LocalWebservice.deploy_configuration(auth_enabled=True))
    try:
        service.wait_for_deployment(timeout_sec=120)
        yield service, model.predict(samples).tolist(), samples
    finally:
        service.delete()


def test_keys_guard_the_service_and_regenerate_without_a_failed_request(keyed, workspace) -> None:
    service, expected, samples = keyed
    primary, secondary = service.get_keys()
    assert len(primary) >= 43 and len(secondary) >= 43 and primary != secondary

    # the façade sends the key itself; a caller without it is refused on every protocol
    assert service.run({"data": samples}) == pytest.approx(expected)
    for uri in (service.scoring_uri, service.invocations_uri, f"{service.v2_uri}/models/diabetes"):
        answer = requests.post(uri, json={"data": samples, "inputs": samples}, timeout=10)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer", uri
    answer = requests.post(service.scoring_uri, json={"data": samples}, timeout=10,
                           headers={"Authorization": f"Bearer {secondary}"})
    assert answer.status_code == 200

    outcomes: list[int] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            outcomes.append(requests.post(service.scoring_uri, json={"data": samples}, timeout=30,
                                          headers={"Authorization": f"Bearer {secondary}"}).status_code)

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        service.regen_key("Primary")
        service.regen_key("Primary", set_key="my-own-primary-key-0123456789")
    finally:
        stop.set()
        thread.join(30)
    assert outcomes and set(outcomes) == {200}
    new_primary, same_secondary = service.get_keys()
    assert (new_primary, same_secondary) == ("my-own-primary-key-0123456789", secondary)
    with pytest.raises(ScoringError) as refused:
        service.run({"data": samples}, headers={"Authorization": f"Bearer {primary}"})
    assert refused.value.status_code == 401
    assert service.run({"data": samples}) == pytest.approx(expected)
    # a reload (new app folder, new workers) keeps the keys in force
    service.reload()
    assert requests.post(service.scoring_uri, json={"data": samples}, timeout=10).status_code == 401
    assert service.run({"data": samples}) == pytest.approx(expected)
    assert service.get_keys() == (new_primary, secondary)
    # every face calls through actions.call_endpoint, which sends the key too (single call and load test)
    assert call_endpoint("keyed", {"data": samples}, workspace, validate=False).response.status_code == 200
    report = call_endpoint("keyed", {"data": samples}, workspace, validate=False, repeat=4, concurrency=2).report
    assert report is not None and dict(report.statuses) == {200: 4}

    # owner-only file; no key in service.json, the logs, listings, or any other workspace file
    keys_file = workspace.path / "deployments" / "keyed" / "keys" / "keys.json"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_file.parent.stat().st_mode) == 0o700
    shown = json.dumps([service.serialize(), [s.serialize() for s in Webservice.list(workspace)],
                        service.deployment_config.serialize(), repr(service)]) + service.get_logs()
    for key in (primary, new_primary, secondary):
        assert key not in shown
        holders = [p for p in workspace.path.rglob("*") if p.is_file() and p != keys_file
                   and key.encode() in p.read_bytes()]
        assert holders == []


def test_key_arguments_and_refusals(workspace) -> None:
    with pytest.raises(InvalidArgument, match="Refusing to serve on '0.0.0.0' without key auth"):
        LocalWebservice.deploy_configuration(host="0.0.0.0")
    assert LocalWebservice.deploy_configuration(host="0.0.0.0", allow_unauthenticated=True).host == "0.0.0.0"
    assert LocalWebservice.deploy_configuration(host="0.0.0.0", auth_enabled=True).auth_enabled
    with pytest.raises(InvalidArgument, match="auth_enabled is not True"):
        LocalWebservice.deploy_configuration(primary_key="k" * 20)
    with pytest.raises(InvalidArgument, match="Invalid secondaryKey") as bad:
        LocalWebservice.deploy_configuration(auth_enabled=True, secondary_key="has spaces in it, 123")
    assert "has spaces" not in str(bad.value)  # a rejected key is never echoed
    config = DeploymentConfiguration.from_dict(
        {"computeType": "local", "authEnabled": True, "keys": {"primaryKey": "p" * 20}})
    assert config.keys == {"primaryKey": "p" * 20}
    assert "keys" not in config.serialize()


def test_get_keys_without_auth_says_how_to_turn_it_on(workspace, tmp_path: Path) -> None:
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    path, _, _ = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    service = Model.deploy(workspace, "open", [registered], config, LocalWebservice.deploy_configuration())
    try:
        with pytest.raises(DeploymentError, match="auth_enabled=True"):
            service.get_keys()
        with pytest.raises(InvalidArgument, match="'Primary' or 'Secondary'"):
            service.regen_key("Tertiary")
    finally:
        service.delete()
