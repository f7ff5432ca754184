"""Issue #20's faces: deploying without a registered model from the CLI and the magic, ``-n`` derived when left
out, and every ``az ml`` line of the seeds run as written with ``az ml`` replaced by ``mldeploy``: v1's option
spellings, Azure-only options accepted and ignored, ``workspace list``. Real ``mldeploy`` subprocesses, real
services started and deleted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import joblib
import pytest
import requests
from fixtures.deploy_support import train_ridge
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from jupyter_mldeploy.actions import workspaces as recent
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.workspace import Workspace

#: Loads ``model.pkl`` from AZUREML_MODEL_DIR when a registered model is served, else from beside itself
#: (v1's "deploy using a local model"), and says which in every answer.
SCORE = '''
import json
import os

import joblib

model = None
origin = None


def init():
    global model, origin
    root = os.environ["AZUREML_MODEL_DIR"]
    found = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f == "model.pkl")
    if found:
        model, origin = joblib.load(found[0]), "registry"
    else:
        assert os.listdir(root) == [], os.listdir(root)
        model, origin = joblib.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.pkl")), "source"


def run(raw_data):
    return {"origin": origin, "predictions": model.predict(json.loads(raw_data)["data"]).tolist()}
'''

NO_REGISTERED_MODEL = "No registered model is served"
AZURE_NOTE = "(Azure-only; mldeploy uses a local workspace folder, -w PATH)."


def mldeploy(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mldeploy`` entry point (the console script of pyproject.toml)."""
    found = shutil.which("mldeploy") or str(Path(sys.executable).with_name("mldeploy"))
    environ = {k: v for k, v in os.environ.items() if k != "MLDEPLOY_WORKSPACE"} | (env or {})
    return subprocess.run([found, *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=300)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def score(service: dict[str, object], samples: list[list[float]]) -> dict[str, object]:
    response = requests.post(str(service["scoringUri"]), json={"data": samples}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def project(tmp_path: Path, alpha: float = 1.0) -> tuple[Path, list[float], list[list[float]]]:
    """A project folder: ``app/`` (score.py and model.pkl), the configs under both of the seeds' spellings.

    Returns:
        The folder, the model's predictions for the samples, and the samples.
    """
    folder = tmp_path / "project"
    path, model, samples = train_ridge(folder / "app", alpha=alpha)
    (path.parent / "score.py").write_text(SCORE)
    for name in ("inferenceconfig.json", "inferenceConfig.json"):
        (folder / name).write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": "app"}))
    for name in ("deploymentconfig.json", "deploymentConfig.json"):
        (folder / name).write_text(json.dumps({"computeType": "local"}))
    return folder, model.predict(samples).tolist(), samples


@pytest.fixture
def services_deleted(tmp_path: Path) -> Iterator[list[Path]]:
    """Workspaces whose services are deleted after the test, whatever happened."""
    used: list[Path] = []
    yield used
    for path in used:
        if (path / "registry.sqlite").is_file():
            for service in Webservice.list(Workspace(path)):
                service.delete()


# -- the seed's lines, in order, against one workspace ----------------------------------------------------


def test_the_seed_cli_lines_run_in_order_against_one_workspace(tmp_path: Path, services_deleted: list[Path]) -> None:
    folder, expected, samples = project(tmp_path)
    (folder / "mnist").mkdir()
    (folder / "mnist" / "model.onnx").write_bytes(b"onnx bytes")
    shutil.copytree(folder / "app", folder / "models", ignore=shutil.ignore_patterns("score.py"))
    # -w names the workspace folder; $MLDEPLOY_WORKSPACE names the same one for the lines without -w.
    env = {"MLDEPLOY_WORKSPACE": "myworkspace"}
    workspace = folder / "myworkspace"
    services_deleted.append(workspace)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return ok(mldeploy(*args, cwd=folder, env=env))

    listed = run("workspace", "list", "--resource-group=RG")
    assert listed.stderr == f"Note: ignoring --resource-group RG {AZURE_NOTE}\n"
    assert str(workspace) not in listed.stdout

    run("model", "register", "-n", "onnx_mnist", "-p", "mnist/model.onnx")
    assert (workspace / "registry.sqlite").is_file()
    registered = run("model", "register", "-p", "./models", "-n", "sentiment", "-w", "myworkspace",
                     "-g", "myresourcegroup", "-o", "json")
    assert json.loads(registered.stdout)["id"] == "sentiment:1"
    assert registered.stderr == f"Note: ignoring --resource-group myresourcegroup {AZURE_NOTE}\n"
    run("model", "register", "-n", "mymodel", "-p", "app/model.pkl")  # the seed assumes mymodel:1 exists

    first = run("model", "deploy", "-m", "mymodel:1", "--ic", "inferenceconfig.json", "--dc",
                "deploymentconfig.json", "-o", "json")
    assert "Service name: mymodel (from the first model, mymodel:1" in first.stderr
    assert NO_REGISTERED_MODEL not in first.stderr
    mymodel = json.loads(first.stdout)
    assert (mymodel["name"], mymodel["models"], mymodel["state"]) == ("mymodel", ["mymodel:1"], "Healthy")
    assert score(mymodel, samples) == {"origin": "registry", "predictions": pytest.approx(expected)}

    local = run("model", "deploy", "--ic", "inferenceconfig.json", "--dc", "deploymentconfig.json", "-o", "json")
    assert f"Service name: app (from the source directory {folder / 'app'}" in local.stderr
    assert NO_REGISTERED_MODEL in local.stderr
    app = json.loads(local.stdout)
    assert (app["name"], app["models"], app["state"]) == ("app", [], "Healthy")
    assert score(app, samples) == {"origin": "source", "predictions": pytest.approx(expected)}

    named = run("model", "deploy", "-n", "myservice", "-m", "sentiment:1", "--ic", "inferenceConfig.json",
                "--dc", "deploymentConfig.json", "-o", "json")
    assert "Service name:" not in named.stderr
    myservice = json.loads(named.stdout)
    assert (myservice["name"], myservice["models"]) == ("myservice", ["sentiment:1"])
    assert score(myservice, samples)["origin"] == "registry"

    downloaded = run("model", "download", "-i", "sentiment:1", "-t", "downloaded")
    assert (Path(downloaded.stdout.strip()) / "model.pkl").read_bytes() == (folder / "models" / "model.pkl").read_bytes()

    for name in ("myservice", "mymodel", "app"):
        assert run("service", "delete", name).stdout == f"Service {name!r} deleted.\n"
    assert run("service", "list", "-o", "json").stdout.strip() == "[]"
    for model_id in ("onnx_mnist:1", "sentiment:1", "mymodel:1"):
        assert run("model", "delete", model_id).stdout == f"Deleted model {model_id}\n"
    assert run("model", "list", "-o", "json").stdout.strip() == "[]"

    assert json.loads(run("workspace", "list", "-o", "json").stdout)[0]["path"] == str(workspace)


# -- deploying the source directory alone ---------------------------------------------------------------


def test_cli_deploys_a_source_directory_without_a_registered_model(tmp_path: Path,
                                                                   services_deleted: list[Path]) -> None:
    folder, expected, samples = project(tmp_path)
    services_deleted.append(folder / ".mldeploy")
    # Nothing is read from the workspace without -m, so the first deployment creates it.
    result = ok(mldeploy("model", "deploy", "-n", "local", "--ic", "inferenceconfig.json", "--dc",
                         "deploymentconfig.json", "-o", "json", cwd=folder))
    assert result.stderr.splitlines() == [
        f"Created workspace at {folder / '.mldeploy'}",
        f"Note: service 'local': {NO_REGISTERED_MODEL}: the files come from the source directory {folder / 'app'}, "
        "so nothing is versioned or checksummed.",
    ]
    service = json.loads(result.stdout)
    assert service["models"] == [] and service["state"] == "Healthy"
    assert score(service, samples) == {"origin": "source", "predictions": pytest.approx(expected)}
    # --show-output: the deployer says it on stdout, once.
    shown = ok(mldeploy("model", "deploy", "-n", "local", "--ic", "inferenceconfig.json", "--overwrite",
                        "--show-output", cwd=folder))
    assert shown.stdout.count(NO_REGISTERED_MODEL) == 1 and NO_REGISTERED_MODEL not in shown.stderr


def test_without_n_the_derived_name_is_printed_refused_when_taken_and_overwritten(
        tmp_path: Path, services_deleted: list[Path]) -> None:
    folder, expected, samples = project(tmp_path)
    services_deleted.append(folder / ".mldeploy")
    args = ("model", "deploy", "--ic", "inferenceconfig.json", "--dc", "deploymentconfig.json", "-o", "json")
    first = json.loads(ok(mldeploy(*args, cwd=folder)).stdout)
    assert first["name"] == "app"

    taken = mldeploy(*args, cwd=folder)
    assert taken.returncode == 1 and taken.stdout == ""
    assert taken.stderr.splitlines()[-1] == (
        f"Error: Service 'app' (the name derived from the source directory {folder / 'app'}) already exists: pass "
        "--overwrite to update it, or -n NAME to deploy another service.")
    explicit = mldeploy("model", "deploy", "-n", "app", "--ic", "inferenceconfig.json", cwd=folder)
    assert explicit.returncode == 1 and "Service 'app' already exists: pass --overwrite" in explicit.stderr

    # --overwrite updates it in place: a retrained model.pkl in the source directory is served.
    path, model, _ = train_ridge(folder / "app", alpha=50.0)
    updated = json.loads(ok(mldeploy(*args, "--overwrite", cwd=folder)).stdout)
    assert updated["name"] == "app" and updated["port"] == first["port"]
    answer = score(updated, samples)
    assert answer["predictions"] == pytest.approx(model.predict(samples).tolist())
    assert answer["predictions"] != pytest.approx(expected)
    assert joblib.load(path).alpha == 50.0


def test_a_derived_name_that_is_not_valid_is_refused_before_anything_starts(tmp_path: Path) -> None:
    folder, _, _ = project(tmp_path)
    (folder / "app").rename(folder / "my app")
    (folder / "ic.json").write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": "my app"}))
    result = mldeploy("model", "deploy", "--ic", "ic.json", cwd=folder)
    assert result.returncode == 1 and result.stdout == ""
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: Invalid service name 'my app'")
    assert error.endswith(f"it was derived from the source directory {folder / 'my app'}: name the service with "
                          "-n NAME.")
    assert Webservice.list(Workspace(folder / ".mldeploy")) == []


def test_with_m_the_workspace_must_exist(tmp_path: Path) -> None:
    folder, _, _ = project(tmp_path)
    result = mldeploy("model", "deploy", "-m", "mymodel:1", "--ic", "inferenceconfig.json", cwd=folder)
    assert result.returncode == 1 and result.stderr.startswith("Error: No workspace found")
    assert not (folder / ".mldeploy").exists()


def test_a_bad_inference_config_creates_no_workspace(tmp_path: Path) -> None:
    folder, _, _ = project(tmp_path)
    (folder / "inferenceconfig.json").write_text(json.dumps({"entryScript": "missing.py", "sourceDirectory": "app"}))
    result = mldeploy("model", "deploy", "--ic", "inferenceconfig.json", cwd=folder)
    assert result.returncode == 1 and "missing.py" in result.stderr and result.stderr.count("\n") == 1
    assert not (folder / ".mldeploy").exists()


# -- the magic -----------------------------------------------------------------------------------------


@pytest.fixture
def nb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config, history_length=0)
    shell.run_line_magic("load_ext", "jupyter_mldeploy")
    monkeypatch.chdir(tmp_path)
    yield shell
    if (tmp_path / "ws" / "registry.sqlite").is_file():
        for service in Webservice.list(Workspace(tmp_path / "ws")):
            service.delete()
    InteractiveShell.clear_instance()


def test_deploy_local_without_model_serves_the_source_directory(nb: InteractiveShell, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder, expected, samples = project(tmp_path)
    monkeypatch.setenv("MLDEPLOY_WORKSPACE", str(tmp_path / "ws"))  # a new one: created, as register would
    service = nb.run_line_magic("deploy_local", f"local --entry score.py --source-dir {folder / 'app'}")
    assert f"Created workspace at {tmp_path / 'ws'}" in capsys.readouterr().out
    status = nb.magics_manager.registry["MLDeployMagics"].last_deploy_status
    assert status.state == "Healthy" and service.model_ids == []
    assert status.notes == [f"No registered model is served: the files come from the source directory "
                            f"{folder / 'app'}, so nothing is versioned or checksummed."]
    assert "No registered model is served" in repr(status) and "No registered model is served" in status._repr_html_()
    assert service.run({"data": samples}) == {"origin": "source", "predictions": pytest.approx(expected)}
    # With --model the workspace is read: the model must be registered there.
    with pytest.raises(UsageError, match="not found"):
        nb.run_line_magic("deploy_local", f"other --model nope:1 --entry score.py --source-dir {folder / 'app'}")


# -- Azure-only options, v1 spellings --------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("model", "list", "-g", "rg", "--subscription", "sub"),
    ("service", "list", "--resource-group", "rg", "--subscription-id", "sub"),
    ("environment", "list", "--subscription=sub"),
])
def test_azure_only_options_are_accepted_with_one_note(tmp_path: Path, args: tuple[str, ...]) -> None:
    Workspace.create(tmp_path / ".mldeploy")
    result = ok(mldeploy(*args, "-o", "json", cwd=tmp_path))
    assert isinstance(json.loads(result.stdout), list)
    ignored = [a for a in args[2:] if not a.startswith("-") or "=" in a]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Note: ignoring ")
    assert result.stderr.endswith(f"{AZURE_NOTE}\n") and all(v.split("=")[-1] in result.stderr for v in ignored)


