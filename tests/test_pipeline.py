"""Papermill pipelines recorded as runs: ``mldeploy pipeline run`` and ``run_notebook``, really executed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from jupyter_mldeploy import Experiment, InvalidArgument, Model, NotFound, Workspace
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.pipeline import PipelineError, default_experiment_name, run_notebook

REPO = Path(__file__).resolve().parent.parent
MLDEPLOY = [str(Path(sys.executable).parent / "mldeploy")]


def _notebook(path: Path, *sources: str, parameters: str = "alpha = 1.0") -> Path:
    """Write a notebook whose first cell (tagged ``parameters``) holds ``parameters``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _mldeploy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MLDEPLOY, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_pipeline_notebook_with_two_values_then_compare(tmp_path: Path) -> None:
    """notebooks/05_pipeline.ipynb: train with a parameter, log, register from the run, deploy, call."""
    ws_dir = tmp_path / "ws"
    runs = []
    for alpha in ("0.01", "100"):
        done = _mldeploy(
            "pipeline", "run", str(REPO / "notebooks" / "05_pipeline.ipynb"), "-w", str(ws_dir), "--cwd", str(tmp_path),
            "--experiment", "diabetes-pipeline", "-p", "alpha", alpha, "-p", "workspace_dir", str(ws_dir),
            "-o", "json", cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout))
    ws = Workspace(ws_dir)
    assert [r["status"] for r in runs] == ["Completed", "Completed"]
    assert [r["parameters"]["alpha"] for r in runs] == [0.01, 100]
    for number, data in enumerate(runs, start=1):
        assert data["number"] == number and data["kind"] == "pipeline"
        assert "outputs/05_pipeline.ipynb" in data["files"] and "outputs/diabetes_ridge.pkl" in data["files"]
        assert [m["id"] for m in data["models"]] == [f"diabetes-ridge-pipeline:{number}"]
        model = Model(ws, "diabetes-ridge-pipeline", version=number)
        assert (model.run_id, model.experiment_name) == (data["id"], "diabetes-pipeline")
        executed = nbformat.reads(Path(data["folder"], "outputs", "05_pipeline.ipynb").read_text(), as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"alpha = {data['parameters']['alpha']}" in injected[0].source
        assert len(data["metrics"]["predictions"]) == 5  # logged after calling the deployed service
    frame = Experiment(ws, "diabetes-pipeline").compare("r2")
    assert frame["alpha"].tolist() == [0.01, 100]
    low, high = frame["r2"].tolist()
    assert low > high  # heavy regularisation fits the diabetes data worse
    assert Webservice.list(ws) == []


def test_a_failing_pipeline_names_the_cell_and_keeps_the_executed_notebook(tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "fails.ipynb",
        "from jupyter_mldeploy import Run\nRun.get_context().log('before', alpha)",
        "x = 1\nraise ValueError(f'alpha {alpha} is too big')",
        "print('never')",
    )
    done = _mldeploy("pipeline", "run", str(notebook), "-w", str(tmp_path / "ws"), "-p", "alpha", "9", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cell 3 (In [4], 'x = 1') raised ValueError: alpha 9 is too big" in done.stderr
    run = next(Experiment(Workspace(tmp_path / "ws"), "fails").get_runs())
    assert run.status == "Failed" and run.parameters == {"alpha": 9}
    assert run.get_metrics() == {"before": 9}  # logged by the notebook before it failed
    assert "ValueError: alpha 9 is too big" in run.get_details()["error"]
    executed = Path(run.download_file("outputs/fails.ipynb", tmp_path / "executed.ipynb")).read_text()
    assert "never" in executed and "alpha 9 is too big" in executed


def test_run_notebook_api_context_is_the_run_and_errors_are_clear(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    notebook = _notebook(
        tmp_path / "My Notebook.ipynb",
        "from jupyter_mldeploy import Run\nrun = Run.get_context()\nopen('seen.json', 'w').write("
        "__import__('json').dumps({'id': run.id, 'offline': run.offline}))\nrun.log('twice', alpha * 2)",
    )
    run = run_notebook(notebook, {"alpha": 2.5}, workspace=ws, cwd=tmp_path)
    assert run.status == "Completed" and run.experiment.name == "My-Notebook" == default_experiment_name(notebook)
    assert json.loads((tmp_path / "seen.json").read_text()) == {"id": run.id, "offline": False}
    assert run.get_metrics() == {"twice": 5.0}
    assert "MLDEPLOY_RUN_ID" not in os.environ  # the variables were for the kernel only

    failing = _notebook(tmp_path / "boom.ipynb", "1 / 0")
    with pytest.raises(PipelineError, match=r"failed: cell 2 .*ZeroDivisionError") as caught:
        run_notebook(failing, workspace=ws, experiment="boom", cwd=tmp_path)
    assert caught.value.run.status == "Failed"
    returned = run_notebook(failing, workspace=ws, experiment="boom", cwd=tmp_path, raise_on_error=False)
    assert returned.status == "Failed" and returned.number == 2

    with pytest.raises(NotFound, match="not found"):
        run_notebook(tmp_path / "missing.ipynb", workspace=ws)
    (tmp_path / "script.py").write_text("print(1)")
    with pytest.raises(InvalidArgument, match="not a notebook"):
        run_notebook(tmp_path / "script.py", workspace=ws)
    with pytest.raises(InvalidArgument, match="not a Python identifier"):
        run_notebook(notebook, {"bad-name": 1}, workspace=ws)
    with pytest.raises(InvalidArgument, match="Invalid experiment name"):
        run_notebook(notebook, workspace=ws, experiment="no spaces")
    bad = _mldeploy("pipeline", "run", str(notebook), "-w", str(ws.path), "-p", "alpha", "[1,", cwd=tmp_path)
    assert bad.returncode == 2 and "not a YAML value" in bad.stderr
    missing = _mldeploy("pipeline", "run", str(tmp_path / "nope.ipynb"), "-w", str(tmp_path / "ws2"), cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "ws2").exists()  # a typo creates no workspace


def _wait_for(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001 - a zero-argument callable
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("victim", ["papermill", "kernel"])
def test_a_killed_pipeline_reads_failed_never_running(tmp_path: Path, victim: str) -> None:
    """Kill the papermill process (the run's owner) or only the notebook's kernel, half-way through."""
    marker = tmp_path / "reached"
    notebook = _notebook(
        tmp_path / "slow.ipynb",
        "from jupyter_mldeploy import Run\nRun.get_context().log('step', 1)",
        f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x')\ntime.sleep(120)",
        "print('not reached')",
    )
    ws_dir = tmp_path / "ws"
    proc = subprocess.Popen([*MLDEPLOY, "pipeline", "run", str(notebook), "-w", str(ws_dir)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kernels: list[psutil.Process] = []
    try:
        _wait_for(marker.exists)
        ws = Workspace(ws_dir)
        run = next(Experiment(ws, "slow").get_runs())
        assert run.status == "Running"
        kernels = psutil.Process(proc.pid).children(recursive=True)
        assert kernels, "papermill started no kernel"
        if victim == "papermill":
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        else:
            for kernel in kernels:
                kernel.kill()
            proc.wait(120)
            assert proc.returncode == 1
        assert run.status == "Failed"
        error = run.get_details()["error"]
        if victim == "papermill":
            assert f"pid {proc.pid}" in error and "ended without completing the run" in error
        else:
            # the cell that was running when the kernel died (its In [n] is whatever the kernel got to report)
            assert error.startswith("cell 3 (") and "'import pathlib, time') raised DeadKernelError" in error
        assert run.get_metrics() == {"step": 1}
        assert "outputs/slow.ipynb" in run.get_file_names()  # what it got through is kept
    finally:
        # The kernel of a killed papermill is orphaned: stop it, and papermill itself if a check failed early.
        for process in kernels:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
