"""``mldeploy model ...``: the model registry from the command line (as ``az ml model`` in CLI v1).

Every command takes ``--workspace PATH``; ``-o json`` prints :meth:`Model.serialize` dicts (stable for
scripts). Domain errors print one line on stderr and exit 1; bad options exit 2. Only ``register`` creates a
missing workspace; the other commands report it. Times are local, to the second.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from jupyter_mldeploy import actions
from jupyter_mldeploy.cli._common import (
    argument_or_option,
    emit,
    existing_workspace_option,
    group,
    key_values_callback,
    output_option,
    parse_key_values,
    workspace_option,
)
from jupyter_mldeploy.names import parse_name_version, validate_name
from jupyter_mldeploy.registry import Model, ResourceConfiguration
from jupyter_mldeploy.runs import register_model_from_run
from jupyter_mldeploy.workspace import Workspace

#: The ``mldeploy model`` group; other modules add commands to it (``model deploy``).
model_group = group("model", "Register, list, show, download and delete models (az ml model).")

_LIST_COLUMNS = ("id", "createdTime", "modelFramework", "tags", "runId", "description")


def _summary(model: Model) -> dict[str, Any]:
    """The fields a person wants in ``show``'s table (``-o json`` prints everything)."""
    size = sum(f["size"] for f in model.serialize()["files"])
    return {
        "name": model.name,
        "version": model.version,
        "id": model.id,
        "createdTime": actions.format_time(model.created_time),
        "description": model.description,
        "tags": model.tags,
        "properties": model.properties,
        "modelFramework": " ".join(x for x in (model.model_framework, model.model_framework_version) if x),
        "files": f"{len(model.files)} ({size} bytes)",
        "path": model.path,
        "run": f"{model.experiment_name} / {model.run_id}" if model.run_id else None,
        "resources": model.resource_configuration.serialize() if model.resource_configuration else None,
        "sampleInput": "yes" if model.sample_input is not None else None,
    }


# Arguments are checked while click parses them, so a malformed one is reported before the workspace is
# opened (a typo never creates a workspace, and a missing workspace does not hide the typo).


def _checked_model_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        parse_name_version(value, "model")
    return value


def _checked_versioned_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and ":" not in value:
        raise click.BadParameter(f"{value!r}: give the version to delete, as NAME:VERSION", param_hint="NAME:VERSION")
    return _checked_model_id(ctx, param, value)


