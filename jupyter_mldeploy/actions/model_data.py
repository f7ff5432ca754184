"""Collected model data for the faces (``mldeploy data show``, the panel's Data drift tab): one summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.errors import NotFound
from jupyter_mldeploy.monitoring.drift import drift_table
from jupyter_mldeploy.monitoring.store import MODELDATA_DIRNAME, TIMESTAMP_COLUMN, read_collected_data

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from jupyter_mldeploy.workspace import Workspace


@dataclass
class CollectedData:
    """What a service collected for one designation, and its drift against a reference.

    Attributes:
        service: The service name.
        designation: The designation read.
        data: The rows (see :func:`~jupyter_mldeploy.monitoring.read_collected_data`); empty when none.
        rows_per_day: ``[{"day": "YYYY-MM-DD", "rows": n}, ...]``, oldest first.
        reference: The reference sample used (a DataFrame, rows or ``{"data": rows}``), or None.
        drift: The drift table (:func:`~jupyter_mldeploy.monitoring.drift.drift_table`), or None without a
            reference or for another designation than ``inputs``.
    """

    service: str
    designation: str
    data: pandas.DataFrame
    rows_per_day: list[dict[str, Any]]
    reference: Any
    drift: pandas.DataFrame | None


def services_with_data(workspace: Workspace) -> list[str]:
    """Return the services that have a ``modeldata`` folder (deleted ones included), sorted."""
    root = workspace.path / MODELDATA_DIRNAME
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def served_sample_input(workspace: Workspace, service: str) -> Any:
    """Return the first served model's ``sample_input``, or None (no sample, or the service is gone)."""
    try:
        models = Webservice(workspace, service).models
    except NotFound:  # a deleted service keeps its data; it just has no sample to compare with
        return None
    return next((m.sample_input for m in models if m.sample_input is not None), None)


def collected_data(
    workspace: Workspace, service: str, designation: str = "inputs", since: Any = None, reference: Any = None
) -> CollectedData:
    """Read a service's collected rows, count them per day and, for inputs, compute the drift table.

    Args:
        workspace: The workspace.
        service: The service name.
        designation: ``inputs``, ``predictions``, ``labels``, ``signals`` or ``general``.
        since: Only rows scored at or after this time.
        reference: The reference sample; None uses the served model's ``sample_input``.

    Raises:
        InvalidArgument: For an unknown designation, a bad ``since``, or a reference with none of the features.
    """
    data = read_collected_data(workspace, service, designation, since)
    counts: list[dict[str, Any]] = []
    if not data.empty:
        days = data[TIMESTAMP_COLUMN].dt.strftime("%Y-%m-%d")
        counts = [{"day": day, "rows": int(n)} for day, n in days.value_counts().sort_index().items()]
    if reference is None and designation == "inputs" and not data.empty:
        reference = served_sample_input(workspace, service)
    drift = drift_table(data, reference) if reference is not None and designation == "inputs" else None
    return CollectedData(service, designation, data, counts, reference, drift)
