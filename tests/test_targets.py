"""The target registry, the pure state logic of a switch, and records written by release 0.1 (format 1)."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes

from jupyter_mldeploy import InvalidArgument, LocalWebservice, Webservice, Workspace
from jupyter_mldeploy.deploy.state import RECORD_FORMAT, ServiceRecord, ServiceState
from jupyter_mldeploy.deploy.targets import registry
from jupyter_mldeploy.deploy.targets.supervised import reload_base, switch_outcome
from jupyter_mldeploy.server.protocol import ReloadReport, SupervisorStatus

FIXTURE_WORKSPACE = Path(__file__).resolve().parent / "fixtures" / "workspace_0_1"


# -- pure state logic --------------------------------------------------------------------------------------


def status(state: str, generation: int | None, last: ReloadReport | None = None) -> SupervisorStatus:
    return SupervisorStatus(state=state, generation=generation, last_reload=last)


def test_switch_outcome_reads_adopted_refused_and_undecided() -> None:
    assert switch_outcome(None, 1) is None
    assert switch_outcome(status("Healthy", 1), 1) is None  # the old generation still serves: undecided
    assert switch_outcome(status("Healthy", 2), 1) is True
    assert switch_outcome(status("Transitioning", 2), 1) is None
    assert switch_outcome(status("Healthy", 1, ReloadReport(2, ok=False, error="boom")), 1) is False
    # an older failure is not this switch's outcome
    assert switch_outcome(status("Healthy", 3, ReloadReport(2, ok=False)), 3) is None


def test_reload_base_counts_failed_attempts_too() -> None:
    assert reload_base(None) == 0
    assert reload_base(status("Healthy", 1)) == 1
    assert reload_base(status("Healthy", 1, ReloadReport(4, ok=False))) == 4


def test_state_aliases_and_unknown_state() -> None:
    assert ServiceState("running") == "Healthy" and ServiceState("Healthy") == "succeeded"
    assert ServiceState("crashloopbackoff") == "Failed" and ServiceState("creating") == "Transitioning"
    assert ServiceState("Healthy") != "Failed" and ServiceState("Healthy") != "no-such-state"
    with pytest.raises(ValueError, match="Unknown service state"):
        ServiceState("sleeping")


def test_supervisor_status_round_trip_and_bad_content() -> None:
    written = SupervisorStatus(state="Healthy", pid=7, generation=2, workers=[8], last_reload=ReloadReport(2, True))
    assert SupervisorStatus.from_json(json.loads(json.dumps(written.to_json()))) == written
    with pytest.raises(ValueError):
        SupervisorStatus.from_json({"generation": 1})


# -- the registry of targets ---------------------------------------------------------------------------------


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="use one of process, docker"):
        LocalWebservice.deploy_configuration(runtime="vm")
    with pytest.raises(InvalidArgument, match="'vm'"):
        registry.get_target("vm")


def test_a_plugin_target_is_found_by_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party package declares a target in the entry-point group; no file of ours changes."""
    site = tmp_path / "site"
    dist = site / "echo_target-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-target\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[jupyter_mldeploy.targets]\necho = echo_target:EchoTarget\n")
    (site / "echo_target.py").write_text(textwrap.dedent("""
        from jupyter_mldeploy.deploy.targets.process import ProcessTarget

        class EchoTarget(ProcessTarget):
            name = "echo"
    """))
    monkeypatch.syspath_prepend(str(site))
    registry.get_target.cache_clear()
    try:
        assert "echo" in registry.target_names()
        assert type(registry.get_target("echo")).__name__ == "EchoTarget"
        assert LocalWebservice.deploy_configuration(runtime="echo").runtime == "echo"
    finally:
        registry.get_target.cache_clear()
        sys.modules.pop("echo_target", None)


def test_a_broken_plugin_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    dist = site / "broken_target-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-target\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[jupyter_mldeploy.targets]\nbroken = no_such_module:Target\n")
    monkeypatch.syspath_prepend(str(site))
    registry.get_target.cache_clear()
    try:
        with pytest.raises(Exception, match="broken.*no_such_module.*Install or repair"):
            registry.get_target("broken")
    finally:
        registry.get_target.cache_clear()


# -- records of release 0.1 ----------------------------------------------------------------------------------


def test_format1_record_is_migrated_on_read() -> None:
    data = json.loads((FIXTURE_WORKSPACE / "deployments" / "old-svc" / "service.json").read_text())
    assert data["format"] == 1
    record = ServiceRecord.from_dict(data, Path("service.json"))
    assert record.format == RECORD_FORMAT and record.target == "process"
    assert record.target_state["pid"] == data["pid"] and record.target_state["status_file"] == "status.json"
    assert record.model_ids == ["diabetes:1"]


def _materialize(tmp_path: Path) -> tuple[Workspace, Path]:
    """Copy the workspace written by release 0.1 (by its own code) and point its paths at this machine."""
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE_WORKSPACE, tmp_path / "copy")
    source = tmp_path / "copy" / "src"
    shutil.move(str(tmp_path / "copy"), str(root))
    source = root / "src"
    for path in (root / "deployments" / "old-svc").glob("*.json"):
        text = path.read_text()
        text = text.replace("@WORKSPACE@", str(root)).replace("@SOURCE@", str(source))
        path.write_text(text.replace("@PYTHON@", sys.executable))
    return Workspace(root), source


def test_a_service_deployed_by_release_0_1_reattaches_restarts_and_deletes(tmp_path: Path) -> None:
    workspace, source = _materialize(tmp_path)
    service = Webservice(workspace, "old-svc")
    assert isinstance(service, LocalWebservice) and service.model_ids == ["diabetes:1"]
    # Its server is long gone (the status file still says Healthy): that reads Unhealthy, not Healthy.
    assert service.state == "Unhealthy" and "no longer running" in (service.error or "")
    assert [s.name for s in Webservice.list(workspace)] == ["old-svc"]

    service.reload()  # starts it again, on the same port when free, in the new app layout
    service.wait_for_deployment(timeout_sec=120)
    X, _y = load_diabetes(return_X_y=True)
    assert service.run({"data": X[:2].tolist()})["version"] == "v1"
    record = json.loads((workspace.deployments_dir / "old-svc" / "service.json").read_text())
    assert record["format"] == RECORD_FORMAT and record["target"] == "process"
    started = service.started_time
    assert started is not None and time.time() - started.timestamp() < 300

    service.delete()
    assert service.state == "Deleted" and Webservice.list(workspace) == []
