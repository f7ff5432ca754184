"""``mldeploy service ...`` and ``mldeploy model deploy`` (CLI v1: ``az ml service ...``, ``az ml model deploy``).

Thin: options are parsed here, everything else is :mod:`jupyter_mldeploy.actions` and
:mod:`jupyter_mldeploy.deploy`. None of these commands creates a workspace, except ``model deploy`` without
``-m`` (it reads nothing from it). Times are local, to the second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from jupyter_mldeploy import actions
from jupyter_mldeploy.cli._common import (
    argument_or_option,
    emit,
    existing_workspace_option,
    group,
    output_option,
    workspace_option_when,
)
from jupyter_mldeploy.cli.model import model_group
from jupyter_mldeploy.deploy import DeploymentConfiguration
from jupyter_mldeploy.deploy.plan import served_folder
from jupyter_mldeploy.entry.static_check import check_entry_script
from jupyter_mldeploy.errors import Conflict, InvalidArgument
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.names import parse_name_version, validate_name
from jupyter_mldeploy.workspace import Workspace

service_group = group("service", "List, call, reload, update and delete deployed services.")

_LIST_COLUMNS = ("name", "state", "scoringUri", "models", "updatedTime")
_TIME_KEYS = ("createdTime", "updatedTime", "startedTime")


def _for_table(data: dict[str, Any]) -> dict[str, Any]:
    """A service's ``serialize()`` with its times as listings show them (``-o json`` keeps ISO 8601)."""
    return {key: actions.format_time(value) if key in _TIME_KEYS else value for key, value in data.items()}


@service_group.command("list")
@existing_workspace_option
@output_option
def list_services(workspace: Workspace, output: str) -> None:
    """List the services of the workspace with their live state."""
    rows = actions.service_dicts(workspace)
    empty = (f"No services deployed in {workspace.path} (deploy one with: mldeploy model deploy -n NAME "
             "-m MODEL:VERSION --ic inferenceconfig.json)")
    emit(rows if output == "json" else [_for_table(row) for row in rows], output, columns=_LIST_COLUMNS,
         empty=empty)


@service_group.command("show")
@click.argument("name")
@existing_workspace_option
@output_option
def show_service(workspace: Workspace, name: str, output: str) -> None:
    """Show one service: state, URIs, models, environment, error."""
    data = actions.get_service(workspace, name).serialize()
    emit(data if output == "json" else _for_table(data), output)


@service_group.command("logs")
@click.argument("name")
@click.option("-l", "--num-lines", type=click.IntRange(min=1, max=actions.services.MAX_LOG_LINES), default=5000,
              show_default=True, help="Lines from the end of the log.")
@existing_workspace_option
def service_logs(workspace: Workspace, name: str, num_lines: int) -> None:
    """Print the end of the scoring server's log."""
    click.echo(actions.service_logs(workspace, name, num_lines))


@service_group.command("run")
@click.argument("name")
@click.option("-d", "--input-data", default=None, help="Request body (JSON text) sent to /score.")
@click.option("-f", "--input-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file whose content is the request body.")
@click.option("--no-validate", is_flag=True, help="Send even when the body does not match the input schema.")
@click.option("--protocol", type=click.Choice(actions.PROTOCOLS), default="azureml", show_default=True,
              help="azureml (/score), v2 (/v2/models/<model>/infer) or mlflow (/invocations); the body must be in "
                   "that protocol's format.")
@click.option("--repeat", type=click.IntRange(1, actions.MAX_REPEAT), default=1, show_default=True,
              help="Send it N times and print p50/p99 latency instead of the answer.")
@click.option("--concurrency", type=click.IntRange(1, actions.MAX_CONCURRENCY), default=1, show_default=True,
              help="Parallel clients for --repeat.")
