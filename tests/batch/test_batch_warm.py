"""Warm loky drivers: a driver keeps its workers after a job and runs the next job of its workspace.

Real driver and worker processes, watched and stopped by PID: the next job runs on the same driver (and on
the same workers when its script, source files, environment_variables and logging level are the same),
its output and log are its own, a SIGKILL mid-job is resumed exactly once, and an idle driver exits when
its time runs out, its workspace is deleted or it is told to.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from batch_helpers import SCORE_BATCH, STEADY, children_of, write_script
from fixtures.deploy_support import wait_for
from sklearn.linear_model import Ridge

from jupyter_mldeploy.batch import BatchJob, JobFailed, ParallelRunConfig
from jupyter_mldeploy.batch.warm import socket_path
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.workspace import Workspace

#: init() notes what the environment held before this job's run() calls; run() leaves a variable behind.
ENV_PROBE = textwrap.dedent('''
    import os

    def init():
        global seen
        seen = os.environ.get("LEFT_BY_RUN", "none")

    def run(mini_batch):
        os.environ["LEFT_BY_RUN"] = "yes"
        return [f"{i} {os.environ.get('ONLY_FIRST', 'none')} {seen}" for i in mini_batch["id"]]
''')

#: run() prints the first id it got (to the worker's stdout: the job log).
PRINTS = textwrap.dedent('''
    def init():
        pass

    def run(mini_batch):
        print(f"run() got ids from {mini_batch['id'].iloc[0]}", flush=True)
        return mini_batch["id"].tolist()
''')


def _config(script: Path, **kwargs: object) -> ParallelRunConfig:
    kwargs.setdefault("mini_batch_size", "1KB")
    kwargs.setdefault("process_count_per_node", 2)
    return ParallelRunConfig(str(script), 0, "append_row", **kwargs)


def _ids_csv(tmp_path: Path, rows: int, start: int = 0, name: str = "ids.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame({"id": np.arange(start, start + rows), "x": np.linspace(0, 1, rows)}).to_csv(path, index=False)
    return path


def _driver_pid(job: BatchJob) -> int:
    return int(json.loads((job.folder.path / "driver.json").read_text())["pid"])


def _worker_pids(job: BatchJob) -> set[int]:
    """The pids of the workers that ran the job's mini-batches (the journal's ``worker`` field, host:pid)."""
    lines = (job.folder.path / "journal.jsonl").read_text().splitlines()
    return {int(entry["worker"].rsplit(":", 1)[1]) for entry in map(json.loads, lines) if entry["event"] == "done"}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: set[int], timeout: float, what: str) -> None:
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=timeout, what=what)


@pytest.fixture
def warm_workspace(scored_workspace: Workspace, no_stray_workers: None) -> Iterator[Workspace]:
    """The scored workspace; at the end, every driver its jobs named that is still alive gets SIGTERM (an
    idle warm driver exits on it), before ``no_stray_workers`` checks that none is left."""
    yield scored_workspace
    for record in (scored_workspace.path / "jobs").glob("*/*/driver.json"):
        pid = int(json.loads(record.read_text())["pid"])
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)


def _idle(job: BatchJob) -> None:
    """Wait until the job's driver listens again (it stays warm)."""
    workers = int(json.loads(job.folder.record_path.read_text())["config"]["process_count_per_node"])
    path = socket_path(job.workspace.path, workers)
    wait_for(path.exists, timeout=10, what=f"warm driver listening on {path}")


def _warm_first_job(workspace: Workspace, name: str, tmp_path: Path,
                    keep_warm: float = 30) -> tuple[ParallelRunConfig, BatchJob, int, set[int]]:
    """Run a short STEADY job and wait until its driver listens again; return the config, the job, the warm
    driver's pid and its processes (the kept workers)."""
    config = _config(write_script(tmp_path, STEADY))
    first = BatchJob.submit(workspace, name, config, str(_ids_csv(tmp_path, 100, name="small.csv")), None,
                            tmp_path / "out1", keep_warm=keep_warm)
    first.wait_for_completion()
    _idle(first)
    driver = _driver_pid(first)
    return config, first, driver, {p.pid for p in children_of(driver)}


