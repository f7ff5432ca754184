"""``mldeploy workspace ...``: create a workspace, list the ones this user has used, or show which one a command
in this folder would use.

Reading commands (list, show, logs, run, download) never create a workspace; a missing one is an error
that points here. ``mldeploy model register`` also creates one (in the folder :func:`locate_workspace` picks).
"""

from __future__ import annotations

import click

from jupyter_mldeploy import actions
from jupyter_mldeploy.actions.workspaces import recent_workspace_dicts, remember_workspace
from jupyter_mldeploy.cli._common import emit, group, output_option
from jupyter_mldeploy.workspace import Workspace, locate_workspace

workspace_group = group("workspace", "Create a workspace, list the ones used, or show which one commands here use.")


@workspace_group.command("create")
@click.argument("path", type=click.Path(file_okay=False), default=".mldeploy")
def create_workspace(path: str) -> None:
    """Create a workspace folder at PATH (default ./.mldeploy); an existing one is left as it is."""
    workspace = Workspace.create(path, exist_ok=True)
    remember_workspace(workspace)
    verb = "Created workspace at" if workspace.created else "Workspace exists at"
    click.echo(f"{verb} {workspace.path}")


@workspace_group.command("show")
@click.option("--workspace", "-w", "workspace_path", type=click.Path(file_okay=False), default=None,
              help="Workspace folder (default: $MLDEPLOY_WORKSPACE, else the nearest .mldeploy/).")
@output_option
def show_workspace(workspace_path: str | None, output: str) -> None:
    """Show the workspace commands here use and how it was found; exit 1 when there is none."""
    location = locate_workspace(workspace_path)
    data = {"path": str(location.path), "exists": location.exists, "source": location.source,
            "searched": [str(p) for p in location.searched]}
    if output == "json":
        emit(data, output)
    elif location.exists:
        click.echo(f"{location.path} ({location.source})")
    if not location.exists:
        if output != "json":
            click.echo(f"Error: {location.missing_message()}", err=True)
        raise SystemExit(1)


@workspace_group.command("list")
@output_option
def list_workspaces(output: str) -> None:
    """List the workspaces you have used, most recent first (az ml workspace list).

    Every command that opens or creates a workspace notes it in $MLDEPLOY_RECENT_WORKSPACES (default
    ~/.config/jupyter_mldeploy/recent_workspaces.json); folders that no longer hold a workspace are left out.
    """
    rows = recent_workspace_dicts()
    if output == "table":
        rows = [row | {"lastUsed": actions.format_time(row["lastUsed"])} for row in rows]
    emit(rows, output, columns=("name", "path", "lastUsed"),
         empty="No workspaces used yet (create one with: mldeploy workspace create PATH).")
