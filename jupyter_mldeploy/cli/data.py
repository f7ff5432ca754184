"""``mldeploy data show SERVICE``: what a service collected (``ModelDataCollector``), and its drift."""

from __future__ import annotations

from pathlib import Path

import click

from jupyter_mldeploy.cli._common import emit, existing_workspace_option, group, output_option
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.errors import NotFound
from jupyter_mldeploy.monitoring.drift import drift_table
from jupyter_mldeploy.monitoring.store import model_data_folder, read_collected_data
from jupyter_mldeploy.workspace import Workspace

data_group = group("data", "Model data collected by services deployed with collect_model_data=True.")


def _reference(workspace: Workspace, service: str, path: str | None) -> object | None:
    """The reference sample: a CSV given with --reference, else the served model's sample_input, else None."""
    if path is not None:
        import pandas as pd

        return pd.read_csv(Path(path))
    try:
        models = Webservice(workspace, service).models
    except NotFound:  # a deleted service keeps its data; it just has no sample to compare with
        return None
    return next((m.sample_input for m in models if m.sample_input is not None), None)


@data_group.command("show")
@click.argument("service")
@click.option("--designation", default="inputs", show_default=True,
              help="inputs, predictions, labels, signals or general.")
@click.option("--since", default=None, help="Only rows scored at or after this ISO date or time (UTC).")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV of reference rows (default: the served model's sample_input) for the drift table.")
@existing_workspace_option
@output_option
def show_data(workspace: Workspace, service: str, designation: str, since: str | None, reference: str | None,
              output: str) -> None:
    """Show how many rows SERVICE collected per day and, for inputs, each feature's drift (PSI) per day."""
    data = read_collected_data(workspace, service, designation, since)
    if data.empty:
        click.echo(f"No {designation} collected for service {service!r} in {model_data_folder(workspace, service)}: "
                   "deploy it with collect_model_data=True and call ModelDataCollector.collect in run().")
        return
    days = data["$aml_dc_scoring_timestamp"].dt.strftime("%Y-%m-%d")
    counts = [{"day": day, "rows": int(n)} for day, n in days.value_counts().sort_index().items()]
    sample = _reference(workspace, service, reference) if designation == "inputs" else None
    drift = drift_table(data, sample).to_dict(orient="records") if sample is not None else None
    if output == "json":
        emit({"rows_per_day": counts, "drift": drift}, output)
        return
    emit(counts, output, title=f"{service}: {designation} rows per day")
    if drift is not None:
        emit(drift, output, title="Drift against the reference (PSI per feature and day)")
    elif designation == "inputs":
        click.echo("No drift table: register the model with sample_input=..., or pass --reference rows.csv.")
