"""Runs as plain JSON-safe data for the faces: the CLI's ``run list``/``run show``, a panel's "Runs" tab,
the sidebar's runs section and a REST handler all call these two functions and only format the result.

Both only read (a ``Running`` run whose process died is settled to ``Failed`` on the way, see
:mod:`jupyter_mldeploy.runs.store`), so a face may refresh while runs are logging.
"""

from __future__ import annotations

from typing import Any

from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.runs import metrics
from jupyter_mldeploy.runs.experiment import existing_experiment
from jupyter_mldeploy.runs.store import RunRecord, RunStore
from jupyter_mldeploy.workspace import Workspace


def _row(record: RunRecord, scalars: dict[str, Any], models: list[str]) -> dict[str, Any]:
    return {
        "id": record.id,
        "experiment": record.experiment,
        "number": record.number,
        "kind": record.kind,
        "status": record.status,
        "startTime": record.start_time.isoformat(),
        "endTime": record.end_time.isoformat() if record.end_time else None,
        "durationSeconds": record.duration_s,
        "parameters": dict(record.parameters),
        "metrics": scalars,
        "tags": dict(record.tags),
        "models": models,
        "error": record.error,
    }


def list_runs(workspace: Workspace, experiment: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Return runs newest first, each with its parameters, last scalar metrics and registered models.

    Args:
        workspace: The workspace.
        experiment: Only this experiment's runs (it must exist).
        limit: At most this many runs.

    Returns:
        One dict per run: ``id, experiment, number, kind, status, startTime, endTime`` (ISO 8601 UTC or
        None), ``durationSeconds`` (float or None), ``parameters`` (dict), ``metrics`` (``{name: last
        scalar value}``), ``tags``, ``models`` (``["name:version", ...]`` registered from the run), ``error``.

    Raises:
        InvalidArgument: For a bad experiment name.
        NotFound: When the experiment does not exist; the message lists those that do.
    """
    if experiment is not None:
        existing_experiment(workspace, experiment)
    store = RunStore(workspace)
    records = store.list(experiment)[:limit] if limit is not None else store.list(experiment)
    logged = store.metrics(r.id for r in records)
    models: dict[str, list[str]] = {}
    for model in Model.list(workspace):
        if model.run_id is not None:
            models.setdefault(model.run_id, []).append(model.id)
    return [_row(r, metrics.last_scalars(logged[r.id]), models.get(r.id, [])) for r in records]


def show_run(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """Return everything about one run.

    Returns:
        The :func:`list_runs` keys, with ``metrics`` holding every metric folded as ``run.get_metrics()``
        does, plus ``source`` (a pipeline's notebook), ``files`` (run file names), ``folder`` (where they
        are), and ``models`` as ``[{"id", "name", "version", "createdTime"}]``.

    Raises:
        InvalidArgument: For a malformed run id.
        NotFound: When the run does not exist; the message says how to list runs.
    """
    store = RunStore(workspace)
    record = store.get(run_id)
    registered = Model.list(workspace, run_id=record.id)
    details = _row(record, metrics.fold(store.metrics([record.id])[record.id]), [])
    details.update(
        source=record.source,
        files=store.file_names(record.id),
        folder=str(store.run_dir(record.id)),
        models=[
            {"id": m.id, "name": m.name, "version": m.version, "createdTime": m.created_time.isoformat()}
            for m in registered
        ],
    )
    return details
