"""The sidebar's test request through each wire protocol, on a service with key auth: pick Open Inference V2,
the editor holds the V2 example (one FP64 tensor), Send answers the V2 response from
``/v2/models/<model>/infer``; MLflow's ``/invocations`` likewise. Real `jupyter lab` and Chromium (Playwright).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.deploy_support import source_dir, train_ridge
from lab_support import ARTIFACTS, Lab, open_sidebar

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace


def editor_text(body: dict[str, Any]) -> str:
    """The editor's layout (``requestText`` in labextension/src/request.ts): one top-level key per line."""
    return "{\n" + ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in body.items()) + "\n}"


def test_tester_sends_v2_and_mlflow_requests_with_the_key(
    tmp_path: Path, start_lab: Callable[[Path], Lab], browser: Any
) -> None:
    from playwright.sync_api import expect

    ws = Workspace.create(tmp_path / "ws")
    path, ridge, samples = train_ridge(tmp_path / "train")
    model = Model.register(ws, model_path=str(path), model_name="diabetes", sample_input={"data": samples[:1]})
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(ws, "keyed", [model], config, LocalWebservice.deploy_configuration(auth_enabled=True))
    try:
        service.wait_for_deployment(timeout_sec=120)
        lab = start_lab(ws.path)
        page, sidebar = open_sidebar(browser, lab.open())
        expect(sidebar.locator('.jp-MLDeploy-service[data-name="keyed"] .jp-MLDeploy-state')).to_have_text("Healthy")
        tester = sidebar.locator(".jp-MLDeploy-tester")
        editor = tester.locator("textarea")
        protocol = tester.locator(".jp-MLDeploy-protocolSelect")
        expect(protocol).to_have_value("azureml")
        expect(editor).to_have_value(re.compile(r'^\{\n  "data": \[\['))

        # V2: the example becomes one tensor; the answer is the V2 response of the model's infer route
        protocol.select_option(label="Open Inference V2")
        rounded = [[float(f"{x:.4g}") for x in samples[0]]]
        v2_example = [{"name": "data", "shape": [1, 10], "datatype": "FP64", "data": rounded}]
        expect(editor).to_have_value(editor_text({"inputs": v2_example}))
        tensor = json.loads(editor.input_value())["inputs"][0]
        tester.locator(".jp-MLDeploy-send").click()
        status = tester.locator(".jp-MLDeploy-status")
        expect(status).to_have_attribute("data-status", "200")
        expect(tester.locator(".jp-MLDeploy-resultUri")).to_have_text(f"POST {service.v2_uri}/models/diabetes/infer")
        answer = json.loads(tester.locator(".jp-MLDeploy-responseBody").inner_text())
        assert answer["model_name"] == "diabetes" and answer["model_version"] == "1"
        (output,) = answer["outputs"]
        assert output["name"] == "output-0" and output["datatype"] == "FP64" and output["shape"] == [1]
        assert output["data"] == pytest.approx(ridge.predict(tensor["data"]).tolist())
        page.screenshot(path=str(ARTIFACTS / "sidebar-v2.png"))

        # MLflow: the rows as "inputs", answered {"predictions": ...}; the V2 answer went with its request
        protocol.select_option("mlflow")
        expect(tester.locator(".jp-MLDeploy-status")).to_have_count(0)
        expect(editor).to_have_value(editor_text({"inputs": tensor["data"]}))
        tester.locator(".jp-MLDeploy-send").click()
        expect(status).to_have_attribute("data-status", "200")
        expect(tester.locator(".jp-MLDeploy-resultUri")).to_have_text(f"POST {service.invocations_uri}")
        answer = json.loads(tester.locator(".jp-MLDeploy-responseBody").inner_text())
        assert answer["predictions"] == pytest.approx(ridge.predict(tensor["data"]).tolist())

        # a body in another protocol's format: MLflow's own refusal is the answer shown
        editor.fill(json.dumps({"data": samples}))
        tester.locator(".jp-MLDeploy-send").click()
        expect(status).to_have_attribute("data-status", "400")
        expect(tester.locator(".jp-MLDeploy-responseBody")).to_contain_text("BAD_REQUEST")
    finally:
        service.delete()
