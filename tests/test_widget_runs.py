"""The panel's Runs tab (jupyter_mldeploy.notebook.widgets.runs), built over real runs and driven by its traits.

Runs are recorded with ``Experiment(ws, ...).start_logging()`` and ``Run.start`` (tests/fixtures/run_support.py);
``Button.click()`` fires the handlers as a click in the notebook does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.run_support import RecordedRuns, record_runs

from jupyter_mldeploy import Experiment, Run
from jupyter_mldeploy.notebook.summaries import STATE_COLORS
from jupyter_mldeploy.notebook.widgets import MLDeployPanel, RunsPanel
from jupyter_mldeploy.notebook.widgets.runs import status_badge_html, value_text
from jupyter_mldeploy.workspace import Workspace


@pytest.fixture
def recorded(workspace: Workspace, tmp_path: Path) -> RecordedRuns:
    return record_runs(workspace, tmp_path / "models")


def test_rows_newest_first_with_status_badges_parameters_metrics_and_models(workspace, recorded) -> None:
    panel = RunsPanel(workspace)
    assert list(panel.rows) == [recorded.running.id, recorded.failed.id, recorded.completed.id]
    assert [row.status for row in panel.rows.values()] == ["Running", "Failed", "Completed"]
    assert panel.rows_box.children == tuple(panel.rows.values())
    running, failed, completed = panel.rows.values()
    # A status wears the color of the service state it matches.
    assert STATE_COLORS["Transitioning"] in running.badge.value and ">Running<" in running.badge.value
    assert STATE_COLORS["Failed"] in failed.badge.value and ">Failed<" in failed.badge.value
    assert STATE_COLORS["Healthy"] in completed.badge.value and ">Completed<" in completed.badge.value
    info = completed.info.value
    assert "diabetes #1" in info and "pipeline" in info
    assert "alpha=0.5" in info and "fit_intercept=true" in info
    assert "rmse=55.25" in info and "r2=0.41" in info and "models ridge:1" in info
    assert "alpha must be positive" in failed.info.value
    assert "mnist #1" in running.info.value and "accuracy=0.93" in running.info.value
    assert panel.message.text == "3 runs." and not panel.message.is_error
    assert panel.empty.value == "" and panel.detail.value == ""


def test_details_show_parameters_every_metric_files_and_models(workspace, recorded) -> None:
    panel = RunsPanel(workspace)
    panel.rows[recorded.completed.id].details_button.click()
    assert panel.selected == recorded.completed.id
    detail = panel.detail.value
    assert recorded.completed.id in detail and ">Completed<" in detail
    assert "<td style='text-align:left;padding-right:1em'>alpha</td><td style='text-align:left'>0.5</td>" in detail
    assert "[61.2, 55.25]" in detail  # a series whole, not only its last value
    assert "outputs/model.txt" in detail and "ridge:1" in detail
    assert str(workspace.path / "runs" / recorded.completed.id) in detail

    panel.rows[recorded.failed.id].details_button.click()
    detail = panel.detail.value
    assert "alpha must be positive" in detail and "Parameters</b>: <i>none" in detail
    assert "none registered from this run" in detail and "ridge:1" not in detail


def test_the_experiment_filter_lists_one_experiment_and_survives_refresh(workspace, recorded) -> None:
    panel = RunsPanel(workspace)
    assert panel.experiment_select.options == (("All experiments", ""), ("diabetes", "diabetes"),
                                               ("mnist", "mnist"))
    panel.experiment_select.value = "diabetes"
    assert list(panel.rows) == [recorded.failed.id, recorded.completed.id]
    # A new experiment joins the choices on refresh; the chosen filter stays.
    Experiment(workspace, "cifar").start_logging(outputs=False).complete()
    panel.refresh_button.click()
    assert [value for _, value in panel.experiment_select.options] == ["", "cifar", "diabetes", "mnist"]
    assert panel.experiment_select.value == "diabetes"
    assert list(panel.rows) == [recorded.failed.id, recorded.completed.id]
    panel.experiment_select.value = ""
    assert len(panel.rows) == 4


def test_refresh_follows_a_run_that_logs_and_ends(workspace, recorded) -> None:
    panel = RunsPanel(workspace)
    panel.rows[recorded.running.id].details_button.click()
    recorded.running.log("accuracy", 0.95)
    recorded.running.complete()
    panel.refresh_button.click()
    row = panel.rows[recorded.running.id]
    assert row.status == "Completed" and "accuracy=0.95" in row.info.value
    assert "[0.93, 0.95]" in panel.detail.value and ">Completed<" in panel.detail.value


def test_a_run_logged_by_another_process_shows_on_refresh(workspace, recorded) -> None:
    panel = RunsPanel(workspace)
    script = (
        "import sys\n"
        "from jupyter_mldeploy import Experiment, Workspace\n"
        "run = Experiment(Workspace(sys.argv[1]), 'other').start_logging(outputs=False)\n"
        "run.log('loss', 0.25)\n"
        "run.complete()\n"
        "print(run.id)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(workspace.path)], capture_output=True, text=True,
                          check=True, timeout=120)
    run_id = done.stdout.strip()
    panel.refresh()
    assert next(iter(panel.rows)) == run_id
    assert panel.rows[run_id].status == "Completed" and "loss=0.25" in panel.rows[run_id].info.value


def test_a_deleted_run_folder_or_unknown_id_is_reported_not_raised(workspace, recorded) -> None:
    panel = RunsPanel(workspace)
    panel.show("diabetes_1795803488_3ae5afe3")
    assert panel.message.is_error and "not found" in panel.message.text and "run list" in panel.message.text
    assert panel.selected is None and panel.detail.value == ""
    panel.show("not a run id")
    assert panel.message.is_error and "run id" in panel.message.text


def test_an_empty_workspace_says_how_to_start_a_run(workspace) -> None:
    panel = RunsPanel(workspace)
    assert panel.rows == {} and "start_logging()" in panel.empty.value and "pipeline run" in panel.empty.value
    assert panel.experiment_select.options == (("All experiments", ""),)
    run = Experiment(workspace, "first").start_logging(outputs=False)
    panel.refresh_button.click()
    assert list(panel.rows) == [run.id] and panel.empty.value == ""
    run.complete()


def test_the_limit_keeps_the_newest_and_says_so(workspace) -> None:
    exp = Experiment(workspace, "many")
    ids = [exp.start_logging(outputs=False) for _ in range(3)]
    for run in ids:
        run.complete()
    panel = RunsPanel(workspace, limit=2)
    assert list(panel.rows) == [ids[2].id, ids[1].id]
    assert "the newest" in panel.message.text


def test_values_and_badges() -> None:
    assert value_text(0.123456789) == "0.123457" and value_text("text") == "text"
    assert value_text({"a": [1, 2]}) == '{"a": [1, 2]}' and value_text(True) == "true"
    assert len(value_text(list(range(1000)))) == 200 and value_text(list(range(1000))).endswith("…")
    assert STATE_COLORS["Deleted"] in status_badge_html("Canceled") and ">Canceled<" in status_badge_html("Canceled")
    assert "&lt;b&gt;" in status_badge_html("<b>")  # an unknown status is escaped, in the neutral color


def test_the_panel_has_a_runs_tab(workspace, recorded) -> None:
    panel = MLDeployPanel(workspace)
    try:
        assert panel.titles == ("Registry", "Deployments", "Test endpoint", "Runs", "Data drift")
        assert panel.children[3] is panel.runs and recorded.completed.id in panel.runs.rows
    finally:
        panel.close()


def test_run_get_after_the_panel_reads_it(workspace, recorded) -> None:
    # The panel only reads: the run it showed is untouched and can still log.
    panel = RunsPanel(workspace)
    panel.show(recorded.running.id)
    recorded.running.log("accuracy", 0.97)
    assert Run.get(workspace, recorded.running.id).get_metrics()["accuracy"] == [0.93, 0.97]
