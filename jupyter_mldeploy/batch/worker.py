"""What runs on a worker: one try of one mini-batch (:func:`score_mini_batch`), the same for every backend.

A worker process loads the job's entry script once with the scoring server's loader
(:class:`~jupyter_mldeploy.server.user_script.UserScript`) after setting the layout variables a web service
gets (``AZUREML_MODEL_DIR``, ``AML_APP_ROOT``...) and the job's ``environment_variables``, calls ``init()``
once, then ``run(mini_batch)`` for every mini-batch it is given (v1's ParallelRunStep contract). A worker
shared by two jobs (a long-lived Dask worker) keeps one loaded script per job. A loky worker kept warm by
its driver (:mod:`~jupyter_mldeploy.batch.warm`) serves one job at a time: when a try of another job
arrives, it drops the previous job's script (and its models), restores ``os.environ`` and ``sys.path`` as
they were before that job, points its output at the new job's log, then loads and
``init()``s the new script.

The function never raises for the user's errors: a failed read, a raising or slow ``run()`` comes back as
:class:`TryOutcome.error` so the driver can count, retry and log it. Output rows are formatted here, in
parallel, as v1's ``append_row`` writes them: a DataFrame's rows space-separated without header or index,
a list's elements one per line.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mldeploy.batch.inputs import MiniBatch, count_lines, read_mini_batch
from jupyter_mldeploy.batch.journal import JobFolder
from jupyter_mldeploy.server.layout import ScriptLocation
from jupyter_mldeploy.server.user_script import UserScript, model_dir_listing

log = logging.getLogger("jupyter_mldeploy.batch")
#: The job log's line format, the driver's and the loky workers' (their output goes to the same file).
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

#: Loaded (and initialised) entry scripts of this worker process, by job folder.
_LOADED: dict[str, UserScript] = {}
#: Why loading a job's script failed when :func:`preload` tried it, by job folder: reported by the first try.
_LOAD_ERRORS: dict[str, str] = {}
#: This worker's copies of app folders uploaded by drivers whose paths it cannot see, by the driver's path.
_APP_COPIES: dict[str, str] = {}
_LOAD_LOCK = threading.Lock()


@dataclass
class _JobTraces:
    """What a loky worker restores before it serves another job (see the module docstring).

    Attributes:
        job_key: The job being served.
        environ: ``os.environ`` before the job set its variables (a job's ``run()`` may set more).
        sys_path: ``sys.path`` before the job's app folder was added.
    """

    job_key: str
    environ: dict[str, str]
    sys_path: list[str]


#: The job a loky worker serves (None in a Dask worker, which may serve several at once).
_SERVING: _JobTraces | None = None


class InvocationTimeout(BaseException):
    """``run()`` took longer than ``run_invocation_timeout``.

    A ``BaseException`` (as ``KeyboardInterrupt``), so a script's own ``except Exception`` cannot swallow it.
    """


@dataclass(frozen=True)
class ScriptSpec:
    """Where a job's script is and the variables it runs with (sent with every mini-batch; small).

    Attributes:
        job_key: The job folder: one loaded script per job per worker.
        environment: Layout variables (``AML_APP_ROOT``, ``AZUREML_MODEL_DIR``...) plus the job's
            ``environment_variables``.
        log_path: loky only: the job's log. A loky worker serves one job at a time and, when a warm driver
            gives it another job, points its stdout and stderr here; None for Dask workers.
    """

    job_key: str
    environment: dict[str, str]
    log_path: str | None = None


@dataclass(frozen=True)
class TryRequest:
    """One try of one mini-batch.

    Attributes:
        script: The job's script.
        batch: The mini-batch.
        attempt: 1 for the first try.
        timeout: ``run_invocation_timeout`` in seconds.
        keep_rows: Whether the formatted rows are kept (``append_row``).
        part_dir: The job folder, when the worker writes the part file itself (loky, a local Dask cluster:
            the worker sees the driver's folder, so the rows need not travel back); None to return the rows
            (a remote Dask cluster: the worker may be on another machine).
    """

    script: ScriptSpec
    batch: MiniBatch
    attempt: int
    timeout: float
    keep_rows: bool
    part_dir: str | None = None


@dataclass
class TryOutcome:
    """What one try gave.

    Attributes:
        index: The mini-batch's index.
        attempt: The try number.
        items: Input items in the mini-batch (rows or files).
        succeeded: Elements ``run()`` returned (0 when it failed).
        rows: The formatted output rows (``append_row``), UTF-8, when the driver writes the part file.
        part_written: True when the worker wrote the part file (``TryRequest.part_dir``).
        error: Why the try failed (a traceback's last lines), or None.
        init_failed: True when ``init()`` or loading the script failed: no later try can succeed.
        seconds: Wall time of the ``run()`` call.
        worker: ``host:pid`` of the worker.
    """

    index: int
    attempt: int
    items: int = 0
    succeeded: int = 0
    rows: bytes = b""
    part_written: bool = False
    error: str | None = None
    init_failed: bool = False
    seconds: float = 0.0
    worker: str = field(default="")


def use_app_copy(app_root: str, copy: str | None) -> None:
    """Make this worker load a job's app folder from a local copy (or stop: ``copy=None``).

    Args:
        app_root: The app folder's path on the driver's machine (``AML_APP_ROOT``).
        copy: Where the uploaded copy was unpacked on this worker.
    """
    with _LOAD_LOCK:
        if copy is None:
            _APP_COPIES.pop(app_root, None)
        else:
            _APP_COPIES[app_root] = copy


def job_environment(script: ScriptSpec) -> dict[str, str]:
    """The job's variables on this worker: paths under the driver's app folder point into this worker's
    copy when one was uploaded (:func:`use_app_copy`), else they are the driver's."""
    root = script.environment.get("AML_APP_ROOT", "")
    copy = _APP_COPIES.get(root)
    if not root or copy is None:
        return script.environment
    return {name: copy + value[len(root):] if value == root or value.startswith(root + os.sep) else value
            for name, value in script.environment.items()}


def point_output_at(log_path: Path) -> None:
    """Make this process's stdout and stderr (file descriptors 1 and 2) append to ``log_path``.

    A warm driver and its loky workers started with the first job's log as their output; each later job's
    lines go to its own log.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _serve(script: ScriptSpec) -> None:
    """loky: leave the previous job (its script, variables, ``sys.path``, log) and note what the new one
    must restore. (The working folder needs no restoring: every job moves to its own app folder.)"""
    global _SERVING
    if _SERVING is not None and _SERVING.job_key == script.job_key:
        return  # a retry of a load that failed: what to restore was noted before the job changed anything
    if _SERVING is not None:
        _LOADED.clear()  # the previous job's script, and the models its init() loaded
        _LOAD_ERRORS.clear()
        os.environ.clear()
        os.environ.update(_SERVING.environ)
        sys.path[:] = _SERVING.sys_path
        assert script.log_path is not None
        point_output_at(Path(script.log_path))
    _SERVING = _JobTraces(script.job_key, dict(os.environ), list(sys.path))


def _load(script: ScriptSpec) -> UserScript:
    """Load and ``init()`` the job's script once in this process (thread-safe for Dask's thread pool)."""
    environment = job_environment(script)
    with _LOAD_LOCK:
        loaded = _LOADED.get(script.job_key)
        if loaded is None:
            if script.log_path is not None:
                _serve(script)
            os.environ.update(environment)
            location = ScriptLocation.from_environ(environment)
            location.prepare_sys_path()
            # v1 runs the script from the app root, so ``open("src/x.json")`` works as in a web service.
            os.chdir(location.app_root)
            started = time.perf_counter()
            loaded = UserScript(location.entry_script)
            loaded.init()
            log.info("Worker %d: entry script loaded and init() done in %.2f s.", os.getpid(),
                     time.perf_counter() - started)
            _LOADED[script.job_key] = loaded
        elif os.environ.get("AML_APP_ROOT") != environment.get("AML_APP_ROOT"):
            # Another job ran here in between: its variables would be read by this job's run().
            os.environ.update(environment)
        return loaded


def preload(script: ScriptSpec, logging_level: str) -> None:
    """Load the job's script and call ``init()`` as this worker process starts (loky's initializer).

    A worker then imports the script's libraries and loads the models while the driver is still reading
    its journal, instead of when its first mini-batch arrives. A failure is kept and reported by the first
    try (as ``init_failed``), not raised: an initializer that raises would break loky's whole pool.

    Args:
        script: The job's script.
        logging_level: The job's ``logging_level``: the worker's lines go to the job log (its stdout).
    """
    logging.basicConfig(stream=sys.stdout, level=getattr(logging, logging_level, logging.INFO), format=LOG_FORMAT)
    try:
        _load(script)
    except BaseException as exc:  # noqa: BLE001 - reported by the first try, with the model folder listing
        _LOAD_ERRORS[script.job_key] = _short_traceback(exc)


def _raise_in_thread(ident: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception) if exception else None)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`InvocationTimeout` in the calling thread when the block runs longer than ``seconds``.

    On a process's main thread (loky workers) ``SIGALRM`` interrupts anything, ``time.sleep`` included.
    Elsewhere (Dask runs tasks on a thread pool) the exception is set asynchronously on the thread; it
    lands at the next Python bytecode, so a long call into C code is stopped only when it returns.
    """
    if threading.current_thread() is threading.main_thread():
        def on_alarm(_signum: int, _frame: Any) -> None:
            raise InvocationTimeout(f"run() took longer than run_invocation_timeout={seconds:g}s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    ident = threading.get_ident()
    lock = threading.Lock()
    state = {"inside": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["inside"]:
                state["fired"] = True
                _raise_in_thread(ident, InvocationTimeout)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["inside"] = False
            if state["fired"]:
                _raise_in_thread(ident, None)  # a timeout not delivered yet must not hit the caller


def format_rows(result: Any) -> tuple[int, bytes]:
    """Count and format what ``run()`` returned, as v1's ``append_row``.

    Args:
        result: A pandas DataFrame (one output line per row, values space-separated, no header or index) or
            a list / tuple / Series / 1-d array (one line per element, ``str(element)``).

    Returns:
        tuple[int, bytes]: The element count and the lines (UTF-8, each ending in a newline).

    Raises:
        TypeError: For another type (the message says what ``run()`` must return).
    """
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return len(result), result.to_csv(sep=" ", header=False, index=False, lineterminator="\n").encode("utf-8")
    if isinstance(result, pd.Series):
        result = result.tolist()
    elif hasattr(result, "tolist") and getattr(result, "ndim", 0) == 1:
        result = result.tolist()
    if isinstance(result, (list, tuple)):
        # One join over map(str): about a quarter faster than a generator of f-strings, the same bytes.
        return len(result), ("\n".join(map(str, result)) + "\n" if result else "").encode("utf-8")
    raise TypeError(
        f"run() returned {type(result).__name__}; a batch run() must return a pandas DataFrame or a list "
        "with one element per successful input item."
    )


def _short_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:]).strip()


def score_mini_batch(request: TryRequest) -> TryOutcome:
    """Run one try of one mini-batch on this worker.

    Args:
        request: The mini-batch, its try number and the job's script.

    Returns:
        TryOutcome: The counts and rows, or the error.
    """
    import socket

    outcome = TryOutcome(index=request.batch.index, attempt=request.attempt, worker=f"{socket.gethostname()}:{os.getpid()}")
    script: UserScript | None = None
    try:
        failure = _LOAD_ERRORS.get(request.script.job_key)
        script = _load(request.script) if failure is None else None
    except BaseException as exc:  # noqa: BLE001 - any failure of the user's import or init() is reported
        failure = _short_traceback(exc)
    if script is None:
        listing = model_dir_listing(job_environment(request.script).get("AZUREML_MODEL_DIR"))
        outcome.error = (
            f"The entry script could not be loaded or its init() raised (worker {outcome.worker}):\n"
            f"{failure}\n{listing}"
        )
        outcome.init_failed = True
        return outcome
    try:
        mini_batch = read_mini_batch(request.batch)
    except Exception as exc:  # noqa: BLE001 - a damaged part of the input fails this mini-batch only
        outcome.items = count_lines(request.batch)
        outcome.error = f"Reading the mini-batch failed: {type(exc).__name__}: {exc}"
        return outcome
    outcome.items = len(mini_batch)
    started = time.perf_counter()
    try:
        with time_limit(request.timeout):
            result = script.run(mini_batch)
        outcome.succeeded, rows = format_rows(result)
        outcome.succeeded = min(outcome.succeeded, outcome.items)
        outcome.rows = rows if request.keep_rows else b""
    except InvocationTimeout:
        outcome.error = f"run() timed out after run_invocation_timeout={request.timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - the user's run() may raise anything
        outcome.error = f"run() raised:\n{_short_traceback(exc)}"
    outcome.seconds = time.perf_counter() - started
    if outcome.error is None and request.keep_rows and request.part_dir is not None:
        try:
            JobFolder(Path(request.part_dir)).write_part(request.batch.index, outcome.rows)
        except OSError as exc:
            outcome.error = f"Writing the part file failed: {exc}"
        else:
            outcome.rows, outcome.part_written = b"", True
    return outcome
