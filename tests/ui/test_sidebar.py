"""The ML Deploy sidebar in a real JupyterLab, driven with Playwright in Debian's Chromium.

Starts ``jupyter lab`` (a subprocess on 127.0.0.1, a free port, a known token) over a temporary workspace
holding a registered Ridge model and a running service, then checks what a user sees and does: the model,
the service's Healthy badge, a test request and its answer, the log tab, the palette commands, deleting the
service. Screenshots go to ``tests/artifacts/`` (git-ignored); ``docs/images/sidebar.png`` is a copy of
``sidebar.png``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
from fixtures.deploy_support import source_dir, train_ridge

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import LocalWebservice, Webservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# One minute is ample on a loaded 2-core machine; JupyterLab itself starts in 3-10 s.
START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's Chromium is not installed (apt-get install -y chromium)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: its URL (with the base path), token and process."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Deployed:
    """The workspace with its Ridge model and running service, and the expected answer."""

    workspace: Workspace
    service: Webservice
    samples: list[list[float]]
    expected: list[float]


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    """A workspace holding ``diabetes:1`` (a Ridge on load_diabetes) served by ``diabetes-svc``."""
    ws = Workspace.create(tmp_path / "ws")
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(
        ws,
        model_path=str(path),
        model_name="diabetes",
        tags={"algo": "ridge"},
        sample_input={"data": samples[:1]},
    )
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(ws, "diabetes-svc", [registered], config, LocalWebservice.deploy_configuration())
    # A psutil.Process remembers the start time, so a pid recycled after the delete is never signalled.
    server = psutil.Process(service.pid) if service.pid is not None else None
    try:
        service.wait_for_deployment(timeout_sec=120)
        yield Deployed(ws, service, samples[:1], model.predict(samples[:1]).tolist())
    finally:
        if "diabetes-svc" in [s.name for s in Webservice.list(ws)]:
            Webservice(ws, "diabetes-svc").delete()
        stop_process(server)


def stop_process(proc: psutil.Process | None) -> None:
    """Terminate ``proc`` and its children if still running (SIGTERM, then SIGKILL after 10 s)."""
    if proc is None or not proc.is_running():
        return
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=10)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


def stopped(proc: psutil.Process) -> bool:
    """True when ``proc`` is gone, or a zombie its parent has not reaped yet."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def lab(tmp_path: Path, deployed: Deployed) -> Iterator[Lab]:
    """``jupyter lab`` on 127.0.0.1 with the extension enabled and pointed at the test workspace."""
    root = tmp_path / "root"
    root.mkdir()
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    # Enable the server extension here too, so the test does not depend on how the package was installed.
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_mldeploy": True}}})
    )
    settings_dir = tmp_path / "lab-settings"
    news = settings_dir / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    # No "receive Jupyter news?" toast over the sidebar.
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
    }
    env.pop("MLDEPLOY_WORKSPACE", None)
    log = tmp_path / "jupyter-lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                f"--MLDeployExtension.workspace={deployed.workspace.path}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}mldeploy/api/workspace", params={"token": token}, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Lab(url, token, process, log)
    finally:
        stop_process(psutil.Process(process.pid))
        process.wait(timeout=30)


def test_sidebar_shows_scores_and_deletes(lab: Lab, deployed: Deployed) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    assert deployed.service.pid is not None
    server = psutil.Process(deployed.service.pid)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(f"{lab.url}lab?token={lab.token}")
            page.locator("#jp-main-dock-panel").wait_for()

            # the sidebar: its tab in the left bar, titled "ML Deploy"
            tab = page.locator('.jp-SideBar.jp-mod-left [data-id="jp-mldeploy-sidebar"]')
            expect(tab).to_have_attribute("title", "ML Deploy")
            tab.click()
            sidebar = page.locator("#jp-mldeploy-sidebar")
            expect(sidebar.locator(".jp-MLDeploy-title")).to_have_text("ML Deploy")

            # models: name -> versions with tags
            model = sidebar.locator('.jp-MLDeploy-model[data-name="diabetes"]')
            expect(model.locator('.jp-MLDeploy-version[data-id="diabetes:1"]')).to_contain_text("algo=ridge")

            # services: Healthy badge, scoring URI
            service = sidebar.locator('.jp-MLDeploy-service[data-name="diabetes-svc"]')
            expect(service.locator(".jp-MLDeploy-state")).to_have_text("Healthy")
            expect(service.locator(".jp-MLDeploy-uriText")).to_have_text(deployed.service.scoring_uri)

            # test request: the editor is prefilled from the model's sample input; send it
            tester = sidebar.locator(".jp-MLDeploy-tester")
            expect(tester.locator("select")).to_have_value("diabetes-svc")
            tester.locator("textarea").fill(json.dumps({"data": deployed.samples}))
            tester.locator(".jp-MLDeploy-send").click()
            status = tester.locator(".jp-MLDeploy-status")
            expect(status).to_have_attribute("data-status", "200")
            expect(status).to_contain_text("ms")
            answer = json.loads(tester.locator(".jp-MLDeploy-responseBody").inner_text())
            assert answer == pytest.approx(deployed.expected)

            # logs open in a main-area tab that follows the tail: a second request shows up there
            service.get_by_role("button", name="Logs").click()
            logs = page.locator(".jp-MLDeploy-logsText")
            expect(logs).to_contain_text("POST /score 200")
            tester.locator(".jp-MLDeploy-send").click()
            expect(logs).to_have_text(re.compile(r"(POST /score 200[\s\S]*){2}"))
            page.screenshot(path=str(ARTIFACTS / "sidebar.png"))
            sidebar.screenshot(path=str(ARTIFACTS / "sidebar-panel.png"))

            # a body that is not JSON is refused in the browser with a visible notice
            tester.locator("textarea").fill("{not json")
            tester.locator(".jp-MLDeploy-send").click()
            expect(sidebar.locator(".jp-MLDeploy-error")).to_contain_text("not valid JSON")
            sidebar.locator(".jp-MLDeploy-dismiss").click()
            expect(sidebar.locator(".jp-MLDeploy-error")).to_be_hidden()

            # a server error is shown, not swallowed: deleting the served model answers 409
            model.locator(".jp-MLDeploy-version .jp-MLDeploy-danger").click()
            page.locator(".jp-Dialog", has_text="Delete model version").locator(".jp-mod-warn").click()
            conflict = page.locator(".jp-Dialog", has_text="Model version in use")
            expect(conflict).to_contain_text("diabetes-svc")
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

            # delete the service (confirmed in a dialog): it disappears, its process stops
            service.locator(".jp-MLDeploy-actions .jp-MLDeploy-danger").click()
            dialog = page.locator(".jp-Dialog", has_text="Delete service")
            expect(dialog).to_contain_text("diabetes-svc")
            dialog.locator(".jp-mod-warn").click()
            expect(service).to_have_count(0)
            expect(sidebar.locator(".jp-MLDeploy-services")).to_contain_text("No services deployed.")
            page.screenshot(path=str(ARTIFACTS / "after-delete.png"))
        finally:
            browser.close()

    assert Webservice.list(deployed.workspace) == []
    deadline = time.monotonic() + 15
    while not stopped(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stopped(server), f"scoring server {server.pid} still runs after the service was deleted"
