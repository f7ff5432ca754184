"""``mldeploy serve``: run the scoring server in the foreground, a drop-in for ``azmlinfsrv``.

Every argument goes unchanged to the server's own parser (:func:`jupyter_mldeploy.server.config.build_parser`),
so the flags are exactly those of ``python -m jupyter_mldeploy.server``: ``--entry_script``, ``--model_dir``,
``--port``, ``--worker_count``, ``--access_control_allow_origins``, ``--config_file``,
``--appinsights_instrumentation_key`` (hyphenated spellings too), plus ``--host``, ``--status-file``,
``--spec-file``, ``--max-request-mb`` and ``--inline-run-ms``.
"""

from __future__ import annotations

import sys

import click

from jupyter_mldeploy.cli._common import main


@main.command(
    name="serve",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("server_args", nargs=-1, type=click.UNPROCESSED)
def serve(server_args: tuple[str, ...]) -> None:
    """Serve an entry script (score.py) on 127.0.0.1 like azmlinfsrv; see `mldeploy serve --help`."""
    from jupyter_mldeploy.server.supervisor import main as server_main

    sys.exit(server_main(list(server_args), prog="mldeploy serve"))
