"""Service keys on the Docker target: the container reads the owner-only keys file through its read-only mount,
sees a regenerated key with no restart, and holds no key in its environment, labels or log."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from conftest import DiabetesSetup

from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, ScoringError


def test_keys_on_a_container(engine, env_image: str, diabetes: DiabetesSetup, cleanup_services: list) -> None:
    config = LocalWebservice.deploy_configuration(runtime="docker", auth_enabled=True)
    service = Model.deploy(diabetes.workspace, "dk-keys", [diabetes.model_id],
                           InferenceConfig("score.py", source_directory=diabetes.source), config)
    cleanup_services.append(service)
    service.wait_for_deployment(timeout_sec=120)
    primary, secondary = service.get_keys()

    assert service.run({"data": diabetes.samples}) == pytest.approx(diabetes.expected)
    for uri in (service.scoring_uri, service.invocations_uri):
        answer = requests.post(uri, json={"data": diabetes.samples}, timeout=10)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"

    outcomes: list[int] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            outcomes.append(requests.post(service.scoring_uri, json={"data": diabetes.samples}, timeout=30,
                                          headers={"Authorization": f"Bearer {primary}"}).status_code)

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        service.regen_key("Secondary")
    finally:
        stop.set()
        thread.join(30)
    assert outcomes and set(outcomes) == {200}
    _, new_secondary = service.get_keys()
    with pytest.raises(ScoringError) as refused:
        service.run({"data": diabetes.samples}, headers={"Authorization": f"Bearer {secondary}"})
    assert refused.value.status_code == 401
    answer = requests.post(service.scoring_uri, json={"data": diabetes.samples}, timeout=10,
                           headers={"Authorization": f"Bearer {new_secondary}"})
    assert answer.status_code == 200

    attrs = engine.containers.get(service.container_id).attrs
    visible = json.dumps([attrs["Config"]["Env"], attrs["Config"]["Labels"]]) + service.get_logs()
    for key in (primary, secondary, new_secondary):
        assert key not in visible
    assert "MLDEPLOY_KEYS_FILE=/var/mldeploy/service/keys/keys.json" in attrs["Config"]["Env"]
