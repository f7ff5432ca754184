"""Experiment runs as every face lists and shows them (issue #17).

The panel's Runs tab, the sidebar's ``runs`` routes and ``mldeploy run list/show`` read runs through these
functions: the rows are :func:`jupyter_mldeploy.runs.list_runs` / :func:`~jupyter_mldeploy.runs.show_run`
(JSON-safe, read-only, so a face may refresh while runs log), with the faces' input checked here once.
"""

from __future__ import annotations

from typing import Any

from jupyter_mldeploy import runs
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.workspace import Workspace

#: The most runs one listing returns (a face pages or filters by experiment beyond that).
MAX_RUNS = 1000


def experiment_names(workspace: Workspace) -> list[str]:
    """The workspace's experiments, sorted by name (the choices of an experiment filter)."""
    return [experiment.name for experiment in runs.Experiment.list(workspace)]


def list_runs(workspace: Workspace, experiment: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs newest first, each with its status, parameters, last scalar metrics and registered models.

    Args:
        workspace: The workspace.
        experiment: Only this experiment's runs; None or ``""`` for every experiment.
        limit: At most this many runs, 1 to :data:`MAX_RUNS`; None for up to :data:`MAX_RUNS`.

    Returns:
        The rows of :func:`jupyter_mldeploy.runs.list_runs`: ``id, experiment, number, kind, status,
        startTime, endTime, durationSeconds, parameters, metrics, tags, models, error``.

    Raises:
        InvalidArgument: For a bad experiment name or a limit out of range.
        NotFound: When the experiment does not exist (the message lists those that do).
    """
    if limit is not None and not 1 <= limit <= MAX_RUNS:
        raise InvalidArgument(f"limit={limit} is out of range: ask for 1 to {MAX_RUNS} runs.")
    return runs.list_runs(workspace, experiment or None, limit if limit is not None else MAX_RUNS)


def show_run(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """Everything about one run: the :func:`list_runs` keys with every metric, ``source``, ``files``,
    ``folder``, and ``models`` as ``[{id, name, version, createdTime}]`` (see
    :func:`jupyter_mldeploy.runs.show_run`).

    Raises:
        InvalidArgument: For a malformed run id.
        NotFound: When the run does not exist; the message says how to list runs.
    """
    return runs.show_run(workspace, run_id)


__all__ = ["MAX_RUNS", "experiment_names", "list_runs", "show_run"]
