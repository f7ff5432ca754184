"""``mldeploy batch ...``: batch scoring jobs (``run``, ``list``, ``show``, ``resume``, ``cancel``, ``logs``).

Thin: :mod:`jupyter_mldeploy.batch` checks, records and runs the job; this module parses options and prints.
``batch run`` waits by default, printing a progress line as it changes, and exits 1 when the job fails.
"""

from __future__ import annotations

from typing import Any

import click

from jupyter_mldeploy.batch import BatchJob, FileInput, JobFailed, ParallelRunConfig, TabularInput, list_jobs
from jupyter_mldeploy.cli._common import (
    emit,
    existing_workspace_option,
    group,
    output_option,
    workspace_option,
)
from jupyter_mldeploy.workspace import Workspace

batch_group = group("batch", "Batch scoring jobs with the v1 ParallelRunStep contract (init() / run(mini_batch)).")

_LIST_COLUMNS = ("id", "state", "miniBatches", "items", "failed", "rowsPerSecond", "backend", "startTime", "outputFile")


def _inputs(path: str, input_type: str) -> Any:
    if input_type == "tabular":
        return TabularInput(path)
    if input_type == "file":
        return FileInput(path)
    return path


def _summary(details: dict[str, Any]) -> dict[str, Any]:
    """The details as a field table shows them (counts flattened)."""
    shown = {k: v for k, v in details.items() if k not in ("errors", "input")}
    shown["miniBatches"] = "{done}/{total} done, {failed} failed".format(**details["miniBatches"])
    shown["items"] = "{total} processed, {succeeded} succeeded, {failed} failed".format(**details["items"])
    shown["input"] = details["input"]["source"] if details.get("input") else None
    return shown


@batch_group.command("run")
@click.option("--entry", "entry_script", required=True, help="The batch script (init() and run(mini_batch)).")
@click.option("-m", "--model", "models", multiple=True, metavar="MODEL[:VER]", help="A registered model (repeatable).")
@click.option("--input", "input_path", required=True, help="A CSV/Parquet/JSON-lines file, a folder or a glob.")
@click.option("--input-type", type=click.Choice(["auto", "tabular", "file"]), default="auto", show_default=True,
              help="tabular: run() gets DataFrames; file: lists of paths; auto: tabular when every file is.")
@click.option("--output", "output_dir", required=True, type=click.Path(), help="Folder for the output file.")
@click.option("--name", default="batch", show_default=True, help="Job name (jobs/<name>/<id>/ in the workspace).")
@click.option("--source-dir", default=None, help="Folder copied with the script (the entry is relative to it).")
@click.option("--mini-batch-size", default=None, help="Files per mini-batch, or a size for tabular input (1MB, 64KB).")
@click.option("--backend", type=click.Choice(["loky", "dask"]), default="loky", show_default=True)
@click.option("--scheduler", default=None, help="Dask: 'local' (default) or tcp://host:port.")
@click.option("--error-threshold", type=int, default=0, show_default=True,
              help="Failed items allowed before the job fails; -1 ignores failures.")
@click.option("--allowed-failed-count", type=int, default=None, help="Failed mini-batches allowed.")
@click.option("--allowed-failed-percent", type=float, default=None, help="Failed mini-batches allowed, in percent.")
@click.option("--output-action", type=click.Choice(["append_row", "summary_only"]), default="append_row", show_default=True)
@click.option("--append-row-file-name", default=None, help="Output file name (default parallel_run_step.txt).")
@click.option("--process-count", "process_count", type=int, default=None, help="Worker processes (default: cores).")
@click.option("--run-invocation-timeout", type=int, default=60, show_default=True, help="Seconds per run() call.")
@click.option("--run-max-try", type=int, default=3, show_default=True, help="Tries of a failing mini-batch.")
@click.option("--keep-warm", "keep_warm", type=float, default=None, metavar="SECONDS",
              help="loky: seconds the driver keeps its workers for the next job (0: exit after the job; default "
                   "$MLDEPLOY_BATCH_KEEP_WARM or 300).")
