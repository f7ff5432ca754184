"""Experiments and runs (Azure ML SDK v1 ``Experiment``/``Run``) recorded in a local workspace.

:class:`Experiment` and :class:`Run` are the public API; :mod:`~jupyter_mldeploy.runs.store` holds the SQLite
and files storage; :mod:`~jupyter_mldeploy.runs.metrics` what can be logged and how it reads back;
:mod:`~jupyter_mldeploy.runs.summaries` the JSON-safe views the CLI, panel and sidebar show
(:func:`list_runs`, :func:`show_run`). Papermill pipelines recorded as runs are in
:mod:`jupyter_mldeploy.pipeline`.
"""

from __future__ import annotations

from jupyter_mldeploy.runs.experiment import Experiment
from jupyter_mldeploy.runs.run import OfflineRun, Run, register_model_from_run
from jupyter_mldeploy.runs.store import CANCELED, COMPLETED, FAILED, RUNNING
from jupyter_mldeploy.runs.summaries import list_runs, show_run

__all__ = ["CANCELED", "COMPLETED", "FAILED", "RUNNING", "Experiment", "OfflineRun", "Run", "list_runs",
           "register_model_from_run", "show_run"]
