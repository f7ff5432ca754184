"""The supervisor process: owns the port, spawns worker generations, reloads on SIGHUP, writes a status file.

Standard library only. Design (the deployer relies on it):

* The supervisor binds the TCP socket (``SO_REUSEADDR``, never ``SO_REUSEPORT``) but does not listen; each
  worker inherits it and asyncio's ``create_server`` calls ``listen()``. So the port refuses connections
  until the first worker's ``init()`` has returned, and afterwards every generation of workers shares one
  kernel accept queue: a connection that arrives while workers are replaced waits in the queue and is served
  by whoever accepts next, so a reload fails no request.
* Each worker reports on its own pipe: one JSON line, ``{"ready": true}`` once it serves, or
  ``{"error": "<traceback + model dir listing>"}`` when loading the script or ``init()`` failed (it then
  exits with code 3).
* SIGHUP starts a new generation (re-reading ``--spec-file``); when all of its workers are ready the old
  generation gets SIGTERM and finishes its in-flight requests. If the new generation fails, the old one
  keeps serving and ``last_reload`` in the status file carries the error.
* SIGTERM/SIGINT: every worker finishes its in-flight requests, then the supervisor exits 0.
* A worker that dies after it was ready is respawned (with back-off when respawns fail).

Exit codes: 0 after a graceful stop, 1 for bad settings, 3 when the first generation failed to start,
4 when the port is taken.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_mldeploy.server.config import ConfigError, ServerSettings, build_parser, resolve_settings
from jupyter_mldeploy.server.protocol import ReloadReport, SpecFile, SupervisorStatus

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_INIT_FAILED = 3
EXIT_PORT_TAKEN = 4

#: Seconds an old worker gets to finish in-flight requests beyond the scoring timeout before SIGKILL.
_GRACE_EXTRA_S = 10.0
_RESPAWN_BACKOFF_MAX_S = 30.0


def _log(message: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    sys.stderr.write(f"{stamp} I [{os.getpid()}] mldeploy.supervisor - {message}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class WorkerSpec:
    """How to spawn one generation of workers.

    Attributes:
        python: Interpreter to run ``-m jupyter_mldeploy.server.worker`` with.
        cwd: Working directory (the app root).
        env: Full environment of the worker process.
        worker_count: Number of workers in the generation.
    """

    python: str
    cwd: str
    env: dict[str, str]
    worker_count: int


def load_spec(settings: ServerSettings) -> WorkerSpec:
    """Build the worker spec from the settings, overridden by ``--spec-file`` when given.

    The spec file is a JSON object with optional keys ``python``, ``cwd``, ``env`` (merged over the
    settings' variables) and ``worker_count``.

    Args:
        settings: The resolved server settings.

    Returns:
        WorkerSpec: What the next generation runs.

    Raises:
        ConfigError: When the spec file is unreadable or malformed.
    """
    env = dict(os.environ)
    env.update(settings.worker_env())
    python, cwd, worker_count = sys.executable, None, settings.worker_count
    if settings.spec_file:
        try:
            with open(settings.spec_file, encoding="utf-8") as handle:
                spec = SpecFile.from_json(json.load(handle))
        except (OSError, ValueError) as exc:  # ProtocolError is a ValueError
            raise ConfigError(f"Spec file {settings.spec_file} is not a valid spec: {exc}") from None
        env.update(spec.env)
        python = spec.python or python
        cwd = spec.cwd
        if spec.worker_count is not None:
            worker_count = spec.worker_count
    if "AZUREML_ENTRY_SCRIPT" not in env:
        raise ConfigError("No entry script: neither the settings nor the spec file set AZUREML_ENTRY_SCRIPT.")
    cwd = str(cwd or env.get("AML_APP_ROOT") or settings.app_root)
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        # Same interpreter: make sure it imports this very copy of the server even from another cwd. Paths are
        # compared unresolved: a virtual environment's python links to its base interpreter, and adding this
        # copy's folder (maybe the host's whole site-packages) to a built environment would break its isolation.
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return WorkerSpec(python=python, cwd=cwd, env=env, worker_count=worker_count)


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    generation: int
    slot: int
    ready_fd: int | None
    buffer: bytes = b""
    ready: bool = False
    error: str | None = None


@dataclass
class _Generation:
    number: int
    spec: WorkerSpec
    workers: list[_Worker] = field(default_factory=list)

    def all_ready(self) -> bool:
        return bool(self.workers) and all(w.ready for w in self.workers)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind (without listening) the TCP socket every worker will share.

    Args:
        host: Interface name or address.
        port: Port number; 0 picks a free one.

    Returns:
        socket.socket: The bound, inheritable socket.

    Raises:
        OSError: When binding fails (``errno.EADDRINUSE`` when the port is taken).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    info = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[0][4])
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Runs the worker generations of one scoring server. Use :meth:`run`.

    Args:
        settings: The resolved settings.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.sock: socket.socket | None = None
        self.port = settings.port
        self.state = "Transitioning"
        self.error: str | None = None
        self.last_reload: ReloadReport | None = None
        self.current: _Generation | None = None
        self.pending: _Generation | None = None
        self.retiring: list[_Worker] = []
        self.next_generation = 1
        self.selector = selectors.DefaultSelector()
        self.stop_requested = False
        self.reload_requested = False
        self.respawn_at: dict[int, float] = {}
        self.respawn_delay: dict[int, float] = {}
        self.grace_s = settings.scoring_timeout_ms / 1000 + _GRACE_EXTRA_S

    # -- status -------------------------------------------------------------------------------------
    def write_status(self) -> None:
        """Write the JSON status file atomically (temporary file + ``os.replace``), if one was asked for."""
        path = self.settings.status_file
        if not path:
            return
        status = SupervisorStatus(
            state=self.state,
            pid=os.getpid(),
            port=self.port,
            host=self.settings.host,
            generation=self.current.number if self.current else None,
            workers=[w.proc.pid for w in self.current.workers] if self.current else [],
            error=self.error,
            last_reload=self.last_reload,
            updated=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        ).to_json()
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(status, handle, indent=2)
        os.replace(tmp, path)

    # -- signals ------------------------------------------------------------------------------------
    def _install_signals(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

        def on_stop(signum: int, frame: Any) -> None:
            self.stop_requested = True

        def on_reload(signum: int, frame: Any) -> None:
            self.reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)
        # A no-op handler so a child's exit wakes the select() through the wakeup fd.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        return wake_r

    # -- workers ------------------------------------------------------------------------------------
    def _spawn(self, generation: _Generation, slot: int) -> _Worker:
        assert self.sock is not None
        ready_r, ready_w = os.pipe()
        cmd = [
            generation.spec.python, "-m", "jupyter_mldeploy.server.worker",
            "--fd", str(self.sock.fileno()),
            "--ready-fd", str(ready_w),
            "--max-request-mb", repr(self.settings.max_request_mb),
            "--inline-run-ms", repr(self.settings.inline_run_ms),
            "--header-timeout-ms", str(self.settings.header_timeout_ms),
            "--max-header-bytes", str(self.settings.max_header_bytes),
            "--generation", str(generation.number),
        ]
        try:
            proc = subprocess.Popen(
                cmd, cwd=generation.spec.cwd, env=generation.spec.env, pass_fds=(self.sock.fileno(), ready_w)
            )
        finally:
            os.close(ready_w)
        worker = _Worker(proc=proc, generation=generation.number, slot=slot, ready_fd=ready_r)
        self.selector.register(ready_r, selectors.EVENT_READ, worker)
        _log(f"started worker pid {proc.pid} (generation {generation.number}, slot {slot})")
        return worker

    def _start_generation(self, spec: WorkerSpec) -> _Generation:
        generation = _Generation(number=self.next_generation, spec=spec)
        self.next_generation += 1
        for slot in range(spec.worker_count):
            generation.workers.append(self._spawn(generation, slot))
        return generation

    def _close_pipe(self, worker: _Worker) -> None:
        if worker.ready_fd is not None:
            self.selector.unregister(worker.ready_fd)
            os.close(worker.ready_fd)
            worker.ready_fd = None

    def _read_pipe(self, worker: _Worker) -> None:
        assert worker.ready_fd is not None
        try:
            chunk = os.read(worker.ready_fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._close_pipe(worker)
            return
        worker.buffer += chunk
        while b"\n" in worker.buffer:
            line, worker.buffer = worker.buffer.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("ready"):
                worker.ready = True
                _log(f"worker pid {worker.proc.pid} (generation {worker.generation}) is ready")
            elif message.get("error"):
                worker.error = str(message["error"])

    def _terminate(self, workers: list[_Worker], sig: int = signal.SIGTERM) -> None:
        for worker in workers:
            if worker.proc.poll() is None:
                try:
                    worker.proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _wait_all(self, workers: list[_Worker], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                worker.proc.wait(remaining)
            except subprocess.TimeoutExpired:
                _log(f"worker pid {worker.proc.pid} did not stop in time; killing it")
                worker.proc.kill()
                worker.proc.wait()
            self._close_pipe(worker)

    @staticmethod
    def _failure_text(worker: _Worker) -> str:
        code = worker.proc.returncode
        if worker.error:
            return worker.error
        return f"Worker pid {worker.proc.pid} exited with code {code} before it was ready; see the log."

    # -- main loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Bind, start the first generation, serve until SIGTERM/SIGINT.

        Returns:
            int: The process exit code (see the module docstring).
        """
        self.write_status()
        try:
            spec = load_spec(self.settings)
        except ConfigError as exc:
            return self._fail(str(exc), EXIT_CONFIG)
        try:
            self.sock = bind_socket(self.settings.host, self.settings.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return self._fail(
                    f"Port {self.settings.port} on {self.settings.host} is already in use; choose another "
                    "port (--port) or stop what is using it.",
                    EXIT_PORT_TAKEN,
                )
            return self._fail(f"Cannot bind {self.settings.host}:{self.settings.port}: {exc}", EXIT_PORT_TAKEN)
        self.port = self.sock.getsockname()[1]
        wake_r = self._install_signals()
        _log(f"scoring server on http://{self.settings.host}:{self.port} (supervisor pid {os.getpid()})")
        self.current = self._start_generation(spec)
        self.write_status()
        try:
            return self._loop(wake_r)
        finally:
            self.sock.close()

    def _fail(self, message: str, code: int) -> int:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        self.state, self.error = "Failed", message
        self.write_status()
        return code

    def _loop(self, wake_r: int) -> int:
        assert self.current is not None
        while True:
            for key, _ in self.selector.select(timeout=1.0):
                if key.data is None:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._read_pipe(key.data)
            if self.stop_requested:
                return self._shutdown()
            changed = self._reap()
            if self.state == "Transitioning":
                failed = [w for w in self.current.workers if w.proc.poll() is not None and not w.ready]
                if failed:
                    return self._initial_failure(failed[0])
                if self.current.all_ready():
                    self.state = "Healthy"
                    changed = True
            else:
                changed |= self._respawn_due()
                if self.reload_requested and self.pending is None:
                    self.reload_requested = False
                    changed |= self._begin_reload()
                if self.pending is not None:
                    changed |= self._advance_reload()
            if changed:
                self.write_status()

    def _initial_failure(self, worker: _Worker) -> int:
        self._drain(worker)
        message = self._failure_text(worker)
        assert self.current is not None
        others = [w for w in self.current.workers if w is not worker]
        self._terminate(others)
        self._wait_all(self.current.workers, 10.0)
        _log(f"worker pid {worker.proc.pid} failed to start; the server stops")
        self.state, self.error = "Failed", message
        self.write_status()
        return EXIT_INIT_FAILED

    def _drain(self, worker: _Worker) -> None:
        """Read what a dead worker left in its pipe (its error report)."""
        while worker.ready_fd is not None:
            self._read_pipe(worker)

    def _reap(self) -> bool:
        """Handle workers that exited; returns True when the status changed."""
        changed = False
        for worker in list(self.retiring):
            if worker.proc.poll() is not None:
                self._close_pipe(worker)
                self.retiring.remove(worker)
                _log(f"old worker pid {worker.proc.pid} exited ({worker.proc.returncode})")
        if self.state != "Healthy" or self.current is None:
            return changed
        for worker in self.current.workers:
            if worker.proc.poll() is None:
                continue
            self._drain(worker)
            if worker.slot in self.respawn_at:
                continue
            if worker.ready:
                _log(f"worker pid {worker.proc.pid} died (exit {worker.proc.returncode}); respawning it")
                self.respawn_delay[worker.slot] = 0.0
            else:
                delay = min(_RESPAWN_BACKOFF_MAX_S, max(1.0, 2 * self.respawn_delay.get(worker.slot, 0.5)))
                self.respawn_delay[worker.slot] = delay
                self.error = self._failure_text(worker)
                _log(f"respawned worker pid {worker.proc.pid} failed to start; retrying in {delay:.0f} s")
                changed = True
            self.respawn_at[worker.slot] = time.monotonic() + self.respawn_delay[worker.slot]
        return changed

    def _respawn_due(self) -> bool:
        assert self.current is not None
        changed = False
        now = time.monotonic()
        for slot, when in list(self.respawn_at.items()):
            if when > now:
                continue
            del self.respawn_at[slot]
            for index, worker in enumerate(self.current.workers):
                if worker.slot == slot and worker.proc.poll() is not None:
                    self._close_pipe(worker)
                    self.current.workers[index] = self._spawn(self.current, slot)
                    changed = True
        return changed

    def _begin_reload(self) -> bool:
        _log("SIGHUP: starting a new generation of workers")
        try:
            spec = load_spec(self.settings)
        except ConfigError as exc:
            self.last_reload = ReloadReport(self.next_generation, ok=False, error=str(exc))
            self.next_generation += 1
            _log(f"reload failed: {exc}")
            return True
        self.pending = self._start_generation(spec)
        return False

    def _advance_reload(self) -> bool:
        pending = self.pending
        assert pending is not None and self.current is not None
        failed = [w for w in pending.workers if w.proc.poll() is not None and not w.ready]
        if failed:
            self._drain(failed[0])
            message = self._failure_text(failed[0])
            self._terminate(pending.workers)
            self._wait_all(pending.workers, 10.0)
            self.last_reload = ReloadReport(pending.number, ok=False, error=message)
            self.pending = None
            _log(f"reload to generation {pending.number} failed; generation {self.current.number} keeps serving")
            return True
        if not pending.all_ready():
            return False
        old = self.current
        self._terminate(old.workers)
        self.retiring.extend(old.workers)
        self.current, self.pending = pending, None
        self.respawn_at.clear()
        self.respawn_delay.clear()
        self.error = None
        self.last_reload = ReloadReport(pending.number, ok=True)
        _log(f"generation {pending.number} is serving; generation {old.number} is finishing its requests")
        return True

    def _shutdown(self) -> int:
        _log("stopping: workers finish their in-flight requests")
        workers = list(self.retiring)
        if self.current is not None:
            workers += self.current.workers
        if self.pending is not None:
            workers += self.pending.workers
        self._terminate(workers)
        self._wait_all(workers, self.grace_s)
        _log("stopped")
        return EXIT_OK


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse the command line and run the supervisor (``python -m jupyter_mldeploy.server``).

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).
        prog: Program name for ``--help`` and usage errors.

    Returns:
        int: The exit code.
    """
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve_settings(args)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_CONFIG
    return Supervisor(settings).run()
