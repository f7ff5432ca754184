"""``mldeploy model ...``: real subprocesses for the entry point, click's CliRunner for the rest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import jupyter_mldeploy.cli.model  # noqa: F401  (registers the ``model`` group on ``main``)
from jupyter_mldeploy.cli._common import main
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import SERVICE_RECORD_FILENAME, Workspace


def _mldeploy_command() -> list[str]:
    found = shutil.which("mldeploy")
    return [found] if found else [sys.executable, "-c", "from jupyter_mldeploy.cli import main; main()"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLDEPLOY_WORKSPACE"}
    return subprocess.run(
        [*_mldeploy_command(), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.pkl"
    path.parent.mkdir()
    path.write_bytes(b"weights")
    return path


def test_subprocess_register_show_download_delete(tmp_path: Path, model_file: Path) -> None:
    ws = str(tmp_path / "ws")
    done = _run("model", "register", "-n", "mnist", "-p", str(model_file), "--tag", "area=digits",
                "--property", "acc=0.9", "-d", "first", "-o", "json", "--workspace", ws)
    assert done.returncode == 0, done.stderr
    registered = json.loads(done.stdout)
    assert registered["id"] == "mnist:1"
    assert registered["tags"] == {"area": "digits"} and registered["properties"] == {"acc": "0.9"}
    assert registered["files"][0]["path"] == "model.pkl"

    shown = _run("model", "show", "mnist:1", "-o", "json", "--workspace", ws)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == registered

    table = _run("model", "show", "mnist", "--workspace", ws)
    assert table.returncode == 0 and "mnist:1" in table.stdout and "area=digits" in table.stdout

    out = tmp_path / "out"
    got = _run("model", "download", "mnist:1", "-t", str(out), "--workspace", ws)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == str(out / "model.pkl")
    assert (out / "model.pkl").read_bytes() == b"weights"

    again = _run("model", "download", "mnist:1", "-t", str(out), "--workspace", ws)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "--overwrite" in again.stderr
    assert _run("model", "download", "mnist:1", "-t", str(out), "--overwrite", "--workspace", ws).returncode == 0

    deleted = _run("model", "delete", "mnist:1", "--workspace", ws)
    assert deleted.returncode == 0 and "mnist:1" in deleted.stdout
    assert Model.list(Workspace(ws)) == []


def test_subprocess_errors_are_one_line_exit_1_and_usage_exit_2(tmp_path: Path, model_file: Path) -> None:
    ws = str(Workspace.create(tmp_path / "ws").path)
    missing = _run("model", "show", "nope", "--workspace", ws)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: Model 'nope' not found") and missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr
    usage = _run("model", "register", "-p", str(model_file), "--workspace", ws)
    assert usage.returncode == 2 and "-n" in usage.stderr


def test_list_filters_and_json(tmp_path: Path, model_file: Path) -> None:
    ws = str(tmp_path / "ws")
    for name, tag in (("a", "stage=dev"), ("a", "stage=prod"), ("b", "team=x")):
        assert _invoke("model", "register", "-n", name, "-p", str(model_file), "--tag", tag, "-w", ws).exit_code == 0

    def ids(*extra: str) -> list[str]:
        result = _invoke("model", "list", "-o", "json", "-w", ws, *extra)
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.stdout)]

    assert ids() == ["a:2", "a:1", "b:1"]
    assert ids("-n", "a") == ["a:2", "a:1"]
    assert ids("--tag", "stage") == ["a:2", "a:1"]
    assert ids("--tag", "stage=dev") == ["a:1"]
    assert ids("--latest") == ["a:2", "b:1"]
    rows = json.loads(_invoke("model", "list", "-o", "json", "-w", ws).stdout)
    assert set(rows[0]) == set(Model(Workspace(ws), "a").serialize())
    table = _invoke("model", "list", "-w", ws)
    assert table.exit_code == 0 and "a:2" in table.stdout and "stage=prod" in table.stdout


def test_workspace_from_environment(tmp_path: Path, model_file: Path) -> None:
    ws = tmp_path / "env-ws"
    result = _invoke("model", "register", "-n", "m", "-p", str(model_file), env={"MLDEPLOY_WORKSPACE": str(ws)})
    assert result.exit_code == 0, result.output
    assert Model(Workspace(ws), "m").version == 1


def test_register_folder_and_download_folder(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"w")
    assert _invoke("model", "register", "-n", "f", "-p", str(folder), "-w", ws).exit_code == 0
    result = _invoke("model", "download", "f", "-t", str(tmp_path / "out"), "-o", "json", "-w", ws)
    assert json.loads(result.stdout) == {"id": "f:1", "path": str(tmp_path / "out" / "models")}
    assert (tmp_path / "out" / "models" / "sub" / "w.bin").read_bytes() == b"w"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("model", "register", "-n", "a/b", "-p", "{file}"), 1, "Invalid model name 'a/b'"),
        (("model", "register", "-n", "m", "-p", "{missing}"), 1, "does not exist"),
        (("model", "register", "-n", "m", "-p", "{file}", "--tag", "novalue"), 2, "KEY=VALUE"),
        (("model", "delete", "m"), 2, "NAME:VERSION"),
        (("model", "show", "m:x"), 1, "Invalid model version"),
        (("model", "list", "-o", "yaml"), 2, "yaml"),
    ],
)
def test_error_exit_codes(tmp_path: Path, model_file: Path, args: tuple[str, ...], code: int, message: str) -> None:
    filled = [a.format(file=model_file, missing=tmp_path / "missing.pkl") for a in args]
    result = _invoke(*filled, "-w", str(tmp_path / "ws"))
    assert result.exit_code == code
    assert message in result.stderr
    if code == 1:
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_delete_in_use_needs_force(tmp_path: Path, model_file: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    Model.register(ws, model_file, "m")
    with ws.transaction() as conn:
        conn.execute("INSERT INTO services VALUES ('svc', 'process', 'now', 'now')")
        conn.execute("INSERT INTO service_models VALUES ('svc', 'm', 1)")
    # a service with a record file (rows without one are dropped as a crashed deploy's leftovers)
    (ws.deployments_dir / "svc").mkdir(parents=True)
    (ws.deployments_dir / "svc" / SERVICE_RECORD_FILENAME).write_text("{}")
    refused = _invoke("model", "delete", "m:1", "-w", str(ws.path))
    assert refused.exit_code == 1 and "'svc'" in refused.stderr and "--force" in refused.stderr
    forced = _invoke("model", "delete", "m:1", "--force", "-o", "json", "-w", str(ws.path))
    assert forced.exit_code == 0 and json.loads(forced.stdout) == {"deleted": "m:1"}


def test_register_with_samples_and_resources(tmp_path: Path, model_file: Path) -> None:
    ws = str(tmp_path / "ws")
    (tmp_path / "in.csv").write_text("age,bmi\n0.1,0.2\n0.3,0.4\n")
    (tmp_path / "out.json").write_text("[151.0, 75.5]")
    result = _invoke("model", "register", "-n", "s", "-p", str(model_file), "--sample-input", str(tmp_path / "in.csv"),
                     "--sample-output", str(tmp_path / "out.json"), "--cc", "0.5", "--gb", "1.5", "-w", ws)
    assert result.exit_code == 0, result.stderr
    model = Model(Workspace(ws), "s")
    assert model.resource_configuration.cpu == 0.5 and model.resource_configuration.memory_in_gb == 1.5
    assert model.sample_input_dataset.to_pandas_dataframe().columns.tolist() == ["age", "bmi"]
    assert model.sample_output is not None
    shown = json.loads(_invoke("model", "show", "s", "-o", "json", "-w", ws).stdout)
    assert shown["resourceConfiguration"]["cpu"] == 0.5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--sample-input", "{txt}"), 2, "give a .json file"),
        (("--sample-input", "{bad_json}"), 2, "cannot be read as a sample"),
        (("--sample-output", "{json}"), 1, "sample_output"),
        (("--cc", "-1", "--gb", "1"), 1, "cpu"),
    ],
)
def test_register_sample_and_resource_errors_store_nothing(
    tmp_path: Path, model_file: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    (tmp_path / "s.txt").write_text("x")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "ok.json").write_text("[1.0]")
    paths = {"txt": tmp_path / "s.txt", "bad_json": tmp_path / "bad.json", "json": tmp_path / "ok.json"}
    filled = [a.format(**paths) for a in args]
    ws = tmp_path / "ws"
    result = _invoke("model", "register", "-n", "m", "-p", str(model_file), *filled, "-w", str(ws))
    assert result.exit_code == code and message in result.stderr
    if ws.exists():
        assert Model.list(Workspace(str(ws))) == []
