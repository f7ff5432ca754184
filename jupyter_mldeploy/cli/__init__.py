"""The ``mldeploy`` command line, mirroring ``az ml`` (CLI v1).

Each command group lives in its own module and registers itself on :data:`main`. Commands are thin: they
parse options, call the core, and print. A domain error (:class:`~jupyter_mldeploy.errors.MLDeployError`)
prints one line on stderr and exits 1; click's usage errors exit 2.
"""

from __future__ import annotations

import importlib

from jupyter_mldeploy.cli._common import main

for _module in ("workspace", "model", "environment", "service", "serve", "docker", "run", "pipeline", "kubernetes", "batch", "profile", "data", "scaffold"):
    try:
        importlib.import_module(f"jupyter_mldeploy.cli.{_module}")
    except ModuleNotFoundError as _exc:  # a command group not written yet in this checkout
        if _exc.name != f"jupyter_mldeploy.cli.{_module}":
            raise

__all__ = ["main"]
