"""``mldeploy environment ...``: scaffold, register, list, show and build environments (``az ml environment`` v1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from jupyter_mldeploy.cli._common import (
    emit,
    existing_workspace_option,
    group,
    output_option,
    workspace_option,
)
from jupyter_mldeploy.environment import Environment
from jupyter_mldeploy.environment.curated import is_curated_name
from jupyter_mldeploy.names import parse_name_version, validate_name
from jupyter_mldeploy.workspace import Workspace

environment = group("environment", help="Scaffold, register, list, show and build environments.")


def _summary(env: Environment) -> dict[str, Any]:
    conda = env.python.conda_dependencies
    return {
        "name": env.name,
        "version": env.version,
        "curated": is_curated_name(env.name),
        "user_managed": env.python.user_managed_dependencies,
        "python": conda.python_version if conda is not None else None,
        "conda_packages": [p for p in (conda.conda_packages if conda else []) if not p.startswith("python")],
        "pip_packages": conda.pip_packages if conda is not None else [],
    }


@environment.command("scaffold")
@click.option("-n", "--name", required=True, help="Environment name.")
@click.option("-d", "--directory", required=True, type=click.Path(file_okay=False), help="Folder to create.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing folder.")
def scaffold(name: str, directory: str, overwrite: bool) -> None:
    """Write a new environment definition folder (azureml_environment.json + conda_dependencies.yml)."""
    validate_name(name, "environment name")
    Environment(name).save_to_directory(directory, overwrite=overwrite)
    click.echo(f"Wrote environment {name!r} to {Path(directory).resolve()}; edit it, then: "
               f"mldeploy environment register -d {directory}")


@environment.command("register")
@click.option("-d", "--directory", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder holding azureml_environment.json (and conda_dependencies.yml).")
@output_option
@workspace_option
def register(directory: str, output: str, workspace: Workspace) -> None:
    """Register the environment defined in a folder as the next version of its name."""
    env = Environment.load_from_directory(directory).register(workspace)
    emit(_summary(env), output)


@environment.command("list")
@output_option
@existing_workspace_option
def list_(output: str, workspace: Workspace) -> None:
    """List environments (latest version of each; curated ones first)."""
    rows = [_summary(env) for env in Environment.list(workspace).values()]
    emit(rows, output, columns=["name", "version", "curated", "user_managed", "python", "pip_packages"])


@environment.command("show")
@click.argument("name_version", metavar="NAME[:VERSION]")
@output_option
@existing_workspace_option
def show(name_version: str, output: str, workspace: Workspace) -> None:
    """Show an environment; -o json prints its full definition (the inline azureml_environment.json form)."""
    name, version = parse_name_version(name_version, "environment")
    env = Environment.get(workspace, name, version)
    emit(env.serialize() if output == "json" else _summary(env), output)


@environment.command("build")
@click.argument("name_version", metavar="NAME[:VERSION]")
@click.option("-q", "--quiet", is_flag=True, help="Do not stream the build output (it still goes to the log).")
@output_option
@existing_workspace_option
def build(name_version: str, quiet: bool, output: str, workspace: Workspace) -> None:
    """Build an environment into the per-user cache (or reuse an equal build); print its interpreter."""
    name, version = parse_name_version(name_version, "environment")
    env = Environment.get(workspace, name, version)
    built = env.build_local(workspace, show_output=not quiet and output != "json")
    result = {
        "name": env.name,
        "version": env.version,
        "python": str(built.python),
        "path": str(built.path),
        "spec_hash": built.spec_hash,
        "reused": built.reused,
        "build_seconds": round(built.build_seconds, 3),
        "log_path": str(built.log_path) if built.log_path else None,
    }
    if output == "json":
        emit(result, output)
        return
    state = "reused (nothing built)" if built.reused else f"built in {built.build_seconds:.1f} s"
    click.echo(f"Environment {env.name}:{env.version} {state}")
    click.echo(f"Interpreter: {built.python}")
