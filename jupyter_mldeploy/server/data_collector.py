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

Records go to v1's layout, ``<folder>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<designation>.csv``
(UTC dates), one CSV row per data row, each starting with the correlation id, the scoring timestamp and the
request id so inputs and predictions join. ``collect`` only formats the rows and puts them on a bounded
queue; a background thread appends them to the files every :data:`FLUSH_INTERVAL_S` (each append is one
``write`` under an exclusive file lock, so the workers of a service share a file safely). A normal exit and
SIGTERM (the server's graceful stop) flush everything queued; a SIGKILL loses at most the last interval. A
full queue drops rows rather than slow requests down, and counts them (:func:`dropped_rows`).

Standard library only (numpy and pandas values are recognised by their methods, not imported).
"""

from __future__ import annotations

import atexit
import csv
import io
import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
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
#: v1's designations.
DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
#: The columns every record starts with (v1's names), before the features.
META_COLUMNS = ("$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_request_id", "$aml_service_name",
                "$aml_model_name", "$aml_model_version")
#: Seconds between two writes of the queued records.
FLUSH_INTERVAL_S = 1.0
#: Batches the queue holds before rows are dropped (requests never wait for the disk).
QUEUE_BATCHES = 10_000

_logger = logging.getLogger("mldeploy.server.data_collector")


def collection_enabled() -> bool:
    """Return True when this service was deployed with ``collect_model_data=True``."""
    return os.environ.get(ENABLED_VARIABLE, "").lower() == "true" and bool(os.environ.get(FOLDER_VARIABLE))


def _deployed_version(model_name: str) -> str:
    """The highest version of ``model_name`` deployed with this service, or ``"default"`` (v1's default)."""
    try:
        versions = [int(v) for v in os.listdir(os.path.join(model_path.models_root(), model_name)) if v.isdigit()]
    except OSError:
        return "default"
    return str(max(versions)) if versions else "default"


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
    if feature_names and len(feature_names) == width:
        return list(feature_names), rows
    return ([f"feature_{i}" for i in range(width)] if width != 1 else ["value"]), rows


class _Writer:
    """The background writer: one per process, started by the first record."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, list[str], str]] = queue.Queue(maxsize=QUEUE_BATCHES)
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mldeploy-data-collector", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def put(self, path: str, header: list[str], text: str, rows: int) -> None:
        try:
            self.queue.put_nowait((path, header, text))
        except queue.Full:
            self.dropped += rows

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Append everything queued to its file (one locked write per file)."""
        with self._lock:
            pending: dict[str, tuple[list[str], list[str]]] = {}
            while True:
                try:
                    path, header, text = self.queue.get_nowait()
                except queue.Empty:
                    break
                pending.setdefault(path, (header, []))[1].append(text)
            for path, (header, texts) in pending.items():
                try:
                    _append(path, header, "".join(texts))
                except OSError as exc:
                    _logger.error("Model data collection could not write %s: %s", path, exc)

    def close(self) -> None:
        self._stop.set()
        self.flush()


def _append(path: str, header: list[str], text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size == 0:
            text = _csv_line(header) + text
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)  # releases the lock


def _csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _get_writer() -> _Writer:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = _Writer()
        return _writer


def flush() -> None:
    """Write every queued record now (the writer does it every :data:`FLUSH_INTERVAL_S` and at exit)."""
    if _writer is not None:
        _writer.flush()


def dropped_rows() -> int:
    """Rows dropped in this process because the queue was full."""
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

    def _file(self, now: datetime) -> str:
        return os.path.join(
            os.environ[FOLDER_VARIABLE], self.model_name, self.model_version, self.designation,
            f"{now:%Y}", f"{now:%m}", f"{now:%d}", f"{self.designation}.csv",
        )

    def collect(self, input_data: Any, user_correlation_id: str = "") -> dict[str, str]:
        """Record ``input_data`` (one row per data row), off the request path.

        Args:
            input_data: A list (of rows, records or values), a numpy array, a DataFrame or a scalar.
            user_correlation_id: Joins this record to others; default: the current request's id (so the
                inputs and predictions of one request join), else a new UUID.

        Returns:
            dict[str, str]: v1's correlation headers, ``$aml_dc_correlation_id`` and
            ``$aml_dc_scoring_timestamp``; returned when collection is off too.
        """
        now = datetime.now(timezone.utc)
        request = logs.request_id.get()
        request = request if request and request != logs.INIT_REQUEST_ID else ""
        correlation = user_correlation_id or request or str(uuid.uuid4())
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        headers = {"$aml_dc_correlation_id": correlation, "$aml_dc_scoring_timestamp": stamp}
        if not self.enabled:
            return headers
        features, rows = _rows(input_data, self.feature_names)
        meta = [correlation, stamp, request, self.webservice_name, self.model_name, self.model_version]
        text = "".join(_csv_line(meta + row) for row in rows)
        _get_writer().put(self._file(now), list(META_COLUMNS) + features, text, len(rows))
        return headers

    def add_correlations(self, input_data: Any, correlations: dict[str, str]) -> Any:
        """v1 compatibility: return ``input_data`` unchanged (correlations are written on every row)."""
        return input_data
