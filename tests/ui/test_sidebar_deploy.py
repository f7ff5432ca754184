"""The sidebar's Deploy action on a model registered with a framework (no-code deployment): the dialog asks
for the service name (default: the model's), the server deploys in the background, the Services list shows the
service Healthy, and the test request calls it; a model without a framework is refused with the way out, and
deploying again under a taken name offers to update the service; a deployment failing in the background is
listed with its reason until dismissed. Real `jupyter lab` and Chromium (Playwright).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab_support import ARTIFACTS, Lab, open_sidebar
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.workspace import Workspace

#: An environment build with an empty uv cache, then the service's init(), on a loaded 2-core machine.
DEPLOY_TIMEOUT_MS = 240_000


def test_deploy_a_framework_model_from_the_sidebar_then_call_it(
    tmp_path: Path, start_lab: Callable[[Path], Lab], browser: Any
) -> None:
    from playwright.sync_api import expect

    ws = Workspace.create(tmp_path / "ws")
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    (tmp_path / "iris.pkl").write_bytes(pickle.dumps(model))
    Model.register(ws, model_path=str(tmp_path / "iris.pkl"), model_name="iris",
                   model_framework=Model.Framework.SCIKITLEARN)
    Model.register(ws, model_path=str(tmp_path / "iris.pkl"), model_name="plain")  # no framework
    folder = tmp_path / "mlflow-broken"  # passes the quick checks; its environment does not build
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "requirements.txt").write_text("no-such-package-mldeploy-xyz==1.0\n")
    Model.register(ws, model_path=folder, model_name="broken", model_framework=Model.Framework.MLFLOW)
    rows = X[::50].tolist()
    try:
        lab = start_lab(ws.path)
        page, sidebar = open_sidebar(browser, lab.open())
        expect(sidebar.locator(".jp-MLDeploy-services")).to_contain_text("No services deployed.")
        broken = sidebar.locator('.jp-MLDeploy-version[data-id="broken:1"]')

        # the version shows its framework; Deploy asks for the service name, the model's by default
        version = sidebar.locator('.jp-MLDeploy-version[data-id="iris:1"]')
        expect(version.locator(".jp-MLDeploy-framework")).to_have_text("ScikitLearn")
        version.locator(".jp-MLDeploy-deployButton").click()
        dialog = page.locator(".jp-Dialog", has_text="Deploy iris:1 with no code")
        expect(dialog.locator("input")).to_have_value("iris")
        dialog.locator(".jp-mod-accept").click()
        expect(dialog).to_have_count(0)

        # under way in the background, then the service itself, Healthy
        service = sidebar.locator('.jp-MLDeploy-service[data-name="iris"]')
        pending = sidebar.locator('.jp-MLDeploy-deploy[data-service="iris"]')
        expect(pending.or_(service)).not_to_have_count(0)
        expect(service.locator(".jp-MLDeploy-state")).to_have_text("Healthy", timeout=DEPLOY_TIMEOUT_MS)
        expect(service.locator(".jp-MLDeploy-serviceModels")).to_have_text("iris:1")
        expect(pending).to_have_count(0)
        expect(sidebar.locator(".jp-MLDeploy-error")).to_be_hidden()

        # call it from the test request
        tester = sidebar.locator(".jp-MLDeploy-tester")
        tester.locator(".jp-MLDeploy-serviceSelect").select_option("iris")
        tester.locator("textarea").fill(json.dumps({"data": rows}))
        tester.locator(".jp-MLDeploy-send").click()
        expect(tester.locator(".jp-MLDeploy-status")).to_have_attribute("data-status", "200")
        answer = json.loads(tester.locator(".jp-MLDeploy-responseBody").inner_text())
        assert answer == model.predict(rows).tolist()
        assert Webservice(ws, "iris").run({"data": rows}) == model.predict(rows).tolist()
        page.screenshot(path=str(ARTIFACTS / "sidebar-deploy.png"))

        # the name is taken: the sidebar offers to update the service; cancelling changes nothing
        version.locator(".jp-MLDeploy-deployButton").click()
        page.locator(".jp-Dialog", has_text="Deploy iris:1 with no code").locator(".jp-mod-accept").click()
        exists = page.locator(".jp-Dialog", has_text="Service exists")
        expect(exists).to_contain_text("Update it to serve iris:1")
        exists.locator(".jp-mod-reject").click()
        expect(exists).to_have_count(0)

        # a model without a framework: refused at once, the notice says how to give an entry script
        sidebar.locator('.jp-MLDeploy-version[data-id="plain:1"] .jp-MLDeploy-deployButton').click()
        page.locator(".jp-Dialog", has_text="Deploy plain:1 with no code").locator(".jp-mod-accept").click()
        notice = sidebar.locator(".jp-MLDeploy-error")
        expect(notice).to_contain_text("registered without model_framework")
        expect(notice).to_contain_text("%deploy_local plain --model plain:1 --entry score.py")
        assert [s.name for s in Webservice.list(ws)] == ["iris"]
        notice.locator(".jp-MLDeploy-dismiss").click()

        # a deployment failing in the background (requirements that do not install): a Failed row with the
        # reason and a notice, until dismissed
        broken.locator(".jp-MLDeploy-deployButton").click()
        page.locator(".jp-Dialog", has_text="Deploy broken:1 with no code").locator(".jp-mod-accept").click()
        failed = sidebar.locator('.jp-MLDeploy-deploy[data-service="broken"]')
        expect(failed.locator(".jp-MLDeploy-state")).to_have_text("Failed", timeout=DEPLOY_TIMEOUT_MS)
        expect(failed.locator(".jp-MLDeploy-deployError")).to_contain_text("no-such-package-mldeploy-xyz")
        expect(notice).to_contain_text("Deploying broken:1 as broken failed; the reason is under Services.")
        box, panel = notice.locator(".jp-MLDeploy-dismiss").bounding_box(), sidebar.bounding_box()
        assert box is not None and panel is not None and box["x"] + box["width"] <= panel["x"] + panel["width"]
        page.screenshot(path=str(ARTIFACTS / "sidebar-deploy-failed.png"))
        failed.get_by_role("button", name="Dismiss").click()
        expect(failed).to_have_count(0)
    finally:
        for deployed in Webservice.list(ws):
            deployed.delete()
