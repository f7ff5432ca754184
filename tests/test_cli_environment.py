"""``mldeploy environment ...`` through click's runner, on a real workspace folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from jupyter_mldeploy.cli import main
from jupyter_mldeploy.workspace import Workspace


@pytest.fixture
def run(workspace: Workspace):
    runner = CliRunner()

    def invoke(*args: str):
        # scaffold only writes a folder: it takes no workspace
        where = [] if args[0] == "scaffold" else ["--workspace", str(workspace.path)]
        return runner.invoke(main, ["environment", *args, *where])

    return invoke


def test_scaffold_register_list_show(run, tmp_path: Path) -> None:
    folder = tmp_path / "myenv"
    result = run("scaffold", "-n", "myenv", "-d", str(folder))
    assert result.exit_code == 0, result.output
    definition = json.loads((folder / "azureml_environment.json").read_text())
    assert definition["name"] == "myenv" and definition["python"]["userManagedDependencies"] is False
    assert (folder / "conda_dependencies.yml").is_file()

    conda = yaml.safe_load((folder / "conda_dependencies.yml").read_text())
    conda["dependencies"][-1]["pip"] = ["six==1.16.0"]
    (folder / "conda_dependencies.yml").write_text(yaml.safe_dump(conda))

    result = run("register", "-d", str(folder), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == "1"
    assert json.loads(run("register", "-d", str(folder), "-o", "json").output)["version"] == "1"

    listed = json.loads(run("list", "-o", "json").output)
    names = [row["name"] for row in listed]
    assert names[:2] == ["mldeploy-minimal", "mldeploy-sklearn"] and "myenv" in names
    assert next(r for r in listed if r["name"] == "myenv")["pip_packages"] == ["six==1.16.0"]

    shown = json.loads(run("show", "myenv:1", "-o", "json").output)
    assert shown["version"] == "1"
    assert shown["python"]["condaDependencies"]["dependencies"][-1] == {"pip": ["six==1.16.0"]}
    table = run("show", "myenv")
    assert table.exit_code == 0 and "six==1.16.0" in table.output


def test_scaffold_refuses_existing_folder(run, tmp_path: Path) -> None:
    assert run("scaffold", "-n", "e", "-d", str(tmp_path / "e")).exit_code == 0
    again = run("scaffold", "-n", "e", "-d", str(tmp_path / "e"))
    assert again.exit_code == 1 and "overwrite" in again.stderr


def test_errors_are_one_line(run) -> None:
    missing = run("show", "nothing")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: Environment nothing is not registered")
    bad = run("show", "../x")
    assert bad.exit_code == 1 and "Invalid environment name" in bad.stderr
    docker_free = run("build", "AzureML-TensorFlow-2.3-GPU")
    assert docker_free.exit_code == 1 and "not registered" in docker_free.stderr


@pytest.mark.slow
def test_build_prints_interpreter_and_reuse(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    first = run("build", "mldeploy-minimal")
    assert first.exit_code == 0, first.output
    assert "built in" in first.output and "Interpreter: " in first.output
    assert "uv pip install" in first.output  # streamed build output
    second = json.loads(run("build", "AzureML-Minimal", "-o", "json").output)
    assert second["reused"] is True and second["name"] == "mldeploy-minimal"
    assert Path(second["python"]).exists()
    assert str(tmp_path / "cache") in second["python"]
