"""Calling a service's ``/score``: one request with its latency, or a bounded load test.

Shared by ``Webservice.run`` and :func:`jupyter_mldeploy.actions.call_endpoint` (behind ``%test_endpoint``,
the panel's tester, ``mldeploy service run`` and the sidebar's score proxy), so they encode payloads, time
requests and report errors the same way.

Redirects are never followed: a ``3xx`` from a service is its answer (status and ``Location``), so a service
cannot make the caller (a kernel, or the Jupyter server behind the sidebar) send the body elsewhere.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from jupyter_mldeploy.errors import InvalidArgument, ScoringError

#: Seconds to wait for a TCP connection to a local service.
CONNECT_TIMEOUT_S = 5.0


def _json_default(value: Any) -> Any:
    """Encode numpy arrays/scalars and pandas objects (as lists, numbers, records)."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_payload(input_data: Any) -> bytes:
    """Turn ``run``'s input into the request body.

    Args:
        input_data: ``bytes`` (sent as is), ``str`` (UTF-8 encoded, sent as is, so a JSON string is not
            encoded twice), or any JSON-safe value; numpy arrays/scalars and pandas DataFrames are encoded as
            lists, numbers and records.

    Returns:
        bytes: The body.

    Raises:
        InvalidArgument: When the value cannot be JSON-encoded.
    """
    if isinstance(input_data, (bytes, bytearray)):
        return bytes(input_data)
    if isinstance(input_data, str):
        return input_data.encode("utf-8")
    try:
        return json.dumps(input_data, default=_json_default).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"input_data is not JSON-serializable ({exc}); pass a str, dict or list.") from exc


@dataclass(frozen=True)
class ScoringResponse:
    """One answer from ``/score``.

    Attributes:
        status_code: HTTP status.
        body: The JSON-decoded body, or the text when it is not JSON.
        text: The raw body as text.
        headers: Response headers (lower-case names).
        latency_ms: Wall time from sending the request to reading the whole body, in milliseconds.
        request_id: The ``x-request-id`` the server answered with (find it in the logs).
    """

    status_code: int
    body: Any
    text: str
    headers: dict[str, str]
    latency_ms: float
    request_id: str | None

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def location(self) -> str | None:
        """The ``Location`` of a redirect answer (never followed), else None."""
        return self.headers.get("location") if 300 <= self.status_code < 400 else None

    @property
    def message(self) -> str:
        """The server's error message (``{"message": ...}`` as azmlinfsrv answers), else the text."""
        if isinstance(self.body, dict) and isinstance(self.body.get("message"), str):
            return self.body["message"]
        return self.text

    def raise_for_status(self) -> None:
        """Raise :class:`ScoringError` with the server's message when the status is not 2xx."""
        if not self.ok:
            raise ScoringError(self.message, self.status_code, self.request_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{status, body, latency_ms, headers, request_id}``."""
        return {
            "status": self.status_code,
            "body": self.body,
            "latency_ms": round(self.latency_ms, 3),
            "headers": self.headers,
            "request_id": self.request_id,
            "location": self.location,
        }


def send_request(
    scoring_uri: str,
    input_data: Any,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    session: requests.Session | None = None,
) -> ScoringResponse:
    """POST ``input_data`` to ``scoring_uri`` and time the answer.

    Args:
        scoring_uri: ``http://127.0.0.1:<port>/score``.
        input_data: See :func:`encode_payload`.
        headers: Extra headers; ``Content-Type: application/json`` is sent unless given.
        timeout: Seconds to wait for the answer once connected.
        session: A ``requests.Session`` to reuse connections (load tests).

    Returns:
        ScoringResponse: whatever the status (a ``3xx`` is returned, not followed); call
        :meth:`ScoringResponse.raise_for_status` to raise.

    Raises:
        InvalidArgument: When ``input_data`` cannot be encoded.
        requests.RequestException: When the service does not answer (connection refused, timeout).
    """
    body = encode_payload(input_data)
    request_headers = {"Content-Type": "application/json", **(headers or {})}
    poster = session.post if session is not None else requests.post
    start = time.perf_counter()
    response = poster(scoring_uri, data=body, headers=request_headers, timeout=(CONNECT_TIMEOUT_S, timeout),
                      allow_redirects=False)
    text = response.text
    latency_ms = (time.perf_counter() - start) * 1000
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = text
    return ScoringResponse(
        status_code=response.status_code,
        body=parsed,
        text=text,
        headers={k.lower(): v for k, v in response.headers.items()},
        latency_ms=latency_ms,
        request_id=response.headers.get("x-request-id"),
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); NaN for an empty list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LatencyReport:
    """What a load test measured.

    Attributes:
        count: Requests sent.
        failures: Requests that got no answer or a non-2xx status.
        statuses: Count per HTTP status (``0`` for no answer).
        latencies_ms: Each answered request's latency in milliseconds, sorted.
        wall_seconds: Wall time of the whole test.
        errors: Up to 5 distinct error messages seen.
        last: The last response received, if any.
    """

    count: int
    failures: int
    statuses: Counter
    latencies_ms: list[float]
    wall_seconds: float
    errors: list[str] = field(default_factory=list)
    last: ScoringResponse | None = None

    @property
    def p50_ms(self) -> float:
        """Median latency (ms)."""
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        """99th-percentile latency (ms)."""
        return percentile(self.latencies_ms, 99)

    @property
    def requests_per_second(self) -> float:
        """Answered requests per second of wall time."""
        return len(self.latencies_ms) / self.wall_seconds if self.wall_seconds > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {
            "count": self.count,
            "failures": self.failures,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "wall_seconds": round(self.wall_seconds, 3),
            "errors": self.errors,
        }


def load_test(
    scoring_uri: str,
    input_data: Any,
    repeat: int,
    concurrency: int = 1,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> LatencyReport:
    """Send the same request ``repeat`` times from ``concurrency`` threads and measure latencies.

    Bounded in count (``repeat``) and, per request, in time (``timeout``); each thread keeps one
    connection (``requests.Session``), as a client library would.

    Args:
        scoring_uri: The service's scoring URI.
        input_data: See :func:`encode_payload`.
        repeat: Number of requests, >= 1.
        concurrency: Parallel clients, 1 <= concurrency <= repeat (capped to repeat).
        headers: Extra headers.
        timeout: Seconds per request.

    Returns:
        LatencyReport

    Raises:
        InvalidArgument: For ``repeat`` < 1 or ``concurrency`` < 1, or an unencodable payload.
    """
    if repeat < 1 or concurrency < 1:
        raise InvalidArgument(f"repeat ({repeat}) and concurrency ({concurrency}) must both be at least 1.")
    body = encode_payload(input_data)
    concurrency = min(concurrency, repeat)
    lock = threading.Lock()
    remaining = [repeat]
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: list[str] = []
    last: list[ScoringResponse] = []

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                try:
                    response = send_request(scoring_uri, body, headers, timeout, session)
                except requests.RequestException as exc:
                    with lock:
                        statuses[0] += 1
                        if len(errors) < 5 and str(exc) not in errors:
                            errors.append(str(exc))
                    continue
                with lock:
                    statuses[response.status_code] += 1
                    latencies.append(response.latency_ms)
                    last[:] = [response]
                    if not response.ok and len(errors) < 5 and response.message not in errors:
                        errors.append(response.message)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - start
    failures = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return LatencyReport(
        count=repeat,
        failures=failures,
        statuses=statuses,
        latencies_ms=sorted(latencies),
        wall_seconds=wall,
        errors=errors,
        last=last[0] if last else None,
    )
