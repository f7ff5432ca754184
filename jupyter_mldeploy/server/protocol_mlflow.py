"""MLflow's scoring protocol: ``POST /invocations``, ``GET /ping``, ``GET /health``, ``GET /version``.

As MLflow 2/3's pyfunc scoring server (``mlflow/pyfunc/scoring_server/__init__.py``): a JSON body holds
exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs`` (and optionally
``params``, accepted and not passed on: ``run()`` has no place for them), or the body is ``text/csv`` with a
header row; the answer is ``{"predictions": ...}``. Refusals are MLflow's ``{"error_code", "message"}``:
400 ``BAD_REQUEST`` for a body with zero or several format keys or a malformed frame, 415 for another
content type or a charset other than UTF-8.

The rows reach ``run()`` through :meth:`~jupyter_mldeploy.server.user_script.UserScript.invoke_run`:

* undecorated (or ``@rawhttp``) ``run(raw_data)`` gets ``{"data": rows}``, the v1 convention: rows are
  lists in column order for the three tabular forms (``dataframe_split``'s ``data``, the records' values,
  the CSV rows), ``instances``/``inputs`` as sent (from 1 kB, an array of floats in ``inputs``,
  ``instances`` or ``dataframe_split``'s ``data`` as the client wrote it:
  :mod:`~jupyter_mldeploy.server.passthrough`);
* an ``@input_schema`` ``run`` with one parameter gets the rows as that parameter (records, i.e. a
  DataFrame after the decorator, when it is a ``PandasParameterType``); with several parameters,
  ``inputs`` (or ``instances``) must be an object naming them.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.server import passthrough
from jupyter_mldeploy.server.encoding import dumps
from jupyter_mldeploy.server.run_parameters import RunParameterSchema
from jupyter_mldeploy.server.wire import (
    JSON,
    Prepare,
    Reply,
    RunCall,
    WireError,
    json_request_headers,
    json_value,
    script_response,
)

#: The JSON format keys (MLflow's ``SUPPORTED_FORMATS``).
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMAT_KEYS = frozenset(FORMATS)
PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})
_CONTENT_TYPES = ["text/csv", "application/json"]
# MLflow prints its set of formats; spelled here in a fixed order (a set's order changes with the process).
_REQUIRED = ("The input must be a JSON dictionary with exactly one of the input fields "
             f"{{{', '.join(repr(name) for name in FORMATS)}}}")
_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 404: "ENDPOINT_NOT_FOUND", 413: "BAD_REQUEST",
                415: "BAD_REQUEST"}


def error(status: int, message: str) -> WireError:
    """MLflow's error document: ``{"error_code": ..., "message": ...}``."""
    code = _ERROR_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    return WireError(status, orjson.dumps({"error_code": code, "message": message}))


class _Table:
    """The request's rows: ``rows`` as sent, ``columns`` when the format named them."""

    __slots__ = ("columns", "rows", "named")

    def __init__(self, rows: Any, columns: list[str] | None = None, named: dict[str, Any] | None = None) -> None:
        self.rows = rows
        self.columns = columns
        self.named = named

    def records(self) -> Any:
        if self.columns is None:
            return self.rows
        columns = self.columns
        return [dict(zip(columns, row, strict=False)) for row in self.rows]


def _scalar(text: str) -> Any:
    # pandas.read_csv's inference, for the cases a CSV of numbers needs: int, float, empty -> None, else text.
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _from_csv(body: bytes) -> _Table:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(400, f"Ensure that input is a valid UTF-8 encoded string. Error: '{exc!r}'") from None
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        raise error(400, "Failed to parse input as a CSV document: the body is empty; send a header row and rows.")
    header, data = lines[0], [row for row in lines[1:] if row]
    for number, row in enumerate(data, start=2):
        if len(row) != len(header):
            raise error(400, f"Failed to parse input as a CSV document: line {number} has {len(row)} fields, "
                             f"the header has {len(header)}.")
    return _Table([[_scalar(value) for value in row] for row in data], header)


def _from_split(value: Any) -> _Table:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise error(400, 'dataframe_split must be an object with a "data" list of rows (and optionally '
                         '"columns" and "index"), e.g. {"columns": ["a"], "data": [[1]]}.')
    columns = value.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise error(400, 'dataframe_split "columns" must be a list of column names.')
    return _Table(value["data"], [str(c) for c in columns] if columns is not None else None)


def _from_records(value: Any) -> _Table:
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise error(400, 'dataframe_records must be a list of objects, one per row, e.g. [{"a": 1}, {"a": 2}].')
    columns: dict[str, None] = {}
    for row in value:
        columns.update(dict.fromkeys(row))
    names = list(columns)
    return _Table([[row.get(name) for name in names] for row in value], names)


def _format_key(document: Any) -> str:
    """Return the one format key of a parsed JSON body.

    Raises:
        WireError: 400 when the body is not an object or has zero or several format keys.
    """
    if type(document) is not dict:
        raise error(400, f"{_REQUIRED}. Received a JSON {type(document).__name__}.")
    present = _FORMAT_KEYS.intersection(document)
    if len(present) != 1:
        raise error(400, f"{_REQUIRED}. Received dictionary with input fields: {list(document)}.")
    [key] = present
    return key