def test_the_next_job_runs_on_the_same_driver_and_workers(
    warm_workspace: Workspace, diabetes: tuple[pd.DataFrame, Path, Ridge], tmp_path: Path
) -> None:
    frame, _, model = diabetes
    source = tmp_path / "diabetes.csv"
    frame.to_csv(source, index=False)
    config = _config(write_script(tmp_path, SCORE_BATCH), mini_batch_size="4KB")
    first = BatchJob.submit(warm_workspace, "warm", config, str(source), "diabetes", tmp_path / "out1", keep_warm=30)
    first.wait_for_completion()
    _idle(first)
    # The processes the warm driver kept (a worker still starting may have run none of the first job's tries).
    kept = {p.pid for p in children_of(_driver_pid(first))}
    second = BatchJob.submit(warm_workspace, "warm", config, str(source), "diabetes", tmp_path / "out2", keep_warm=30)
    details = second.wait_for_completion()
    assert _driver_pid(second) == _driver_pid(first)
    assert _worker_pids(first) <= kept and _worker_pids(second) and _worker_pids(second) <= kept
    expected = model.predict(frame.drop(columns="id"))
    for out in ("out1", "out2"):
        np.testing.assert_allclose(np.loadtxt(tmp_path / out / "parallel_run_step.txt"), expected, rtol=1e-12)
    assert details["items"] == {"total": len(frame), "succeeded": len(frame), "failed": 0}
    assert details["miniBatches"]["done"] == details["miniBatches"]["total"] > 5
    logs = second.get_logs()
    assert f"reusing the workers of job {first.id}" in logs
    # init() ran again in each worker that served the second job, logged in the second job's log.
    assert logs.count("entry script loaded and init() done") == len(_worker_pids(second))
    # Each worker that ran the first job's tries logged its init() there. On a busy machine the other worker
    # may still be importing and calling init() when both jobs are done (it ran neither job's tries), so its
    # line may not be in the first job's log yet.
    assert len(_worker_pids(first)) <= first.get_logs().count("entry script loaded and init() done") <= 2
    assert "Staying warm for 30 s" in first.get_logs()


def test_a_worker_that_died_while_idle_is_replaced_before_the_next_job(
    warm_workspace: Workspace, tmp_path: Path
) -> None:
    config = _config(write_script(tmp_path, PRINTS))
    source = _ids_csv(tmp_path, 300)
    first = BatchJob.submit(warm_workspace, "warm", config, str(source), [], tmp_path / "out1", keep_warm=30)
    first.wait_for_completion()
    _idle(first)
    victim = sorted(_worker_pids(first))[0]
    os.kill(victim, signal.SIGKILL)
    _wait_gone({victim}, timeout=10, what=f"worker {victim} killed")
    second = BatchJob.submit(warm_workspace, "warm", config, str(source), [], tmp_path / "out2", keep_warm=30)
    details = second.wait_for_completion()
    assert _driver_pid(second) == _driver_pid(first)
    assert details["items"] == {"total": 300, "succeeded": 300, "failed": 0}
    assert details["miniBatches"]["failed"] == 0 and details["retries"] == 0
    assert victim not in _worker_pids(second) and not (_worker_pids(second) & _worker_pids(first))
    assert "died while idle; starting fresh workers" in second.get_logs()
    written = (tmp_path / "out2" / "parallel_run_step.txt").read_text().split()
    assert sorted(map(int, written)) == list(range(300))


def test_another_script_or_environment_gets_fresh_workers_and_no_state_of_the_last_job(
    warm_workspace: Workspace, tmp_path: Path
) -> None:
    source = str(_ids_csv(tmp_path, 200))
    probe = write_script(tmp_path, ENV_PROBE)

    def run(name: str, config: ParallelRunConfig) -> tuple[BatchJob, list[str]]:
        job = BatchJob.submit(warm_workspace, name, config, source, None, tmp_path / name, keep_warm=30)
        job.wait_for_completion()
        _idle(job)
        return job, (tmp_path / name / "parallel_run_step.txt").read_text().splitlines()

    first, lines = run("first", _config(probe, environment_variables={"ONLY_FIRST": "set"}))
    assert lines[0] == "0 set none"
    first_kept = {p.pid for p in children_of(_driver_pid(first))}
    # Other environment_variables: fresh workers, which never saw ONLY_FIRST nor what run() left behind.
    second, lines = run("second", _config(probe, environment_variables={"OTHER": "1"}))
    assert _driver_pid(second) == _driver_pid(first)
    assert not _worker_pids(second) & first_kept
    assert lines == [f"{i} none none" for i in range(200)]
    assert "starting fresh workers" in second.get_logs()
    # The same again: the same workers, but what the last job's run() set in os.environ is gone by init().
    # (The processes the driver kept, not only those that ran the second job's tries: on a busy machine one
    # worker may still be starting when a short job ends.)
    kept = {p.pid for p in children_of(_driver_pid(second))}
    third, lines = run("third", _config(probe, environment_variables={"OTHER": "1"}))
    assert _worker_pids(third) <= kept
    assert {line.split()[2] for line in lines} == {"none"}
    # Another entry script: fresh workers, its own output.
    fourth, lines = run("fourth", _config(write_script(tmp_path, PRINTS, "other.py"), environment_variables={"OTHER": "1"}))
    assert _driver_pid(fourth) == _driver_pid(first)
    assert not _worker_pids(fourth) & kept
    assert lines == [str(i) for i in range(200)]


