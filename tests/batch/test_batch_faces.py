"""The faces of batch scoring: ``mldeploy batch ...`` (a real subprocess) and the ``%batch_score`` magic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_helpers import SCORE_BATCH, write_script
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sklearn.linear_model import Ridge
from traitlets.config import Config

from jupyter_mldeploy.batch import BatchJob
from jupyter_mldeploy.workspace import Workspace

pytestmark = pytest.mark.usefixtures("no_stray_workers")


def _mldeploy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("mldeploy")), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_cli_run_list_show_resume(scored_workspace: Workspace, diabetes: tuple[pd.DataFrame, Path, Ridge],
                                  tmp_path: Path) -> None:
    frame, _, model = diabetes
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_script(tmp_path, SCORE_BATCH)
    ws = str(scored_workspace.path)
    run = _mldeploy("batch", "run", "-w", ws, "--entry", "score_batch.py", "-m", "diabetes:1", "--input", "data.csv",
                    "--output", "out", "--mini-batch-size", "8KB", "--process-count", "1", "--keep-warm", "0.5", "--format", "json",
                    cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    details = json.loads(run.stdout)
    assert json.loads(next((scored_workspace.path / "jobs" / "batch").glob("*/job.json")).read_text())["keepWarm"] == 0.5
    assert details["state"] == "Completed" and details["items"]["succeeded"] == len(frame)
    assert "Started batch job" in run.stderr and "mini-batches |" in run.stderr  # progress on stderr
    np.testing.assert_allclose(np.loadtxt(tmp_path / "out" / "parallel_run_step.txt"),
                               model.predict(frame.drop(columns="id")), rtol=1e-12)
    listed = _mldeploy("batch", "list", "-w", ws, "-o", "json", cwd=tmp_path)
    assert [row["id"] for row in json.loads(listed.stdout)] == [details["id"]]
    shown = _mldeploy("batch", "show", details["id"], "-w", ws, cwd=tmp_path)
    assert shown.returncode == 0 and f"{len(frame)} processed, {len(frame)} succeeded, 0 failed" in shown.stdout
    again = _mldeploy("batch", "resume", details["id"], "-w", ws, cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.startswith("Error: Batch job") and "already completed" in again.stderr
    bad = _mldeploy("batch", "run", "-w", ws, "--entry", "score_batch.py", "--input", "data.csv", "--output", "o2",
                    "--mini-batch-size", "1TB", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "1KB to 2GB" in bad.stderr
    cold = _mldeploy("batch", "run", "-w", ws, "--entry", "score_batch.py", "--input", "data.csv", "--output", "o2",
                     "--keep-warm", "-1", cwd=tmp_path)
    assert cold.returncode == 1 and "keep_warm must be a number of seconds from 0" in cold.stderr
    assert not (tmp_path / "o2").exists()


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scored_workspace: Workspace) -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config, history_length=0)
    ip.run_line_magic("load_ext", "jupyter_mldeploy")
    monkeypatch.chdir(tmp_path)
    ip.run_line_magic("mldeploy_workspace", str(scored_workspace.path))
    yield ip
    InteractiveShell.clear_instance()


def test_batch_score_magic_returns_the_job(shell: InteractiveShell, scored_workspace: Workspace, tmp_path: Path,
                                           diabetes: tuple[pd.DataFrame, Path, Ridge]) -> None:
    frame, _, model = diabetes
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_script(tmp_path, SCORE_BATCH)
    job = shell.run_line_magic(
        "batch_score", "--entry score_batch.py -m diabetes --input data.csv --output out --mini-batch-size 16KB "
        "--process-count 1 --name nb")
    assert isinstance(job, BatchJob) and job.state == "Completed"
    assert job.workspace.path == scored_workspace.path  # the workspace %mldeploy_workspace chose
    np.testing.assert_allclose(np.loadtxt(tmp_path / "out" / "parallel_run_step.txt"),
                               model.predict(frame.drop(columns="id")), rtol=1e-12)
    with pytest.raises(UsageError, match="already exists"):
        shell.run_line_magic("batch_score", "--entry score_batch.py --input data.csv --output out")
    with pytest.raises(UsageError, match="allowed_failed_percent must be a number 0 to 100"):
        shell.run_line_magic("batch_score", "--entry score_batch.py --input data.csv --output o3 "
                             "--allowed-failed-percent 120")
    with pytest.raises(UsageError, match="keep_warm must be a number of seconds from 0"):
        shell.run_line_magic("batch_score", "--entry score_batch.py --input data.csv --output o4 --keep-warm -1")
    with pytest.raises(UsageError, match="entry_script .* does not exist"):
        shell.run_line_magic("batch_score", "--entry nope.py --input data.csv --output out2")
    assert "batch_score" in shell.magics_manager.magics["line"]
    assert "--mini-batch-size" in shell.magics_manager.magics["line"]["batch_score"].__doc__


def test_the_deployments_panel_lists_jobs_with_their_progress(
    scored_workspace: Workspace, diabetes: tuple[pd.DataFrame, Path, Ridge], tmp_path: Path
) -> None:
    from jupyter_mldeploy.batch import ParallelRunConfig
    from jupyter_mldeploy.notebook.widgets import DeploymentsPanel

    frame, _, _ = diabetes
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_script(tmp_path, SCORE_BATCH)
    panel = DeploymentsPanel(scored_workspace, auto_refresh=False)
    try:
        assert panel.jobs_view.value == ""  # no job yet: nothing shown
        config = ParallelRunConfig(entry_script=str(tmp_path / "score_batch.py"), error_threshold=-1,
                                   output_action="append_row", mini_batch_size="8KB", process_count_per_node=1)
        job = BatchJob.submit(scored_workspace, "nightly", config, str(tmp_path / "data.csv"), ["diabetes:1"],
                              tmp_path / "out")
        job.wait_for_completion(show_output=False)
        panel.refresh()
        shown = panel.jobs_view.value
        assert "nightly" in shown and job.id in shown and ">Completed<" in shown
        assert "value='100'" in shown and f"{len(frame)} items, 0 failed" in shown
    finally:
        panel.close()