def _model_id_option(callback: Callable[[click.Context, click.Parameter, str | None], str | None], metavar: str,
                     ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-i/--model-id ID``: v1's spelling of the model, accepted beside the positional argument."""
    return click.option("-i", "--model-id", "model_id_option", default=None, metavar=metavar,
                        callback=callback, help="The model, as az ml v1 spells it (instead of the argument).")


def _checked_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    return validate_name(value, "model name")


def _existing_path(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        actions.check_model_path(value)
    return value


def _sample_file(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Read ``--sample-input``/``--sample-output``: a ``.json`` file (rows or ``{"data": rows}``) or a ``.csv``
    table with a header row (a DataFrame, so column names and types are kept)."""
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() not in {".json", ".csv"}:
        raise click.BadParameter(f"{value!r}: give a .json file (rows) or a .csv file with a header row.")
    try:
        if path.suffix.lower() == ".csv":
            import pandas as pd  # pandas only for this option: `model list` stays quick to start

            return pd.read_csv(path)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{value!r} cannot be read as a sample: {exc}") from exc


def _resources(cpu: float | None, memory_gb: float | None, gpu: int | None) -> ResourceConfiguration | None:
    """``--cc/--gb/--gc`` (az ml v1's spellings) as a :class:`ResourceConfiguration`, or None."""
    if cpu is None and memory_gb is None and gpu is None:
        return None
    return ResourceConfiguration(cpu=cpu, memory_in_gb=memory_gb, gpu=gpu)


def _show(model: Model, output: str) -> None:
    emit(model.serialize() if output == "json" else _summary(model), output)


@model_group.command("register")
@click.option("-n", "--name", required=True, callback=_checked_name, help="Model name.")
@click.option("-p", "--path", "--model-path", "model_path", default=None, callback=_existing_path, help="File or folder to register.")
@click.option("--run-id", default=None, help="Register from this run's files instead of --path (as az ml v1).")
@click.option("--asset-path", default=None, help="With --run-id: the run's file or folder, e.g. outputs/model.pkl.")
@click.option("--experiment-name", default=None, help="With --run-id: the run's experiment (checked).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", callback=key_values_callback(),
              help="Tag (repeatable; or k=v,k2=v2).")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE", callback=key_values_callback(),
              help="Property (repeatable; or k=v,k2=v2).")
@click.option("-d", "--description", default=None, help="Description.")
@click.option("--model-framework", default=None, help="Framework, e.g. ScikitLearn.")
@click.option("--model-framework-version", default=None, help="Framework version.")
@click.option("--sample-input", default=None, metavar="FILE", callback=_sample_file,
              help="Sample request rows: a .json file or a .csv with a header (gives no-code services a schema).")
@click.option("--sample-output", default=None, metavar="FILE", callback=_sample_file,
              help="Sample responses for those rows (.json or .csv); needs --sample-input.")
@click.option("--cc", "cpu", type=float, default=None, help="CPU cores a no-code deployment asks for (az ml v1 --cc).")
@click.option("--gb", "memory_gb", type=float, default=None, help="Memory in GB it asks for (az ml v1 --gb).")
@click.option("--gc", "gpu", type=int, default=None, help="GPUs it asks for (az ml v1 --gc).")
@output_option
@workspace_option
def register_command(
    workspace: Workspace,
    name: str,
    model_path: str,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    description: str | None,
    model_framework: str | None,
    model_framework_version: str | None,
    run_id: str | None,
    asset_path: str | None,
    experiment_name: str | None,
    sample_input: Any,
    sample_output: Any,
    cpu: float | None,
    memory_gb: float | None,
    gpu: int | None,
    output: str,
) -> None:
    """Register a file or folder (or a run's file, with --run-id) as the next version of model NAME."""
    if (model_path is None) == (run_id is None) or (run_id is None and (asset_path or experiment_name)):
        raise click.UsageError("Give --path FILE, or --run-id RUN with --asset-path FILE (and --experiment-name).")
    extras: dict[str, Any] = {
        "sample_input": sample_input,
        "sample_output": sample_output,
        "resource_configuration": _resources(cpu, memory_gb, gpu),
    }
    if run_id is not None:
        model = register_model_from_run(
            workspace, run_id, name, asset_path, experiment_name,
            tags=dict(parse_key_values(tags, "--tag")),
            properties=dict(parse_key_values(properties, "--property")),
            description=description,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
            **extras,
        )
        _show(model, output)
        return
    model = actions.register_model(
        workspace,
        model_path,
        name,
        tags=dict(parse_key_values(tags, "--tag")),
        properties=dict(parse_key_values(properties, "--property")),
        description=description,
        model_framework=model_framework,
        model_framework_version=model_framework_version,
        **extras,
    )
    _show(model, output)


@model_group.command("list")
@click.option("-n", "--name", default=None, help="Only this model's versions.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", callback=key_values_callback(allow_bare=True),
              help="Has the tag (with that value).")
@click.option("--property", "properties", multiple=True, metavar="KEY[=VALUE]",
              callback=key_values_callback(allow_bare=True), help="Has the property.")
@click.option("--latest", is_flag=True, help="Only the latest matching version of each model.")
@output_option
@existing_workspace_option
def list_command(
    workspace: Workspace,
    name: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    latest: bool,
    output: str,
) -> None:
    """List registered model versions, newest first within each name."""
    models = actions.list_models(workspace, name, tags=tags or None, properties=properties or None, latest=latest)
    rows = [m.serialize() for m in models]
    if output == "table":
        for row in rows:
            row["createdTime"] = actions.format_time(row["createdTime"])
    filtered = name is not None or tags or properties
    empty = (
        f"No model versions match in workspace {workspace.path}."
        if filtered
        else f"No models registered in {workspace.path} (register one with: mldeploy model register -n NAME -p PATH)"
    )
    emit(rows, output, columns=_LIST_COLUMNS, empty=empty)


@model_group.command("show")
@click.argument("model_id", metavar="NAME[:VERSION]", callback=_checked_model_id)
@output_option
@existing_workspace_option
def show_command(workspace: Workspace, model_id: str, output: str) -> None:
    """Show one model version (the latest when VERSION is left out)."""
    _show(actions.get_model(workspace, model_id), output)


@model_group.command("download")
@click.argument("model_id", metavar="[NAME[:VERSION]]", required=False, callback=_checked_model_id)
@_model_id_option(_checked_model_id, "NAME[:VERSION]")
@click.option("-t", "--target-dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--overwrite", is_flag=True, help="Replace what exists under the model's name there.")
@argument_or_option("model_id", "model_id_option", "NAME[:VERSION] or -i/--model-id NAME[:VERSION]")
@output_option
@existing_workspace_option
def download_command(workspace: Workspace, model_id: str, target_dir: str, overwrite: bool, output: str) -> None:
    """Copy a model version into a folder, verifying its checksums; prints the path written."""
    model = actions.get_model(workspace, model_id)
    path = model.download(target_dir, exist_ok=overwrite)
    if output == "json":
        emit({"id": model.id, "path": path}, output)
    else:
        click.echo(path)


@model_group.command("delete")
@click.argument("model_id", metavar="[NAME:VERSION]", required=False, callback=_checked_versioned_id)
@_model_id_option(_checked_versioned_id, "NAME:VERSION")
@click.option("--force", is_flag=True, help="Delete even when a service uses this version.")
@argument_or_option("model_id", "model_id_option", "NAME:VERSION or -i/--model-id NAME:VERSION")
@output_option
@existing_workspace_option
def delete_command(workspace: Workspace, model_id: str, force: bool, output: str) -> None:
    """Delete one model version (its files and records)."""
    deleted = actions.delete_model(workspace, model_id, force=force)
    if output == "json":
        emit({"deleted": deleted}, output)
    else:
        click.echo(f"Deleted model {deleted}")
