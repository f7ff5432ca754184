"""Pieces every ``mldeploy`` command shares: the root group, ``--workspace``, ``-o``, error handling, and
the Azure-only options of ``az ml`` accepted and ignored.

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
from jupyter_mldeploy.actions.workspaces import remember_workspace
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError
from jupyter_mldeploy.workspace import Workspace

#: ``az ml`` (CLI v1) options that name Azure resources. Every command accepts them so that a line copied from
#: v1 runs, prints one note on stderr, and otherwise ignores them: the workspace is a local folder (``-w``).
AZURE_ONLY_OPTIONS: tuple[tuple[str, ...], ...] = (
    ("-g", "--resource-group"),
    ("--subscription-id", "--subscription"),
)
_IGNORED_KEY = "mldeploy.azure_options_ignored"


def _note_azure_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta.setdefault(_IGNORED_KEY, []).append(f"{param.opts[-1]} {value}")


class _Command(click.Command):
    """A command that also accepts :data:`AZURE_ONLY_OPTIONS` (hidden from ``--help``) and ignores them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for opts in AZURE_ONLY_OPTIONS:
            self.params.append(click.Option(list(opts), metavar="VALUE", expose_value=False, hidden=True,
                                            callback=_note_azure_option))

    def invoke(self, ctx: click.Context) -> Any:
        ignored = ctx.meta.get(_IGNORED_KEY)
        if ignored:
            click.echo(f"Note: ignoring {', '.join(ignored)} (Azure-only; mldeploy uses a local workspace folder, "
                       "-w PATH).", err=True)
        return super().invoke(ctx)


class _Group(click.Group):
    """A click group that turns domain errors into one line on stderr (exit 1) and suggests commands.

    click suggests only close spellings (``difflib``, ratio >= 0.6), which misses abbreviations such as
    ``env`` for ``environment``; a command that starts with the typed name is suggested too. Its commands
    accept the Azure-only options of ``az ml`` (:class:`_Command`).
    """

    command_class = _Command

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


def _workspace_decorator(create: bool | Callable[[dict[str, Any]], bool],
                         ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    help_tail = (", else a new ./.mldeploy)." if create is True
                 else ")." if create is False else "; created when missing only if nothing is read from it).")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(
            "--workspace",
            "-w",
            "--workspace-name",  # v1's spelling; here it names the folder
            "workspace_path",
            type=click.Path(file_okay=False),
            default=None,
            help="Workspace folder (default: $MLDEPLOY_WORKSPACE, else the nearest .mldeploy/" + help_tail,
        )
        @functools.wraps(func)
        def wrapper(*args: Any, workspace_path: str | None, **kwargs: Any) -> Any:
            writing = create if isinstance(create, bool) else create(kwargs)
            workspace = Workspace.from_config(workspace_path, create=writing)
            if workspace.created:
                click.echo(f"Created workspace at {workspace.path}", err=True)
            remember_workspace(workspace)
            return func(*args, workspace=workspace, **kwargs)

        return wrapper

    return decorate


#: ``--workspace PATH`` for writing commands (register, deploy, ...): the workspace is created when missing
#: and the command says so once on stderr ("Created workspace at ...").
workspace_option = _workspace_decorator(create=True)

#: ``--workspace PATH`` for reading commands (list, show, logs, run, download, delete, ...): a missing
#: workspace is an error naming the folders searched and how to create one; nothing is created.
existing_workspace_option = _workspace_decorator(create=False)


def workspace_option_when(writing: Callable[[dict[str, Any]], bool]) -> Callable[[Callable[..., Any]],
                                                                                   Callable[..., Any]]:
    """``--workspace PATH`` for a command that writes or reads depending on its options.

    Args:
        writing: Called with the command's parsed options; True when the command reads nothing from the
            workspace (so a missing one is created, as :data:`workspace_option`), False when it does (a missing
            one is an error, as :data:`existing_workspace_option`). ``model deploy`` without ``-m`` is the case.
    """
    return _workspace_decorator(create=writing)


def argument_or_option(argument: str, option: str, spelling: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Accept a value as a positional argument or as v1's option (``model delete -i ID``, ``service delete -n
    NAME``): merge parameter ``option`` into ``argument``; both or neither is a usage error (exit 2).

    Place it above the workspace option, so the mistake is reported before a workspace is opened.

    Args:
        argument: The positional parameter's name (declared ``required=False``); the command receives it.
        option: The option's parameter name (dropped from the command's arguments).
        spelling: How the message names the two forms, e.g. ``"NAME:VERSION or -i/--model-id NAME:VERSION"``.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            positional, optional = kwargs.pop(argument), kwargs.pop(option)
            if (positional is None) == (optional is None):
                raise click.UsageError(f"Give exactly one of {spelling}.")
            kwargs[argument] = positional if positional is not None else optional
            return func(*args, **kwargs)

        return wrapper

    return decorate


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
