"""What a new user trips on in the CLI (issue #18): a wrong or missing workspace, empty listings, a missing
entry script, a failing service, time formats, and command abbreviations. Real subprocesses where the
exit code and stderr matter; click's runner elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.deploy_support import source_dir, train_ridge

from jupyter_mldeploy.cli import main
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace

LOCAL_SECONDS = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def mldeploy(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    found = shutil.which("mldeploy")
    command = [found] if found else [sys.executable, "-c", "from jupyter_mldeploy.cli import main; main()"]
    environ = {k: v for k, v in os.environ.items() if k != "MLDEPLOY_WORKSPACE"} | (env or {})
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=300)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.pkl"
    path.parent.mkdir()
    path.write_bytes(b"weights")
    return path


# -- wrong or missing workspace -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ("model", "list"),
    ("model", "show", "m:1"),
    ("model", "download", "m:1", "-t", "out"),
    ("service", "list"),
    ("service", "show", "svc"),
    ("service", "logs", "svc"),
    ("service", "run", "svc", "-d", "{}"),
    ("environment", "list"),
])
def test_reading_commands_never_create_a_workspace(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "nonexistent" / "ws"
    result = mldeploy(*command, "-w", str(missing), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("Error: No workspace found") and result.stderr.count("\n") == 1
    assert str(missing) in result.stderr and f"mldeploy workspace create {missing}" in result.stderr
    assert not (tmp_path / "nonexistent").exists()
    assert result.stdout == ""


def test_without_a_workspace_nearby_nothing_is_created_in_the_current_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    result = mldeploy("model", "list", cwd=project)
    assert result.returncode == 1
    assert str(project / ".mldeploy") in result.stderr and str(tmp_path / ".mldeploy") in result.stderr
    assert not (project / ".mldeploy").exists()


def test_writing_commands_create_it_and_say_so_once(tmp_path: Path, model_file: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    first = mldeploy("model", "register", "-n", "m", "-p", str(model_file), "-o", "json", cwd=project)
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip() == f"Created workspace at {project / '.mldeploy'}"
    assert json.loads(first.stdout)["id"] == "m:1"  # stdout stays machine-readable
    second = mldeploy("model", "register", "-n", "m", "-p", str(model_file), cwd=project)
    assert second.returncode == 0 and "Created workspace" not in second.stderr
    listed = mldeploy("model", "list", "-o", "json", cwd=project / "..")
    assert listed.returncode == 1  # the parent folder has no workspace of its own, and none above
    assert [r["id"] for r in json.loads(mldeploy("model", "list", "-o", "json", cwd=project).stdout)] == [
        "m:2", "m:1"]


def test_a_typo_in_register_creates_no_workspace(tmp_path: Path, model_file: Path) -> None:
    ws = tmp_path / "ws"
    bad_name = mldeploy("model", "register", "-n", "a/b", "-p", str(model_file), "-w", str(ws))
    missing_path = mldeploy("model", "register", "-n", "m", "-p", str(tmp_path / "nope.pkl"), "-w", str(ws))
    bad_tag = mldeploy("model", "register", "-n", "m", "-p", str(model_file), "--tag", "novalue", "-w", str(ws))
    assert (bad_name.returncode, missing_path.returncode, bad_tag.returncode) == (1, 1, 2)
    assert "Invalid model name" in bad_name.stderr and "does not exist" in missing_path.stderr
    assert "KEY=VALUE" in bad_tag.stderr
    assert not ws.exists()


def test_workspace_create_and_show(tmp_path: Path) -> None:
    target = tmp_path / "team" / ".mldeploy"
    created = mldeploy("workspace", "create", str(target))
    assert created.returncode == 0 and created.stdout.strip() == f"Created workspace at {target}"
    assert (target / "registry.sqlite").is_file()
    again = mldeploy("workspace", "create", str(target))
    assert again.returncode == 0 and again.stdout.strip() == f"Workspace exists at {target}"
    nested = tmp_path / "team" / "notebooks"
    nested.mkdir()
    shown = mldeploy("workspace", "show", cwd=nested)
    assert shown.returncode == 0 and shown.stdout.strip() == f"{target} (nearest .mldeploy)"
    data = json.loads(mldeploy("workspace", "show", "-o", "json", cwd=nested).stdout)
    assert data["exists"] and data["searched"][:2] == [str(nested / ".mldeploy"), str(target)]
    none = mldeploy("workspace", "show", cwd=tmp_path)
    assert none.returncode == 1 and "mldeploy workspace create" in none.stderr


# -- listings -------------------------------------------------------------------------------------------


def test_empty_listings_say_how_to_fill_them(workspace: Workspace) -> None:
    models = invoke("model", "list", "-w", str(workspace.path))
    assert models.exit_code == 0
    assert models.output.strip() == (f"No models registered in {workspace.path} (register one with: "
                                     "mldeploy model register -n NAME -p PATH)")
    services = invoke("service", "list", "-w", str(workspace.path))
    assert services.exit_code == 0
    assert services.output.startswith(f"No services deployed in {workspace.path} (deploy one with: mldeploy "
                                      "model deploy")
    assert json.loads(invoke("model", "list", "-o", "json", "-w", str(workspace.path)).output) == []
    assert json.loads(invoke("service", "list", "-o", "json", "-w", str(workspace.path)).output) == []


def test_abbreviated_command_suggests_the_full_one() -> None:
    result = mldeploy("env")
    assert result.returncode == 2
    assert "did you mean: environment" in result.stderr
    sub = mldeploy("model", "reg")
    assert sub.returncode == 2 and "did you mean: register" in sub.stderr


def test_serve_with_a_missing_entry_script_is_one_line_exit_2(tmp_path: Path) -> None:
    result = mldeploy("serve", "--entry_script", "nope.py", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(tmp_path / "nope.py") in result.stderr and "--entry_script" in result.stderr


FAILING_RUN = '''
import json


def init():
    pass


def run(raw_data):
    if json.loads(raw_data).get("fail"):
        raise ValueError("the model cannot score this")
    return {"ok": True}
'''


def test_service_run_500_points_at_the_logs_and_times_are_local(tmp_path: Path, workspace: Workspace) -> None:
    from jupyter_mldeploy import InferenceConfig, LocalWebservice

    path, _, _ = train_ridge(tmp_path / "train")
    model = Model.register(workspace, model_path=str(path), model_name="diabetes")
    folder = source_dir(tmp_path, "score_ridge.py")
    (folder / "score.py").write_text(FAILING_RUN)
    service = Model.deploy(workspace, "fails", [model], InferenceConfig("score.py", source_directory=folder),
                           LocalWebservice.deploy_configuration())
    ws = str(workspace.path)
    try:
        service.wait_for_deployment(timeout_sec=120)
        ok = mldeploy("service", "run", "fails", "-d", '{"fail": false}', "-w", ws)
        assert ok.returncode == 0 and json.loads(ok.stdout) == {"ok": True}
        failed = mldeploy("service", "run", "fails", "-d", '{"fail": true}', "-w", ws)
        assert failed.returncode == 1 and failed.stderr.count("\n") == 1
        assert failed.stderr.startswith("Error: HTTP 500")
        assert failed.stderr.rstrip().endswith("see: mldeploy service logs fails")
        loaded = mldeploy("service", "run", "fails", "-d", '{"fail": false}', "--repeat", "20", "--concurrency",
                          "2", "-w", ws)
        assert loaded.returncode == 0 and loaded.stdout.startswith("20 requests, 0 failed") and "p99" in loaded.stdout
        loaded_fail = mldeploy("service", "run", "fails", "-d", '{"fail": true}', "--repeat", "3", "-w", ws)
        assert loaded_fail.returncode == 1 and "3 failed" in loaded_fail.stderr
        assert loaded_fail.stderr.rstrip().endswith("see: mldeploy service logs fails")

        # one time format in every listing: local time, to the second (TZ set to a +05:30 zone)
        india = {"TZ": "Asia/Kolkata"}
        services = mldeploy("service", "list", "-w", ws, env=india).stdout
        models = mldeploy("model", "list", "-w", ws, env=india).stdout
        shown = mldeploy("model", "show", "diabetes:1", "-w", ws, env=india).stdout
        registered = model.created_time.astimezone(_zone("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M:%S")
        assert registered in models and registered in shown
        for text in (services, models, shown):
            assert LOCAL_SECONDS.search(text), text
            assert "T" not in LOCAL_SECONDS.search(text).group(0) and "+00:00" not in text and " UTC" not in text
    finally:
        Webservice(workspace, "fails").delete()


def _zone(name: str):  # noqa: ANN202 - a tzinfo
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
