"""``mldeploy data show SERVICE``: what a service collected (``ModelDataCollector``), and its drift."""

from __future__ import annotations

import click

from jupyter_mldeploy.actions.model_data import collected_data
from jupyter_mldeploy.cli._common import emit, existing_workspace_option, group, output_option
from jupyter_mldeploy.monitoring.store import model_data_folder
from jupyter_mldeploy.workspace import Workspace

data_group = group("data", "Model data collected by services deployed with collect_model_data=True.")


@data_group.command("show")
@click.argument("service")
@click.option("--designation", default="inputs", show_default=True,
              help="inputs, predictions, labels, signals or general.")
@click.option("--since", default=None, help="Only rows scored at or after this ISO date or time (UTC).")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV or Parquet file of reference rows (default: the served model's sample_input) for the "
                   "drift table.")
@existing_workspace_option
@output_option
def show_data(workspace: Workspace, service: str, designation: str, since: str | None, reference: str | None,
              output: str) -> None:
    """Show how many rows SERVICE collected per day and, for inputs, each feature's drift (PSI) per day."""
    sample = None
    if reference is not None:
        import pandas as pd

        sample = pd.read_parquet(reference) if reference.lower().endswith((".parquet", ".pq")) else pd.read_csv(reference)
    found = collected_data(workspace, service, designation, since, sample)
    if found.data.empty:
        click.echo(f"No {designation} collected for service {service!r} in {model_data_folder(workspace, service)}: "
                   "deploy it with collect_model_data=True and call ModelDataCollector.collect in run().")
        return
    drift = found.drift.to_dict(orient="records") if found.drift is not None else None
    if output == "json":
        emit({"rows_per_day": found.rows_per_day, "drift": drift}, output)
        return
    emit(found.rows_per_day, output, title=f"{service}: {designation} rows per day")
    if drift is not None:
        emit(drift, output, title="Drift against the reference (PSI per feature and day)")
    elif designation == "inputs":
        click.echo("No drift table: register the model with sample_input=..., or pass --reference rows.csv.")
