"""The answer to a ``run()`` call: an ``AMLResponse`` as the script built it, or the value as JSON.

JSON encoding uses orjson, including numpy and pandas values.

azmlinfsrv encodes results with ``json.dumps`` and answers 500 for numpy arrays or scalars; we encode
numpy arrays as (nested) lists, numpy scalars as numbers, a pandas ``DataFrame`` as records
(``[{column: value}, ...]``) and a ``Series`` as a list. NaN and infinities become ``null`` (orjson's
rule; ``json.dumps`` would emit the invalid tokens ``NaN``/``Infinity``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import orjson

from jupyter_mldeploy.server.shims import AMLResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # Only reached for what orjson cannot encode natively (non-contiguous or object arrays, pandas...).
    tolist = getattr(value, "tolist", None)
    module = type(value).__module__
    if module.startswith("pandas"):
        to_dict = getattr(value, "to_dict", None)
        if type(value).__name__ == "DataFrame" and to_dict is not None:
            return to_dict(orient="records")
        if tolist is not None:
            return tolist()
        isoformat = getattr(value, "isoformat", None)
        if isoformat is not None:
            return isoformat()
    if module == "numpy" or module.startswith("numpy."):
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return value.item()
        if tolist is not None:
            return tolist()
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if tolist is not None:
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON.

    Args:
        value: A JSON-compatible value, possibly holding numpy arrays/scalars or pandas objects.

    Returns:
        bytes: The JSON document.

    Raises:
        TypeError: When ``value`` holds something that has no JSON form.
    """
    return orjson.dumps(value, default=_default, option=_OPTIONS)


#: Headers of a script's own response that the server sets itself.
_SERVER_SET = ("content-length", "x-ms-run-function-failed")


@dataclass(slots=True)
class ScoringResult:
    """The HTTP answer made of what ``run()`` returned.

    Attributes:
        status: HTTP status.
        headers: ``(name, value)`` pairs as latin-1 bytes, without ``Content-Length`` (the server adds it).
        body: The body.
        run_function_failed: Value of the ``x-ms-run-function-failed`` header.
        is_response: ``run()`` returned a response object (logged as "run() output is HTTP Response").
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    run_function_failed: bool
    is_response: bool

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header (``""`` when absent)."""
        for name, value in self.headers:
            if name.lower() == b"content-type":
                return value.decode("latin-1")
        return ""


def encode_result(value: Any) -> ScoringResult:
    """Make the answer to a ``run()`` call, as azmlinfsrv 1.5 does.

    An :class:`~jupyter_mldeploy.server.shims.AMLResponse` (or any object with ``status_code``, ``headers``
    and ``get_data``, e.g. a Flask ``Response``) is sent as built, its ``x-ms-run-function-failed`` header
    forced to True for a 5xx status; ``Content-Length`` is the server's. Anything else is 200 with the value
    as JSON (numpy and pandas included, see :func:`dumps`).

    Args:
        value: What ``run()`` returned.

    Returns:
        ScoringResult: The answer.

    Raises:
        TypeError: The value has no JSON form (the server answers 500).
    """
    if isinstance(value, AMLResponse) or (hasattr(value, "status_code") and hasattr(value, "get_data")):
        status = int(value.status_code)
        raw = value.headers
        pairs = raw.items() if hasattr(raw, "items") else raw
        headers: list[tuple[bytes, bytes]] = []
        flagged = False
        for name, header_value in pairs:
            key = str(name)
            if key.lower() == "x-ms-run-function-failed":
                flagged = flagged or str(header_value).lower() == "true"
            elif key.lower() not in _SERVER_SET:
                headers.append((key.encode("latin-1"), str(header_value).encode("latin-1")))
        body = value.get_data()
        if isinstance(body, str):
            body = body.encode()
        return ScoringResult(status, headers, body, flagged or status >= 500, True)
    return ScoringResult(200, [(b"content-type", b"application/json")], dumps(value), False, False)
