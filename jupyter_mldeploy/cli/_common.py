"""Pieces every ``mldeploy`` command shares: the root group, ``--workspace``, ``-o``, error handling."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.errors import MLDeployError


class _Group(click.Group):
    """A click group that turns domain errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MLDeployError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mldeploy")
def main() -> None:
    """mldeploy: register, build, deploy and call models locally (the az ml v1 workflow, no Azure)."""


def group(name: str, help: str) -> click.Group:
    """Create a sub-group of ``mldeploy`` whose errors are handled like the root's."""
    # ``main.group(name=...)`` without a function returns a decorator, not a group: build and attach it here.
    sub = _Group(name=name, help=help, context_settings={"help_option_names": ["-h", "--help"]})
    main.add_command(sub)
    return sub


def workspace_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--workspace PATH`` and pass the opened :class:`Workspace` as ``workspace``."""

    @click.option(
        "--workspace",
        "-w",
        "workspace_path",
        type=click.Path(file_okay=False),
        default=None,
        help="Workspace folder (default: $MLDEPLOY_WORKSPACE, else the nearest .mldeploy/).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, workspace_path: str | None, **kwargs: Any) -> Any:
        from jupyter_mldeploy.workspace import Workspace

        return func(*args, workspace=Workspace.from_config(workspace_path), **kwargs)

    return wrapper


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-o/--output table|json`` (json is the stable format for scripts)."""
    return click.option(
        "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
        help="Output format; json is stable for scripts.",
    )(func)


def emit(data: Any, output: str, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print ``data`` as JSON or as a table.

    Args:
        data: A JSON-safe dict or list of dicts.
        output: ``"json"`` or ``"table"``.
        columns: For tables, the keys to show (default: every key of the first row).
        title: Optional table title.
    """
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    rows = data if isinstance(data, list) else [data]
    console = Console(width=200 if not sys.stdout.isatty() else None)
    if isinstance(data, dict) and columns is None:
        table = Table(show_header=False, title=title)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in data.items():
            table.add_row(str(key), _cell(value))
        console.print(table)
        return
    keys = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title)
    for key in keys:
        table.add_column(key)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key in keys))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def parse_key_values(pairs: Sequence[str], option: str, allow_bare: bool = False) -> list[tuple[str, str | None]]:
    """Parse repeated ``k=v`` options.

    Args:
        pairs: The raw values.
        option: The option's name, for the error message.
        allow_bare: Accept ``k`` alone (value None), as ``--tag k`` filters do.

    Raises:
        click.BadParameter: For a value without ``=`` when bare keys are not allowed.
    """
    result: list[tuple[str, str | None]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key or (not sep and not allow_bare):
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint=option)
        result.append((key, value if sep else None))
    return result
