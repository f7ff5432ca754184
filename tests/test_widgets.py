"""The panels, without a browser: build them, set values, click buttons, assert on traits (real services)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jupyter_mldeploy.deploy import Webservice, deploy_model
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.notebook.widgets import (
    DeploymentsPanel,
    EndpointTester,
    MLDeployPanel,
    RegistryPanel,
    panel,
)
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace

SCORE = '''
import html
import json
import os

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema


def init():
    global factor
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.json")) as handle:
        factor = json.load(handle)["factor"]


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
def run(data):
    return (data.sum(axis=1) * factor).tolist()
'''

RAW_SCORE = '''
import html
import json


def init():
    pass


def run(raw_data):
    return {"echo": json.loads(raw_data)}
'''


def _wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def ws(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace with model ``factor:1`` (factor 2, with a sample input) and score.py files in the cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factor.json").write_text(json.dumps({"factor": 2.0}))
    (tmp_path / "score.py").write_text(SCORE)
    (tmp_path / "raw_score.py").write_text(RAW_SCORE)
    Model.register(workspace, "factor.json", "factor", tags={"stage": "dev"}, description="doubles",
                   sample_input={"data": [[1.0, 1.0, 1.0]]})
    yield workspace
    for service in Webservice.list(workspace):
        service.delete()


def test_registry_panel_shows_versions_and_details(ws: Workspace) -> None:
    registry = RegistryPanel(ws)
    assert registry.model_select.options == ("factor",)
    assert registry.version_select.value == 1
    details = registry.details.value
    assert "factor:1" in details and "stage=dev" in details and "doubles" in details
    assert "factor.json" in details and "Lineage" in details
    assert registry.deploy_service.value == "factor-svc"


def test_registry_panel_registers_downloads_and_deletes(ws: Workspace, tmp_path: Path) -> None:
    registry = RegistryPanel(ws)
    (tmp_path / "factor3.json").write_text(json.dumps({"factor": 3.0}))
    registry.register_path.value = "factor3.json"
    registry.register_name.value = "factor"
    registry.register_tags.value = "stage=prod, owner=me"
    registry.register_description.value = "triples"
    registry.register_button.click()
    assert registry.message.text == "Registered factor:2." and not registry.message.is_error
    assert registry.version_select.value == 2
    assert Model(ws, "factor", version=2).tags == {"stage": "prod", "owner": "me"}

    registry.download_dir.value = str(tmp_path / "out")
    registry.download_button.click()
    assert json.loads((tmp_path / "out" / "factor3.json").read_text()) == {"factor": 3.0}

    # Delete asks first; cancel keeps the version.
    registry.delete_button.click()
    assert registry.confirm_box.layout.display == "flex" and "factor:2" in registry.confirm_label.value
    registry.cancel_button.click()
    assert registry.confirm_box.layout.display == "none"
    assert [m.version for m in Model.list(ws, name="factor")] == [2, 1]
    registry.delete_button.click()
    registry.confirm_button.click()
    assert registry.message.text == "Deleted factor:2."
    assert [m.version for m in Model.list(ws, name="factor")] == [1]
    assert registry.version_select.options == (("1", 1),)


def test_registry_panel_reports_errors_in_its_message_line(ws: Workspace) -> None:
    registry = RegistryPanel(ws)
    registry.register_path.value = "missing.pkl"
    registry.register_name.value = "x"
    registry.register_button.click()
    assert registry.message.is_error and "does not exist" in registry.message.text
    registry.register_path.value = "factor.json"
    registry.register_name.value = "bad/name"
    registry.register_button.click()
    assert registry.message.is_error and "Invalid model name" in registry.message.text


def test_deploy_this_version_then_delete_refused_while_served(ws: Workspace) -> None:
    registry = RegistryPanel(ws)
    deployed = []
    registry.on_deploy(deployed.append)
    registry.deploy_service.value = "factor-svc"
    registry.deploy_button.click()
    assert not registry.message.is_error, registry.message.text
    assert [s.name for s in deployed] == ["factor-svc"]
    service = Webservice(ws, "factor-svc")
    assert service.state == "Healthy" and service.model_ids == ["factor:1"]
    assert service.run({"data": [[1, 2, 3]]}) == [12.0]
    # The registry refuses to delete a served version; the panel says so.
    registry.delete_button.click()
    registry.confirm_button.click()
    assert registry.message.is_error and "factor-svc" in registry.message.text


def test_deployments_panel_rows_logs_reload_delete(ws: Workspace, tmp_path: Path) -> None:
    deploy_model(ws, "svc", ["factor:1"], InferenceConfig("raw_score.py")).wait_for_deployment()
    deployments = DeploymentsPanel(ws, auto_refresh=False)
    try:
        row = deployments.rows["svc"]
        assert "Healthy" in row.badge.value
        service = Webservice(ws, "svc")
        assert str(service.port) in row.info.value and "factor:1" in row.info.value
        assert service.scoring_uri in row.info.value

        row.logs_button.click()
        assert deployments.log_service == "svc"
        assert "Worker with pid" in deployments.log_view.value or "started worker" in deployments.log_view.value

        # Reload serves the edited script without another deploy.
        (tmp_path / "raw_score.py").write_text(RAW_SCORE.replace('"echo"', '"reloaded"'))
        row.reload_button.click()
        assert deployments.message.text == "Reloaded svc.", deployments.message.text
        assert service.run({"a": 1}) == {"reloaded": {"a": 1}}

        row.delete_button.click()
        assert row.confirm_box.layout.display == "flex"
        row.confirm_button.click()
        assert deployments.message.text == "Deleted svc."
        assert "svc" not in deployments.rows
        assert Webservice.list(ws) == []
    finally:
        deployments.close()


def test_deployments_panel_refreshes_live_in_the_background(ws: Workspace) -> None:
    deployments = DeploymentsPanel(ws, interval=0.1)
    try:
        assert deployments.running and deployments.rows == {}
        # Deployed from elsewhere (another cell, the CLI): the row appears and turns Healthy by itself.
        deploy_model(ws, "live", ["factor:1"], InferenceConfig("raw_score.py"))
        _wait_for(lambda: "live" in deployments.rows and "Healthy" in deployments.rows["live"].badge.value)
        deployments.rows["live"].logs_button.click()
        Webservice(ws, "live").run({"marker": "followed"})
        # The log viewer follows the tail: the request's access line shows up without another click.
        _wait_for(lambda: "POST /score 200" in deployments.log_view.value)
        Webservice(ws, "live").delete()
        _wait_for(lambda: "live" not in deployments.rows)
    finally:
        deployments.stop()
    assert not deployments.running
    count = deployments.refresh_count
    time.sleep(0.3)
    assert deployments.refresh_count == count, "the refresh thread kept running after stop()"


def test_endpoint_tester_prefills_validates_and_sends(ws: Workspace) -> None:
    deploy_model(ws, "svc", ["factor:1"], InferenceConfig("score.py")).wait_for_deployment()
    tester = EndpointTester(ws)
    assert tester.service_select.value == "svc"
    # Prefilled from the schema's example (the decorator's sample).
    assert json.loads(tester.request.value) == {"data": [[1.0, 2.0, 3.0]]}
    tester.send_button.click()
    assert "HTTP 200" in tester.status.value
    assert tester.last_response.body == [12.0]
    assert "12.0" in tester.response.value

    tester.request.value = '{"data": [[1, "x", 3]]}'
    tester.send_button.click()
    assert "Not sent" in tester.status.value and "data[0][1]" in tester.status.value

    tester.request.value = "{not json"
    tester.send_button.click()
    assert "not JSON" in tester.status.value

    tester.request.value = '{"data": [[1, 1, 1]]}'
    tester.repeat.value = 25
    tester.send_button.click()
    assert tester.last_report.count == 25 and tester.last_report.failures == 0
    assert "p50" in tester.status.value and "p99" in tester.status.value


def test_endpoint_tester_calls_a_keyed_service_through_each_protocol(ws: Workspace) -> None:
    from jupyter_mldeploy.deploy import LocalWebservice

    config = LocalWebservice.deploy_configuration(auth_enabled=True)
    service = deploy_model(ws, "keyed", ["factor:1"], InferenceConfig("score.py"), config)
    service.wait_for_deployment()
    tester = EndpointTester(ws)
    assert [value for _, value in tester.protocol.options] == ["azureml", "v2", "mlflow"]
    assert tester.protocol.value == "azureml"
    assert json.loads(tester.request.value) == {"data": [[1.0, 2.0, 3.0]]}

    # V2: the example becomes one FP64 tensor named after run()'s parameter, sent to the model's infer route
    tester.protocol.value = "v2"
    assert json.loads(tester.request.value) == {
        "inputs": [{"name": "data", "shape": [1, 3], "datatype": "FP64", "data": [[1.0, 2.0, 3.0]]}]}
    tester.send_button.click()
    assert "HTTP 200" in tester.status.value, tester.status.value
    assert f"{service.v2_uri}/models/factor/infer" in tester.status.value
    answer = tester.last_response.body
    assert answer["model_name"] == "factor" and answer["model_version"] == "1"
    assert answer["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [1], "data": [12.0]}]
    assert '"model_name": "factor"' in html.unescape(tester.response.value)

    # MLflow: the rows as "inputs", posted to /invocations
    tester.protocol.value = "mlflow"
    assert json.loads(tester.request.value) == {"inputs": [[1.0, 2.0, 3.0]]}
    assert tester.status.value == "" and tester.response.value == ""  # the V2 answer went with its request
    tester.send_button.click()
    assert f"POST {service.invocations_uri}" in tester.status.value
    assert tester.last_response.status_code == 200 and tester.last_response.body == {"predictions": [12.0]}

    # A load test goes through the chosen protocol too, every request with the key
    tester.repeat.value = 10
    tester.send_button.click()
    assert tester.last_report.count == 10 and tester.last_report.failures == 0, tester.status.value
    tester.repeat.value = 1

    # A body in the wrong protocol's format gets that protocol's own error, shown as the answer
    tester.request.value = json.dumps({"data": [[1.0, 2.0, 3.0]]})
    tester.send_button.click()
    assert "HTTP 400" in tester.status.value and "exactly one of the input fields" in html.unescape(tester.response.value)

    tester.protocol.value = "azureml"
    tester.send_button.click()
    assert tester.last_response.body == [12.0]
    # The key was needed: the same request without it is refused
    import requests

    assert requests.post(service.scoring_uri, json={"data": [[1.0, 2.0, 3.0]]}, timeout=30).status_code == 401
    assert requests.post(service.invocations_uri, json={"inputs": [[1.0, 2.0, 3.0]]}, timeout=30).status_code == 401


def test_endpoint_tester_protocol_errors_are_named(ws: Workspace, tmp_path: Path) -> None:
    # A ragged sample has no V2 tensor form; MLflow takes it as rows.
    deploy_model(ws, "raw", ["factor:1"], InferenceConfig("raw_score.py")).wait_for_deployment()
    Model.register(ws, "factor.json", "ragged", sample_input={"data": [[1.0, 2.0], [3.0]]})
    deploy_model(ws, "ragged-svc", ["ragged:1"], InferenceConfig("raw_score.py")).wait_for_deployment()
    tester = EndpointTester(ws)
    tester.service_select.value = "raw"
    tester.protocol.value = "v2"
    tester.send_button.click()
    # run() answers {"echo": {...}}: V2 has no tensor for a nested dict, and the server's reason is shown
    assert "HTTP 500" in tester.status.value and "/v2/models/factor/infer" in tester.status.value
    assert "has no tensor form" in html.unescape(tester.response.value)
    tester.service_select.value = "ragged-svc"
    assert tester.message.is_error and "no tensor form" in tester.message.text
    tester.protocol.value = "mlflow"
    assert not tester.message.is_error and json.loads(tester.request.value) == {"inputs": [[1.0, 2.0], [3.0]]}


def test_endpoint_tester_falls_back_to_the_models_sample_input(ws: Workspace) -> None:
    deploy_model(ws, "raw", ["factor:1"], InferenceConfig("raw_score.py")).wait_for_deployment()
    tester = EndpointTester(ws)
    assert json.loads(tester.request.value) == {"data": [[1.0, 1.0, 1.0]]}
    tester.send_button.click()
    assert tester.last_response.body == {"echo": {"data": [[1.0, 1.0, 1.0]]}}


def test_panel_tabs_and_deploy_refreshes_the_others(ws: Workspace) -> None:
    shown = panel(ws, interval=0.2)
    try:
        assert isinstance(shown, MLDeployPanel)
        assert shown.titles == ("Registry", "Deployments", "Test endpoint", "Runs", "Data drift")
        shown.registry.deploy_service.value = "from-panel"
        shown.registry.deploy_button.click()
        assert "from-panel" in shown.deployments.rows
        assert shown.tester.service_select.value == "from-panel"
    finally:
        shown.close()
    assert not shown.deployments.running


def test_top_level_panel_function(ws: Workspace) -> None:
    import jupyter_mldeploy

    shown = jupyter_mldeploy.panel(ws.path)
    try:
        assert shown.workspace == ws
    finally:
        shown.close()


def test_the_panel_never_creates_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_mldeploy.errors import NotFound

    with pytest.raises(NotFound, match="mldeploy workspace create"):
        panel(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    monkeypatch.chdir(tmp_path)
    for build in (RegistryPanel, DeploymentsPanel, EndpointTester):
        with pytest.raises(NotFound, match="No workspace found"):
            build()
    assert not (tmp_path / ".mldeploy").exists()


def test_profile_this_version_recommends_and_leaves_no_service(ws: Workspace) -> None:
    """The panel's Profile action (v1's Model.profile with the version's sample_input)."""
    from jupyter_mldeploy.deploy.profile import list_profiles

    registry = RegistryPanel(ws)
    registry.profile_button.click()
    assert not registry.message.is_error, registry.message.text
    assert registry.message.text.startswith("factor:1: ") and "CPU" in registry.message.text
    assert Webservice.list(ws) == []  # the temporary service is gone
    assert [p.name for p in list_profiles(ws)] == ["factor-1-panel"]
    Model.register(ws, "factor.json", "nosample")
    registry.refresh()
    registry.model_select.value = "nosample"
    registry.profile_button.click()
    assert registry.message.is_error and "no sample_input" in registry.message.text
