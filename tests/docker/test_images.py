"""Images with a real engine: build_local(use_docker=True), reuse, a failing step, Model.package + docker run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from conftest import DiabetesSetup

from jupyter_mldeploy import Environment, InferenceConfig, Model
from jupyter_mldeploy.cli import main
from jupyter_mldeploy.deploy.ports import free_port
from jupyter_mldeploy.errors import EnvironmentBuildError


def test_build_local_use_docker_builds_then_reuses(engine, env_image: str, capsys: pytest.CaptureFixture) -> None:
    env = Environment("dk-minimal")
    env.python.conda_dependencies.set_pip_requirements([])
    first = env.build_local(use_docker=True, show_output=True)
    out = capsys.readouterr().out
    assert first.tag.startswith("mldeploy-env:") and engine.images.get(first.tag)
    assert first.reused or "Step 1/" in out  # streamed when built now
    again = env.build_local(useDocker=True, show_output=False)
    assert again.reused and again.tag == first.tag and again.build_seconds < 5
    history = [layer.get("CreatedBy", "") for layer in engine.api.history(first.tag)]
    # The dependency layers come before the scoring server's layer (reverse chronological history).
    install = next(i for i, line in enumerate(history) if "pip install -r" in line)
    runtime = next(i for i, line in enumerate(history) if "/opt/mldeploy/runtime" in line and "COPY" in line)
    assert runtime < install


def test_failed_step_is_an_environment_build_error_with_its_output(engine, env_image: str) -> None:
    env = Environment("dk-broken")
    env.python.conda_dependencies.set_pip_requirements(["mldeploy-no-such-package-q7x==0.0.1"])
    started = time.monotonic()
    with pytest.raises(EnvironmentBuildError) as info:
        env.build_local(use_docker=True, show_output=False)
    message = info.value.message
    assert "pip install -r" in message and "mldeploy-no-such-package-q7x" in message
    assert "No matching distribution" in message or "Could not find a version" in message
    assert time.monotonic() - started < 300


def test_package_image_runs_with_docker_run(engine, env_image: str, diabetes: DiabetesSetup, tmp_path: Path) -> None:
    inference = InferenceConfig("score.py", source_directory=diabetes.source)
    package = Model.package(diabetes.workspace, [diabetes.model_id], inference, image_name="mldeploy-test-package:1")
    assert package.location == "mldeploy-test-package:1" and package.state == "NotStarted"
    started = time.monotonic()
    package.wait_for_creation(show_output=False)
    print(f"\n[docker] package image (environment layers cached): {time.monotonic() - started:.1f} s")
    assert package.state == "Succeeded" and engine.images.get(package.location)
    port = free_port()
    container = engine.containers.run(
        package.location, detach=True, ports={"5001/tcp": ("127.0.0.1", port)},
        labels={"mldeploy.kind": "test", "mldeploy.workspace": str(diabetes.workspace.path.resolve())},
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/score", json={"data": diabetes.samples}, timeout=5)
                if response.status_code == 200:
                    break
            except requests.RequestException:
                pass
            container.reload()
            assert container.status == "running", container.logs().decode()[-2000:]
            assert time.monotonic() < deadline, container.logs().decode()[-2000:]
            time.sleep(0.3)
        assert response.json() == pytest.approx(diabetes.expected)
    finally:
        container.remove(force=True)
        engine.images.remove(package.location, force=True)
    context = package.save(tmp_path / "context")
    dockerfile = (context / "Dockerfile").read_text()
    assert "COPY app/ /var/azureml-app/" in dockerfile and "AZUREML_MODEL_DIR" in dockerfile
    assert (context / "app" / "azureml-models" / "diabetes" / "1" / "model.pkl").is_file()
    assert (context / "runtime" / "jupyter_mldeploy" / "server" / "supervisor.py").is_file()
    assert "scikit-learn==" in (context / "requirements.txt").read_text()


def test_cli_model_package_writes_a_context(diabetes: DiabetesSetup, tmp_path: Path) -> None:
    ic = tmp_path / "inferenceconfig.json"
    ic.write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": str(diabetes.source)}))
    result = CliRunner().invoke(main, [
        "model", "package", "-w", str(diabetes.workspace.path), "-m", diabetes.model_id, "--ic", str(ic),
        "--generate-dockerfile", "--output-dir", str(tmp_path / "out"), "-o", "json",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["state"] == "Succeeded" and data["imageId"] is None
    assert (tmp_path / "out" / "Dockerfile").is_file()
    bad = CliRunner().invoke(main, ["model", "package", "-w", str(diabetes.workspace.path), "-m", diabetes.model_id,
                                    "--ic", str(ic), "--generate-dockerfile"])
    assert bad.exit_code == 1 and "--output-dir" in bad.output


def test_base_image_command_reuses_a_present_image(engine) -> None:
    from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE

    if not engine.images.list(name=LOCAL_BASE_IMAGE):
        pytest.skip(f"{LOCAL_BASE_IMAGE} is not built here (scripts/docker-setup builds it)")
    result = CliRunner().invoke(main, ["docker", "base-image", "--name", LOCAL_BASE_IMAGE])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Present: {LOCAL_BASE_IMAGE}")
    probe = engine.containers.run(LOCAL_BASE_IMAGE, ["python3", "-c", "import venv, ensurepip; print('ok')"],
                                  remove=True)
    assert probe.decode().strip() == "ok"
