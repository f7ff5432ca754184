"""``ModelDataCollector`` (v1 ``azureml.monitoring``): records a service's inputs and predictions.

v1 scripts write::

    from azureml.monitoring import ModelDataCollector
    inputs_dc = ModelDataCollector("iris", designation="inputs", feature_names=["a", "b", "c", "d"])
    inputs_dc.collect(data)

and run unchanged here: the scoring server provides ``azureml.monitoring`` (see :mod:`.shims`) and
``jupyter_mldeploy.monitoring`` exports the same class.

Collection is on when the service was deployed with ``collect_model_data=True``: the deploy layer then sets
:data:`ENABLED_VARIABLE` and :data:`FOLDER_VARIABLE` (the service's ``modeldata/<service>`` folder); otherwise
:meth:`ModelDataCollector.collect` only returns the correlation headers, so the same script runs anywhere.

Records go to v1's layout, ``<folder>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/`` (UTC dates), one
row per data row, each starting with the correlation id, the scoring timestamp and the request id so inputs
and predictions join:

* Parquet when ``pyarrow`` can be imported (and :data:`FORMAT_VARIABLE` does not say ``csv``): a Parquet file
  cannot be appended to, so ``<designation>.parquet`` is a folder (a Parquet dataset, as Spark and
  ``pyarrow.dataset`` write) holding one ``part-*.parquet`` file per write; ``pandas.read_parquet`` on the
  folder reads the parts as one table.
* CSV otherwise: rows are appended to ``<designation>.csv``, one ``write`` per flush under an exclusive
  ``flock`` so the workers of a service share the file safely. Rows whose columns differ from the file's
  header (``?method=predict_proba`` after ``predict``, records with other keys) go to ``<designation>_2.csv``
  (then ``_3``...) instead of being misaligned.

``collect`` is O(1) on the request path: it takes the time, the correlation id and a reference to the data
(numpy arrays and lists are copied shallowly; a DataFrame is kept as it is), appends them to an in-process
queue and returns. A background thread turns the queued records into rows and writes them every
:data:`FLUSH_INTERVAL_S`. A normal exit and SIGTERM (the server's graceful stop) flush everything queued; a
SIGKILL loses at most the last interval. A full queue drops records rather than slow requests down, and
counts their rows (:func:`dropped_rows`).

Standard library only on the request path (numpy and pandas values are recognised by their type name and
methods, not imported); the writer thread also uses numpy (a scoring-server requirement) and ``pyarrow`` when
present.
"""

from __future__ import annotations

import atexit
import csv
import functools
import io
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from jupyter_mldeploy.server import logs, model_path

try:  # POSIX: appends from several worker processes are serialised with a file lock
    import fcntl
except ImportError:  # pragma: no cover - Windows: one worker per service writes alone
    fcntl = None  # type: ignore[assignment]

#: ``"true"`` turns collection on (the name v1's scoring images read).
ENABLED_VARIABLE = "AML_MODEL_DC_STORAGE_ENABLED"
#: The folder records go to, ``<workspace>/modeldata/<service>`` as the server sees it.
FOLDER_VARIABLE = "MLDEPLOY_MODEL_DATA_DIR"
#: The service name written on each row.
SERVICE_VARIABLE = "MLDEPLOY_SERVICE_NAME"
#: ``parquet`` or ``csv``; unset: Parquet when pyarrow can be imported, else CSV.
FORMAT_VARIABLE = "MLDEPLOY_MODEL_DATA_FORMAT"
#: The file formats, as :data:`FORMAT_VARIABLE` names them.
FORMATS = ("parquet", "csv")
#: v1's designations.
DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
#: The columns every record starts with (v1's names), before the features.
META_COLUMNS = ("$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_request_id", "$aml_service_name",
                "$aml_model_name", "$aml_model_version")
#: Seconds between two writes of the queued records.
FLUSH_INTERVAL_S = 1.0
#: ``collect`` calls the queue holds before records are dropped (requests never wait for the disk).
QUEUE_RECORDS = 100_000
#: The name of one Parquet part inside ``<designation>.parquet/``: UTC time of the write, process, a token.
#: A Parquet part's name: time of its first row, the writing process, then a per-process sequence number so
#: a process's parts sort in the order they were written (rows of two parts can share a millisecond, and the
#: reader's stable sort by scoring time then keeps file order), and a random token against pid reuse.
PARQUET_PART = "part-{time}-{pid}-{seq:08d}-{token}.parquet"
_part_numbers = itertools.count()

_logger = logging.getLogger("mldeploy.server.data_collector")



