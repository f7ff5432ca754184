"""Deployments under faults and hostile input: a deploy killed at each step, tampered models, bad names,
deleting from another process. Every process is real; a kill is a real SIGKILL of a real deploying process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from fixtures.deploy_support import source_dir, train_ridge, wait_for

from jupyter_mldeploy import InferenceConfig, InvalidArgument, LocalWebservice, Model, NotFound, Webservice
from jupyter_mldeploy.deploy.targets import local_process
from jupyter_mldeploy.errors import IntegrityError

#: Where a deploy is killed: (function patched in the deploying process, kill before or after it runs).
KILL_POINTS = [
    ("jupyter_mldeploy.deploy.plan:DeploymentPlan.layout", "after"),
    ("jupyter_mldeploy.deploy.service_store:ServiceStore.save", "after"),
    ("jupyter_mldeploy.deploy.targets.local_process:start_server", "before"),
    ("jupyter_mldeploy.deploy.targets.local_process:start_server", "after"),
    ("jupyter_mldeploy.deploy.service_store:ServiceStore.save_file_only", "after"),
]

DEPLOY_AND_DIE = textwrap.dedent("""
    import importlib, os, signal, sys
    from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Workspace

    workspace, source, point, when = sys.argv[1:5]
    module_name, _, attribute = point.partition(":")
    owner = importlib.import_module(module_name)
    holder, _, name = attribute.rpartition(".")
    holder = getattr(owner, holder) if holder else owner
    original = getattr(holder, name)

    def dying(*args, **kwargs):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(holder, name, dying)
    ws = Workspace(workspace)
    Model.deploy(ws, "victim", ["diabetes:1"], InferenceConfig("score.py", source_directory=source),
                 LocalWebservice.deploy_configuration())
    print("not killed")
""")


@pytest.fixture
def registered(tmp_path: Path, workspace):
    path, model, samples = train_ridge(tmp_path / "train")
    return Model.register(workspace, model_path=str(path), model_name="diabetes"), samples


def _servers(folder: Path) -> list[psutil.Process]:
    return local_process.servers_of(folder) if folder.exists() else [
        p for p in psutil.process_iter(["cmdline"])
        if local_process.SERVER_MODULE in " ".join(p.info["cmdline"] or []) and str(folder) in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.parametrize(("point", "when"), KILL_POINTS, ids=[f"{p.split(':')[1]}-{w}" for p, w in KILL_POINTS])
def test_a_deploy_killed_at_any_step_leaves_no_orphan_and_no_phantom(
    point: str, when: str, workspace, registered, tmp_path: Path
) -> None:
    model, samples = registered
    source = source_dir(tmp_path, "score_ridge.py")
    child = subprocess.run(
        [sys.executable, "-c", DEPLOY_AND_DIE, str(workspace.path), str(source), point, when],
        capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -9, child.stdout + child.stderr
    folder = workspace.deployments_dir / "victim"

    # Whatever was left is findable from the workspace: a second deploy of the name replaces it ...
    listed = [s.name for s in Webservice.list(workspace)]
    if listed:
        service = Webservice(workspace, "victim")
        service.delete()
    else:
        with workspace.connect() as conn:
            assert conn.execute("SELECT COUNT(*) FROM service_models").fetchone()[0] == 0
    assert _servers(folder) == [], "a server of the killed deploy still runs"

    service = Model.deploy(workspace, "victim", [model], InferenceConfig("score.py", source_directory=source),
                           LocalWebservice.deploy_configuration())
    service.wait_for_deployment(timeout_sec=120)
    assert service.run({"data": samples})
    assert len(_servers(folder)) == 1
    service.delete()
    # ... and after delete nothing runs and nothing blocks deleting the model.
    assert _servers(folder) == []
    Model(workspace, "diabetes", version=1).delete()
    with pytest.raises(NotFound):
        Model(workspace, "diabetes", version=1)


def test_rows_of_a_service_without_record_do_not_block_model_delete(workspace, registered) -> None:
    model, _ = registered
    with workspace.transaction() as conn:
        conn.execute("INSERT INTO services (name, runtime, created_time, updated_time) VALUES ('ghost', 'process', "
                     "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
        conn.execute("INSERT INTO service_models (service, model_name, model_version) VALUES ('ghost', 'diabetes', 1)")
    assert Webservice.list(workspace) == []
    model.delete()
    with workspace.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM services").fetchone()[0] == 0


def test_a_tampered_model_is_refused_and_nothing_is_created(workspace, registered, tmp_path: Path) -> None:
    model, _ = registered
    stored = Path(model.url) / "model.pkl"
    os.chmod(stored, 0o644)
    with open(stored, "r+b") as handle:
        handle.seek(40)
        byte = handle.read(1)
        handle.seek(40)
        handle.write(bytes([byte[0] ^ 0xFF]))
    source = source_dir(tmp_path, "score_ridge.py")
    with pytest.raises(IntegrityError, match="diabetes:1.*damaged"):
        Model.deploy(workspace, "tampered", [model], InferenceConfig("score.py", source_directory=source))
    assert not (workspace.deployments_dir / "tampered").exists()
    assert Webservice.list(workspace) == []


def test_a_deployment_cannot_change_the_registered_version(workspace, registered, tmp_path: Path) -> None:
    model, samples = registered
    stored = Path(model.url) / "model.pkl"
    before = stored.read_bytes()
    source = source_dir(tmp_path, "score_ridge.py")
    service = Model.deploy(workspace, "writer", [model], InferenceConfig("score.py", source_directory=source))
    try:
        service.wait_for_deployment(timeout_sec=120)
        served = service.app_folder / "azureml-models" / "diabetes" / "1" / "model.pkl"
        assert not os.path.samefile(served, stored)
        os.chmod(served, 0o644)
        served.write_bytes(b"overwritten by a score.py")  # what a script running as the user can do
        assert stored.read_bytes() == before
        service.reload()  # a reload places a fresh, checked copy
        service.wait_for_deployment(timeout_sec=120)
        assert service.run({"data": samples})
    finally:
        service.delete()


def test_bad_service_names_are_refused_before_touching_files(workspace, registered, tmp_path: Path) -> None:
    model, _ = registered
    for bad in ("a\x00b", "s" * 300, "../x", "a/b", ""):
        with pytest.raises(InvalidArgument, match="service name"):
            Webservice(workspace, bad)
        with pytest.raises(InvalidArgument, match="service name"):
            Model.deploy(workspace, bad, [model], InferenceConfig("score.py", source_directory=source_dir(
                tmp_path, "score_ridge.py")))
    assert not workspace.deployments_dir.exists() or not any(workspace.deployments_dir.iterdir()) or all(
        p.name == ".locks" for p in workspace.deployments_dir.iterdir()
    )


def test_a_255_character_name_deploys(workspace, registered, tmp_path: Path) -> None:
    model, samples = registered
    name = "s" * 255
    service = Model.deploy(workspace, name, [model], InferenceConfig("score.py", source_directory=source_dir(
        tmp_path, "score_ridge.py")))
    try:
        service.wait_for_deployment(timeout_sec=120)
        assert service.run({"data": samples})
        assert [s.name for s in Webservice.list(workspace)] == [name]
    finally:
        service.delete()


DEPLOY_AND_WAIT = textwrap.dedent("""
    import sys, time
    from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Workspace

    ws = Workspace(sys.argv[1])
    service = Model.deploy(ws, "shared", ["diabetes:1"], InferenceConfig("score.py", source_directory=sys.argv[2]),
                           LocalWebservice.deploy_configuration())
    service.wait_for_deployment(timeout_sec=120)
    print("deployed", flush=True)
    time.sleep(600)  # stays alive without ever collecting its child's exit status
