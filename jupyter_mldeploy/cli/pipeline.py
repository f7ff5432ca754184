"""``mldeploy pipeline run NOTEBOOK``: execute a parameterised notebook with papermill as a recorded run.

Thin: :func:`jupyter_mldeploy.pipeline.run_notebook` does the work. ``-p NAME VALUE`` values are read as
YAML, as papermill's ``-y``: ``0.5`` is a float, ``true`` a boolean, ``[1, 2]`` a list, ``abc`` a string.
A failed run prints its summary, then the failing cell on stderr, and exits 1.
"""

from __future__ import annotations

from typing import Any

import click
import yaml

from jupyter_mldeploy.cli._common import group, output_option, workspace_option
from jupyter_mldeploy.cli.run import emit_run
from jupyter_mldeploy.errors import MLDeployError
from jupyter_mldeploy.pipeline import run_notebook
from jupyter_mldeploy.runs import FAILED, show_run
from jupyter_mldeploy.workspace import Workspace

pipeline_group = group("pipeline", "Run notebooks as recorded, comparable pipeline runs (papermill).")


def _value(name: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{name} {raw!r} is not a YAML value ({exc}); quote it to pass a string.",
                                 param_hint="-p") from exc


@pipeline_group.command("run")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("-p", "--parameter", "parameters", type=(str, str), multiple=True, metavar="NAME VALUE",
              help="A parameter for the notebook's `parameters` cell, read as YAML (repeatable).")
@click.option("-e", "--experiment", default=None, help="Experiment to record the run in (default: the notebook's name).")
@click.option("-k", "--kernel", "kernel", default=None, help="Jupyter kernel (default: the notebook's own).")
@click.option("--cwd", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder the notebook runs in (default: the notebook's folder).")
@click.option("--execution-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds one cell may run.")
@click.option("--log-output", is_flag=True, help="Echo the notebook's output while it runs.")
@workspace_option
@output_option
def run_command(
    workspace: Workspace,
    notebook: str,
    parameters: tuple[tuple[str, str], ...],
    experiment: str | None,
    kernel: str | None,
    cwd: str | None,
    execution_timeout: float | None,
    log_output: bool,
    output: str,
) -> None:
    """Execute NOTEBOOK with papermill as a run; prints the run, exits 1 when it failed."""
    values = {name: _value(name, raw) for name, raw in parameters}
    run = run_notebook(
        notebook,
        values,
        experiment=experiment,
        workspace=workspace,
        kernel_name=kernel,
        cwd=cwd,
        execution_timeout=execution_timeout,
        log_output=log_output,
        raise_on_error=False,
    )
    data = show_run(workspace, run.id)
    emit_run(data, output)
    if data["status"] == FAILED:
        raise MLDeployError(f"Pipeline run {run.id} failed: {data['error']}")