@existing_workspace_option
def run_service(workspace: Workspace, name: str, input_data: str | None, input_file: str | None,
                no_validate: bool, protocol: str, repeat: int, concurrency: int) -> None:
    """Call the service's /score (or --protocol's route) with a request body and print the answer.

    Without --input-data/--input-file the service's example (its schema's, else the model's sample_input) is
    sent, shaped for --protocol. The body is checked against the service's input schema first, as %test_endpoint and the sidebar do.
    A non-2xx answer prints its status and message on stderr, then where to look: the service's logs.
    With --repeat N the request is sent N times and the latency figures are printed.
    """
    if input_data is not None and input_file is not None:
        raise click.UsageError("Give one of --input-data JSON or --input-file PATH, not both.")
    body: Any = input_data if input_file is None else Path(input_file).read_bytes()
    if body is None:
        # As %test_endpoint: the schema's example or the model's sample_input, shaped for the protocol.
        body = actions.example_payload(actions.resolve_endpoint(name, workspace), protocol=protocol)
        if body is None:
            raise click.UsageError("No request body: give --input-data JSON or --input-file PATH (or register the "
                                   "model with a sample_input to have a default).")
    call = actions.call_endpoint(name, body, workspace, validate=not no_validate, repeat=repeat,
                                 concurrency=concurrency, protocol=protocol)
    if call.report is not None:
        errors = f"; errors: {'; '.join(call.report.errors)}" if call.report.errors else ""
        if not call.ok:
            click.echo(f"Error: {call.status_line()}{errors}; see: mldeploy service logs {name}", err=True)
            sys.exit(1)
        click.echo(call.status_line())
        return
    response = call.response
    if response is None or not response.ok:
        detail = f": {response.message.strip()}" if response is not None and response.message.strip() else ""
        click.echo(f"Error: {call.status_line()}{detail}; see: mldeploy service logs {name}", err=True)
        sys.exit(1)
    click.echo(call.pretty_body())


@service_group.command("reload")
@click.argument("name")
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting for the switch.")
@existing_workspace_option
def reload_service(workspace: Workspace, name: str, no_wait: bool) -> None:
    """Serve the current entry script and source directory again, with zero downtime."""
    service = actions.reload_service(workspace, name, wait=not no_wait)
    click.echo(f"Service {name!r} reloaded: {service.state} at {service.scoring_uri}")


@service_group.command("update")
@click.argument("name")
@click.option("-m", "--model", "models", multiple=True, help="NAME:VERSION to serve (repeat); replaces the models.")
@click.option("--ic", "--inference-config", "--inference-config-file", "inference_config", type=click.Path(exists=True, dir_okay=False),
              default=None, help="inferenceconfig.json")
@click.option("--dc", "--deployment-config", "--deploy-config-file", "deployment_config", type=click.Path(exists=True, dir_okay=False),
              default=None, help="deploymentconfig.json")
@existing_workspace_option
def update_service(
    workspace: Workspace, name: str, models: tuple[str, ...], inference_config: str | None,
    deployment_config: str | None,
) -> None:
    """Change a service's models or configuration, with zero downtime."""
    service = actions.get_service(workspace, name)
    service.update(
        models=list(models) or None,
        inference_config=InferenceConfig.from_file(inference_config, workspace) if inference_config else None,
        deployment_config=DeploymentConfiguration.from_file(deployment_config) if deployment_config else None,
    )
    click.echo(f"Service {name!r} updated: {service.state} at {service.scoring_uri}")


@service_group.command("delete")
@click.argument("name", required=False)
@click.option("-n", "--name", "name_option", default=None, metavar="NAME",
              help="The service, as az ml v1 spells it (instead of the argument).")
@argument_or_option("name", "name_option", "NAME or -n/--name NAME")
@existing_workspace_option
def delete_service(workspace: Workspace, name: str) -> None:
    """Stop a service and remove it."""
    actions.delete_service(workspace, name)
    click.echo(f"Service {name!r} deleted.")


