"""Where collected model data lives in a workspace, and reading it back.

Layout (v1's): ``<workspace>/modeldata/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/
<designation>.csv``, written by the scoring server's :mod:`~jupyter_mldeploy.server.data_collector`.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.server.data_collector import DESIGNATIONS

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from jupyter_mldeploy.workspace import Workspace

#: The workspace folder holding every service's collected data.
MODELDATA_DIRNAME = "modeldata"
#: The timestamp column of every record.
TIMESTAMP_COLUMN = "$aml_dc_scoring_timestamp"


def model_data_folder(workspace: Workspace, service: str) -> Path:
    """Return ``<workspace>/modeldata/<service>`` (it may not exist yet)."""
    return Path(workspace.path) / MODELDATA_DIRNAME / service


def collected_files(workspace: Workspace, service: str, designation: str) -> list[Path]:
    """Return the CSV files of one designation of a service, oldest day first.

    Raises:
        InvalidArgument: For an unknown designation.
    """
    if designation not in DESIGNATIONS:
        raise InvalidArgument(f"Unknown designation {designation!r}: use one of {', '.join(DESIGNATIONS)}.")
    folder = model_data_folder(workspace, service)
    pattern = f"*/*/{designation}/*/*/*/{designation}.csv"
    return sorted(folder.glob(pattern), key=lambda p: (p.parts[-4:-1], p.parts))


def _since(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            return _since(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise InvalidArgument(f"since must be a datetime, a date or an ISO 8601 string such as '2026-01-31', not {value!r}.")


def read_collected_data(
    workspace: Workspace, service: str, designation: str = "inputs", since: Any = None
) -> pandas.DataFrame:
    """Read what a service collected for one designation (v1 read it from blob storage).

    Args:
        workspace: The workspace.
        service: The service name.
        designation: ``"inputs"``, ``"predictions"``, ``"labels"``, ``"signals"`` or ``"general"``.
        since: Keep rows scored at or after this time (a timezone-aware or UTC ``datetime``, a ``date``, or an
            ISO 8601 string); None keeps all.

    Returns:
        pandas.DataFrame: One row per collected row, in file order: the ``$aml_*`` columns (correlation id,
        scoring timestamp as UTC ``datetime64``, request id, service, model, model version) then the
        features. Empty (with no columns) when nothing was collected.

    Raises:
        InvalidArgument: For an unknown designation or a bad ``since``.
    """
    import pandas as pd

    start = _since(since)
    frames = [pd.read_csv(path, dtype={"$aml_model_version": str, "$aml_request_id": str}, keep_default_na=False,
                          na_values=[""]) for path in collected_files(workspace, service, designation)]
    if not frames:
        return pd.DataFrame()
    data = pd.concat(frames, ignore_index=True)
    data[TIMESTAMP_COLUMN] = pd.to_datetime(data[TIMESTAMP_COLUMN], utc=True, format="ISO8601")
    if start is not None:
        data = data[data[TIMESTAMP_COLUMN] >= pd.Timestamp(start)].reset_index(drop=True)
    return data