def collection_enabled() -> bool:
    """Return True when this service was deployed with ``collect_model_data=True``."""
    return os.environ.get(ENABLED_VARIABLE, "").lower() == "true" and bool(os.environ.get(FOLDER_VARIABLE))


class _Timestamps:
    """Formats v1's scoring timestamps, reusing the text of the last millisecond and of the last second.

    One per thread of use (the requests' and the writer's), so neither thrashes the other's cache: the
    writer formats times up to a second old while requests format the current one.
    """

    def __init__(self) -> None:
        #: (UTC second, its ISO text up to the seconds).
        self._second: tuple[int, str] = (-1, "")
        #: (UNIX milliseconds, its full text).
        self._last: tuple[int, str] = (-1, "")

    def text(self, seconds: float) -> str:
        millis = _milliseconds(seconds)
        last, stamp = self._last
        if last == millis:
            return stamp
        whole, fraction = divmod(millis, 1000)
        second, text = self._second
        if second != whole:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self._second = (whole, text)  # one tuple assignment: other threads see the old pair or the new one
        stamp = f"{text}.{fraction:03d}Z"
        self._last = (millis, stamp)
        return stamp


_request_timestamps = _Timestamps()


def scoring_timestamp(seconds: float) -> str:
    """Return v1's ``$aml_dc_scoring_timestamp`` text of a UNIX time: ISO 8601, UTC, milliseconds, ``Z``.

    ``collect`` calls this on every request: the last text made is reused within its millisecond (a
    request's inputs and predictions), and the part up to the seconds is formatted once per second.

    Args:
        seconds: Seconds since the epoch (``time.time()``).

    Returns:
        str: e.g. ``2026-11-27T20:45:12.345Z``.
    """
    return _request_timestamps.text(seconds)


def _milliseconds(seconds: float) -> int:
    """Whole milliseconds since the epoch (truncated), as both the returned header and the files hold them."""
    return int(seconds * 1000)


def _deployed_version(model_name: str) -> str:
    """The highest version of ``model_name`` deployed with this service, or ``"default"`` (v1's default)."""
    try:
        versions = [int(v) for v in os.listdir(os.path.join(model_path.models_root(), model_name)) if v.isdigit()]
    except OSError:
        return "default"
    return str(max(versions)) if versions else "default"


def _feature_columns(width: int, feature_names: list[str] | None) -> list[str]:
    """Names of ``width`` unnamed columns: ``feature_names`` when they fit, else ``feature_0...`` (``value``)."""
    if feature_names and len(feature_names) == width:
        return list(feature_names)
    return [f"feature_{i}" for i in range(width)] if width != 1 else ["value"]


def _rows(data: Any, feature_names: list[str] | None) -> tuple[list[str], list[list[Any]]]:
    """Return ``(feature columns, rows)`` of lists, numpy arrays, DataFrames, records or scalars."""
    if hasattr(data, "columns") and hasattr(data, "itertuples"):  # a pandas DataFrame
        return [str(c) for c in data.columns], [list(r) for r in data.itertuples(index=False, name=None)]
    if hasattr(data, "tolist"):  # numpy arrays and scalars, pandas Series
        data = data.tolist()
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        data = [data]
    if data and all(isinstance(r, dict) for r in data):
        columns = list(dict.fromkeys(k for r in data for k in r))
        return [str(c) for c in columns], [[r.get(c) for c in columns] for r in data]
    rows = [list(r) if isinstance(r, (list, tuple)) else [r] for r in data]
    width = max((len(r) for r in rows), default=0)
    if any(len(r) != width for r in rows):  # ragged rows: the missing trailing values are empty
        rows = [r + [None] * (width - len(r)) for r in rows]
    return _feature_columns(width, feature_names), rows


def _snapshot(data: Any) -> Any:
    """What ``collect`` keeps of ``data``: a copy of an array or list (cheap), anything else as it is."""
    if isinstance(data, list):
        return list(data)
    if type(data).__name__ == "ndarray":
        return data.copy()
    return data