def _service_name(workspace: Workspace, given: str | None, models: tuple[str, ...],
                  inference_config: InferenceConfig, overwrite: bool) -> str:
    """The service name: ``-n`` when given, else derived as v1 users expect from ``az ml model deploy`` without
    ``-n``: the first model's name, or the source folder's name when no model is served.

    Raises:
        InvalidArgument: When the derived name is not a valid service name (the message says to pass -n).
        Conflict: When the service exists and ``overwrite`` is False (checked here to word the fix for the CLI;
            the deployer checks again under the service's lock).
    """
    if given is not None:
        name, origin = given, ""
    else:
        if models:
            name, origin = parse_name_version(models[0], "model")[0], f"the first model, {models[0]}"
        else:
            folder = served_folder(inference_config)
            name, origin = folder.name, f"the source directory {folder}"
        try:
            validate_name(name, "service name")
        except InvalidArgument as exc:
            raise InvalidArgument(f"{exc.summary.rstrip('.')}; it was derived from {origin}: name the service "
                                  "with -n NAME.") from exc
        click.echo(f"Service name: {name} (from {origin}; -n NAME chooses another)", err=True)
    if not overwrite and name in actions.service_names(workspace):
        derived = f" (the name derived from {origin})" if origin else ""
        raise Conflict(f"Service {name!r}{derived} already exists: pass --overwrite to update it, or -n NAME to "
                       "deploy another service.")
    return name


def _read_inference_config(_ctx: click.Context, _param: click.Parameter, value: str | None) -> InferenceConfig | None:
    # Read while parsing, before the workspace is opened (or created): a malformed file or a missing entry
    # script creates nothing. An environment reference in it is resolved by the deploying workspace. Without
    # --ic, a model registered with a supported framework deploys with a built-in entry script (no-code).
    if value is None:
        return None
    config = InferenceConfig.from_file(value)
    check_entry_script(config.entry_script)
    return config


@model_group.command("deploy")
@click.option("-n", "--name", "service_name", default=None,
              help="Service name (default: the first model's name, else the source directory's).")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME:VERSION",
              help="A registered version to serve (repeat); none serves the source directory alone.")
@click.option("--ic", "--inference-config", "--inference-config-file", "inference_config", type=click.Path(exists=True, dir_okay=False),
              default=None, callback=_read_inference_config,
              help="inferenceconfig.json (default with one -m model registered with a supported framework: "
                   "no-code deployment with a built-in entry script).")
@click.option("--dc", "--deployment-config", "--deploy-config-file", "deployment_config", type=click.Path(exists=True, dir_okay=False),
              default=None, help="deploymentconfig.json (default: local, a free port).")
@click.option("--overwrite", is_flag=True, help="Update the service when it exists (zero downtime).")
@click.option("--show-output", is_flag=True, help="Print the environment build and server log while waiting.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for the service to become healthy.")
# With -m the models are read from the workspace, which must exist; without, nothing is read from it, and a
# first deployment creates it (v1's "deploy using a local model" needs no registry).
@workspace_option_when(lambda options: not options["models"])
@output_option
def deploy_command(
    workspace: Workspace, service_name: str | None, models: tuple[str, ...], inference_config: InferenceConfig | None,
    deployment_config: str | None, overwrite: bool, show_output: bool, timeout: float, output: str,
) -> None:
    """Deploy model versions (or, without -m, the source directory alone) as a service; wait until healthy.

    Without -m no registered model is served: the files come from the inference configuration's source
    directory, AZUREML_MODEL_DIR is the empty azureml-models folder, and nothing is versioned or checksummed.
    Without --ic, one model registered with a supported framework (scikit-learn, ONNX) is served by a built-in
    entry script (no-code deployment).
    """
    if inference_config is None and not models:
        raise InvalidArgument("Give --ic inferenceconfig.json, or -m NAME:VERSION of a model registered with a "
                              "supported framework (no-code deployment).")
    config = actions.deployment_inference_config(workspace, models, inference_config)
    name = _service_name(workspace, service_name, models, config, overwrite)
    if not show_output:  # with --show-output the deployer says it on stdout
        for note in actions.deployment_notes(models, config):
            click.echo(f"Note: service {name!r}: {note}", err=True)
    service = actions.deploy_service(
        workspace,
        name,
        models,
        config,
        DeploymentConfiguration.from_file(deployment_config) if deployment_config else None,
        overwrite=overwrite,
        show_output=show_output,
    )
    service.wait_for_deployment(show_output=show_output, timeout_sec=timeout)
    emit(service.serialize(), output)
