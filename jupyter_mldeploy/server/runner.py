"""Calling ``run()`` one request at a time per worker, with ``SCORING_TIMEOUT_MS``, in a run thread or inline.

Concurrency: like azmlinfsrv (a gunicorn *sync* worker handles one request at a time), each worker runs
one ``run()`` at a time, so scripts written for azmlinfsrv need not be thread-safe. Where a call runs is
chosen per request (see :class:`Runner`):

* **run thread** (the default, and always for slow scripts): the event loop keeps answering health checks
  and reading queued requests meanwhile. When a call exceeds ``SCORING_TIMEOUT_MS`` the request gets 500 at
  once, a ``TimeoutError`` is raised inside the run thread (at its next Python instruction), and the
  requests queued behind it move to a fresh run thread. "At once" needs the GIL: a ``run()`` stuck in
  native code that holds the GIL (a long C loop without a release) keeps the event loop from running, so
  the 500 comes only when that call gives the GIL back; native code that releases it (numpy, BLAS, I/O,
  ``time.sleep``) is cut off on time. azmlinfsrv cannot do better (its ``SIGALRM`` waits for the same).
* **inline on the event-loop thread**, once the script's recent runs were all short and nothing waits for
  the run thread: handing a call to another thread and back costs two or three cross-thread wake-ups
  (about 120 us a request on a 2-CPU VM), more than a small model's ``predict``. The timeout is then a
  ``SIGALRM`` timer that raises ``TimeoutError`` in ``run()``, exactly as azmlinfsrv's timeout does (and,
  as there, it interrupts ``time.sleep`` and blocking I/O but not a long native call). A run that turns
  out slow sends the next ones back to the run thread.

The timeout counts from the moment a call starts, not while it waits its turn.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import ctypes
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_mldeploy.server import logs
from jupyter_mldeploy.server.config import DEFAULT_INLINE_RUN_MS


class ScoringTimeout(TimeoutError):
    """Raised inside the run thread when ``run()`` exceeded ``SCORING_TIMEOUT_MS``."""


def _async_raise(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class _Call:
    __slots__ = ("func", "kwargs", "rid", "loop", "future", "lock", "started", "thread", "timer", "done",
                 "expired", "elapsed_ms")

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any], rid: str,
                 loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.func, self.kwargs, self.rid, self.loop, self.future = func, kwargs, rid, loop, future
        self.lock = threading.Lock()
        self.started: float | None = None
        self.thread: _RunThread | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.done = False
        self.expired = False
        self.elapsed_ms = 0.0


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _RunThread(threading.Thread):
    """Executes calls one by one; after a timeout it is abandoned and exits once its call returns."""

    def __init__(self) -> None:
        super().__init__(name="mldeploy-run", daemon=True)
        self.inbox: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self.abandoned = False

    def run(self) -> None:
        while not self.abandoned:
            try:
                call = self.inbox.get()
                if call is None:
                    return
                self._execute(call)
            except ScoringTimeout:
                # A timeout delivered just after the call finished; nothing is running any more.
                continue

    def _execute(self, call: _Call) -> None:
        logs.request_id.set(call.rid)
        start = time.perf_counter()
        with call.lock:
            call.started, call.thread = start, self
        result: Any = None
        error: BaseException | None = None
        try:
            result = call.func(**call.kwargs)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # noqa: B036 - SystemExit/KeyboardInterrupt from run() must not kill the worker
            error = RuntimeError(f"run() raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
        with call.lock:
            call.done = True
            call.elapsed_ms = (time.perf_counter() - start) * 1000
        logs.request_id.set(None)
        call.loop.call_soon_threadsafe(_settle, call.future, result, error)


@dataclass
class RunOutcome:
    """The result of one ``run()`` call.

    Attributes:
        value: What ``run`` returned (None when it raised).
        error: What ``run`` raised, or None.
        timed_out: True when the call exceeded the timeout.
        elapsed_ms: Time spent in ``run`` (the timeout when it timed out).
        traceback: Formatted traceback of ``error``.
    """

    value: Any
    error: BaseException | None
    timed_out: bool
    elapsed_ms: float
    traceback: str = ""


#: How many consecutive short runs it takes before calls go inline.
INLINE_AFTER_SHORT_RUNS = 8


class Runner:
    """Calls ``run()`` one request at a time per worker, with a timeout, in the run thread or inline.

    Calls queue in the run thread's inbox (first come, first served), so the thread goes from one call
    straight to the next while the event loop sends the previous response. The timeout counts from the
    moment a call starts, not while it waits in the queue (as azmlinfsrv: a queued request waits in the
    accept queue, outside its timeout).

    A call runs inline on the event-loop thread instead when all of these hold: ``inline_run_ms`` > 0,
    the last :data:`INLINE_AFTER_SHORT_RUNS` calls each took less than ``inline_run_ms``, the runner lives
    on the main thread (signals are delivered there), and the script has not installed a ``SIGALRM``
    handler of its own. Calls already queued for the run thread finish first. During an inline call the running
    asyncio loop is hidden, so ``run()`` may call ``asyncio.run`` as it could under azmlinfsrv.

    Args:
        timeout_ms: ``SCORING_TIMEOUT_MS``.
        inline_run_ms: ``MLDEPLOY_INLINE_RUN_MS``: the "short run" bound in milliseconds; 0 keeps every
            call in the run thread.
    """

    def __init__(self, timeout_ms: int, inline_run_ms: float = DEFAULT_INLINE_RUN_MS) -> None:
        self.timeout_ms = timeout_ms
        self._timeout_s = timeout_ms / 1000
        self._thread: _RunThread | None = None
        self.inline_run_ms = inline_run_ms
        #: Calls handed to the run thread whose requests have not been answered yet.
        self._waiting = 0
        #: Set when ``_waiting`` drops to 0 (created on first use, inside the event loop).
        self._drained: asyncio.Event | None = None
        #: Consecutive calls shorter than ``inline_run_ms``.
        self._short_runs = 0
        self._inline_active = False
        self._inline_fired = False
        self._alarm_handler = self._on_alarm
        self._inline_enabled = inline_run_ms > 0 and self._install_alarm()

    @property
    def inline_enabled(self) -> bool:
        """Whether short calls may run inline (False once the script took ``SIGALRM`` for itself)."""
        return self._inline_enabled

    def _install_alarm(self) -> bool:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
            return False  # init() installed its own SIGALRM handler: leave it alone
        signal.signal(signal.SIGALRM, self._alarm_handler)
        return True

    def _on_alarm(self, signum: int, frame: Any) -> None:
        # Runs on the main thread between two bytecodes (or when a blocking call returns EINTR).
        if self._inline_active:
            self._inline_active = False
            self._inline_fired = True
            raise ScoringTimeout()

    def _record(self, elapsed_ms: float) -> None:
        self._short_runs = self._short_runs + 1 if elapsed_ms < self.inline_run_ms else 0

    def _runner_thread(self) -> _RunThread:
        if self._thread is None or self._thread.abandoned or not self._thread.is_alive():
            self._thread = _RunThread()
            self._thread.start()
        return self._thread

    def _check(self, call: _Call) -> None:
        """Timer callback: re-arm while the call waits or runs within its time, else expire it."""
        with call.lock:
            if call.done:
                return
            if call.started is None or call.thread is None:
                call.timer = call.loop.call_later(self._timeout_s, self._check, call)
                return
            remaining = call.started + self._timeout_s - time.perf_counter()
            if remaining > 0:
                call.timer = call.loop.call_later(remaining, self._check, call)
                return
            call.expired = True
            stuck = call.thread
            stuck.abandoned = True
            if stuck.ident is not None:
                _async_raise(stuck.ident, ScoringTimeout)
        # Calls queued behind the stuck one move, in order, to a fresh run thread.
        fresh = self._runner_thread()
        while True:
            try:
                queued = stuck.inbox.get_nowait()
            except queue.Empty:
                break
            if queued is not None:
                fresh.inbox.put(queued)
        stuck.inbox.put(None)
        if not call.future.done():
            call.future.set_exception(ScoringTimeout())

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], rid: str, alone: bool = True) -> RunOutcome:
        """Run ``func(**kwargs)`` with the request id ``rid`` set, inline or in the run thread.

        Args:
            func: The script's ``run`` (or a wrapper of it).
            kwargs: Its arguments.
            rid: The request id for log prefixes.
            alone: Whether this is the only request the worker is handling. Only a lone request may run
                inline: with others in flight, the run thread lets the event loop read and answer them
                while ``run()`` computes (measured faster at 16 concurrent connections).

        Returns:
            RunOutcome: The value or the error; never raises for what ``run`` does.
        """
        if alone and not self._waiting and self._short_runs >= INLINE_AFTER_SHORT_RUNS and self._inline_enabled:
            return self._call_inline(func, kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call = _Call(func, kwargs, rid, loop, future)
        # A timer handle rather than asyncio.wait_for: no extra task per request on the hot path.
        call.timer = loop.call_later(self._timeout_s, self._check, call)
        self._waiting += 1
        self._runner_thread().inbox.put(call)
        try:
            value = await future
        except Exception as exc:
            if call.expired:
                self._short_runs = 0
                return RunOutcome(None, exc, True, float(self.timeout_ms))
            self._record(call.elapsed_ms)
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return RunOutcome(None, exc, False, call.elapsed_ms, text)
        finally:
            self._waiting -= 1
            if not self._waiting and self._drained is not None:
                self._drained.set()
            if call.timer is not None:
                call.timer.cancel()
        self._record(call.elapsed_ms)
        return RunOutcome(value, None, False, call.elapsed_ms)

    def _call_inline(self, func: Callable[..., Any], kwargs: dict[str, Any]) -> RunOutcome:
        """Run ``func`` on this (the event-loop) thread under a ``SIGALRM`` timeout."""
        running_loop = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(None)
        value: Any = None
        error: BaseException | None = None
        self._inline_fired = False
        start = time.perf_counter()
        try:
            try:
                self._inline_active = True
                signal.setitimer(signal.ITIMER_REAL, self._timeout_s)
                value = func(**kwargs)
            finally:
                # Disarm first: an alarm arriving from here on finds nothing to interrupt.
                self._inline_active = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # noqa: B036 - SystemExit/KeyboardInterrupt from run() must not kill the worker
            error = RuntimeError(f"run() raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
        finally:
            asyncio.events._set_running_loop(running_loop)
        elapsed_ms = (time.perf_counter() - start) * 1000
        if signal.getsignal(signal.SIGALRM) is not self._alarm_handler:
            self._inline_enabled = False  # run() took SIGALRM for itself: from now on, the run thread only
        if self._inline_fired:
            # run() may have swallowed the TimeoutError; the request timed out all the same.
            self._short_runs = 0
            return RunOutcome(None, error or ScoringTimeout(), True, float(self.timeout_ms))
        self._record(elapsed_ms)
        if error is not None:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            return RunOutcome(None, error, False, elapsed_ms, text)
        return RunOutcome(value, None, False, elapsed_ms)