def test_worker_output_goes_to_the_log_of_the_job_it_serves(warm_workspace: Workspace, tmp_path: Path) -> None:
    config = _config(write_script(tmp_path, PRINTS))
    first = BatchJob.submit(warm_workspace, "logs", config, str(_ids_csv(tmp_path, 200)), None, tmp_path / "out1",
                            keep_warm=30)
    first.wait_for_completion()
    _idle(first)
    kept = {p.pid for p in children_of(_driver_pid(first))}
    second = BatchJob.submit(warm_workspace, "logs", config, str(_ids_csv(tmp_path, 200, 10_000, "later.csv")), None,
                             tmp_path / "out2", keep_warm=30)
    second.wait_for_completion()
    assert _worker_pids(second) <= kept
    first_log, second_log = first.get_logs(), second.get_logs()
    def ids_logged(log: str) -> list[int]:
        return [int(line.split()[-1]) for line in log.splitlines() if "run() got ids from" in line]

    assert ids_logged(first_log) and all(i < 10_000 for i in ids_logged(first_log))
    assert ids_logged(second_log) and all(i >= 10_000 for i in ids_logged(second_log))
    assert f"Job {second.id}: " in second_log and f"Job {second.id}: " not in first_log


def test_a_warm_driver_killed_mid_job_is_resumed_exactly_once(warm_workspace: Workspace, tmp_path: Path) -> None:
    config, _, driver, workers = _warm_first_job(warm_workspace, "killed", tmp_path)
    job = BatchJob.submit(warm_workspace, "killed", config, str(_ids_csv(tmp_path, 3000)), None, tmp_path / "out2",
                          keep_warm=30)
    assert _driver_pid(job) == driver
    wait_for(lambda: job.get_details()["miniBatches"]["done"] >= 6, timeout=120, what="6 mini-batches done")
    os.kill(driver, signal.SIGKILL)
    _wait_gone(workers, 15, "workers exit with their killed driver")
    details = job.get_details()
    assert details["state"] == "Failed" and "resume with `mldeploy batch resume" in details["error"]
    assert 6 <= details["miniBatches"]["done"] < details["miniBatches"]["total"]
    # The killed driver's socket file is left behind: resume finds nobody listening and spawns a driver.
    started = time.monotonic()
    BatchJob.resume(warm_workspace, job.id, keep_warm=0)
    assert time.monotonic() - started < 5
    assert _driver_pid(job) != driver
    job.wait_for_completion()
    assert np.loadtxt(tmp_path / "out2" / "parallel_run_step.txt", dtype=int).tolist() == list(range(3000))
    assert "done earlier" in job.get_logs()


def test_cancel_of_a_job_on_a_warm_driver_stops_that_driver(warm_workspace: Workspace, tmp_path: Path) -> None:
    config, first, driver, workers = _warm_first_job(warm_workspace, "cancel", tmp_path)
    job = BatchJob.submit(warm_workspace, "cancel", config, str(_ids_csv(tmp_path, 1500)), None, tmp_path / "out2",
                          keep_warm=30)
    wait_for(lambda: job.get_details()["miniBatches"]["done"] >= 2, timeout=120, what="2 mini-batches done")
    job.cancel()
    assert job.state == "Canceled" and first.state == "Completed"
    _wait_gone(workers | {driver}, 15, "a cancelled driver does not stay warm")
    assert not (tmp_path / "out2").exists()


def test_an_idle_driver_exits_when_its_time_runs_out_and_keep_warm_0_exits_at_once(
    warm_workspace: Workspace, tmp_path: Path
) -> None:
    config = _config(write_script(tmp_path, STEADY))
    source = str(_ids_csv(tmp_path, 100))
    job = BatchJob.submit(warm_workspace, "idle", config, source, None, tmp_path / "out1", keep_warm=2)
    job.wait_for_completion()
    _idle(job)
    driver = _driver_pid(job)
    workers = {p.pid for p in children_of(driver)}
    assert len([p for p in children_of(driver) if "LokyProcess" in " ".join(p.cmdline())]) == 2 and _alive(driver)
    _wait_gone(workers | {driver}, 10, "driver and workers exit after keep_warm=2 s idle")
    assert "exits: idle for 2 s" in job.get_logs()

    cold = BatchJob.submit(warm_workspace, "idle", config, source, None, tmp_path / "out2", keep_warm=0)
    cold.wait_for_completion()
    assert _driver_pid(cold) != driver
    _wait_gone({_driver_pid(cold)}, 10, "keep_warm=0: the driver exits with its job")
    assert "Staying warm" not in cold.get_logs()


def test_an_idle_driver_exits_when_its_workspace_is_deleted(warm_workspace: Workspace, tmp_path: Path) -> None:
    _, job, driver, workers = _warm_first_job(warm_workspace, "gone", tmp_path, keep_warm=60)
    shutil.rmtree(warm_workspace.path)
    _wait_gone(workers | {driver}, 10, "an idle driver exits when its workspace folder is deleted")