""")


def test_delete_from_another_process_is_as_fast_as_from_the_deployer(workspace, registered, tmp_path: Path) -> None:
    source = source_dir(tmp_path, "score_ridge.py")
    deployer = subprocess.Popen(
        [sys.executable, "-c", DEPLOY_AND_WAIT, str(workspace.path), str(source)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert deployer.stdout is not None and deployer.stdout.readline().strip() == "deployed"
        service = Webservice(workspace, "shared")
        server = psutil.Process(service.pid)
        started = time.monotonic()
        service.delete()
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"delete from another process took {elapsed:.1f} s"
        assert server.status() == psutil.STATUS_ZOMBIE or not server.is_running()
    finally:
        deployer.kill()
        deployer.wait(10)


def test_a_status_file_written_by_another_pid_is_not_trusted(workspace, registered, tmp_path: Path) -> None:
    model, _ = registered
    service = Model.deploy(workspace, "trust", [model], InferenceConfig("score.py", source_directory=source_dir(
        tmp_path, "score_init_fails.py")))
    try:
        wait_for(lambda: service.state == "Failed", timeout=180, what="the init() failure read as Failed")
        pid = service.pid
        wait_for(lambda: not local_process.is_running(pid, None), timeout=60, what="the failed server exited")
        status_file = workspace.deployments_dir / "trust" / "status.json"
        forged = json.loads(status_file.read_text())
        forged.update({"state": "Healthy", "pid": 1, "error": None})
        status_file.write_text(json.dumps(forged))  # what a stray server of an earlier deploy would write
        assert service.state == "Failed"
    finally:
        service.delete()


def test_a_reload_reuses_unchanged_copies_and_recopies_a_written_one(workspace, registered, tmp_path: Path) -> None:
    model, samples = registered
    stored = Path(model.url) / "model.pkl"
    service = Model.deploy(workspace, "reuse", [model], InferenceConfig("score.py", source_directory=source_dir(
        tmp_path, "score_ridge.py")))
    try:
        service.wait_for_deployment(timeout_sec=120)
        first = service.app_folder / "azureml-models" / "diabetes" / "1" / "model.pkl"
        inode = first.stat().st_ino
        service.reload()
        second = service.app_folder / "azureml-models" / "diabetes" / "1" / "model.pkl"
        assert second.stat().st_ino == inode  # linked from the previous generation: no copy
        os.chmod(second, 0o644)
        with open(second, "ab") as handle:
            handle.write(b"appended by a script")
        service.reload()
        third = service.app_folder / "azureml-models" / "diabetes" / "1" / "model.pkl"
        assert third.stat().st_ino != inode and third.read_bytes() == stored.read_bytes()
        assert service.run({"data": samples})
    finally:
        service.delete()
