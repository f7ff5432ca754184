"""``mldeploy model scaffold-entry-script``: copy a no-code deployment's built-in entry script to customise it."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from jupyter_mldeploy.cli.model import model_group
from jupyter_mldeploy.deploy.no_code import builtin_script
from jupyter_mldeploy.errors import Conflict


@model_group.command("scaffold-entry-script")
@click.option("--framework", required=True, metavar="NAME",
              help="ScikitLearn, Onnx or MLflow (as Model.Framework names them).")
@click.option("--out", "out", default="score.py", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the script.")
@click.option("--overwrite", is_flag=True, help="Replace the file when it exists.")
def scaffold_entry_script(framework: str, out: str, overwrite: bool) -> None:
    """Write the built-in entry script no-code deployment uses for FRAMEWORK, to change and deploy as score.py."""
    source = builtin_script(framework)
    target = Path(out)
    if target.exists() and not overwrite:
        raise Conflict(f"{target} exists: pass --overwrite to replace it, or --out another path.")
    shutil.copyfile(source, target)
    click.echo(f"Wrote {target} (a copy of {source.name}): deploy it with InferenceConfig(entry_script={str(target)!r}, "
               "environment=...).")
