"""The HTTP connection of a worker: uvicorn's httptools protocol, kept open on half-close and guarded.

Three behaviours uvicorn's ``HttpToolsProtocol`` lacks, added by :class:`GuardedHttpProtocol`:

* **Half-close.** A client may send its request and then shut down its sending side (``shutdown(SHUT_WR)``,
  as ``curl --no-keepalive`` style tools and some proxies do) while it waits for the answer. uvicorn
  closes the whole connection on that EOF, so a request whose ``run()`` is still running on the run thread
  lost its answer. Here the connection stays writable until every request read before the EOF has been
  answered, then closes (gunicorn behind azmlinfsrv answers them too). A request still incomplete at
  EOF can never complete and closes the connection at once, as before.
* **Request read timeout** (``SCORING_HEADER_TIMEOUT_MS``): a request's headers must arrive within this time
  of its first byte (of the connection's opening, for the first request), and its body may not pause for
  longer; else the client gets 408 with ``{"message": ...}`` and the connection is closed. A connection
  that sends nothing is closed silently after the same time. Idle keep-alive connections between requests
  stay under uvicorn's own keep-alive timeout (5 s). Without this, clients that never finish a request
  hold their connections, and the worker's memory, for as long as they like.
* **Header size limit** (``SCORING_MAX_HEADER_BYTES``): request line plus headers larger than this answer
  431 with ``{"message": ...}`` and close, without buffering more of them.

The timers are armed only when a request stays incomplete after the bytes at hand are parsed, so a request
that arrives whole (the usual case) costs no timer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jupyter_mldeploy.server.config import DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_MAX_HEADER_BYTES


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"message": message}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with half-close support, a request read timeout and a header size limit.

    Use :func:`guarded_protocol` to get a subclass with the limits set.

    Attributes:
        header_timeout_s: Seconds allowed for a request's headers, and for any pause inside its body.
        max_header_bytes: Largest request line plus headers, in bytes.
    """

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_MS / 1000
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: A request has begun (first byte parsed) and is not complete yet.
        self._reading = False
        self._headers_done = False
        #: Bytes received for the current request's headers so far (an upper bound until they complete).
        self._header_bytes = 0
        self._begun_at = 0.0
        self._read_timer: asyncio.TimerHandle | None = None
        #: The client half-closed; close once what it sent before is answered.
        self._eof = False

    # Timers ----------------------------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_at(when, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if not self._reading:
            self.transport.close()  # nothing was sent: no request to answer
            return
        self.logger.warning("Closing a connection whose request did not arrive within %g ms "
                            "(SCORING_HEADER_TIMEOUT_MS)", self.header_timeout_s * 1000)
        self._refuse(408, "Request Timeout", (
            f"The request did not arrive in time: its headers must arrive within {self.header_timeout_s * 1000:g} "
            "ms of its first byte and its body may not pause longer (SCORING_HEADER_TIMEOUT_MS); send the whole "
            "request at once."
        ))

    def _refuse(self, status: int, reason: str, message: str) -> None:
        # Answer only when no response of this connection is under way (else the bytes would interleave).
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            self.transport.write(_raw_response(status, reason, message))
        self.transport.close()

    # Protocol interface ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection, and the clock for its first request."""
        super().connection_made(transport)
        self._arm(self.loop.time() + self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock; uvicorn then tells a running request that its client is gone."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse the bytes; then check the header size and arm the read timer if a request is incomplete."""
        if not self._headers_done:
            self._header_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing() or not self._reading:
            return
        if not self._headers_done:
            # Every byte of this request so far belongs to its headers: they are not complete yet.
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large", self._too_large())
            elif self._read_timer is None:
                self._arm(self._begun_at + self.header_timeout_s)
        else:
            self._arm(self.loop.time() + self.header_timeout_s)  # the body is flowing: restart its clock

    def eof_received(self) -> bool | None:
        """Keep the connection writable while requests read before the client's half-close are answered."""
        answering = self.cycle is not None and not self.cycle.response_complete and not self._reading
        if answering or self.pipeline:
            self._eof = True
            return True
        return None  # nothing to answer, or a request that can never complete: close

    def _too_large(self) -> str:
        return (f"Request headers are larger than {self.max_header_bytes} bytes (SCORING_MAX_HEADER_BYTES); "
                "send smaller headers.")

    # Parser callbacks ------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A request starts: note when (its headers' deadline counts from here)."""
        super().on_message_begin()
        self._reading = True
        self._headers_done = False
        self._begun_at = self.loop.time()

    def on_headers_complete(self) -> None:
        """Refuse over-large headers with 431; otherwise start the request as uvicorn does."""
        self._headers_done = True
        if self._read_timer is not None:
            self._disarm()
        # The bytes counted since the request began bound its headers' size from above, so they are summed
        # exactly only past the limit (or when nothing was counted: a request pipelined behind another).
        received, self._header_bytes = self._header_bytes, 0
        if 0 < received <= self.max_header_bytes or (
            len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) <= self.max_header_bytes
        ):
            super().on_headers_complete()
            return
        # Answer through the normal cycle (so the body still parses and pipelining stays in order).
        app, self.app = self.app, _HeaderTooLargeApp(self._too_large())
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        """The request is whole: stop its clock."""
        super().on_message_complete()
        self._reading = False
        self._headers_done = False
        if self._read_timer is not None:
            self._disarm()

    def on_response_complete(self) -> None:
        """After an answer: go on as uvicorn does, and close once everything sent before a half-close is answered."""
        super().on_response_complete()
        if self._eof and not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()


class _HeaderTooLargeApp:
    """An ASGI app answering 431 and closing the connection."""

    def __init__(self, message: str) -> None:
        self.body = json.dumps({"message": message}).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 431, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": self.body})


def guarded_protocol(header_timeout_ms: float, max_header_bytes: int) -> type[GuardedHttpProtocol]:
    """Return a :class:`GuardedHttpProtocol` subclass with these limits (uvicorn's ``Config(http=...)``).

    Args:
        header_timeout_ms: ``SCORING_HEADER_TIMEOUT_MS``.
        max_header_bytes: ``SCORING_MAX_HEADER_BYTES``.

    Returns:
        type[GuardedHttpProtocol]: The protocol class.
    """
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {
        "header_timeout_s": header_timeout_ms / 1000, "max_header_bytes": int(max_header_bytes),
    })
