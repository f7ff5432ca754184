"""Fixtures of the browser tests: a real JupyterLab over a workspace, and Debian's Chromium under Playwright.

``start_lab(workspace)`` runs ``jupyter lab`` (a subprocess on 127.0.0.1, a free port, a known token, its own
config/runtime/settings folders) with the server extension pointed at ``workspace``; ``browser`` is a
headless Chromium. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from lab_support import (
    ARTIFACTS,
    CHROMIUM,
    START_TIMEOUT_S,
    UI_TIMEOUT_MS,
    Lab,
    free_port,
    stale_extension,
    stop_process,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the browser tests where Debian's Chromium is missing (``apt-get install -y chromium``)."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason="Debian's Chromium is not installed (apt-get install -y chromium)")
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(skip)


@pytest.fixture
def start_lab(tmp_path: Path) -> Iterator[Callable[[Path], Lab]]:
    """A function starting ``jupyter lab`` over a workspace folder; every lab started stops at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(workspace: Path) -> Lab:
        stale = stale_extension()
        if stale:
            pytest.fail(stale)
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        config_dir = tmp_path / "jupyter-config"
        config_dir.mkdir(exist_ok=True)
        # Enable the server extension here too, so the test does not depend on how the package was installed.
        (config_dir / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_mldeploy": True}}})
        )
        settings_dir = tmp_path / "lab-settings"
        news = settings_dir / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        # No "receive Jupyter news?" toast over the panels.
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
                    f"--MLDeployExtension.workspace={workspace}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
                start_new_session=True,
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}mldeploy/api/workspace", params={"token": token}, timeout=2).ok:
                    return Lab(url, token, root, process, log)
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    try:
        yield start
    finally:
        for process in started:
            stop_process(psutil.Process(process.pid))
            process.wait(timeout=30)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's build) under Playwright, with ``expect`` waiting up to 30 s."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
