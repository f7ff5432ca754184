"""``mldeploy service ...`` and ``mldeploy model deploy`` (CLI v1: ``az ml service ...``, ``az ml model deploy``).

Thin: options are parsed here, everything else is :mod:`jupyter_mldeploy.deploy`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from jupyter_mldeploy.cli._common import emit, group, output_option, workspace_option
from jupyter_mldeploy.cli.model import model_group
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.workspace import Workspace

service_group = group("service", "List, call, reload, update and delete deployed services.")

_LIST_COLUMNS = ("name", "state", "scoringUri", "models", "updatedTime")


def _service(workspace: Workspace, name: str) -> Any:
    from jupyter_mldeploy.deploy import Webservice

    return Webservice(workspace, name)


@service_group.command("list")
@workspace_option
@output_option
def list_services(workspace: Workspace, output: str) -> None:
    """List the services of the workspace with their live state."""
    from jupyter_mldeploy.deploy import Webservice

    emit([s.serialize() for s in Webservice.list(workspace)], output, columns=_LIST_COLUMNS)


@service_group.command("show")
@click.argument("name")
@workspace_option
@output_option
def show_service(workspace: Workspace, name: str, output: str) -> None:
    """Show one service: state, URIs, models, environment, error."""
    emit(_service(workspace, name).serialize(), output)


@service_group.command("logs")
@click.argument("name")
@click.option("-l", "--num-lines", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Lines from the end of the log.")
@workspace_option
def service_logs(workspace: Workspace, name: str, num_lines: int) -> None:
    """Print the end of the scoring server's log."""
    click.echo(_service(workspace, name).get_logs(num_lines=num_lines))


@service_group.command("run")
@click.argument("name")
@click.option("-d", "--input-data", default=None, help="Request body (JSON text) sent to /score.")
@click.option("-f", "--input-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file whose content is the request body.")
@workspace_option
def run_service(workspace: Workspace, name: str, input_data: str | None, input_file: str | None) -> None:
    """Call the service's /score with a request body and print the JSON answer."""
    if (input_data is None) == (input_file is None):
        raise click.UsageError("Give exactly one of --input-data JSON or --input-file PATH.")
    if input_file is not None:
        with open(input_file, encoding="utf-8") as handle:
            input_data = handle.read()
    result = _service(workspace, name).run(input_data)
    click.echo(json.dumps(result, indent=2) if not isinstance(result, str) else result)


@service_group.command("reload")
@click.argument("name")
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting for the switch.")
@workspace_option
def reload_service(workspace: Workspace, name: str, no_wait: bool) -> None:
    """Serve the current entry script and source directory again, with zero downtime."""
    service = _service(workspace, name)
    service.reload(wait=not no_wait)
    click.echo(f"Service {name!r} reloaded: {service.state} at {service.scoring_uri}")


@service_group.command("update")
@click.argument("name")
@click.option("-m", "--model", "models", multiple=True, help="NAME:VERSION to serve (repeat); replaces the models.")
@click.option("--ic", "--inference-config", "inference_config", type=click.Path(exists=True, dir_okay=False),
              default=None, help="inferenceconfig.json")
@click.option("--dc", "--deployment-config", "deployment_config", type=click.Path(exists=True, dir_okay=False),
              default=None, help="deploymentconfig.json")
@workspace_option
def update_service(
    workspace: Workspace, name: str, models: tuple[str, ...], inference_config: str | None,
    deployment_config: str | None,
) -> None:
    """Change a service's models or configuration, with zero downtime."""
    from jupyter_mldeploy.deploy import DeploymentConfiguration
    from jupyter_mldeploy.inference_config import InferenceConfig

    service = _service(workspace, name)
    service.update(
        models=list(models) or None,
        inference_config=InferenceConfig.from_file(inference_config, workspace) if inference_config else None,
        deployment_config=DeploymentConfiguration.from_file(deployment_config) if deployment_config else None,
    )
    click.echo(f"Service {name!r} updated: {service.state} at {service.scoring_uri}")


@service_group.command("delete")
@click.argument("name")
@workspace_option
def delete_service(workspace: Workspace, name: str) -> None:
    """Stop a service and remove it."""
    _service(workspace, name).delete()
    click.echo(f"Service {name!r} deleted.")


@model_group.command("deploy")
@click.option("-n", "--name", "service_name", required=True, help="Service name.")
@click.option("-m", "--model", "models", multiple=True, required=True, help="NAME:VERSION to serve (repeat).")
@click.option("--ic", "--inference-config", "inference_config", type=click.Path(exists=True, dir_okay=False),
              required=True, help="inferenceconfig.json")
@click.option("--dc", "--deployment-config", "deployment_config", type=click.Path(exists=True, dir_okay=False),
              default=None, help="deploymentconfig.json (default: local, a free port).")
@click.option("--overwrite", is_flag=True, help="Update the service when it exists (zero downtime).")
@click.option("--show-output", is_flag=True, help="Print the environment build and server log while waiting.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for the service to become healthy.")
@workspace_option
@output_option
def deploy_command(
    workspace: Workspace, service_name: str, models: tuple[str, ...], inference_config: str,
    deployment_config: str | None, overwrite: bool, show_output: bool, timeout: float, output: str,
) -> None:
    """Deploy model versions as a local service and wait until it is healthy."""
    from jupyter_mldeploy.deploy import DeploymentConfiguration, deploy_model
    from jupyter_mldeploy.inference_config import InferenceConfig

    if not models:
        raise InvalidArgument("Give at least one -m NAME:VERSION.")
    service = deploy_model(
        workspace,
        service_name,
        list(models),
        InferenceConfig.from_file(inference_config, workspace),
        DeploymentConfiguration.from_file(deployment_config) if deployment_config else None,
        overwrite=overwrite,
        show_output=show_output,
    )
    service.wait_for_deployment(show_output=show_output, timeout_sec=timeout)
    emit(service.serialize(), output)
