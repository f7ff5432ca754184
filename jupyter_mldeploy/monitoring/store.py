"""Where collected model data lives in a workspace, and reading it back.

Layout (v1's): ``<workspace>/modeldata/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/``, written
by the scoring server's :mod:`~jupyter_mldeploy.server.data_collector`, holding ``<designation>.parquet/``
(a folder of Parquet parts, one per write) when the server had pyarrow, else ``<designation>.csv`` (and
``<designation>_2.csv``... for rows with other columns). A day may hold both (a service redeployed in an
environment with or without pyarrow); both are read.
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


def _is_data_file(path: Path, designation: str) -> bool:
    """One of the files the collector writes in a day folder (Parquet parts being written start with ``.``)."""
    name = path.name
    if path.parent.name == f"{designation}.parquet":
        return name.endswith(".parquet") and not name.startswith((".", "_")) and path.is_file()
    if name == f"{designation}.parquet":
        return path.is_file()
    return name == f"{designation}.csv" or (name.startswith(f"{designation}_") and name.endswith(".csv"))


def collected_files(workspace: Workspace, service: str, designation: str, since: Any = None) -> list[Path]:
    """Return the files (CSV files and Parquet parts) of one designation of a service, oldest day first.

    Args:
        workspace: The workspace.
        service: The service name.
        designation: One of v1's designations.
        since: Skip the day folders before this time's UTC day (as :func:`read_collected_data`).

    Raises:
        InvalidArgument: For an unknown designation or a bad ``since``.
    """
    if designation not in DESIGNATIONS:
        raise InvalidArgument(f"Unknown designation {designation!r}: use one of {', '.join(DESIGNATIONS)}.")
    start = _since(since)
    first_day = (f"{start:%Y}", f"{start:%m}", f"{start:%d}") if start is not None else None
    folder = model_data_folder(workspace, service)
    found = []
    for day in folder.glob(f"*/*/{designation}/*/*/*"):
        if first_day is not None and day.parts[-3:] < first_day:
            continue
        for path in (*day.glob(f"{designation}*"), *day.glob(f"{designation}.parquet/*")):
            if _is_data_file(path, designation):
                found.append(path)
    return sorted(found, key=lambda p: (p.relative_to(folder).parts[3:6], p.parts))


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
        pandas.DataFrame: One row per collected row, by scoring time: the ``$aml_*`` columns (correlation id,
        scoring timestamp as UTC ``datetime64``, request id, service, model, model version) then the
        features (the union of every file's columns). Empty (with no columns) when nothing was collected.

    Raises:
        InvalidArgument: For an unknown designation or a bad ``since``, or Parquet files without pyarrow.
    """
    import pandas as pd

    start = _since(since)
    frames = [_read_file(path) for path in collected_files(workspace, service, designation, since)]
    if not frames:
        return pd.DataFrame()
    data = pd.concat(frames, ignore_index=True)
    # Parts of several workers (and files of both formats) interleave: order rows by scoring time.
    data = data.sort_values(TIMESTAMP_COLUMN, kind="stable", ignore_index=True)
    if start is not None:
        data = data[data[TIMESTAMP_COLUMN] >= pd.Timestamp(start)].reset_index(drop=True)
    return data


def _read_file(path: Path) -> pandas.DataFrame:
    """One collected file as a DataFrame, the timestamp as UTC datetimes and the ids as text."""
    import pandas as pd

    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise InvalidArgument(
                f"{path} is Parquet (the service wrote it with pyarrow): install pyarrow to read it "
                "(pip install pyarrow)."
            ) from None
    else:
        frame = pd.read_csv(path, dtype={"$aml_model_version": str, "$aml_request_id": str},
                            keep_default_na=False, na_values=[""])
    frame[TIMESTAMP_COLUMN] = pd.to_datetime(frame[TIMESTAMP_COLUMN], utc=True, format="ISO8601")
    return frame
