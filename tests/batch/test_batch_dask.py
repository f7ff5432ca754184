"""The dask backend on a real cluster: a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1,
started and stopped by PID; the same mini-batch function as loky, the same output row for row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from batch_helpers import SCORE_BATCH, write_script
from sklearn.linear_model import Ridge

from jupyter_mldeploy.batch import BatchJob, ParallelRunConfig
from jupyter_mldeploy.workspace import Workspace

pytest.importorskip("distributed")

DASK = str(Path(sys.executable).with_name("dask"))

#: The mini-batch holding id 0 never returns by itself (a Python loop: Dask runs tasks on threads, where
#: the timeout is raised between bytecodes).
LOOPING_FIRST = textwrap.dedent('''
    import time

    def init():
        pass

    def run(mini_batch):
        while 0 in set(mini_batch["id"]):
            time.sleep(0.05)
        return mini_batch["id"].tolist()
''')


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop one process by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two single-threaded workers (no nanny: one process each), all on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "cluster.log", "ab")  # noqa: SIM115 - closed after the processes stop
    common = {"stdout": log, "stderr": subprocess.STDOUT, "cwd": folder}
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **common)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(subprocess.Popen([DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                               "--no-nanny", "--no-dashboard"], **common))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
        log.close()
        assert all(not psutil.pid_exists(p.pid) or psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE
                   for p in processes)


def test_dask_gives_loky_s_output_row_for_row(cluster: str, scored_workspace: Workspace,
                                              diabetes: tuple[pd.DataFrame, Path, Ridge], tmp_path: Path) -> None:
    frame, _, model = diabetes
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    config = ParallelRunConfig(str(write_script(tmp_path, SCORE_BATCH)), 0, "append_row", mini_batch_size="4KB",
                               process_count_per_node=2)
    source = str(tmp_path / "diabetes.csv")
    on_dask = BatchJob.submit(scored_workspace, "dask", config, source, "diabetes", tmp_path / "dask", backend="dask",
                              scheduler=cluster)
    on_loky = BatchJob.submit(scored_workspace, "loky", config, source, "diabetes", tmp_path / "loky")
    details = on_dask.wait_for_completion()
    on_loky.wait_for_completion()
    dask_rows = (tmp_path / "dask" / "parallel_run_step.txt").read_bytes()
    assert dask_rows == (tmp_path / "loky" / "parallel_run_step.txt").read_bytes()
    np.testing.assert_allclose(np.loadtxt(tmp_path / "dask" / "parallel_run_step.txt"),
                               model.predict(frame.drop(columns="id")), rtol=1e-12)
    assert f"the Dask cluster at {cluster}, 2 worker threads" in details["backend"]
    # Both workers took part: the journal names the worker of every mini-batch.
    workers = {entry["worker"] for entry in on_dask.folder.entries() if entry["event"] == "done"}
    assert len(workers) == 2


def test_dask_times_out_a_run_on_a_worker_thread(cluster: str, scored_workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": np.arange(200), "x": np.zeros(200)}).to_csv(path, index=False)
    config = ParallelRunConfig(str(write_script(tmp_path, LOOPING_FIRST)), -1, "append_row", mini_batch_size="1KB",
                               run_invocation_timeout=1, run_max_try=2)
    job = BatchJob.submit(scored_workspace, "dask-timeout", config, str(path), None, tmp_path / "out",
                          backend="dask", scheduler=cluster)
    details = job.wait_for_completion(timeout=120)
    assert details["retries"] == 1 and details["miniBatches"]["failed"] == 1
    assert "timed out after run_invocation_timeout=1s" in details["errors"]["0"]
    written = np.loadtxt(tmp_path / "out" / "parallel_run_step.txt", dtype=int).tolist()
    assert written == list(range(200))[details["items"]["failed"]:]


def test_a_local_cluster_is_started_and_stopped_with_the_job(scored_workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": np.arange(100), "x": np.zeros(100)}).to_csv(path, index=False)
    script = write_script(tmp_path, "def init():\n    pass\n\ndef run(mini_batch):\n    return mini_batch['id'].tolist()\n")
    config = ParallelRunConfig(str(script), 0, "append_row", mini_batch_size="1KB", process_count_per_node=1)
    job = BatchJob.submit(scored_workspace, "dask-local", config, str(path), None, tmp_path / "out", backend="dask")
    details = job.wait_for_completion(timeout=120)
    assert "a local Dask cluster at tcp://127.0.0.1:" in details["backend"]
    assert np.loadtxt(tmp_path / "out" / "parallel_run_step.txt", dtype=int).tolist() == list(range(100))


def test_a_local_cluster_s_workers_exit_with_a_killed_driver(scored_workspace: Workspace, tmp_path: Path) -> None:
    """SIGKILL leaves the driver no chance to stop its LocalCluster: its worker processes must end by
    themselves within seconds (distributed's worker processes exit when their parent's pipe closes), no
    process of the cluster is left, and resume on a new cluster finishes the job."""
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": np.arange(2000), "x": np.zeros(2000)}).to_csv(path, index=False)
    script = write_script(tmp_path, textwrap.dedent('''
        import time

        def init():
            pass

        def run(mini_batch):
            time.sleep(0.2)
            return mini_batch["id"].tolist()
    '''))
    config = ParallelRunConfig(str(script), 0, "append_row", mini_batch_size="1KB", process_count_per_node=2)
    job = BatchJob.submit(scored_workspace, "dask-killed", config, str(path), None, tmp_path / "out",
                          backend="dask", scheduler="local")
    deadline = time.monotonic() + 120
    while job.get_details()["miniBatches"]["done"] < 3:
        assert time.monotonic() < deadline and job.state == "Running", job.get_logs()
        time.sleep(0.1)
    driver_pid = json.loads((job.folder.path / "driver.json").read_text())["pid"]
    workers = psutil.Process(driver_pid).children(recursive=True)
    assert len([w for w in workers if "resource_tracker" not in " ".join(w.cmdline())]) == 2, workers
    os.kill(driver_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"LocalCluster processes outlived the driver: {left}"
    assert job.state == "Failed"
    BatchJob.resume(scored_workspace, job.id)
    job.wait_for_completion(timeout=180)
    assert np.loadtxt(tmp_path / "out" / "parallel_run_step.txt", dtype=int).tolist() == list(range(2000))


def _can_hide_a_folder() -> bool:
    """Whether a process can be started with a folder hidden from it (a private mount namespace: root)."""
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True,
                           check=False) if os.path.exists("/usr/bin/unshare") else None
    return probe is not None and probe.returncode == 0


@pytest.mark.skipif(not _can_hide_a_folder(), reason="needs unshare --mount (root) to hide the workspace from a worker")
def test_the_app_folder_is_uploaded_to_a_worker_that_cannot_see_it(
        scored_workspace: Workspace, diabetes: tuple[pd.DataFrame, Path, Ridge], tmp_path: Path) -> None:
    """A worker whose file system has no workspace (an empty tmpfs mounted over it, in its own mount
    namespace) gets the script and model uploaded, scores as loky does, and its copy is deleted at the end."""
    frame, _, model = diabetes
    data = tmp_path / "data"  # the input stays visible: only the app folder is uploaded
    data.mkdir()
    frame.to_csv(data / "diabetes.csv", index=False)
    scheduler_file = tmp_path / "scheduler.json"
    scratch = tmp_path / "worker-scratch"
    scratch.mkdir()
    log = open(tmp_path / "cluster.log", "ab")  # noqa: SIM115 - closed after the processes stop
    common = {"stdout": log, "stderr": subprocess.STDOUT, "cwd": tmp_path}
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **common)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        hidden = f"mount -t tmpfs none {scored_workspace.path} && exec {DASK} worker {address} --host 127.0.0.1 " \
                 f"--nthreads 1 --no-nanny --no-dashboard --local-directory {scratch}"
        processes.append(subprocess.Popen(["unshare", "--mount", "sh", "-c", hidden], **common))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            assert list(client.run(os.path.isdir, str(scored_workspace.path)).values()) == [True]  # an empty tmpfs
            assert list(client.run(os.path.isfile, str(scored_workspace.path / "registry.sqlite")).values()) == [False]
            worker_address = next(iter(client.scheduler_info()["workers"]))
        config = ParallelRunConfig(str(write_script(tmp_path, SCORE_BATCH)), 0, "append_row", mini_batch_size="4KB")
        job = BatchJob.submit(scored_workspace, "uploaded", config, str(data / "diabetes.csv"), "diabetes",
                              tmp_path / "out", backend="dask", scheduler=address)
        details = job.wait_for_completion(timeout=180)
        assert "app folder uploaded to the workers that do not see it" in details["backend"]
        np.testing.assert_allclose(np.loadtxt(tmp_path / "out" / "parallel_run_step.txt"),
                                   model.predict(frame.drop(columns="id")), rtol=1e-12)
        assert f"to the workers that do not see {job.folder.app_dir}: {worker_address}." in job.get_logs()
        assert not list((scratch).rglob("azureml-models")), "the worker's copy outlived the job"
    finally:
        for process in reversed(processes):
            _stop(process)
        log.close()


def test_an_unreachable_scheduler_fails_the_job_naming_it(scored_workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": np.arange(10)}).to_csv(path, index=False)
    script = write_script(tmp_path, "def init():\n    pass\n\ndef run(mini_batch):\n    return mini_batch['id'].tolist()\n")
    config = ParallelRunConfig(str(script), 0, "append_row")
    started = time.monotonic()
    job = BatchJob.submit(scored_workspace, "unreachable", config, str(path), None, tmp_path / "out", backend="dask",
                          scheduler="tcp://127.0.0.1:9")
    details = job.wait_for_completion(timeout=120, raise_on_error=False)
    assert details["state"] == "Failed" and "127.0.0.1:9" in details["error"]
    assert "resume with `mldeploy batch resume" in details["error"]
    assert time.monotonic() - started < 60  # one connection timeout (30 s), not one per attempt
    assert not (tmp_path / "out").exists()