def _row_count(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return 1


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: a cheap key for the writer's grouping
class _Target:
    """Where one collector's records go and what every row of them says (made once per collector).

    Attributes:
        folder: ``<folder>/<model>/<version>/<designation>``.
        designation: The designation (the file name).
        meta: The service, model and version columns.
        feature_names: The collector's ``feature_names``.
    """

    folder: str
    designation: str
    meta: tuple[str, str, str]
    feature_names: tuple[str, ...] | None


#: One ``collect`` call as queued: (target, data, correlation id, scoring time in seconds, request id or "").
#: A plain tuple: the cheapest object to make on the request path.
_Record = tuple[_Target, Any, str, float, str]


@dataclass
class _Batch:
    """The rows of one file (folder, day, meta and columns) gathered from queued records.

    Attributes:
        day_folder: ``<collector folder>/<yyyy>/<mm>/<dd>``.
        designation: The file name.
        meta: The service, model and version columns (the same on every row).
        features: The feature columns.
        correlations: Per record, its correlation id.
        seconds: Per record, its scoring time.
        requests: Per record, its request id.
        counts: Per record, its number of rows.
        arrays: The records' data as 2-D numeric arrays (stacked when written), or None for rows.
        rows: The records' rows as lists (when ``arrays`` is None).
    """

    day_folder: str
    designation: str
    meta: tuple[str, str, str]
    features: list[str]
    correlations: list[str]
    seconds: list[float]
    requests: list[str]
    counts: list[int]
    arrays: list[Any] | None
    rows: list[list[Any]]

    @property
    def columns(self) -> list[str]:
        return list(META_COLUMNS) + self.features

    def per_row(self, values: list[Any]) -> list[Any]:
        """Repeat each record's value once per row of the record."""
        if all(n == 1 for n in self.counts):
            return values
        return [v for v, n in zip(values, self.counts, strict=True) for _ in range(n)]

    def stacked(self) -> Any:
        """The array records as one 2-D array (rows in record order; a 1-D array's items are rows)."""
        import numpy as np

        stacked = np.concatenate(self.arrays) if len(self.arrays) > 1 else self.arrays[0]
        return stacked.reshape(-1, 1) if stacked.ndim == 1 else stacked


def _batches(records: list[_Record]) -> tuple[list[_Batch], int]:
    """Group records by target file; return the batches and the rows of records that could not be read.

    The loop runs once per ``collect`` call, in the writer thread but holding the GIL the requests need:
    a numeric array (the common case) costs a few attribute reads and appends; its rows are stacked per
    batch by numpy.
    """
    import numpy as np

    batches: dict[tuple[Any, ...], _Batch] = {}
    unreadable = 0
    for target, data, correlation, seconds, request in records:
        if type(data) is np.ndarray and 0 < data.ndim <= 2 and data.dtype.kind in "biuf":
            rows: list[list[Any]] | None = None
            count = data.shape[0]
            # dtype.char, a str, hashes faster than the dtype; the width tells 1-D (0) from 2-D arrays
            width = data.shape[1] if data.ndim == 2 else 0
            key: tuple[Any, ...] = (target, int(seconds // 86400), data.dtype.char, width)
        else:
            try:
                features, rows = _rows(data, list(target.feature_names or ()) or None)
            except Exception as exc:  # a value collect() cannot make rows of must not stop the writer
                _logger.error("Model data collection skipped a %s record: %s", target.designation, exc)
                unreadable += _row_count(data)
                continue
            count = len(rows)
            key = (target, int(seconds // 86400), tuple(features))
        if not count:
            continue
        batch = batches.get(key)
        if batch is None:
            if rows is None:
                features = _feature_columns(data.shape[1] if data.ndim == 2 else 1,
                                            list(target.feature_names or ()) or None)
            y, m, d = time.gmtime(seconds)[:3]
            batch = batches[key] = _Batch(
                os.path.join(target.folder, f"{y:04d}", f"{m:02d}", f"{d:02d}"), target.designation, target.meta,
                features, [], [], [], [], [] if rows is None else None, [],
            )
        batch.correlations.append(correlation)
        batch.seconds.append(seconds)
        batch.requests.append(request)
        batch.counts.append(count)
        if rows is None:
            batch.arrays.append(data)
        else:
            batch.rows.extend(rows)
    return list(batches.values()), unreadable


def _arrow_column(pa: Any, values: list[Any]) -> Any:
    """A column of mixed or unusual values becomes text rather than failing the whole write."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _write_parquet(batch: _Batch) -> None:
    """Write one batch as a new part of ``<day>/<designation>.parquet/`` (renamed into place when complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sum(batch.counts)
    if batch.arrays is not None:
        stacked = batch.stacked()
        features = [pa.array(stacked[:, i]) for i in range(stacked.shape[1])]
    else:
        features = [_arrow_column(pa, list(values)) for values in zip(*batch.rows, strict=True)]
    columns = [
        pa.array(batch.per_row(batch.correlations), pa.string()),
        pa.array(batch.per_row([_milliseconds(s) for s in batch.seconds]), pa.timestamp("ms", tz="UTC")),
        pa.array(batch.per_row([r or None for r in batch.requests]), pa.string()),
        *(pa.array([value] * rows, pa.string()) for value in batch.meta),
        *features,
    ]
    table = pa.Table.from_arrays(columns, names=batch.columns)
    folder = os.path.join(batch.day_folder, f"{batch.designation}.parquet")
    os.makedirs(folder, exist_ok=True)
    name = PARQUET_PART.format(time=time.strftime("%H%M%S", time.gmtime(batch.seconds[0])), pid=os.getpid(),
                               seq=next(_part_numbers), token=uuid.uuid4().hex[:8])
    # Readers (pyarrow.dataset, pandas, read_collected_data) skip names starting with ".": a part is seen
    # only once it is complete.
    partial = os.path.join(folder, f".{name}.tmp")
    # Dictionary encoding pays for the repeated service, model and version; not for measurements.
    pq.write_table(table, partial, use_dictionary=list(META_COLUMNS[3:]))
    os.replace(partial, os.path.join(folder, name))


def _csv_field(text: str) -> str:
    """``text`` as one CSV field, quoted as ``csv.writer`` quotes (only when it holds a delimiter or quote)."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_text(batch: _Batch, header: bool) -> str:
    """The batch's rows as CSV lines (with the header line first when ``header``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(batch.columns)
    meta = ",".join(_csv_field(v) for v in batch.meta)
    stamps = _Timestamps()
    prefixes = batch.per_row([
        f"{_csv_field(correlation)},{stamps.text(seconds)},{_csv_field(request)},{meta},"
        for correlation, seconds, request in zip(batch.correlations, batch.seconds, batch.requests, strict=True)
    ])
    if batch.arrays is not None:
        # Numbers need no quoting, and repr() is what csv.writer writes for them: one join per row.
        buffer.writelines(f"{prefix}{','.join(map(repr, row))}\n"
                          for prefix, row in zip(prefixes, batch.stacked().tolist(), strict=True))
    else:
        for prefix, row in zip(prefixes, batch.rows, strict=True):
            buffer.write(prefix)
            writer.writerow(row)
    return buffer.getvalue()


def _first_line(fd: int) -> list[str]:
    """The CSV header of an open, non-empty file."""
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        chunks.append(chunk)
        offset += len(chunk)
        if not chunk or b"\n" in chunk:
            break
    line = b"".join(chunks).split(b"\n", 1)[0].decode("utf-8")
    return next(csv.reader([line]), [])


class _CsvFiles:
    """Appends batches to ``<designation>.csv`` files, one per column set (headers cached per path)."""

    def __init__(self) -> None:
        self._headers: dict[str, list[str]] = {}

    def append(self, batch: _Batch) -> None:
        os.makedirs(batch.day_folder, exist_ok=True)
        columns = batch.columns
        number = 1
        while True:
            suffix = "" if number == 1 else f"_{number}"
            path = os.path.join(batch.day_folder, f"{batch.designation}{suffix}.csv")
            number += 1
            known = self._headers.get(path)
            if known is not None and known != columns:
                continue
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                empty = os.fstat(fd).st_size == 0
                header = columns if empty else _first_line(fd)
                self._headers[path] = header
                if header != columns:
                    continue
                os.write(fd, _csv_text(batch, header=empty).encode("utf-8"))
                return
            finally:
                os.close(fd)  # releases the lock


def file_format() -> str:
    """The format records are written in now: :data:`FORMAT_VARIABLE`, else Parquet when pyarrow imports."""
    return _file_format(os.environ.get(FORMAT_VARIABLE, ""))


@functools.lru_cache(maxsize=8)
def _file_format(variable: str) -> str:
    wanted = variable.strip().lower()
    if wanted and wanted not in FORMATS:
        _logger.error("%s=%r is not one of %s; writing the default format.", FORMAT_VARIABLE, wanted,
                      ", ".join(FORMATS))
        wanted = ""
    if wanted == "csv":
        return "csv"
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        if wanted == "parquet":
            _logger.error("%s=parquet but pyarrow is not installed in the scoring environment: writing CSV "
                          "(add pyarrow to the environment's packages).", FORMAT_VARIABLE)
        return "csv"
    return "parquet"


class _Writer:
    """The background writer: one per process, started by the first record."""

    def __init__(self) -> None:
        # A deque's append and popleft are atomic: collect() takes no lock.
        self.records: deque[_Record] = deque()
        self.dropped = 0
        self._csv = _CsvFiles()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mldeploy-data-collector", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def put(self, record: _Record) -> None:
        if len(self.records) >= QUEUE_RECORDS:
            self.dropped += _row_count(record[1])
            return
        self.records.append(record)

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Write everything queued (one Parquet part, or one locked CSV append, per file)."""
        with self._lock:
            records: list[_Record] = []
            while True:
                try:
                    records.append(self.records.popleft())
                except IndexError:
                    break
            if not records:
                return
            batches, unreadable = _batches(records)
            self.dropped += unreadable
            parquet = file_format() == "parquet"
            for batch in batches:
                try:
                    if parquet:
                        _write_parquet(batch)
                    else:
                        self._csv.append(batch)
                except Exception as exc:  # a failed write must not stop the writer thread
                    self.dropped += sum(batch.counts)
                    _logger.error("Model data collection could not write %d rows to %s: %s", sum(batch.counts),
                                  batch.day_folder, exc)

    def close(self) -> None:
        self._stop.set()
        self.flush()


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _get_writer() -> _Writer:
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = _Writer()
    return _writer


def flush() -> None:
    """Write every queued record now (the writer does it every :data:`FLUSH_INTERVAL_S` and at exit)."""
    if _writer is not None:
        _writer.flush()


def dropped_rows() -> int:
    """Rows dropped in this process: the queue was full, the data could not be made rows of, or a write failed."""
    return _writer.dropped if _writer is not None else 0


class ModelDataCollector:
    """Collects a model's data in a deployed service (v1 ``azureml.monitoring.ModelDataCollector``).

    Args:
        model_name: The model the data belongs to (a folder of the layout).
        designation: ``"inputs"``, ``"predictions"``, ``"labels"``, ``"signals"`` or ``"general"``.
        feature_names: Column names for list or array rows (DataFrames and records name their own).
        model_version: The version folder; default: the highest deployed version of ``model_name``.
        workspace: v1's ``"subscription/resource group/workspace"`` string; accepted, not used.
        webservice_name: Written on each row; default: the deployed service's name.

    Raises:
        ValueError: For an unknown designation or an empty model name.
    """

    def __init__(
        self,
        model_name: str,
        designation: str = "default",
        feature_names: list[str] | None = None,
        model_version: str | int | None = None,
        workspace: str | None = None,
        webservice_name: str | None = None,
        **_v1_options: Any,
    ) -> None:
        if not model_name:
            raise ValueError("ModelDataCollector needs the model name, e.g. ModelDataCollector('iris', 'inputs').")
        if designation == "default":
            designation = "general"
        if designation not in DESIGNATIONS:
            raise ValueError(f"Unknown designation {designation!r}: use one of {', '.join(DESIGNATIONS)}.")
        self.model_name = model_name
        self.designation = designation
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.model_version = str(model_version) if model_version is not None else _deployed_version(model_name)
        self.webservice_name = webservice_name or os.environ.get(SERVICE_VARIABLE, "default")
        self.enabled = collection_enabled()
        self._target = _Target(
            os.path.join(os.environ[FOLDER_VARIABLE], model_name, self.model_version, designation)
            if self.enabled else "",
            designation, (self.webservice_name, self.model_name, self.model_version),
            tuple(self.feature_names) if self.feature_names is not None else None,
        )

    def collect(self, input_data: Any, user_correlation_id: str = "") -> dict[str, str]:
        """Record ``input_data`` (one row per data row): queued here, written by a background thread.

        A numpy array or a list is copied (shallowly) before this returns; a DataFrame or other object is
        read when the writer runs (within :data:`FLUSH_INTERVAL_S`), so do not change it in place afterwards.

        Args:
            input_data: A list (of rows, records or values), a numpy array, a DataFrame or a scalar.
            user_correlation_id: Joins this record to others; default: the current request's id (so the
                inputs and predictions of one request join), else a new UUID.

        Returns:
            dict[str, str]: v1's correlation headers, ``$aml_dc_correlation_id`` and
            ``$aml_dc_scoring_timestamp``; returned when collection is off too.
        """
        seconds = time.time()
        request = logs.request_id.get() or ""
        if request == logs.INIT_REQUEST_ID:
            request = ""
        correlation = user_correlation_id or request or str(uuid.uuid4())
        if self.enabled:
            _get_writer().put((self._target, _snapshot(input_data), correlation, seconds, request))
        return {"$aml_dc_correlation_id": correlation, "$aml_dc_scoring_timestamp": scoring_timestamp(seconds)}

    def add_correlations(self, input_data: Any, correlations: dict[str, str]) -> Any:
        """v1 compatibility: return ``input_data`` unchanged (correlations are written on every row)."""
        return input_data
