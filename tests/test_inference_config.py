"""InferenceConfig and DeploymentConfiguration: v1 files in and out, checks before anything starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_mldeploy.deploy import DeploymentConfiguration, LocalWebservice
from jupyter_mldeploy.environment import Environment
from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.inference_config import EnvironmentReference, InferenceConfig

SCORE = "def init():\n    pass\n\n\ndef run(raw_data):\n    return raw_data\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text(SCORE)
    (tmp_path / "env.yml").write_text(
        "name: project\ndependencies:\n  - python=3.11\n  - pip:\n    - joblib==1.4.2\n"
    )
    return tmp_path


def test_entry_script_relative_to_source_directory(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(project)
    config = InferenceConfig("score.py", source_directory="src")
    assert config.entry_script == project / "src" / "score.py"
    assert config.entry_script_relative == Path("score.py")
    # v1 notebooks also give the script's path from the current folder.
    assert InferenceConfig("src/score.py", source_directory="src").entry_script == config.entry_script
    # paths are fixed at creation: a later chdir changes nothing
    monkeypatch.chdir(project / "src")
    assert config.validate().ok


def test_validate_reports_problems_before_anything_starts(project: Path):
    (project / "src" / "score.py").write_text("def init():\n    pass\n")
    config = InferenceConfig("score.py", source_directory=project / "src")
    with pytest.raises(InvalidArgument, match=r"No run\(\)"):
        config.validate()
    with pytest.raises(NotFound, match="source_directory"):
        InferenceConfig("score.py", source_directory=project / "missing").validate()
    with pytest.raises(NotFound, match="Entry script"):
        InferenceConfig(project / "nope.py").validate()
    with pytest.raises(InvalidArgument, match="entry_script is required"):
        InferenceConfig("")


def test_from_file_v1_keys_relative_to_the_json_folder(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (project / "steps.txt").write_text("RUN echo hi\n")
    file = project / "inferenceconfig.json"
    file.write_text(
        json.dumps(
            {
                "entryScript": "score.py",
                "sourceDirectory": "src",
                "runtime": "python",
                "condaFile": "env.yml",
                "extraDockerFileSteps": "steps.txt",
                "baseImage": "mcr.microsoft.com/azureml/base:latest",
                "enableGpu": False,
                "description": "ridge",
            }
        )
    )
    monkeypatch.chdir(tmp_path.parent)  # anywhere else
    config = InferenceConfig.from_file(file)
    assert config.entry_script == project / "src" / "score.py"
    assert config.extra_docker_file_steps == project / "steps.txt"
    assert config.base_image.startswith("mcr.") and config.enable_gpu is False
    assert config.description == "ridge" and config.runtime == "python"
    # condaFile becomes the environment
    assert isinstance(config.environment, Environment)
    pip = json.dumps(config.environment.serialize())
    assert "joblib==1.4.2" in pip
    assert config.validate().ok

    out = project / "copy" / "inferenceconfig.json"
    out.parent.mkdir()
    config.to_file(out)
    written = json.loads(out.read_text())
    assert written["sourceDirectory"] == "../src" and written["entryScript"] == "score.py"
    assert written["extraDockerfileSteps"] == "../steps.txt"
    assert "environment" in written
    again = InferenceConfig.from_file(out)
    assert again.entry_script == config.entry_script
    assert again.environment.serialize() == config.environment.serialize()


def test_environment_reference_is_kept_until_a_workspace_resolves_it(project: Path, workspace):
    file = project / "ic.json"
    file.write_text(json.dumps({"entryScript": "src/score.py", "environment": {"name": "myenv", "version": "1"}}))
    config = InferenceConfig.from_file(file)
    assert config.environment == EnvironmentReference("myenv", "1")
    assert config.serialize()["environment"] == {"name": "myenv", "version": "1"}
    with pytest.raises(NotFound):
        config.resolve_environment(workspace)
    env = Environment("myenv")
    env.python.user_managed_dependencies = True
    env.register(workspace)
    resolved = InferenceConfig.from_file(file, workspace).environment
    assert isinstance(resolved, Environment) and resolved.name == "myenv"
    assert config.resolve_environment(workspace).name == "myenv"


def test_inline_environment_round_trip(project: Path):
    env = Environment("inline")
    env.python.conda_dependencies.add_pip_package("joblib==1.4.2")
    config = InferenceConfig("score.py", source_directory=project / "src", environment=env)
    data = config.serialize(relative_to=project)
    assert data["sourceDirectory"] == "src"
    back = InferenceConfig.from_dict(data, base_dir=project)
    assert isinstance(back.environment, Environment)
    assert back.environment.serialize() == env.serialize()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
        ('{"sourceDirectory": "src"}', "entryScript"),
        ('{"entryScript": "score.py", "entryscript": "x"}', "unknown keys"),
        ('{"entryScript": "score.py", "environment": "myenv"}', "must be an object"),
        ('{"entryScript": "score.py", "runtime": "java"}', "Unknown runtime"),
    ],
)
def test_bad_inference_config_files(tmp_path: Path, content: str, fragment: str):
    file = tmp_path / "ic.json"
    file.write_text(content)
    with pytest.raises(InvalidArgument, match=fragment):
        InferenceConfig.from_file(file)


def test_missing_inference_config_file(tmp_path: Path):
    with pytest.raises(NotFound):
        InferenceConfig.from_file(tmp_path / "none.json")


def test_deploy_configuration_defaults_and_checks():
    config = LocalWebservice.deploy_configuration()
    assert (config.compute_type, config.runtime, config.port, config.host) == ("local", "process", None, "127.0.0.1")
    assert LocalWebservice.deploy_configuration(port=6789, cors_origins="a.com, b.com").cors_origins == ["a.com", "b.com"]
    for bad in (0, 70000, "80", True):
        with pytest.raises(InvalidArgument, match="port"):
            LocalWebservice.deploy_configuration(port=bad)
    with pytest.raises(InvalidArgument, match="runtime"):
        LocalWebservice.deploy_configuration(runtime="vm")
    assert LocalWebservice.deploy_configuration(runtime="docker").runtime == "docker"  # the Docker runtime's


def test_deployment_config_file_round_trip(tmp_path: Path):
    file = tmp_path / "deploymentconfig.json"
    file.write_text(
        json.dumps(
            {
                "computeType": "local",
                "port": 6789,
                "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0},
                "autoScaler": {"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 3},
                "numReplicas": 2,
                "authEnabled": False,
                "scoringTimeoutMs": 5000,
                "maxConcurrentRequestsPerContainer": 4,
                "enableAppInsights": True,
            }
        )
    )
    config = DeploymentConfiguration.from_file(file)
    assert config.port == 6789 and config.scoring_timeout_ms == 5000
    assert config.container_resource_requirements == {"cpu": 0.5, "memoryInGB": 1.0}
    assert config.app_insights_enabled is True and config.num_replicas == 2
    config.check_runnable()
    out = config.to_file(tmp_path / "out.json")
    written = json.loads(out.read_text())
    assert written["appInsightsEnabled"] is True and written["autoScaler"]["maxReplicas"] == 3
    assert DeploymentConfiguration.from_file(out) == config


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        ({"port": 1}, InvalidArgument, "computeType"),
        ({"computeType": "local", "prot": 1}, InvalidArgument, "unknown keys"),
        ({"computeType": "local", "port": "x"}, InvalidArgument, "port"),
        ({"computeType": "local", "containerResourceRequirements": {"cpu": -1}}, InvalidArgument, "cpu"),
        ({"computeType": "mainframe"}, InvalidArgument, "computeType"),
    ],
)
def test_bad_deployment_config_files(tmp_path: Path, data: dict, error: type, fragment: str):
    file = tmp_path / "dc.json"
    file.write_text(json.dumps(data))
    with pytest.raises(error, match=fragment):
        DeploymentConfiguration.from_file(file)


def test_aks_files_parse_as_the_kubernetes_runtime(tmp_path: Path):
    file = tmp_path / "dc.json"
    file.write_text(json.dumps({"computeType": "aks", "numReplicas": 3, "autoScaler": {"autoscaleEnabled": False}}))
    config = DeploymentConfiguration.from_file(file)
    assert config.num_replicas == 3 and config.auto_scaler == {"autoscaleEnabled": False}
    assert config.runtime == "kubernetes"  # tests/kubernetes/ covers that target
    file.write_text(json.dumps({"computeType": "docker"}))
    assert DeploymentConfiguration.from_file(file).runtime == "docker"


def test_to_file_is_atomic_and_leaves_no_temp_file(project: Path):
    config = InferenceConfig("score.py", source_directory=project / "src")
    target = config.to_file(project / "ic.json")
    assert sorted(os.listdir(project)) == ["env.yml", "ic.json", "src"]
    assert json.loads(target.read_text())["entryScript"] == "score.py"
