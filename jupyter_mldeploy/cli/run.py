"""``mldeploy run ...``: experiment runs from the command line (``list``, ``show``).

Thin: :func:`jupyter_mldeploy.runs.list_runs` and :func:`~jupyter_mldeploy.runs.show_run` produce the data
(the panel and the sidebar show the same); this module only formats it. Neither command creates a
workspace. Times are local, to the second; ``-o json`` keeps ISO 8601 UTC.
"""

from __future__ import annotations

from typing import Any

import click

from jupyter_mldeploy import actions
from jupyter_mldeploy.cli._common import emit, existing_workspace_option, group, output_option
from jupyter_mldeploy.runs import list_runs, show_run
from jupyter_mldeploy.workspace import Workspace

run_group = group("run", "List and show experiment runs (interactive runs and notebook pipelines).")

_LIST_COLUMNS = ("id", "experiment", "number", "status", "startTime", "duration", "parameters", "metrics", "models")


def row_for_table(row: dict[str, Any]) -> dict[str, Any]:
    """A run dict as a table shows it: local times, a readable duration, short floats."""
    shown = dict(row)
    shown["startTime"] = actions.format_time(row["startTime"])
    shown["endTime"] = actions.format_time(row["endTime"])
    shown["duration"] = actions.format_duration(row["durationSeconds"])
    if isinstance(row["metrics"], dict):
        shown["metrics"] = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row["metrics"].items()}
    return shown


@run_group.command("list")
@click.option("-e", "--experiment", "experiment", default=None, help="Only this experiment's runs.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Only the newest N runs.")
@existing_workspace_option
@output_option
def list_command(workspace: Workspace, experiment: str | None, top: int | None, output: str) -> None:
    """List runs, newest first, with their parameters, last metric values and registered models."""
    rows = list_runs(workspace, experiment, limit=top)
    empty = (
        f"No runs in {workspace.path} (start one with Experiment(ws, name).start_logging(), or: "
        "mldeploy pipeline run NOTEBOOK.ipynb)"
    )
    emit(rows if output == "json" else [row_for_table(r) for r in rows], output, columns=_LIST_COLUMNS, empty=empty)


@run_group.command("show")
@click.argument("run_id", metavar="RUN_ID")
@existing_workspace_option
@output_option
def show_command(workspace: Workspace, run_id: str, output: str) -> None:
    """Show one run: status, parameters, metrics, files and the models registered from it."""
    emit_run(show_run(workspace, run_id), output)


def emit_run(data: dict[str, Any], output: str) -> None:
    """Print a :func:`~jupyter_mldeploy.runs.show_run` dict: as is for ``-o json``, else as a field table."""
    if output == "table":
        data = row_for_table(data)
        data["models"] = [m["id"] for m in data["models"]]
        data.pop("durationSeconds")
    emit(data, output)
