"""``mldeploy model deploy`` and ``mldeploy service ...``: real subprocesses and real servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.deploy_support import source_dir, train_ridge

import jupyter_mldeploy.cli.service  # noqa: F401  (registers ``service`` and ``model deploy`` on ``main``)
from jupyter_mldeploy.cli._common import main
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.registry import Model


def _mldeploy(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("mldeploy")
    command = [found] if found else [sys.executable, "-c", "from jupyter_mldeploy.cli import main; main()"]
    env = {k: v for k, v in os.environ.items() if k != "MLDEPLOY_WORKSPACE"}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path, workspace):
    path, model, samples = train_ridge(tmp_path / "train")
    Model.register(workspace, model_path=str(path), model_name="diabetes")
    src = source_dir(tmp_path, "score_ridge.py")
    ic = tmp_path / "inferenceconfig.json"
    ic.write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": "src"}))
    dc = tmp_path / "deploymentconfig.json"
    dc.write_text(json.dumps({"computeType": "local"}))
    yield {"ws": str(workspace.path), "ic": str(ic), "dc": str(dc), "src": src, "model": model, "samples": samples}
    for service in Webservice.list(workspace):
        service.delete()


def test_deploy_list_run_logs_reload_delete_end_to_end(project):
    ws = project["ws"]
    deployed = _mldeploy("model", "deploy", "-n", "cli-svc", "-m", "diabetes:1", "--ic", project["ic"],
                         "--dc", project["dc"], "-w", ws, "-o", "json")
    assert deployed.returncode == 0, deployed.stderr
    shown = json.loads(deployed.stdout)
    assert shown["state"] == "Healthy" and shown["models"] == ["diabetes:1"]

    listed = _mldeploy("service", "list", "-w", ws, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(s["name"], s["state"]) for s in json.loads(listed.stdout)] == [("cli-svc", "Healthy")]
    table = _invoke("service", "list", "-w", ws)
    assert "cli-svc" in table.output and "Healthy" in table.output

    body = json.dumps({"data": project["samples"]})
    ran = _mldeploy("service", "run", "cli-svc", "--input-data", body, "-w", ws)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == pytest.approx(project["model"].predict(project["samples"]).tolist())

    # no body and no sample_input registered: a usage error naming both ways out
    no_body = CliRunner().invoke(main, ["service", "run", "cli-svc", "-w", ws])
    assert no_body.exit_code == 2 and "No request body" in no_body.output and "sample_input" in no_body.output

    logs = _invoke("service", "logs", "cli-svc", "-l", "3", "-w", ws)
    assert logs.exit_code == 0 and 1 <= len(logs.output.strip().splitlines()) <= 3

    show = _invoke("service", "show", "cli-svc", "-w", ws, "-o", "json")
    assert json.loads(show.output)["scoringUri"] == shown["scoringUri"]

    reloaded = _invoke("service", "reload", "cli-svc", "-w", ws)
    assert reloaded.exit_code == 0 and "reloaded: Healthy" in reloaded.output

    deleted = _mldeploy("service", "delete", "cli-svc", "-w", ws)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert json.loads(_mldeploy("service", "list", "-w", ws, "-o", "json").stdout) == []


def test_deploy_errors_are_one_line_and_exit_1(project, tmp_path: Path):
    ws = project["ws"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"entryScript": "missing.py", "sourceDirectory": "src"}))
    result = _mldeploy("model", "deploy", "-n", "x", "-m", "diabetes:1", "--ic", str(bad), "-w", ws)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "missing.py" in result.stderr
    unknown = _invoke("service", "show", "nope", "-w", ws)
    assert unknown.exit_code == 1
    bad_run = CliRunner().invoke(main, ["service", "run", "nope", "-w", ws])
    assert bad_run.exit_code == 1 and "nope" in bad_run.output
    both = CliRunner().invoke(main, ["service", "run", "nope", "-d", "{}", "-f", project["ic"], "-w", ws])
    assert both.exit_code == 2 and "not both" in both.output


def test_update_models_and_overwrite(project, tmp_path: Path, workspace):
    ws = project["ws"]
    first = _invoke("model", "deploy", "-n", "svc", "-m", "diabetes:1", "--ic", project["ic"], "-w", ws)
    assert first.exit_code == 0
    again = CliRunner().invoke(main, ["model", "deploy", "-n", "svc", "-m", "diabetes:1", "--ic", project["ic"],
                                      "-w", ws])
    assert again.exit_code == 1 and "already exists" in again.output
    path, other, _ = train_ridge(tmp_path / "train2", alpha=0.05)
    Model.register(workspace, model_path=str(path), model_name="diabetes")
    updated = _invoke("service", "update", "svc", "-m", "diabetes:2", "-w", ws)
    assert updated.exit_code == 0 and "updated: Healthy" in updated.output
    assert Webservice(workspace, "svc").model_ids == ["diabetes:2"]
    result = Webservice(workspace, "svc").run({"data": project["samples"]})
    assert result == pytest.approx(other.predict(project["samples"]).tolist())
    overwritten = _invoke("model", "deploy", "-n", "svc", "-m", "diabetes:1", "--ic", project["ic"], "-w", ws,
                          "--overwrite")
    assert overwritten.exit_code == 0
    assert Webservice(workspace, "svc").model_ids == ["diabetes:1"]
