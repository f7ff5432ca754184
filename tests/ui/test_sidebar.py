"""The ML Deploy sidebar in a real JupyterLab, driven with Playwright in Debian's Chromium at 1400x900.

JupyterLab (``conftest.start_lab``) opens over a workspace holding a registered Ridge model and no service;
the test deploys one while the sidebar watches, then checks what a user sees and does: the tester's notice
following the service list, the model, the Healthy badge, the scoring URI on one line, the prefilled request
(rounded, laid out as the panel's Test tab lays it out, in a box that fits it), a request and its answer,
a body the input schema refuses, the log tab, the palette commands, deleting the service and its stale
result going with it. A second test records runs and checks the Runs section: statuses, parameters,
metrics, models, one run's details, a run logged while the sidebar watches, the experiment filter.
Screenshots go to ``tests/artifacts/``; ``docs/images/sidebar.png`` is a copy of ``sidebar.png``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from fixtures.deploy_support import train_ridge
from fixtures.run_support import record_runs
from lab_support import ARTIFACTS, UI_TIMEOUT_MS, Lab, stopped
from sklearn.linear_model import Ridge

from jupyter_mldeploy import Experiment, Model
from jupyter_mldeploy.deploy import LocalWebservice, Webservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace

SERVICE = "diabetes-svc"

# The classic v1 entry script with an inference-schema input: the score proxy checks bodies against it, and
# its example (the first row, which the model was also registered with) prefills the tester.
SCORE_WITH_SCHEMA = """
import os

import joblib
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema
from sklearn.datasets import load_diabetes


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))


# The sample is a real row (all 17 digits of its float64s), as v1 notebooks write it: the schema's example.
@input_schema("data", NumpyParameterType(load_diabetes().data[:1]))
def run(data):
    return model.predict(data).tolist()
"""


@dataclass
class Registered:
    """A workspace holding ``diabetes:1`` (no service yet), the trained model and its sample rows."""

    workspace: Workspace
    model: Model
    ridge: Ridge
    samples: list[list[float]]


@pytest.fixture
def registered(tmp_path: Path) -> Iterator[Registered]:
    """``diabetes:1``: a Ridge on load_diabetes, registered with one sample row; the service goes at the end."""
    ws = Workspace.create(tmp_path / "ws")
    path, ridge, samples = train_ridge(tmp_path / "train")
    model = Model.register(
        ws,
        model_path=str(path),
        model_name="diabetes",
        tags={"algo": "ridge"},
        sample_input={"data": samples[:1]},
    )
    yield Registered(ws, model, ridge, samples[:1])
    if SERVICE in [s.name for s in Webservice.list(ws)]:
        Webservice(ws, SERVICE).delete()


def deploy(tmp_path: Path, registered: Registered) -> Webservice:
    """Deploy ``diabetes:1`` as ``diabetes-svc`` with :data:`SCORE_WITH_SCHEMA` and wait until Healthy."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text(SCORE_WITH_SCHEMA)
    config = InferenceConfig("score.py", source_directory=str(source))
    service = Model.deploy(
        registered.workspace, SERVICE, [registered.model], config, LocalWebservice.deploy_configuration()
    )
    service.wait_for_deployment(timeout_sec=120)  # the fixture deletes it at the end, Healthy or not
    return service