def test_v1_option_spellings_work_beside_the_positional_ones(tmp_path: Path, services_deleted: list[Path]) -> None:
    folder, _, _ = project(tmp_path)
    services_deleted.append(folder / ".mldeploy")
    ok(mldeploy("model", "register", "-n", "m", "-p", "app/model.pkl", cwd=folder))
    ok(mldeploy("model", "register", "--name", "m", "--model-path", "app/model.pkl", "--workspace-name", ".mldeploy",
                cwd=folder))
    assert Path(ok(mldeploy("model", "download", "m:1", "-t", "a", cwd=folder)).stdout.strip()).is_file()
    assert Path(ok(mldeploy("model", "download", "-i", "m:2", "-t", "b", cwd=folder)).stdout.strip()).is_file()
    assert ok(mldeploy("model", "delete", "-i", "m:1", cwd=folder)).stdout == "Deleted model m:1\n"
    assert ok(mldeploy("model", "delete", "--model-id", "m:2", cwd=folder)).stdout == "Deleted model m:2\n"
    ok(mldeploy("model", "deploy", "-n", "s1", "--ic", "inferenceconfig.json", cwd=folder))
    ok(mldeploy("model", "deploy", "--name", "s2", "--inference-config-file", "inferenceconfig.json",
                "--deploy-config-file", "deploymentconfig.json", cwd=folder))
    assert sorted(s.name for s in Webservice.list(Workspace(folder / ".mldeploy"))) == ["s1", "s2"]
    assert ok(mldeploy("service", "delete", "-n", "s1", cwd=folder)).stdout == "Service 's1' deleted.\n"
    assert ok(mldeploy("service", "delete", "--name", "s2", cwd=folder)).stdout == "Service 's2' deleted.\n"