def _from_json(body: bytes) -> _Table:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise error(400, f"Failed to parse input from JSON. Ensure that input is a valid JSON formatted "
                         f"string. Error: '{exc}'") from None
    key = _format_key(document)
    value = document[key]
    if key == "dataframe_split":
        return _from_split(value)
    if key == "dataframe_records":
        return _from_records(value)
    if isinstance(value, dict):
        return _Table(value, named=value)
    if type(value) is list and value and type(value[0]) is dict and all(type(row) is dict for row in value):
        return _from_records(value)
    return _Table(value)


#: The keys whose array value may be forwarded: (quoted key, the format key that holds it).
_FORWARDED = ((b'"inputs"', "inputs"), (b'"instances"', "instances"), (b'"data"', "dataframe_split"))


def _forward(body: bytes) -> bytes | None:
    """Return a classic ``run()``'s body holding the client's own bytes of the rows, or None when the body
    is not of that form (the full path then answers it, refusals included)."""
    for key, format_key in _FORWARDED:
        span = passthrough.locate(body, key)
        if span is not None:
            return _forwarded_rows(body, span, format_key)
    return None


def _forwarded_rows(body: bytes, span: passthrough.Span, format_key: str) -> bytes | None:
    # Every field but the rows is parsed and checked as on the full path: one format key, and for
    # dataframe_split its "columns".
    try:
        document = orjson.loads(span.rest(body))
        if _format_key(document) != format_key:
            return None
        value = document[format_key]
        if format_key == "dataframe_split":
            _from_split(value)
            value = value["data"]
    except (orjson.JSONDecodeError, WireError):
        return None
    if value != [] or passthrough.float_layout(body, span) is None:
        return None
    return span.rows_body(body)


class MlflowProtocol:
    """The MLflow routes of one loaded script.

    Args:
        parameters: The decorated ``run``'s inputs (:func:`~jupyter_mldeploy.server.run_parameters.run_parameter_schemas`);
            empty for a classic ``run(raw_data)``.
        passthrough_min_bytes: For a classic ``run``, JSON bodies at least this large whose rows
            (``inputs``, ``instances`` or ``dataframe_split``'s ``data``) are a 1-d or 2-d array of floats
            are forwarded as the client wrote them (:mod:`~jupyter_mldeploy.server.passthrough`); None
            translates every body.
    """

    def __init__(self, parameters: list[RunParameterSchema],
                 passthrough_min_bytes: int | None = passthrough.MIN_BYTES) -> None:
        self.parameters = parameters
        self._forward_from = passthrough_min_bytes if passthrough_min_bytes is not None and not parameters else None

    def error(self, status: int, message: str) -> WireError:
        """See :func:`error`."""
        return error(status, message)

    def route(self, method: str, path: str) -> Reply | Prepare:
        """Answer the probes and ``/version``; return the preparation of an ``/invocations`` call.

        Raises:
            WireError: 405 for a method a route does not take.
        """
        if path == "/invocations":
            if method != "POST":
                raise error(405, f"{method} is not allowed on /invocations; POST the input.")
            return self._prepare
        if method not in ("GET", "HEAD"):
            raise error(405, f"{method} is not allowed on {path}; use GET.")
        if path == "/version":
            return Reply(200, __version__.encode())
        # MLflow answers its probes with a newline once the model is loaded; a worker serves only after init().
        return Reply(200, b"\n")

    def _prepare(self, body: bytes, content_type: str, raw_headers: list[tuple[bytes, bytes]]) -> RunCall:
        if content_type == "application/json":  # what MLflow's clients send: no media type to parse
            if self._forward_from is not None and len(body) >= self._forward_from:
                rows_body = _forward(body)
                if rows_body is not None:
                    return RunCall(rows_body, json_request_headers(raw_headers), _finish,
                                   lambda: self._translate(_from_json(body), raw_headers))
            return self._translate(_from_json(body), raw_headers)
        mime, *options = [part.strip() for part in content_type.split(";")]
        charset = dict(option.partition("=")[::2] for option in options).get("charset", "utf-8").lower()
        if charset != "utf-8":
            raise error(415, f"The scoring server only supports UTF-8; got charset={charset}.")
        if mime.lower() == "text/csv":
            table = _from_csv(body)
        elif mime.lower() == "application/json":
            table = _from_json(body)
        else:
            raise error(415, f"This predictor only supports the following content types: Types: {_CONTENT_TYPES}. "
                             f"Got '{content_type}'.")
        return self._translate(table, raw_headers)

    def _translate(self, table: _Table, raw_headers: list[tuple[bytes, bytes]]) -> RunCall:
        """The full path: ``run()``'s input encoded from the parsed rows."""
        return RunCall(dumps(self._arguments(table)), json_request_headers(raw_headers), _finish)

    def _arguments(self, table: _Table) -> dict[str, Any]:
        parameters = self.parameters
        if not parameters:
            return {"data": table.rows}
        by_name = {p.name: p for p in parameters}
        if table.named is not None and set(table.named) <= set(by_name):
            return {name: by_name[name].rows_to_argument(value) for name, value in table.named.items()}
        if len(parameters) == 1:
            only = parameters[0]
            if only.columns is not None and table.columns is not None:
                return {only.name: table.records()}  # the request's own column names
            return {only.name: only.rows_to_argument(table.rows)}
        names = ", ".join(by_name)
        example = ", ".join(f'"{name}": ...' for name in by_name)
        raise error(400, f"run() takes the inputs {names}; send them by name: {{\"inputs\": {{{example}}}}}.")


def _finish(value: Any) -> Reply:
    own = script_response(value)
    if own is not None:
        return own
    return Reply(200, dumps({"predictions": json_value(value)}), JSON)
