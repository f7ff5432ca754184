"""Adaptive request batching and request-queue limits for one worker (both opt-in).

When :class:`~jupyter_mldeploy.server.config.ThroughputSettings` turns either on, every ``/score`` request
of the worker goes through one :class:`Dispatcher` instead of straight to the
:class:`~jupyter_mldeploy.server.runner.Runner`. The dispatcher keeps azmlinfsrv's one-``run()``-at-a-time
rule: it starts the next call only when the previous one returned.

**Batching** (``MLDEPLOY_BATCH_MAX_SIZE``): a request is *batchable* when its body is a JSON object with one
key holding a non-empty list of rows: ``{"data": [...]}`` for a classic ``run(raw_data)``, or the one
input parameter of an inference-schema decorated ``run`` (numpy / pandas ``data``); ``@rawhttp`` scripts and
a ``run`` taking ``request_headers`` are never batched. Consecutive batchable requests are merged into one
body (``{"data": rows of all}``) and ``run()`` is called once, through
:meth:`~jupyter_mldeploy.server.user_script.UserScript.invoke_run` as for any request; the result (a list,
tuple, numpy array or pandas object) is split back by row counts and every request is answered with its
own rows. Turning batching on is the user's promise that ``run()`` is row-wise; the dispatcher checks it on
every batch:

* the result's length differs from the number of rows (a summary, a dict, a scalar): each request of the
  batch is re-run alone and answered correctly, a warning is logged once, and batching stays off for the
  worker (every further batch would cost a second run);
* ``run()`` raised (one bad row): each request is re-run alone, so only the bad one gets its 500;
* the batch timed out (``SCORING_TIMEOUT_MS``): every request of it gets the timeout's 500.

*Adaptive*: an idle worker starts a request at once unless more requests are expected (requests being read
by the app, or as many as the last batch held); it then waits for them at most
``MLDEPLOY_BATCH_MAX_LATENCY_MS`` after the first one arrived, or until ``MLDEPLOY_BATCH_MAX_SIZE`` rows
are there. A lone client therefore never waits, and under load a batch forms while the previous one runs.
A batch never exceeds the size in rows; a single request larger than it runs alone.

**Queue limits**: a request not started within ``MLDEPLOY_MAX_QUEUE_WAIT_MS`` (v1's
``max_request_wait_time`` / ``maxQueueWaitMs``), or arriving when the worker already holds
``MLDEPLOY_MAX_CONCURRENT_REQUESTS`` requests (v1's ``replica_max_concurrent_requests``; only without a
wait limit: with one, such a request waits as it would behind v1's front end), is answered 503
``{"message": ...}`` naming the limit, instead of piling up.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from jupyter_mldeploy.server.config import (
    ENV_BATCH_MAX_SIZE,
    ENV_MAX_CONCURRENT_REQUESTS,
    ENV_MAX_QUEUE_WAIT_MS,
    ThroughputSettings,
)
from jupyter_mldeploy.server.runner import Runner, RunOutcome
from jupyter_mldeploy.server.user_script import OBJECT, STRING, ClientError, UserScript

logger = logging.getLogger("mldeploy.server")

#: The key holding the rows of a classic ``run(raw_data)`` body (``{"data": [...]}``, as every v1 sample).
CLASSIC_ROWS_KEY = "data"


@dataclass(frozen=True)
class Dispatched:
    """How one request was served.

    Attributes:
        outcome: Its ``run()`` outcome (its own rows when it rode in a batch).
        batch_rows: Rows of the ``run()`` call that answered it (``x-ms-batch-size``), or None when the
            request is not batchable or batching is off.
    """

    outcome: RunOutcome
    batch_rows: int | None


class _Item:
    """One queued request."""

    __slots__ = ("call", "kwargs", "rid", "rows", "key", "arrival", "future", "expiry")

    def __init__(self, call: Callable[..., Any], kwargs: dict[str, Any], rid: str, rows: list[Any] | None, key: str,
                 future: asyncio.Future[Dispatched]) -> None:
        self.call, self.kwargs, self.rid, self.rows, self.key, self.future = call, kwargs, rid, rows, key, future
        self.arrival = time.perf_counter()
        self.expiry: asyncio.TimerHandle | None = None


def split_rows(value: Any, counts: Sequence[int]) -> list[Any] | None:
    """Split what a batched ``run()`` returned into one part per request.

    Args:
        value: The result: a list, tuple, numpy array (rows along axis 0) or pandas object.
        counts: Rows of each request, in order.

    Returns:
        list | None: One slice per request, or None when ``value`` does not have one element per row
        (a dict, a string, a scalar, a response object, or a length other than ``sum(counts)``).
    """
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    if hasattr(value, "iloc"):
        rows, take = len(value), value.iloc
    elif isinstance(value, (list, tuple)):
        rows, take = len(value), value
    elif getattr(value, "ndim", 0) >= 1 and hasattr(value, "shape"):
        rows, take = value.shape[0], value
    else:
        return None
    if rows != sum(counts):
        return None
    parts, start = [], 0
    for count in counts:
        parts.append(take[start:start + count])
        start += count
    return parts


class Dispatcher:
    """Queues a worker's ``/score`` calls, merges batchable ones, and enforces the queue limits.

    Args:
        script: The loaded script.
        runner: Where ``run()`` is called (run thread or inline, with ``SCORING_TIMEOUT_MS``).
        settings: Batching and queue limits.
        arriving: Number of requests the app is reading that have not reached the dispatcher yet.
    """

    def __init__(self, script: UserScript, runner: Runner, settings: ThroughputSettings,
                 arriving: Callable[[], int]) -> None:
        self.script = script
        self.runner = runner
        self.settings = settings
        self._arriving = arriving
        self._batching = settings.batch_max_size is not None and not script.wants_headers and script.mode in (
            STRING, OBJECT) and (script.mode == STRING or len(script.parameters) == 1)
        self._max_rows = settings.batch_max_size or 1
        self._latency_s = settings.batch_max_latency_ms / 1000
        self._pending: collections.deque[_Item] = collections.deque()
        self._busy = False
        self._running_count = 0
        #: Requests in the last call: under steady load that many are expected again.
        self._last_count = 1
        self._company_timer: asyncio.TimerHandle | None = None

    @property
    def batching(self) -> bool:
        """Whether requests are merged (False when off, for this kind of script, or after a non-row-wise run)."""
        return self._batching

    def held(self) -> int:
        """Requests queued or running in this worker."""
        return len(self._pending) + self._running_count

    async def submit(self, kwargs: dict[str, Any], rid: str, call: Callable[..., Any] | None = None) -> Dispatched:
        """Queue one request's ``invoke_run`` arguments and wait for its outcome.

        Args:
            kwargs: The keyword arguments of :meth:`UserScript.invoke_run` (or of ``call``).
            rid: The request id (log prefix).
            call: What runs the request instead of ``invoke_run`` (another wire protocol's translation
                around it); such a request is never merged.

        Returns:
            Dispatched: Its outcome and the batch it rode in.

        Raises:
            ClientError: 503 when a queue limit refused it.
        """
        limit = self.settings.max_concurrent_requests
        # With a wait limit too, a request over the concurrency limit waits (at most that long), as behind v1's
        # front end; without one, it is refused at once.
        if limit is not None and self.settings.max_queue_wait_ms is None and self.held() >= limit:
            raise ClientError(
                503,
                f"The worker already holds {limit} requests, its limit (replica_max_concurrent_requests / "
                f"{ENV_MAX_CONCURRENT_REQUESTS} = {limit}); retry later or deploy more workers.",
            )
        loop = asyncio.get_running_loop()
        rows, key = self._rows(kwargs) if call is None else (None, "")
        item = _Item(call or self.script.invoke_run, kwargs, rid, rows, key, loop.create_future())
        wait_ms = self.settings.max_queue_wait_ms
        if wait_ms is not None:
            item.expiry = loop.call_later(wait_ms / 1000, self._expire, item)
        self._pending.append(item)
        try:
            own = self._kick(item)
            if own is not None:
                await self._serve(own)
            return await item.future
        finally:
            if item.expiry is not None:
                item.expiry.cancel()
            if not item.future.done() and item in self._pending:
                self._pending.remove(item)  # the request's task was cancelled while it waited

    def _rows(self, kwargs: dict[str, Any]) -> tuple[list[Any] | None, str]:
        """Return the rows of a batchable request and the body key holding them, else ``(None, "")``."""
        if not self._batching or kwargs.get("method") != "POST":
            return None, ""
        key = CLASSIC_ROWS_KEY if self.script.mode == STRING else self.script.parameters[0].name
        try:
            parsed = orjson.loads(kwargs["body"])
        except orjson.JSONDecodeError:
            return None, ""
        if not isinstance(parsed, dict) or len(parsed) != 1:
            return None, ""
        rows = parsed.get(key)
        if not isinstance(rows, list) or not rows:
            return None, ""
        return rows, key

    def _expire(self, item: _Item) -> None:
        if item.future.done() or item not in self._pending:
            return
        self._pending.remove(item)
        waited = (time.perf_counter() - item.arrival) * 1000
        limit = self.settings.max_queue_wait_ms
        item.future.set_exception(ClientError(
            503,
            f"The request waited {waited:.0f} ms without starting, longer than the queue limit "
            f"(max_request_wait_time / maxQueueWaitMs / {ENV_MAX_QUEUE_WAIT_MS} = {limit}); the service "
            f"is overloaded, retry later or deploy more workers.",
        ))

    def _take(self) -> list[_Item]:
        """Pop the next call's requests: the head, plus following batchable ones while the rows fit."""
        head = self._pending.popleft()
        batch = [head]
        if head.rows is None:
            return batch
        rows = len(head.rows)
        content_type = head.kwargs["headers"].get("content-type")
        while self._pending:
            nxt = self._pending[0]
            if nxt.rows is None or rows + len(nxt.rows) > self._max_rows or (
                    self.script.mode == OBJECT and nxt.kwargs["headers"].get("content-type") != content_type):
                break
            batch.append(self._pending.popleft())
            rows += len(nxt.rows)
        return batch

    def _ready_rows(self) -> tuple[int, int]:
        """Requests and rows at the head of the queue that one call could take now."""
        count = rows = 0
        for item in self._pending:
            if item.rows is None or rows + len(item.rows) > self._max_rows:
                break
            count += 1
            rows += len(item.rows)
        return count, rows

    def _kick(self, caller: _Item | None = None) -> list[_Item] | None:
        """Start the next call when the worker is idle, unless company is worth waiting for.

        Args:
            caller: The request whose ``submit`` is asking: when the call is that request alone, it is
                returned for the caller to serve in its own task (no extra task for a lone request).

        Returns:
            list | None: ``[caller]`` to serve now, else None (a call was started in a task, or none was).
        """
        if self._busy or not self._pending:
            return None
        head = self._pending[0]
        if self._batching and head.rows is not None:
            count, rows = self._ready_rows()
            expected = max(self._last_count, count + self._arriving())
            deadline = head.arrival + self._latency_s
            now = time.perf_counter()
            if rows < self._max_rows and count < expected and count == len(self._pending) and now < deadline:
                if self._company_timer is None:
                    self._company_timer = asyncio.get_running_loop().call_later(deadline - now, self._company_due)
                return None
        if self._company_timer is not None:
            self._company_timer.cancel()
            self._company_timer = None
        batch = self._take()
        self._busy = True
        self._running_count = self._last_count = len(batch)
        if batch == [caller]:
            return batch
        asyncio.get_running_loop().create_task(self._serve(batch))
        return None

    def _company_due(self) -> None:
        self._company_timer = None
        # Nobody else came in time: the call starts with what is there (and expects that many next time).
        self._kick()

    async def _serve(self, batch: list[_Item]) -> None:
        try:
            if len(batch) == 1:
                item = batch[0]
                outcome = await self._call(item.call, item.kwargs, item.rid,
                                           alone=not self._pending and not self._arriving())
                self._deliver(item, outcome, len(item.rows) if item.rows is not None else None)
            else:
                await self._serve_batch(batch)
        except BaseException as exc:  # noqa: B036 - the requests must not hang, whatever happened
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._busy = False
            self._running_count = 0
            self._kick()

    async def _serve_batch(self, batch: list[_Item]) -> None:
        counts = [len(item.rows or ()) for item in batch]
        total = sum(counts)
        head = batch[0]
        merged_rows = [row for item in batch for row in item.rows or ()]
        kwargs = {**head.kwargs, "body": orjson.dumps({head.key: merged_rows})}
        outcome = await self._call(head.call, kwargs, head.rid, alone=False)
        logger.info("Batch of %d rows from %d requests ran in %.1f ms", total, len(batch), outcome.elapsed_ms)
        if outcome.timed_out:
            for item in batch:
                self._deliver(item, outcome, total)
            return
        parts = split_rows(outcome.value, counts) if outcome.error is None else None
        if parts is not None:
            for item, part in zip(batch, parts, strict=True):
                self._deliver(item, RunOutcome(part, None, False, outcome.elapsed_ms), total)
            return
        if outcome.error is None:
            self._batching = False
            logger.warning(
                "run() returned %s for a batch of %d rows, not one element per row: batching is off for this "
                "worker and each request runs alone. Unset %s for this script (batching needs a row-wise "
                "run()).", type(outcome.value).__name__, total, ENV_BATCH_MAX_SIZE,
            )
        else:
            logger.info("The batch of %d requests failed (%s); running each alone so each gets its own status",
                        len(batch), type(outcome.error).__name__)
        # A failed or non-row-wise batch: each request alone gets its own answer and status.
        for item, count in zip(batch, counts, strict=True):
            alone = await self._call(item.call, item.kwargs, item.rid, alone=False)
            self._deliver(item, alone, count)

    async def _call(self, call: Callable[..., Any], kwargs: dict[str, Any], rid: str, alone: bool) -> RunOutcome:
        return await self.runner.call(call, kwargs, rid, alone=alone)

    @staticmethod
    def _deliver(item: _Item, outcome: RunOutcome, batch_rows: int | None) -> None:
        if not item.future.done():
            item.future.set_result(Dispatched(outcome, batch_rows))
