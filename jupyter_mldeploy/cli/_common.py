"""Pieces every ``mldeploy`` command shares: the root group, ``--workspace``, ``-o``, error handling.

Commands are thin: they parse options, call :mod:`jupyter_mldeploy.actions` (or the core), and print.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from jupyter_mldeploy import actions
from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError
from jupyter_mldeploy.workspace import Workspace


class _Group(click.Group):
    """A click group that turns domain errors into one line on stderr (exit 1) and suggests commands.

    click suggests only close spellings (``difflib``, ratio >= 0.6), which misses abbreviations such as
    ``env`` for ``environment``; a command that starts with the typed name is suggested too.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MLDeployError as exc:
            click.echo(f"Error: {exc.summary}", err=True)
            sys.exit(1)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            matches = [command for command in self.list_commands(ctx) if command.startswith(name)]
            if matches:
                ctx.fail(f"No such command {name!r}; did you mean: {', '.join(matches)}?")
        return super().resolve_command(ctx, args)


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


def _workspace_decorator(create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(
            "--workspace",
            "-w",
            "workspace_path",
            type=click.Path(file_okay=False),
            default=None,
            help="Workspace folder (default: $MLDEPLOY_WORKSPACE, else the nearest .mldeploy/"
            + (", else a new ./.mldeploy)." if create else ")."),
        )
        @functools.wraps(func)
        def wrapper(*args: Any, workspace_path: str | None, **kwargs: Any) -> Any:
            workspace = Workspace.from_config(workspace_path, create=create)
            if workspace.created:
                click.echo(f"Created workspace at {workspace.path}", err=True)
            return func(*args, workspace=workspace, **kwargs)

        return wrapper

    return decorate


#: ``--workspace PATH`` for writing commands (register, deploy, ...): the workspace is created when missing
#: and the command says so once on stderr ("Created workspace at ...").
workspace_option = _workspace_decorator(create=True)

#: ``--workspace PATH`` for reading commands (list, show, logs, run, download, delete, ...): a missing
#: workspace is an error naming the folders searched and how to create one; nothing is created.
existing_workspace_option = _workspace_decorator(create=False)


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-o/--output table|json`` (json is the stable format for scripts)."""
    return click.option(
        "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
        help="Output format; json is stable for scripts.",
    )(func)


def emit(data: Any, output: str, columns: Sequence[str] | None = None, title: str | None = None,
         empty: str | None = None) -> None:
    """Print ``data`` as JSON or as a table.

    Args:
        data: A JSON-safe dict or list of dicts.
        output: ``"json"`` or ``"table"``.
        columns: For tables, the keys to show (default: every key of the first row).
        title: Optional table title.
        empty: For tables, the sentence printed instead of a header-only table when ``data`` is an empty
            list (``-o json`` still prints ``[]``).
    """
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    if empty is not None and isinstance(data, list) and not data:
        click.echo(empty)
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
    """Parse ``KEY=VALUE`` options the one way every face does (:func:`jupyter_mldeploy.actions.parse_key_values`).

    Args:
        pairs: The raw values (repeated options; each may hold comma-separated pairs).
        option: The option's name, for the error message.
        allow_bare: Accept ``KEY`` alone (value None), as ``--tag k`` filters do.

    Raises:
        click.BadParameter: For a malformed pair: a usage error (exit 2).
    """
    try:
        return actions.parse_key_values(pairs, option.lstrip("-"), allow_bare=allow_bare)
    except InvalidArgument as exc:
        raise click.BadParameter(exc.summary, param_hint=option) from exc


def key_values_callback(allow_bare: bool = False) -> Callable[[click.Context, click.Parameter, Sequence[str]],
                                                               Sequence[str]]:
    """A click callback checking repeated ``KEY=VALUE`` options while parsing (before the workspace opens).

    Returns the raw values; a malformed pair is a usage error (exit 2) naming the option.
    """

    def check(_ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> Sequence[str]:
        parse_key_values(value, param.opts[0] if param.opts else str(param.name), allow_bare=allow_bare)
        return value

    return check
