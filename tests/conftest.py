"""Shared fixtures: a fresh workspace per test, and a check that no server process outlives the session."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from jupyter_mldeploy.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A new, empty workspace in a temporary folder."""
    return Workspace.create(tmp_path / "ws")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tests away from the user's workspace; share one env cache across the session."""
    monkeypatch.delenv("MLDEPLOY_WORKSPACE", raising=False)
    cache = os.environ.get("MLDEPLOY_TEST_CACHE_DIR")
    if not cache:
        cache = str(tmp_path_factory.getbasetemp() / "mldeploy-cache")
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", cache)
    # Workspaces opened by tests never reach the user's `mldeploy workspace list`.
    monkeypatch.setenv("MLDEPLOY_RECENT_WORKSPACES", str(tmp_path_factory.getbasetemp() / "recent_workspaces.json"))


def _server_processes(basetemp: Path | None = None) -> list[psutil.Process]:
    """Scoring-server processes; with ``basetemp``, only those whose command line or working folder lies
    under it, so that pytest sessions running side by side never count (or kill) each other's servers."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if "jupyter_mldeploy.server" not in cmd or proc.pid == os.getpid():
            continue
        if basetemp is not None and str(basetemp) not in cmd and str(basetemp) not in (proc.info.get("cwd") or ""):
            continue
        found.append(proc)
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind(tmp_path_factory: pytest.TempPathFactory):
    """Fail the session if a scoring-server process started by the tests is still running at the end."""
    basetemp = tmp_path_factory.getbasetemp().resolve()
    before = {p.pid for p in _server_processes()}
    yield
    leftover = [p for p in _server_processes(basetemp) if p.pid not in before]
    for proc in leftover:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    assert not leftover, f"scoring-server processes left behind: {[p.pid for p in leftover]}"
