"""A worker process: loads the entry script, runs ``init()``, serves HTTP on the socket the supervisor bound.

Started by :mod:`jupyter_mldeploy.server.supervisor` as
``python -m jupyter_mldeploy.server.worker --fd N --ready-fd M ...`` with the settings in azmlinfsrv's
environment variables (``AZUREML_ENTRY_SCRIPT``, ``AML_APP_ROOT``, ``SCORING_TIMEOUT_MS``...). It reports
on the ready pipe one JSON line: ``{"ready": true}`` once uvicorn listens, or ``{"error": text}`` (the
traceback plus a listing of ``AZUREML_MODEL_DIR``) before exiting with code 3 when the script cannot be
loaded or ``init()`` raised. SIGTERM/SIGINT stop it gracefully: it stops accepting, finishes in-flight
requests and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Coroutine, Iterator
from typing import Any

from jupyter_mldeploy.server.config import (
    DEFAULT_HEADER_TIMEOUT_MS,
    DEFAULT_INLINE_RUN_MS,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_REQUEST_MB,
    ConfigError,
    ThroughputSettings,
)

EXIT_INIT_FAILED = 3
#: Seconds a stopping worker keeps serving the connections it already accepted before it shuts down.
DRAIN_GRACE_SEC = 0.5


class _ReadyPipe:
    """The write end of the pipe to the supervisor (absent when the worker is run by hand)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, message: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = (json.dumps(message) + "\n").encode()
        with contextlib.suppress(OSError):
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def _attach_debugger(port: str, log: logging.Logger) -> None:
    log.warning("Starting in DEBUGGING mode because AZUREML_DEBUG_PORT is set; do not use this in production.")
    try:
        import debugpy
    except ModuleNotFoundError:
        log.error("Cannot connect to a debugger because debugpy is not installed.")
        raise
    debugpy.connect(int(port))
    debugpy.wait_for_client()


