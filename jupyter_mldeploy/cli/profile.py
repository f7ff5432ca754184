"""``mldeploy model profile run|show|list``: v1's ``Model.profile`` from the command line (issue #15).

``run`` deploys a temporary service, measures it and stores the profile in the workspace (see
:mod:`jupyter_mldeploy.deploy.profile`); ``show`` and ``list`` read stored profiles.
"""

from __future__ import annotations

import click

from jupyter_mldeploy.cli._common import emit, existing_workspace_option, output_option
from jupyter_mldeploy.cli.model import model_group
from jupyter_mldeploy.deploy.profile import SECONDS_PER_LEVEL, ModelProfile, list_profiles, profile_model
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace

_SHOWN = ("name", "state", "recommendedCpu", "recommendedMemoryInGB", "measuredQueriesPerSecond",
          "latencyPercentile50InMs", "latencyPercentile99InMs", "maxUtilizedCpu", "maxUtilizedMemoryInGB",
          "successRate", "error")


@model_group.group("profile")
def profile_group() -> None:
    """Profile models on a temporary service: CPU and memory to ask for (v1 Model.profile)."""


def _emit_profile(profile: ModelProfile, output: str) -> None:
    details = profile.get_details()
    if output == "json":
        emit(details, output)
        return
    emit([{key: details.get(key) for key in _SHOWN}], output, columns=_SHOWN)
    if details.get("recommendation"):
        click.echo(details["recommendation"])


@profile_group.command("run")
@click.option("-n", "--name", "profile_name", required=True, help="Profile name.")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME[:VERSION]", help="Model to serve (repeatable).")
@click.option("--ic", "--inference-config", "inference_config", required=True,
              type=click.Path(exists=True, dir_okay=False), help="inferenceconfig.json (entry script, environment).")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with one column: a request body per row.")
@click.option("--cpu", type=float, default=None, help="CPU cores (a real limit: the Docker target).")
@click.option("--memory-gb", type=float, default=None, help="Memory in GB (a real limit: the Docker target).")
@click.option("--description", default=None, help="Free text.")
@click.option("--seconds-per-level", type=float, default=SECONDS_PER_LEVEL, show_default=True,
              help="How long each concurrency level (1, 2, 4, 8) runs.")
@output_option
@existing_workspace_option
def run_command(workspace: Workspace, profile_name: str, models: tuple[str, ...], inference_config: str,
                input_path: str, cpu: float | None, memory_gb: float | None, description: str | None,
                seconds_per_level: float, output: str) -> None:
    """Deploy a temporary service, load it at 1-8 connections, store and print the profile."""
    ic = InferenceConfig.from_file(inference_config, workspace)
    profile = profile_model(workspace, profile_name, list(models), ic, input_path, cpu, memory_gb, description,
                            seconds_per_level=seconds_per_level)
    profile.wait_for_completion(show_output=output == "table")
    _emit_profile(profile, output)
    if profile.state != "Succeeded":
        raise SystemExit(1)


@profile_group.command("show")
@click.argument("profile_name", metavar="NAME")
@output_option
@existing_workspace_option
def show_command(workspace: Workspace, profile_name: str, output: str) -> None:
    """Show a stored profile."""
    _emit_profile(ModelProfile.get(workspace, profile_name), output)


@profile_group.command("list")
@output_option
@existing_workspace_option
def list_command(workspace: Workspace, output: str) -> None:
    """List the workspace's stored profiles."""
    rows = [{key: p.get_details().get(key) for key in _SHOWN} for p in list_profiles(workspace)]
    emit(rows, output, columns=_SHOWN, empty=f"No model profiles in {workspace.path} (mldeploy model profile run ...)")
