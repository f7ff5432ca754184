"""Worker logging: every line carries the request id it was written for.

* :data:`request_id` is a context variable set for ``init()`` (to :data:`INIT_REQUEST_ID`) and for each
  ``run()`` call; the run thread sets it itself, so it holds for code the script runs in that thread.
* ``sys.stdout``/``sys.stderr`` are replaced by :class:`RequestIdStream`, which prefixes each complete line
  the script prints with ``<request id> | `` (lines written outside a request or ``init()`` pass unchanged).
* Log records (the server's own, uvicorn's and the script's ``logging`` calls through the root logger) are
  formatted as azmlinfsrv formats them, ``%(asctime)s %(levelname).1s [%(process)d] %(name)s - ...``, with
  the request id before the message when there is one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

#: The id azmlinfsrv uses for lines written while ``init()`` runs.
INIT_REQUEST_ID = "00000000-0000-0000-0000-000000000000"

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("mldeploy_request_id", default=None)


class RequestIdStream:
    """A text stream wrapper that prefixes every complete line with the current request id.

    Partial lines are buffered per thread until their newline arrives, so two threads printing at once do
    not splice each other's lines.

    Args:
        raw: The real stream (the process's original stdout or stderr).
    """

    def __init__(self, raw: TextIO) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        """Write ``text``; complete lines go out immediately, prefixed."""
        if not text:
            return 0
        thread = threading.get_ident()
        with self._lock:
            pending = self._partial.pop(thread, "") + text
            if "\n" not in pending:
                self._partial[thread] = pending
                return len(text)
            *lines, rest = pending.split("\n")
            if rest:
                self._partial[thread] = rest
            rid = request_id.get()
            prefix = f"{rid} | " if rid else ""
            self._raw.write("".join(f"{prefix}{line}\n" for line in lines))
            self._raw.flush()
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each item of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Write out the calling thread's partial line (prefixed), then flush the real stream."""
        with self._lock:
            rest = self._partial.pop(threading.get_ident(), "")
            if rest:
                rid = request_id.get()
                self._raw.write(f"{rid} | {rest}" if rid else rest)
            self._raw.flush()

    def __getattr__(self, name: str) -> Any:
        # encoding, fileno(), isatty(), buffer... come from the real stream.
        return getattr(self._raw, name)


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        text = super().format(record)
        if rid:
            head, sep, tail = text.partition(f" {record.name} - ")
            if sep:
                return f"{head}{sep}{rid} | {tail}"
        return text


def setup_logging(level: str) -> tuple[logging.Logger, AccessLog]:
    """Route logging to the real stdout and wrap ``sys.stdout``/``sys.stderr`` with request-id prefixes.

    Args:
        level: A :mod:`logging` level name (``AZUREML_LOG_LEVEL``); unknown names fall back to INFO.

    Returns:
        tuple[logging.Logger, AccessLog]: The server's logger (``mldeploy.server``) and the access log.
    """
    raw_out, raw_err = sys.stdout, sys.stderr
    handler = logging.StreamHandler(raw_out)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    sys.stdout = RequestIdStream(raw_out)  # type: ignore[assignment]
    sys.stderr = RequestIdStream(raw_err)  # type: ignore[assignment]
    return logging.getLogger("mldeploy.server"), AccessLog(raw_out, root.isEnabledFor(logging.INFO))


class AccessLog:
    """Writes the per-request access line (``METHOD path status 1.234ms length``) cheaply.

    The ``logging`` machinery costs more than a small ``run()`` (it formats a timestamp, takes locks and
    flushes on every record), so access lines are formatted here, in the same layout as the other records
    (``<time> I [<pid>] mldeploy.access - <request id> | <line>``), appended to the real stdout, and
    flushed at most every 100 ms by the event loop (and whenever anything else flushes the stream).

    Args:
        stream: The real stdout (not the request-id wrapper).
        enabled: False when ``AZUREML_LOG_LEVEL`` is above INFO.
    """

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self._stream = stream
        self.enabled = enabled
        self._pid = os.getpid()
        self._second = -1
        self._stamp = ""
        self._flush_pending = False

    def write(self, rid: str, method: str, path: str, status: int, elapsed_ms: float, length: int) -> None:
        """Append one access line; schedule a flush on the running event loop."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        millis = int((now - second) * 1000)
        self._stream.write(
            f"{self._stamp},{millis:03d} I [{self._pid}] mldeploy.access - {rid} | "
            f"{method} {path} {status} {elapsed_ms:.3f}ms {length}\n"
        )
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(0.1, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self._stream.flush()