@pytest.mark.parametrize(("args", "message"), [
    (("model", "delete", "m:1", "-i", "m:1"), "Give exactly one of NAME:VERSION or -i/--model-id NAME:VERSION."),
    (("model", "delete"), "Give exactly one of NAME:VERSION or -i/--model-id NAME:VERSION."),
    (("model", "delete", "-i", "m"), "give the version to delete, as NAME:VERSION"),
    (("model", "download", "-t", "out"), "Give exactly one of NAME[:VERSION] or -i/--model-id NAME[:VERSION]."),
    (("service", "delete", "a", "-n", "b"), "Give exactly one of NAME or -n/--name NAME."),
    (("service", "delete",), "Give exactly one of NAME or -n/--name NAME."),
])
def test_both_or_neither_spelling_is_a_usage_error_before_the_workspace(tmp_path: Path, args: tuple[str, ...],
                                                                       message: str) -> None:
    result = mldeploy(*args, cwd=tmp_path)  # no workspace here: the usage error comes first
    assert result.returncode == 2 and result.stderr.rstrip().endswith(message), result.stderr


# -- workspace list ------------------------------------------------------------------------------------


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own history file (the session's holds every other test's workspaces)."""
    file = tmp_path / "config" / "recent.json"
    monkeypatch.setenv("MLDEPLOY_RECENT_WORKSPACES", str(file))
    return file


def test_workspace_list_is_most_recent_first_and_forgets_deleted_folders(tmp_path: Path, history: Path) -> None:
    a, b, c = (Workspace.create(tmp_path / name) for name in ("a", "b", "c"))
    now = datetime.now(timezone.utc)
    for minutes, workspace in ((3, a), (2, b), (1, c), (0, a)):
        recent.remember_workspace(workspace, when=now - timedelta(minutes=minutes))
    assert [w.path for w in recent.recent_workspaces()] == [a.path, c.path, b.path]
    shutil.rmtree(c.path)
    assert [w.name for w in recent.recent_workspaces()] == ["a", "b"]

    listed = ok(mldeploy("workspace", "list", "-o", "json", cwd=tmp_path))
    assert [row["path"] for row in json.loads(listed.stdout)] == [str(a.path), str(b.path)]
    # Opening one from the CLI (even reading) makes it the most recent.
    ok(mldeploy("model", "list", "-w", str(b.path), cwd=tmp_path))
    assert recent.recent_workspaces()[0].path == b.path
    table = ok(mldeploy("workspace", "list", cwd=tmp_path)).stdout
    assert table.index(str(b.path)) < table.index(str(a.path))


def test_workspace_list_is_bounded_and_survives_a_bad_file(tmp_path: Path, history: Path) -> None:
    file = history
    assert ok(mldeploy("workspace", "list", cwd=tmp_path)).stdout.startswith("No workspaces used yet")
    file.parent.mkdir()
    file.write_text("{not json")
    assert recent.recent_workspaces() == []
    many = [Workspace.create(tmp_path / f"w{i}") for i in range(recent.MAX_RECENT_WORKSPACES + 5)]
    for workspace in many:
        recent.remember_workspace(workspace)
    kept = recent.recent_workspaces()
    assert len(kept) == recent.MAX_RECENT_WORKSPACES and kept[0].path == many[-1].path
    assert len(json.loads(file.read_text())) == recent.MAX_RECENT_WORKSPACES
    # A history that cannot be written (its folder is a file) never fails a command.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    created = ok(mldeploy("workspace", "create", str(tmp_path / "another"), cwd=tmp_path,
                          env={"MLDEPLOY_RECENT_WORKSPACES": str(blocked / "recent.json")}))
    assert created.stdout == f"Created workspace at {tmp_path / 'another'}\n" and created.stderr == ""