@click.option("--no-wait", is_flag=True, help="Return after starting the job; follow it with `batch show`.")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="How to print the result (--output is the output folder here); json is stable for scripts.")
@workspace_option
def run_command(workspace: Workspace, entry_script: str, models: tuple[str, ...], input_path: str, input_type: str,
                output_dir: str, name: str, source_dir: str | None, mini_batch_size: str | None, backend: str,
                scheduler: str | None, error_threshold: int, allowed_failed_count: int | None,
                allowed_failed_percent: float | None, output_action: str, append_row_file_name: str | None,
                process_count: int | None, run_invocation_timeout: int, run_max_try: int,
                keep_warm: float | None, no_wait: bool, output: str) -> None:
    """Score an input with a batch script; wait, printing progress, and show the counts."""
    config = ParallelRunConfig(
        entry_script=entry_script, error_threshold=error_threshold, output_action=output_action,
        source_directory=source_dir, mini_batch_size=mini_batch_size, process_count_per_node=process_count,
        run_invocation_timeout=run_invocation_timeout, run_max_try=run_max_try,
        append_row_file_name=append_row_file_name, allowed_failed_count=allowed_failed_count,
        allowed_failed_percent=allowed_failed_percent,
    )
    job = BatchJob.submit(workspace, name, config, _inputs(input_path, input_type), list(models), output_dir,
                          backend=backend, scheduler=scheduler, keep_warm=keep_warm)
    click.echo(f"Started batch job {job.id}", err=True)
    if no_wait:
        emit({"id": job.id, "state": job.state}, output)
        return
    _follow(job, output)


def _follow(job: BatchJob, output: str) -> None:
    try:
        details = job.wait_for_completion(show_output=True, stream=click.get_text_stream("stderr"))
    except JobFailed:
        details = job.get_details()
        emit(details if output == "json" else _summary(details), output)
        raise
    emit(details if output == "json" else _summary(details), output)


@batch_group.command("list")
@existing_workspace_option
@output_option
def list_command(workspace: Workspace, output: str) -> None:
    """List batch jobs, newest first, with their progress."""
    emit(list_jobs(workspace), output, columns=_LIST_COLUMNS,
         empty=f"No batch jobs in {workspace.path} (start one with: mldeploy batch run ...)")


@batch_group.command("show")
@click.argument("job_id", metavar="ID")
@existing_workspace_option
@output_option
def show_command(workspace: Workspace, job_id: str, output: str) -> None:
    """Show one job: state, counts, rows/s, the output file and the last errors."""
    details = BatchJob(workspace, job_id).get_details()
    emit(details if output == "json" else _summary(details), output)
    if output == "table" and details["errors"]:
        click.echo("Last errors (mini-batch: error):")
        for index, error in details["errors"].items():
            click.echo(f"  {index}: {error.strip().splitlines()[-1] if error.strip() else ''}")


@batch_group.command("resume")
@click.argument("job_id", metavar="ID")
@click.option("--keep-warm", "keep_warm", type=float, default=None, metavar="SECONDS",
              help="As for `batch run`.")
@click.option("--no-wait", is_flag=True, help="Return after restarting the job.")
@existing_workspace_option
@output_option
def resume_command(workspace: Workspace, job_id: str, keep_warm: float | None, no_wait: bool, output: str) -> None:
    """Finish a job whose driver was killed, failed or was cancelled; done mini-batches are kept."""
    job = BatchJob.resume(workspace, job_id, keep_warm=keep_warm)
    click.echo(f"Resumed batch job {job.id}", err=True)
    if no_wait:
        emit({"id": job.id, "state": job.state}, output)
        return
    _follow(job, output)


@batch_group.command("cancel")
@click.argument("job_id", metavar="ID")
@existing_workspace_option
def cancel_command(workspace: Workspace, job_id: str) -> None:
    """Stop a running job (resume continues it)."""
    job = BatchJob(workspace, job_id)
    job.cancel()
    click.echo(f"{job.id}: {job.state}")


@batch_group.command("logs")
@click.argument("job_id", metavar="ID")
@existing_workspace_option
def logs_command(workspace: Workspace, job_id: str) -> None:
    """Print the job log (tries, retries, errors with tracebacks)."""
    click.echo(BatchJob(workspace, job_id).get_logs(), nl=False)
