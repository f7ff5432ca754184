"""The process runtime: the scoring server as a detached local process.

``python -m jupyter_mldeploy.server`` (a small supervisor that binds the port and runs worker processes) is
started in its own session (``start_new_session=True``): it leads its own process group, gets no signal
when a notebook cell is interrupted or the kernel restarts, and its workers can be stopped together with
``killpg``. Its stdin is closed and its stdout/stderr go to the service's ``server.log``.

The supervisor is driven through files and signals only, so any process (a new kernel, the CLI) can drive
a service it did not start:

* ``spec.json`` (written here): ``{"python", "cwd", "env", "worker_count"}``, re-read on ``SIGHUP``;
* ``status.json`` (written by the server): ``state``, ``generation``, ``workers``, ``error``,
  ``last_reload``;
* ``SIGHUP``: start a new worker generation from ``spec.json``, then stop the old one (zero downtime; the
  old keeps serving if the new ``init()`` fails); ``SIGTERM``: graceful exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from jupyter_mldeploy.deploy.state import read_json, write_json_atomic

SERVER_MODULE = "jupyter_mldeploy.server"
#: Exit code of the supervisor when its port is taken.
EXIT_PORT_TAKEN = 4
#: Exit code of the supervisor when ``init()`` failed.
EXIT_INIT_FAILED = 3
#: Variables of the calling interpreter that would point another interpreter at the wrong packages.
_INTERPRETER_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX", "__PYVENV_LAUNCHER__")

# Popen objects of servers started by this process, kept so their exit status is collected (no zombie
# that psutil would report as alive) and so no ResourceWarning fires when a handle goes away.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerFiles:
    """The files of one service's folder that the runtime reads and writes.

    Attributes:
        folder: ``deployments/<service>/``.
        status_name: File name of the supervisor's status file.
    """

    folder: Path
    status_name: str = "status.json"

    @property
    def spec(self) -> Path:
        """``spec.json``: what the supervisor runs (re-read on SIGHUP)."""
        return self.folder / "spec.json"

    @property
    def status(self) -> Path:
        """``status.json``: written by the supervisor."""
        return self.folder / self.status_name

    @property
    def log(self) -> Path:
        """``server.log``: the supervisor's and workers' output."""
        return self.folder / "server.log"


@dataclass(frozen=True)
class StartedProcess:
    """A started supervisor.

    Attributes:
        pid: Its pid (also its process group id).
        create_time: ``psutil`` create time, identifying it against pid reuse.
        log_offset: Size of ``server.log`` before it started: where its output begins.
    """

    pid: int
    create_time: float
    log_offset: int


def write_spec(files: ServerFiles, python: str, cwd: Path, env: dict[str, str], worker_count: int) -> None:
    """Write ``spec.json`` atomically (the supervisor may re-read it at any moment)."""
    write_json_atomic(files.spec, {"python": python, "cwd": str(cwd), "env": env, "worker_count": worker_count})


def _child_environment(python: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Compare without resolving symlinks: a virtual environment's python links to its base interpreter.
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        for name in _INTERPRETER_VARIABLES:
            env.pop(name, None)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(
    files: ServerFiles,
    python: str,
    cwd: Path,
    entry_script: Path,
    host: str,
    port: int,
    env: dict[str, str],
) -> StartedProcess:
    """Start the supervisor detached; return as soon as the process exists (it is not healthy yet).

    ``spec.json`` must already be written; the supervisor reads it for its workers.

    Args:
        files: The service's files.
        python: Interpreter to run in (holds the scoring server package and its requirements).
        cwd: Working folder (the app root).
        entry_script: The entry script (absolute).
        host: Interface to bind.
        port: Port to bind.
        env: Variables for the scoring process (``AZUREML_MODEL_DIR`` ...), on top of this process's.

    Returns:
        StartedProcess: pid, create time and where its log output starts.

    Raises:
        OSError: When the interpreter cannot be executed.
    """
    files.log.parent.mkdir(parents=True, exist_ok=True)
    offset = files.log.stat().st_size if files.log.exists() else 0
    files.status.unlink(missing_ok=True)
    command = [
        python, "-m", SERVER_MODULE,
        "--entry_script", str(entry_script),
        "--port", str(port),
        "--host", host,
        "--status-file", str(files.status),
        "--spec-file", str(files.spec),
    ]
    with open(files.log, "ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=str(cwd),
            env=_child_environment(python, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:  # exited at once; still ours, identified by the Popen handle
        create_time = 0.0
    return StartedProcess(pid=proc.pid, create_time=create_time, log_offset=offset)


def exit_code(pid: int) -> int | None:
    """Return the exit code of a server this process started and that has exited, else None."""
    proc = _CHILDREN.get(pid)
    if proc is None:
        return None
    code = proc.poll()
    return code


def is_running(pid: int | None, create_time: float | None) -> bool:
    """Return True when ``pid`` is alive and is the process recorded (same create time, not a zombie)."""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        process = psutil.Process(pid)
        if create_time and abs(process.create_time() - create_time) > 0.5:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_members(pgid: int | None, create_time: float | None) -> list[psutil.Process]:
    """Return the live scoring-server processes of process group ``pgid`` started since ``create_time``.

    Works after the leader died (workers it left behind are still found), and never returns a process of
    another program that reuses the number.
    """
    if not pgid:
        return []
    members = []
    for process in psutil.process_iter(["pid", "cmdline", "create_time"]):
        try:
            if os.getpgid(process.pid) != pgid:
                continue
            if create_time and process.info["create_time"] + 0.5 < create_time:
                continue
            if SERVER_MODULE not in " ".join(process.info["cmdline"] or []):
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
        members.append(process)
    return members


def stop_server(pid: int | None, create_time: float | None, timeout: float = 10.0) -> None:
    """Stop a supervisor and its workers: SIGTERM to the group, wait, SIGKILL what is left after ``timeout``.

    Safe to call when the process is already gone (does nothing), or when only its workers are left.

    Args:
        pid: The supervisor's pid (its process group id).
        create_time: Its recorded create time.
        timeout: Seconds to wait for a graceful exit before SIGKILL.
    """
    members = group_members(pid, create_time)
    if is_running(pid, create_time):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            member.terminate()
    _gone, alive = psutil.wait_procs(members, timeout=timeout) if members else ([], [])
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            member.kill()
    if alive:
        psutil.wait_procs(alive, timeout=5)
    if pid is not None:
        proc = _CHILDREN.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)


def identify(pids: list[int]) -> list[list[float]]:
    """Return ``[pid, create_time]`` for each live pid, so a later wait is not fooled by pid reuse."""
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ValueError, TypeError):
            found.append([int(pid), psutil.Process(int(pid)).create_time()])
    return found


def wait_for_exit(identified: list[list[float]], timeout: float) -> bool:
    """Wait until every ``[pid, create_time]`` process has exited; return False when some remain."""
    return wait_until(
        lambda: not any(is_running(int(pid), create_time) for pid, create_time in identified), timeout, 0.05
    )


def send_reload(pid: int) -> None:
    """Ask the supervisor to start a new worker generation from ``spec.json`` (SIGHUP)."""
    os.kill(pid, signal.SIGHUP)


def read_status(files: ServerFiles) -> dict[str, Any] | None:
    """Return the supervisor's ``status.json`` content, or None when not written yet."""
    data = read_json(files.status)
    return data if isinstance(data, dict) else None


def probe_health(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True when ``GET /`` on the service answers 200 (liveness)."""
    address = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        response = requests.get(f"http://{address}:{port}/", timeout=timeout)
    except requests.RequestException:
        return False
    return response.status_code == 200


def read_log(files: ServerFiles, offset: int = 0) -> str:
    """Return ``server.log`` from byte ``offset`` on (decoded leniently), or "" when missing."""
    try:
        with open(files.log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