def editor_text(sample: dict[str, Any]) -> str:
    """What the editors (sidebar, panel) show for a sample: floats to 4 significant digits, one key per line."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.4g}")
        if isinstance(value, list):
            return [rounded(item) for item in value]
        return value

    lines = [f"  {json.dumps(key)}: {json.dumps(rounded(item))}" for key, item in sample.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def test_sidebar_follows_services_scores_and_deletes(
    tmp_path: Path, registered: Registered, start_lab: Callable[[Path], Lab], browser: Any
) -> None:
    from playwright.sync_api import expect

    lab = start_lab(registered.workspace.path)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(lab.open())
    page.locator("#jp-main-dock-panel").wait_for()

    # the sidebar: its tab in the left bar, titled "ML Deploy"
    tab = page.locator('.jp-SideBar.jp-mod-left [data-id="jp-mldeploy-sidebar"]')
    expect(tab).to_have_attribute("title", "ML Deploy")
    tab.click()
    sidebar = page.locator("#jp-mldeploy-sidebar")
    expect(sidebar.locator(".jp-MLDeploy-title")).to_have_text("ML Deploy")
    tester = sidebar.locator(".jp-MLDeploy-tester")
    notice = tester.locator(".jp-MLDeploy-empty")
    send = tester.locator(".jp-MLDeploy-send")

    # no run yet: the Runs section says how to record one, with no experiment to filter by
    runs = sidebar.locator(".jp-MLDeploy-runs")
    expect(runs.locator(".jp-MLDeploy-empty")).to_contain_text("No runs yet")
    expect(runs.locator(".jp-MLDeploy-experimentSelect")).to_be_hidden()

    # no service: the tester says so, and there is nothing to send to
    expect(sidebar.locator(".jp-MLDeploy-services")).to_contain_text("No services deployed.")
    expect(notice).to_have_text("Deploy a service first: there is nothing to send to.")
    expect(send).to_be_disabled()

    # a service appears (deployed outside the sidebar): the notice goes at the next poll
    service_obj = deploy(tmp_path, registered)
    assert service_obj.pid is not None
    server = psutil.Process(service_obj.pid)
    service = sidebar.locator(f'.jp-MLDeploy-service[data-name="{SERVICE}"]')
    expect(service.locator(".jp-MLDeploy-state")).to_have_text("Healthy")
    expect(notice).to_be_hidden()
    expect(send).to_be_enabled()
    expect(tester.locator(".jp-MLDeploy-serviceSelect")).to_have_value(SERVICE)

    # models: name -> versions with tags
    model = sidebar.locator('.jp-MLDeploy-model[data-name="diabetes"]')
    expect(model.locator('.jp-MLDeploy-version[data-id="diabetes:1"]')).to_contain_text("algo=ridge")

    # the scoring URI: whole in the text and the tooltip, shown on one line, its Copy button inside the sidebar
    uri = service.locator(".jp-MLDeploy-uriText")
    expect(uri).to_have_text(service_obj.scoring_uri)
    expect(uri).to_have_attribute("title", service_obj.scoring_uri)
    lines = uri.evaluate(
        "node => node.getBoundingClientRect().height / parseFloat(getComputedStyle(node).lineHeight)"
    )
    assert lines < 1.5, f"the scoring URI takes {lines:.1f} lines"
    copy_box = service.get_by_role("button", name="Copy").bounding_box()
    sidebar_box = sidebar.bounding_box()
    assert copy_box is not None and sidebar_box is not None
    assert copy_box["x"] + copy_box["width"] <= sidebar_box["x"] + sidebar_box["width"]

    # the editor is prefilled from the schema's example: rounded, one key per line, in a box that fits it
    editor = tester.locator("textarea")
    expect(editor).to_have_value(editor_text({"data": registered.samples}))
    fits = editor.evaluate("node => node.scrollHeight <= node.clientHeight + 1")
    assert fits, "the request editor scrolls: it did not grow with its text"

    # send it: the answer is the model's prediction for the rounded sample
    send.click()
    status = tester.locator(".jp-MLDeploy-status")
    expect(status).to_have_attribute("data-status", "200")
    expect(status).to_contain_text("ms")
    answer = json.loads(tester.locator(".jp-MLDeploy-responseBody").inner_text())
    sent = json.loads(editor.input_value())["data"]
    assert answer == pytest.approx(registered.ridge.predict(sent).tolist())
    assert answer == pytest.approx(registered.ridge.predict(registered.samples).tolist(), rel=1e-3)

    # logs open in a main-area tab that follows the tail: a second request shows up there
    service.get_by_role("button", name="Logs").click()
    logs = page.locator(".jp-MLDeploy-logsText")
    expect(logs).to_contain_text("POST /score 200")
    send.click()
    expect(logs).to_have_text(re.compile(r"(POST /score 200[\s\S]*){2}"))
    page.screenshot(path=str(ARTIFACTS / "sidebar.png"))
    sidebar.screenshot(path=str(ARTIFACTS / "sidebar-panel.png"))

    # a body the input schema refuses is not sent: each problem is listed where the answer would be
    editor.fill(json.dumps({"data": [[1.0, 2.0]]}))
    send.click()
    expect(status).to_have_attribute("data-status", "not-sent")
    expect(status).to_contain_text("input schema")
    problems = tester.locator(".jp-MLDeploy-problems li")
    expect(problems.first).to_contain_text("data")
    expect(sidebar.locator(".jp-MLDeploy-error")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "sidebar-not-sent.png"))

    # a body that is not JSON is refused in the browser with a visible notice
    editor.fill("{not json")
    send.click()
    expect(sidebar.locator(".jp-MLDeploy-error")).to_contain_text("not valid JSON")
    sidebar.locator(".jp-MLDeploy-dismiss").click()
    expect(sidebar.locator(".jp-MLDeploy-error")).to_be_hidden()

    # a server error is shown, not swallowed: deleting the served model answers 409
    model.locator(".jp-MLDeploy-version .jp-MLDeploy-danger").click()
    page.locator(".jp-Dialog", has_text="Delete model version").locator(".jp-mod-warn").click()
    conflict = page.locator(".jp-Dialog", has_text="Model version in use")
    expect(conflict).to_contain_text(SERVICE)
    conflict.locator(".jp-mod-reject").click()
    expect(conflict).to_have_count(0)
    expect(model).to_be_visible()

    # the palette lists both commands
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    palette.fill("ML Deploy")
    items = page.locator(".lm-CommandPalette-itemLabel")
    expect(items.filter(has_text="ML Deploy: Refresh")).to_have_count(1)
    expect(items.filter(has_text="ML Deploy: Open logs")).to_have_count(1)
    page.keyboard.press("Escape")

    # a fresh answer on screen, then delete the service (confirmed in a dialog): it disappears, its process
    # stops, its answer goes with it and the notice is back
    editor.fill(json.dumps({"data": registered.samples}))
    send.click()
    expect(status).to_have_attribute("data-status", "200")
    service.locator(".jp-MLDeploy-actions .jp-MLDeploy-danger").click()
    dialog = page.locator(".jp-Dialog", has_text="Delete service")
    expect(dialog).to_contain_text(SERVICE)
    dialog.locator(".jp-mod-warn").click()
    expect(service).to_have_count(0)
    expect(sidebar.locator(".jp-MLDeploy-services")).to_contain_text("No services deployed.")
    expect(tester.locator(".jp-MLDeploy-result")).to_be_empty()
    expect(notice).to_be_visible()
    expect(send).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "after-delete.png"))

    assert Webservice.list(registered.workspace) == []
    deadline = time.monotonic() + 15
    while not stopped(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stopped(server), f"scoring server {server.pid} still runs after the service was deleted"


def test_sidebar_lists_runs_and_shows_one(tmp_path: Path, start_lab: Callable[[Path], Lab], browser: Any) -> None:
    from playwright.sync_api import expect

    ws = Workspace.create(tmp_path / "ws")
    recorded = record_runs(ws, tmp_path / "models")
    lab = start_lab(ws.path)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(lab.open())
    page.locator('.jp-SideBar.jp-mod-left [data-id="jp-mldeploy-sidebar"]').click()
    section = page.locator("#jp-mldeploy-sidebar .jp-MLDeploy-runs")

    # every run, newest first, with its status badge, parameters, last metrics, models and error
    runs = section.locator(".jp-MLDeploy-run")
    expect(runs).to_have_count(3)
    assert runs.evaluate_all("items => items.map(i => i.dataset.id)") == [
        recorded.running.id, recorded.failed.id, recorded.completed.id
    ]
    completed = section.locator(f'.jp-MLDeploy-run[data-id="{recorded.completed.id}"]')
    expect(completed.locator(".jp-MLDeploy-state")).to_have_text("Completed")
    expect(completed.locator(".jp-MLDeploy-name")).to_have_text("diabetes #1")
    expect(completed.locator(".jp-MLDeploy-runParams")).to_have_text("alpha=0.5, fit_intercept=true")
    expect(completed.locator(".jp-MLDeploy-runMetrics")).to_have_text("rmse=55.25, r2=0.41")
    expect(completed.locator(".jp-MLDeploy-runModels")).to_have_text("models ridge:1")
    failed = section.locator(f'.jp-MLDeploy-run[data-id="{recorded.failed.id}"]')
    expect(failed.locator(".jp-MLDeploy-state")).to_have_text("Failed")
    expect(failed.locator(".jp-MLDeploy-runError")).to_have_text("alpha must be positive")
    running = section.locator(f'.jp-MLDeploy-run[data-id="{recorded.running.id}"]')
    expect(running.locator(".jp-MLDeploy-state")).to_have_text("Running")
    # the badges wear the services' state colors
    colors = {
        state: section.locator(f'.jp-MLDeploy-state[data-state="{state}"]').first.evaluate(
            "node => getComputedStyle(node).backgroundColor"
        )
        for state in ("Completed", "Failed", "Running")
    }
    assert len(set(colors.values())) == 3, colors

    # a click shows the run whole: every value of a series, its files and models; a second click hides it
    completed.locator(".jp-MLDeploy-runHeader").click()
    details = completed.locator(".jp-MLDeploy-runDetails")
    expect(details.locator(".jp-MLDeploy-run-metrics")).to_contain_text("rmse = [61.2, 55.25]")
    expect(details.locator(".jp-MLDeploy-run-params")).to_contain_text("alpha = 0.5")
    expect(details.locator(".jp-MLDeploy-run-files")).to_have_text("outputs/model.txt")
    expect(details.locator(".jp-MLDeploy-run-models")).to_have_text("ridge:1")
    expect(details.locator(".jp-MLDeploy-runFolder")).to_contain_text(recorded.completed.id)
    page.wait_for_timeout(3500)  # a poll goes by: the open run stays open
    expect(details).to_be_visible()
    sidebar = page.locator("#jp-mldeploy-sidebar")
    section.screenshot(path=str(ARTIFACTS / "sidebar-runs.png"))
    completed.locator(".jp-MLDeploy-runHeader").click()
    expect(details).to_have_count(0)

    # a run that logs and ends while the sidebar is open shows up at the next poll
    live = Experiment(ws, "live").start_logging(outputs=False)
    live.log("loss", 0.25)
    item = section.locator(f'.jp-MLDeploy-run[data-id="{live.id}"]')
    expect(item.locator(".jp-MLDeploy-state")).to_have_text("Running")
    expect(item.locator(".jp-MLDeploy-runMetrics")).to_have_text("loss=0.25")
    live.complete()
    expect(item.locator(".jp-MLDeploy-state")).to_have_text("Completed")
    expect(runs).to_have_count(4)

    # the experiment filter: its choices are the experiments, and one shows only its runs
    select = section.locator(".jp-MLDeploy-experimentSelect")
    assert select.locator("option").all_inner_texts() == ["All experiments", "diabetes", "live", "mnist"]
    select.select_option("diabetes")
    expect(runs).to_have_count(2)
    assert runs.evaluate_all("items => items.map(i => i.dataset.id)") == [recorded.failed.id, recorded.completed.id]
    page.wait_for_timeout(3500)  # the filter holds across a poll
    expect(runs).to_have_count(2)
    expect(select).to_have_value("diabetes")
    select.select_option("")
    expect(runs).to_have_count(4)
    expect(sidebar.locator(".jp-MLDeploy-error")).to_be_hidden()
    recorded.running.complete()