def test_sigterm_stops_an_idle_driver(warm_workspace: Workspace, tmp_path: Path) -> None:
    _, job, driver, workers = _warm_first_job(warm_workspace, "term", tmp_path, keep_warm=60)
    os.kill(driver, signal.SIGTERM)
    _wait_gone(workers | {driver}, 10, "an idle driver exits on SIGTERM")
    assert "exits: SIGTERM" in job.get_logs() and job.state == "Completed"
    assert not socket_path(warm_workspace.path, 2).exists()


@pytest.mark.parametrize("value", [-1, -0.5, "soon", float("inf"), float("nan"), True, 86401, [30]])
def test_bad_keep_warm_is_refused_naming_the_range(warm_workspace: Workspace, tmp_path: Path, value: object) -> None:
    config = _config(write_script(tmp_path, STEADY))
    with pytest.raises(InvalidArgument, match=r"keep_warm must be a number of seconds from 0 .* to 86400, not"):
        BatchJob.submit(warm_workspace, "bad", config, str(_ids_csv(tmp_path, 10)), None, tmp_path / "out",
                        keep_warm=value)  # type: ignore[arg-type]
    assert not (warm_workspace.path / "jobs").exists()


def test_a_bad_keep_warm_variable_is_refused_naming_it(warm_workspace: Workspace, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_BATCH_KEEP_WARM", "-3")
    config = _config(write_script(tmp_path, STEADY))
    with pytest.raises(InvalidArgument, match=r"MLDEPLOY_BATCH_KEEP_WARM='-3': keep_warm must be .* from 0"):
        BatchJob.submit(warm_workspace, "bad", config, str(_ids_csv(tmp_path, 10)), None, tmp_path / "out")
    # An explicit keep_warm wins: the variable is not read.
    job = BatchJob.submit(warm_workspace, "explicit", config, str(_ids_csv(tmp_path, 10)), None, tmp_path / "out",
                          keep_warm=0)
    job.wait_for_completion()
    assert json.loads(job.folder.record_path.read_text())["keepWarm"] == 0


def test_a_job_submitted_while_the_warm_driver_is_busy_gets_its_own_driver(
    warm_workspace: Workspace, tmp_path: Path
) -> None:
    """One job at a time per warm driver; of two drivers that could stay warm, the one that finds the other
    listening exits."""
    config = _config(write_script(tmp_path, STEADY))
    small = str(_ids_csv(tmp_path, 100, name="small.csv"))
    first = BatchJob.submit(warm_workspace, "busy", config, small, None, tmp_path / "out1", keep_warm=30)
    first.wait_for_completion()
    _idle(first)
    warm = _driver_pid(first)
    long = BatchJob.submit(warm_workspace, "busy", config, str(_ids_csv(tmp_path, 8000)), None, tmp_path / "out2",
                           keep_warm=30)
    assert _driver_pid(long) == warm
    meanwhile = BatchJob.submit(warm_workspace, "busy", config, small, None, tmp_path / "out3", keep_warm=30)
    other = _driver_pid(meanwhile)
    assert other != warm
    meanwhile.wait_for_completion()
    assert long.state == "Running"  # the other driver finished first and now listens
    long.wait_for_completion()
    _wait_gone({warm}, 10, "the driver that finds another one listening exits after its job")
    assert "Another warm driver listens" in long.get_logs()
    assert _alive(other)
    assert np.loadtxt(tmp_path / "out2" / "parallel_run_step.txt", dtype=int).tolist() == list(range(8000))
    assert np.loadtxt(tmp_path / "out3" / "parallel_run_step.txt", dtype=int).tolist() == list(range(100))


def test_a_job_stopped_with_tries_still_running_does_not_keep_its_workers(
    warm_workspace: Workspace, tmp_path: Path
) -> None:
    """A threshold crossed while other tries run: those tries would write this job's parts on workers
    serving the next job, so the driver exits with its job."""
    script = write_script(tmp_path, textwrap.dedent('''
        import time

        def init():
            pass

        def run(mini_batch):
            if 0 in set(mini_batch["id"]):
                raise ValueError("first mini-batch fails")
            time.sleep(2)
            return mini_batch["id"].tolist()
    '''))
    job = BatchJob.submit(warm_workspace, "stopped", _config(script, run_max_try=1), str(_ids_csv(tmp_path, 500)),
                          None, tmp_path / "out", keep_warm=30)
    with pytest.raises(JobFailed, match="error_threshold=0 crossed"):
        job.wait_for_completion()
    _wait_gone({_driver_pid(job)}, 15, "a driver whose stopped job left tries running does not stay warm")
    assert "Staying warm" not in job.get_logs()