def _exit_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies, so no orphan keeps serving the port."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class _DrainingApp:
    """Wraps the ASGI app so that, once the worker is retiring, every response closes its connection.

    A keep-alive client of a retiring worker then gets ``Connection: close`` with its next answer and opens
    a new connection, which lands on the new generation, instead of having its idle connection closed under
    it when the worker exits.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.draining = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.draining or scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


class _SupervisedServer:
    """Builds the uvicorn server lazily (uvicorn is imported only once ``init()`` succeeded)."""

    def __init__(self, app: Any, sock: socket.socket, log_level: str, protocol: type) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                # The worker installs its own handlers on the event loop (see _serve).
                yield

        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", access_log=False, log_config=None, http=protocol,
            server_header=False, proxy_headers=False, log_level=log_level.lower() if log_level.lower() in
            ("critical", "error", "warning", "info", "debug", "trace") else "info",
        )
        self.server = Server(config)
        self.sock = sock
        self.app = app


async def _serve(supervised: _SupervisedServer, ready: _ReadyPipe, log: logging.Logger) -> None:
    server = supervised.server
    loop = asyncio.get_running_loop()
    parent = os.getppid()

    def stop() -> None:
        if server.should_exit:
            return
        # Stop accepting at once (the supervisor and the new generation keep the socket), but shut down only
        # after a grace period: a connection accepted just now may not have delivered its request yet (behind
        # a proxy such as docker-proxy, which connects first and forwards the bytes after), and uvicorn's
        # shutdown closes connections that have not started a request.
        for listener in getattr(server, "servers", None) or []:
            listener.close()
        if isinstance(supervised.app, _DrainingApp):
            supervised.app.draining = True
        loop.call_later(DRAIN_GRACE_SEC, setattr, server, "should_exit", True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    task = asyncio.ensure_future(server.serve(sockets=[supervised.sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if server.started:
        ready.send({"ready": True})
        log.info("Worker with pid %d ready for serving traffic", os.getpid())
    while not task.done():
        await asyncio.wait({task}, timeout=1.0)
        if os.getppid() != parent and not server.should_exit:
            log.warning("The supervisor is gone; stopping")
            server.should_exit = True
    await task


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(coro)
        return
    loop = factory() if factory else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    """Load the script, run ``init()``, serve until told to stop.

    Args:
        argv: ``--fd`` (the bound socket), ``--ready-fd`` (the pipe to the supervisor),
            ``--max-request-mb``, ``--inline-run-ms``, ``--header-timeout-ms``, ``--max-header-bytes``,
            ``--generation``.

    Returns:
        int: 0 after a graceful stop, 3 when loading the script or ``init()`` failed.
    """
    parser = argparse.ArgumentParser(prog="python -m jupyter_mldeploy.server.worker")
    parser.add_argument("--fd", type=int, required=True, help="File descriptor of the bound TCP socket.")
    parser.add_argument("--ready-fd", type=int, default=None, help="Pipe to report readiness on.")
    parser.add_argument("--max-request-mb", type=float, default=DEFAULT_MAX_REQUEST_MB)
    parser.add_argument("--inline-run-ms", type=float, default=DEFAULT_INLINE_RUN_MS)
    parser.add_argument("--header-timeout-ms", type=int, default=DEFAULT_HEADER_TIMEOUT_MS)
    parser.add_argument("--max-header-bytes", type=int, default=DEFAULT_MAX_HEADER_BYTES)
    parser.add_argument("--generation", type=int, default=1)
    args = parser.parse_args(argv)
    _exit_with_parent()
    # A terminal hang-up is the supervisor's business (reload), not the worker's.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    from jupyter_mldeploy.server import logs, shims
    from jupyter_mldeploy.server.layout import ScriptLocation
    from jupyter_mldeploy.server.runner import INLINE_AFTER_SHORT_RUNS, Runner
    from jupyter_mldeploy.server.user_script import UserScript, model_dir_listing

    env = os.environ
    log, access_log = logs.setup_logging(env.get("AZUREML_LOG_LEVEL", "INFO"))
    ready = _ReadyPipe(args.ready_fd)
    location = ScriptLocation.from_environ(env)
    app_root, entry_script = location.app_root, location.entry_script
    location.prepare_sys_path()
    shims.install_finder()

    try:
        throughput = ThroughputSettings.from_environ(env)
    except ConfigError as exc:
        log.error("%s", exc)
        ready.send({"error": str(exc)})
        return EXIT_INIT_FAILED

    token = logs.request_id.set(logs.INIT_REQUEST_ID)
    stage = "load"
    try:
        if env.get("AZUREML_DEBUG_PORT"):
            _attach_debugger(env["AZUREML_DEBUG_PORT"], log)
        script = UserScript(entry_script)
        log.info("Found user script at %s", entry_script)
        log.info("%s", script.describe())
        stage = "init"
        log.info("Invoking user's init function")
        script.init()
        log.info("Users's init has completed successfully")
        from jupyter_mldeploy.server.swagger import SwaggerDocs

        swagger = SwaggerDocs(app_root, script.run, script.mode == "object", dict(env))
    except BaseException:  # noqa: B036 - SystemExit/KeyboardInterrupt from init() are init failures too
        text = traceback.format_exc()
        what = "User's init function failed" if stage == "init" else "Failed to load the user script"
        listing = model_dir_listing(env.get("AZUREML_MODEL_DIR"))
        log.error("%s", what)
        log.error("Encountered Exception %s", text.rstrip())
        for line in listing.splitlines():
            log.info("%s", line)
        ready.send({"error": f"{what}:\n{text}\n{listing}"})
        return EXIT_INIT_FAILED
    finally:
        logs.request_id.reset(token)

    # The event loop and the run thread share the GIL; with CPython's default 5 ms switch interval a
    # long pure-Python run() (e.g. a random forest) makes the loop wait up to 5 ms to send each finished
    # response. 1 ms keeps responses flowing at a negligible cost to the run.
    sys.setswitchinterval(0.001)
    timeout_ms = int(env.get("SCORING_TIMEOUT_MS") or 3_600_000)
    log.info("Scoring timeout is set to %d", timeout_ms)
    from jupyter_mldeploy.server.app import ScoringApp

    runner = Runner(timeout_ms, args.inline_run_ms)
    if runner.inline_enabled:
        log.info("run() moves to the event-loop thread after %d consecutive runs under %g ms "
                 "(MLDEPLOY_INLINE_RUN_MS; 0 turns this off)", INLINE_AFTER_SHORT_RUNS, args.inline_run_ms)
    scoring_app = ScoringApp(script, runner, swagger, int(args.max_request_mb * 1_000_000), access_log, throughput)
    if throughput.batch_max_size is not None:
        if scoring_app.dispatcher is not None and scoring_app.dispatcher.batching:
            log.info("Adaptive batching is on: up to %d rows per run(), waiting at most %g ms for company",
                     throughput.batch_max_size, throughput.batch_max_latency_ms)
        else:
            log.warning("Batching is off for this script: @rawhttp, request_headers or several inputs to run() "
                        "cannot be merged; requests run one by one")
    app: Any = scoring_app
    origins = env.get("AML_CORS_ORIGINS")
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        allowed = [origin.strip() for origin in origins.split(",") if origin.strip()]
        app = CORSMiddleware(app, allow_origins=allowed, allow_methods=["GET", "POST"], allow_headers=["*"])
        log.info("Enabling CORS for the following origins: %s", ", ".join(allowed))
    sock = socket.socket(fileno=args.fd)
    from jupyter_mldeploy.server.connection import guarded_protocol

    protocol = guarded_protocol(args.header_timeout_ms, args.max_header_bytes)
    supervised = _SupervisedServer(_DrainingApp(app), sock, env.get("AZUREML_LOG_LEVEL", "INFO"), protocol)
    # uvicorn's live set of request tasks (uvicorn >= 0.13); without it every request counts as alone.
    tasks = getattr(getattr(supervised.server, "server_state", None), "tasks", None)
    if tasks is not None:
        scoring_app.watch_requests(tasks)
    _run(_serve(supervised, ready, log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
