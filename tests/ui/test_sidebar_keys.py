"""The sidebar with a keyed service: a masked key row with a Copy key button, no key in the page, and the
request tester answered 200 (the score proxy sends the key). Real `jupyter lab` and Chromium (Playwright)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fixtures.deploy_support import source_dir, train_ridge
from lab_support import Lab, open_sidebar

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace


def test_keyed_service_shows_a_masked_key_and_answers_the_tester(
    tmp_path: Path, start_lab: Callable[[Path], Lab], browser: Any
) -> None:
    from playwright.sync_api import expect

    ws = Workspace.create(tmp_path / "ws")
    path, _, samples = train_ridge(tmp_path / "train")
    model = Model.register(ws, model_path=str(path), model_name="diabetes")
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(ws, "keyed", [model], config, LocalWebservice.deploy_configuration(auth_enabled=True))
    try:
        service.wait_for_deployment(timeout_sec=120)
        primary, secondary = service.get_keys()
        lab = start_lab(ws.path)
        page, sidebar = open_sidebar(browser, lab.open())
        row = sidebar.locator('.jp-MLDeploy-service[data-name="keyed"]')
        expect(row.locator(".jp-MLDeploy-state")).to_have_text("Healthy")
        expect(row.locator(".jp-MLDeploy-keyText")).to_have_text("Key: " + "\u2022" * 8)
        expect(row.get_by_role("button", name="Copy key")).to_be_visible()

        tester = sidebar.locator(".jp-MLDeploy-tester")
        tester.locator("textarea").fill(json.dumps({"data": samples}))
        tester.locator(".jp-MLDeploy-send").click()
        expect(tester.locator(".jp-MLDeploy-result")).to_contain_text("HTTP 200")
        content = page.content()
        assert primary not in content and secondary not in content
    finally:
        service.delete()
