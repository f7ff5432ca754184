"""``mldeploy model ...``: the model registry from the command line (as ``az ml model`` in CLI v1).

Every command takes ``--workspace PATH``; ``-o json`` prints :meth:`Model.serialize` dicts (stable for
scripts). Domain errors print one line on stderr and exit 1; bad options exit 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from jupyter_mldeploy.cli._common import emit, group, output_option, parse_key_values, workspace_option
from jupyter_mldeploy.names import parse_name_version
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace

#: The ``mldeploy model`` group; other modules add commands to it (``model deploy``).
model_group = group("model", "Register, list, show, download and delete models (az ml model).")

_LIST_COLUMNS = ("id", "createdTime", "modelFramework", "tags", "description")


def _summary(model: Model) -> dict[str, Any]:
    """The fields a person wants in ``show``'s table (``-o json`` prints everything)."""
    size = sum(f["size"] for f in model.serialize()["files"])
    return {
        "name": model.name,
        "version": model.version,
        "id": model.id,
        "createdTime": model.created_time.isoformat(timespec="seconds"),
        "description": model.description,
        "tags": model.tags,
        "properties": model.properties,
        "modelFramework": " ".join(x for x in (model.model_framework, model.model_framework_version) if x),
        "files": f"{len(model.files)} ({size} bytes)",
        "path": model.path,
    }


def _show(model: Model, output: str) -> None:
    emit(model.serialize() if output == "json" else _summary(model), output)


def _filters(pairs: Sequence[str], option: str) -> list[str | list[str]]:
    return [key if value is None else [key, value] for key, value in parse_key_values(pairs, option, allow_bare=True)]


@model_group.command("register")
@click.option("-n", "--name", required=True, help="Model name.")
@click.option("-p", "--path", "model_path", required=True, help="File or folder to register.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE", help="Property (repeatable).")
@click.option("-d", "--description", default=None, help="Description.")
@click.option("--model-framework", default=None, help="Framework, e.g. ScikitLearn.")
@click.option("--model-framework-version", default=None, help="Framework version.")
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
    output: str,
) -> None:
    """Register a file or folder as the next version of model NAME."""
    model = Model.register(
        workspace,
        model_path=model_path,
        model_name=name,
        tags=dict(parse_key_values(tags, "--tag")),
        properties=dict(parse_key_values(properties, "--property")),
        description=description,
        model_framework=model_framework,
        model_framework_version=model_framework_version,
    )
    _show(model, output)


@model_group.command("list")
@click.option("-n", "--name", default=None, help="Only this model's versions.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Has the tag (with that value).")
@click.option("--property", "properties", multiple=True, metavar="KEY[=VALUE]", help="Has the property.")
@click.option("--latest", is_flag=True, help="Only the latest matching version of each model.")
@output_option
@workspace_option
def list_command(
    workspace: Workspace,
    name: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    latest: bool,
    output: str,
) -> None:
    """List registered model versions, newest first within each name."""
    models = Model.list(
        workspace,
        name=name,
        tags=_filters(tags, "--tag") or None,
        properties=_filters(properties, "--property") or None,
        latest=latest,
    )
    rows = [m.serialize() for m in models]
    if output == "table":
        for row in rows:
            row["createdTime"] = row["createdTime"][:19].replace("T", " ")
    emit(rows, output, columns=_LIST_COLUMNS)


@model_group.command("show")
@click.argument("model_id", metavar="NAME[:VERSION]")
@output_option
@workspace_option
def show_command(workspace: Workspace, model_id: str, output: str) -> None:
    """Show one model version (the latest when VERSION is left out)."""
    name, version = parse_name_version(model_id, "model")
    _show(Model(workspace, name, version=version), output)


@model_group.command("download")
@click.argument("model_id", metavar="NAME[:VERSION]")
@click.option("-t", "--target-dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--overwrite", is_flag=True, help="Replace what exists under the model's name there.")
@output_option
@workspace_option
def download_command(workspace: Workspace, model_id: str, target_dir: str, overwrite: bool, output: str) -> None:
    """Copy a model version into a folder, verifying its checksums; prints the path written."""
    name, version = parse_name_version(model_id, "model")
    model = Model(workspace, name, version=version)
    path = model.download(target_dir, exist_ok=overwrite)
    if output == "json":
        emit({"id": model.id, "path": path}, output)
    else:
        click.echo(path)


@model_group.command("delete")
@click.argument("model_id", metavar="NAME:VERSION")
@click.option("--force", is_flag=True, help="Delete even when a service uses this version.")
@output_option
@workspace_option
def delete_command(workspace: Workspace, model_id: str, force: bool, output: str) -> None:
    """Delete one model version (its files and records)."""
    name, version = parse_name_version(model_id, "model")
    if version is None:
        raise click.BadParameter(f"{model_id!r}: give the version to delete, as NAME:VERSION", param_hint="NAME:VERSION")
    Model(workspace, name, version=version).delete(force=force)
    if output == "json":
        emit({"deleted": f"{name}:{version}"}, output)
    else:
        click.echo(f"Deleted model {name}:{version}")
