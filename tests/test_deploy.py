"""Model.deploy -> LocalWebservice on the process runtime: real server processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from fixtures.deploy_support import source_dir, train_ridge

import jupyter_mldeploy
from jupyter_mldeploy import Conflict, DeploymentError, InvalidArgument, Model, ScoringError
from jupyter_mldeploy.deploy import LocalWebservice, Webservice
from jupyter_mldeploy.deploy.state import ServiceState
from jupyter_mldeploy.inference_config import InferenceConfig


def server_pids() -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if "jupyter_mldeploy.server" in " ".join(proc.info.get("cmdline") or []):
            found.add(proc.pid)
    return found


@pytest.fixture
def ridge(tmp_path: Path, workspace):
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes", tags={"algo": "ridge"})
    return registered, model, samples


@pytest.fixture
def services():
    """Services deployed by a test; deleted afterwards even when the test fails."""
    deployed: list[Webservice] = []
    yield deployed
    for service in deployed:
        service.delete()


def deploy(workspace, name, models, folder: Path, script: str = "score_ridge.py", **config):
    ic = InferenceConfig("score.py", source_directory=source_dir(folder, script))
    return Model.deploy(workspace, name, models, ic, LocalWebservice.deploy_configuration(**config))


def test_deploy_call_delete(workspace, ridge, tmp_path: Path, services):
    registered, model, samples = ridge
    service = deploy(workspace, "diabetes-svc", [registered], tmp_path)
    services.append(service)
    assert isinstance(service, LocalWebservice)
    assert service.state in ("Transitioning", "Healthy")
    service.wait_for_deployment(timeout_sec=120)
    assert service.state == "Healthy" and service.state == "running"  # v1 alias
    assert service.state_is("healthy") and not service.state_is("Failed")
    assert service.scoring_uri == f"http://127.0.0.1:{service.port}/score"
    assert service.swagger_uri == f"http://127.0.0.1:{service.port}/swagger.json"
    assert service.compute_type == "Local" and service.model_ids == ["diabetes:1"]
    assert [m.id for m in service.models] == ["diabetes:1"]

    expected = model.predict(samples).tolist()
    assert service.run(json.dumps({"data": samples})) == pytest.approx(expected)
    assert service.run({"data": samples}) == pytest.approx(expected)
    direct = requests.post(service.scoring_uri, json={"data": samples}, timeout=30)
    assert direct.status_code == 200 and direct.json() == pytest.approx(expected)
    with pytest.raises(ScoringError) as info:
        service.run("not json")
    assert info.value.status_code == 500 and "scoring script" in info.value.server_message

    # the model files are copies of the registered ones (a score.py that writes cannot change the registry)
    app_model = service.app_folder / "azureml-models" / "diabetes" / "1" / "model.pkl"
    assert not os.path.samefile(app_model, Path(registered.url) / "model.pkl")
    assert app_model.read_bytes() == (Path(registered.url) / "model.pkl").read_bytes()
    # v1's app layout: the source directory under its own name in the app root
    assert (service.app_folder / "src" / "score.py").is_file()

    data = service.serialize()
    assert data["state"] == "Healthy" and data["models"] == ["diabetes:1"] and data["port"] == service.port
    assert "diabetes-svc" in repr(service) and "<table" in service._repr_html_()
    assert service.get_logs(num_lines=5)
    assert len(service.get_logs(num_lines=2).splitlines()) <= 2
    assert [s.name for s in Webservice.list(workspace)] == ["diabetes-svc"]
    with workspace.connect() as conn:
        rows = conn.execute("SELECT model_name, model_version FROM service_models").fetchall()
    assert [tuple(r) for r in rows] == [("diabetes", 1)]

    pid = service.pid
    service.delete()
    assert service.state == "Deleted"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (workspace.deployments_dir / "diabetes-svc").exists()
    with workspace.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM services").fetchone()[0] == 0
    service.delete()  # idempotent
    with pytest.raises(Exception, match="No service named"):
        Webservice(workspace, "diabetes-svc")


def test_two_services_at_once(workspace, ridge, tmp_path: Path, services):
    registered, model, samples = ridge
    first = deploy(workspace, "one", [registered], tmp_path / "a")
    services.append(first)
    second = deploy(workspace, "two", ["diabetes:1"], tmp_path / "b")
    services.append(second)
    first.wait_for_deployment(timeout_sec=120)
    second.wait_for_deployment(timeout_sec=120)
    assert first.port != second.port
    expected = model.predict(samples).tolist()
    assert first.run({"data": samples}) == pytest.approx(expected)
    assert second.run({"data": samples}) == pytest.approx(expected)
    assert [s.name for s in Webservice.list(workspace)] == ["one", "two"]


def test_reattach_from_a_new_process(workspace, ridge, tmp_path: Path, services):
    registered, model, samples = ridge
    service = deploy(workspace, "attached", [registered], tmp_path)
    services.append(service)
    service.wait_for_deployment(timeout_sec=120)
    code = (
        "import json, sys\n"
        "from jupyter_mldeploy import Workspace\n"
        "from jupyter_mldeploy.deploy import Webservice\n"
        "svc = Webservice(Workspace(sys.argv[1]), 'attached')\n"
        "print(json.dumps({'state': str(svc.state), 'uri': svc.scoring_uri, "
        "'result': svc.run({'data': json.loads(sys.argv[2])})}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(workspace.path), json.dumps(samples)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    seen = json.loads(out.stdout)
    assert seen["state"] == "Healthy" and seen["uri"] == service.scoring_uri
    assert seen["result"] == pytest.approx(model.predict(samples).tolist())


def test_server_survives_its_parent_session(workspace, ridge, tmp_path: Path, services):
    """The server runs in its own session: a signal to our process group does not reach it."""
    registered, _model, _samples = ridge
    service = deploy(workspace, "detached", [registered], tmp_path)
    services.append(service)
    service.wait_for_deployment(timeout_sec=120)
    server = psutil.Process(service.pid)
    assert os.getsid(server.pid) == server.pid != os.getsid(0)
    assert os.getpgid(server.pid) != os.getpgid(0)


def test_killed_server_reads_unhealthy(workspace, ridge, tmp_path: Path, services):
    registered, _model, samples = ridge
    service = deploy(workspace, "victim", [registered], tmp_path)
    services.append(service)
    service.wait_for_deployment(timeout_sec=120)
    os.kill(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while service.state != "Unhealthy" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.state == "Unhealthy"
    assert "no longer running" in service.error
    with pytest.raises(DeploymentError, match="Unhealthy"):
        service.wait_for_deployment(timeout_sec=5)
    # reload restarts a dead service on the same port
    port = service.port
    service.reload()
    assert service.state == "Healthy" and service.port == port
    assert len(service.run({"data": samples})) == 3


def test_init_failure_is_failed_with_traceback(workspace, ridge, tmp_path: Path, services):
    registered, _model, _samples = ridge
    service = deploy(workspace, "broken", [registered], tmp_path, script="score_init_fails.py")
    services.append(service)
    with pytest.raises(DeploymentError) as info:
        service.wait_for_deployment(timeout_sec=120)
    error = info.value
    assert "Failed" in error.summary
    assert "RuntimeError: cannot load the model: weights are missing" in error.logs
    assert "Traceback" in error.logs
    assert "model.pkl" in error.logs  # the AZUREML_MODEL_DIR listing
    assert service.state == "Failed" and service.state == "failed"
    assert "weights are missing" in (service.error or "")


def test_missing_run_is_refused_before_any_process_starts(workspace, ridge, tmp_path: Path):
    registered, _model, _samples = ridge
    before = server_pids()
    with pytest.raises(InvalidArgument, match=r"No run\(\)"):
        deploy(workspace, "norun", [registered], tmp_path, script="score_no_run.py")
    assert server_pids() - before == set()
    assert not (workspace.deployments_dir / "norun").exists()
    assert Webservice.list(workspace) == []


def test_port_conflict_names_the_port_and_holder(workspace, ridge, tmp_path: Path):
    registered, _model, _samples = ridge
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        before = server_pids()
        with pytest.raises(Conflict) as info:
            deploy(workspace, "clash", [registered], tmp_path, port=port)
        assert f"Port {port}" in str(info.value)
        assert f"pid {os.getpid()}" in str(info.value)
        assert server_pids() - before == set()
    assert not (workspace.deployments_dir / "clash").exists()


def test_existing_name_conflict_and_model_in_use(workspace, ridge, tmp_path: Path, services):
    registered, model, samples = ridge
    service = deploy(workspace, "taken", [registered], tmp_path / "a")
    services.append(service)
    with pytest.raises(Conflict, match="already exists"):
        deploy(workspace, "taken", [registered], tmp_path / "b")
    with pytest.raises(Conflict, match="taken"):
        registered.delete()
    service.wait_for_deployment(timeout_sec=120)
    # a forced delete of the model cannot break the running service (hard-linked files)
    registered.delete(force=True)
    assert service.run({"data": samples}) == pytest.approx(model.predict(samples).tolist())


def test_multi_model_layout(workspace, tmp_path: Path, services):
    first, _m1, _s1 = train_ridge(tmp_path / "m1")
    folder = tmp_path / "m2" / "bundle"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00" * 16)
    (folder / "labels.json").write_text("[]")
    a = Model.register(workspace, model_path=str(first), model_name="ridge")
    b = Model.register(workspace, model_path=str(folder), model_name="bundle")
    service = deploy(workspace, "multi", [a, b], tmp_path / "app", script="score_layout.py")
    services.append(service)
    service.wait_for_deployment(timeout_sec=120)
    seen = service.run("{}")
    app = str(service.app_folder)
    assert seen["model_dir"] == os.path.join(app, "azureml-models")
    assert seen["cwd"] == app and seen["app_root"] == app
    assert seen["files"] == ["bundle/1/bundle/labels.json", "bundle/1/bundle/weights.bin", "ridge/1/model.pkl"]


def test_single_model_dir_is_the_version_folder(workspace, ridge, tmp_path: Path, services):
    registered, _model, _samples = ridge
    service = deploy(workspace, "single", [registered], tmp_path, script="score_layout.py")
    services.append(service)
    service.wait_for_deployment(timeout_sec=120)
    seen = service.run("{}")
    assert seen["model_dir"] == os.path.join(str(service.app_folder), "azureml-models", "diabetes", "1")
    assert seen["files"] == ["model.pkl"]


def test_show_output_streams_the_log_and_waits(workspace, ridge, tmp_path: Path, services, capsys):
    registered, _model, _samples = ridge
    ic = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(workspace, "loud", [registered], ic, show_output=True)
    services.append(service)
    assert service.state == ServiceState.HEALTHY
    out = capsys.readouterr().out
    assert "is Healthy at" in out and str(service.port) in out


@pytest.mark.slow
def test_environment_built_with_uv_serves_a_model(workspace, ridge, tmp_path: Path, services):
    from jupyter_mldeploy.environment import Environment

    registered, model, samples = ridge
    import joblib
    import numpy
    import sklearn

    env = Environment("ridge-env")
    for package in (f"scikit-learn=={sklearn.__version__}", f"joblib=={joblib.__version__}",
                    f"numpy=={numpy.__version__}"):
        env.python.conda_dependencies.add_pip_package(package)
    ic = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"), environment=env)
    service = Model.deploy(workspace, "uv-env", [registered], ic, LocalWebservice.deploy_configuration())
    services.append(service)
    service.wait_for_deployment(timeout_sec=300)
    python = service.serialize()["python"]
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert Path(prefix).resolve() != Path(sys.prefix).resolve()  # a virtual environment, not this interpreter
    assert service.serialize()["environment"]["name"] == "ridge-env"
    workers = psutil.Process(service.pid).children()
    assert workers and all(w.cmdline()[0] == python for w in workers)
    # The built environment stays isolated: no folder of this interpreter is put on its workers' path.
    host_package_parent = str(Path(jupyter_mldeploy.__file__).resolve().parent.parent)
    for worker in workers:
        assert host_package_parent not in worker.environ().get("PYTHONPATH", "")
    assert service.run({"data": samples}) == pytest.approx(model.predict(samples).tolist())
