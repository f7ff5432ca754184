"""``mldeploy serve``: run the scoring server in the foreground, a drop-in for ``azmlinfsrv``.

Every argument goes unchanged to the server's own parser (:func:`jupyter_mldeploy.server.config.build_parser`),
so the flags are exactly those of ``python -m jupyter_mldeploy.server``: ``--entry_script``, ``--model_dir``,
``--port``, ``--worker_count``, ``--access_control_allow_origins``, ``--config_file``,
``--appinsights_instrumentation_key`` (hyphenated spellings too), plus ``--host``, ``--status-file``,
``--spec-file``, ``--max-request-mb`` and ``--inline-run-ms``.
"""

from __future__ import annotations

import os
import sys

import click

from jupyter_mldeploy.cli._common import main

#: Exit code of a usage mistake (click's own code for bad options): a missing entry script is one.
USAGE_EXIT = 2


@main.command(
    name="serve",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("server_args", nargs=-1, type=click.UNPROCESSED)
def serve(server_args: tuple[str, ...]) -> None:
    """Serve an entry script (score.py) on 127.0.0.1 like azmlinfsrv; see `mldeploy serve --help`."""
    # The scoring server (uvicorn, starlette) loads only for `mldeploy serve`, not for every command.
    from jupyter_mldeploy.server.config import ConfigError, build_parser, resolve_settings
    from jupyter_mldeploy.server.supervisor import main as server_main

    # A missing entry script is a usage mistake: say so in one line before any worker starts (the server
    # itself would only find out while importing it in a worker, and print a traceback).
    if "-h" not in server_args and "--help" not in server_args:
        try:
            settings = resolve_settings(build_parser("mldeploy serve").parse_args(list(server_args)))
        except ConfigError:
            settings = None  # the server's own parser reports it below, with its exit code
        script = settings.entry_script if settings is not None else None
        if script is not None and not settings.spec_file and not os.path.isfile(script):
            click.echo(f"Error: entry script {script} does not exist; give the path of your score.py "
                       "with --entry_script.", err=True)
            sys.exit(USAGE_EXIT)
    sys.exit(server_main(list(server_args), prog="mldeploy serve"))
