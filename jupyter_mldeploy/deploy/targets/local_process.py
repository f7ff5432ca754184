"""Local OS processes of the process target: start the supervisor detached, find it, stop it.

``python -m jupyter_mldeploy.server`` is started in its own session (``start_new_session=True``): it leads its
own process group, gets no signal when a notebook cell is interrupted or the kernel restarts, and its workers
can be stopped together with ``killpg``. Its stdin is closed and its stdout/stderr go to the service's
``server.log``. Its command line names its status file (inside the service folder), so every server of a
service is findable from the workspace alone (:func:`servers_of`), even one whose pid was never recorded.
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

import psutil

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
    log_file: Path,
    status_file: Path,
    spec_file: Path,
    python: str,
    cwd: Path,
    entry_script: Path,
    host: str,
    port: int,
    env: dict[str, str],
) -> StartedProcess:
    """Start the supervisor detached; return as soon as the process exists (it is not healthy yet).

    The spec file must already be written; the supervisor reads it for its workers.

    Args:
        log_file: Where the supervisor's and workers' output is appended.
        status_file: The status file the supervisor writes (removed first).
        spec_file: The spec file it reads.
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
    log_file.parent.mkdir(parents=True, exist_ok=True)
    offset = log_file.stat().st_size if log_file.exists() else 0
    status_file.unlink(missing_ok=True)
    command = [
        python, "-m", SERVER_MODULE,
        "--entry_script", str(entry_script),
        "--port", str(port),
        "--host", host,
        "--status-file", str(status_file),
        "--spec-file", str(spec_file),
    ]
    with open(log_file, "ab") as log:
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
    alive = _wait_gone(members, timeout)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            member.kill()
    if alive:
        _wait_gone(alive, 5.0)
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
    deadline = time.monotonic() + timeout
    while any(is_running(int(pid), create_time) for pid, create_time in identified):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _gone(process: psutil.Process) -> bool:
    """True when ``process`` exited. A zombie has exited too: its parent (often another Python process, the
    one that deployed the service) merely has not collected its status yet, and may never do so."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process exited or is a zombie; return those still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = [p for p in processes if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if not _gone(p)]
    return alive


def servers_of(folder: Path) -> list[psutil.Process]:
    """Return every live supervisor whose status file lies in ``folder`` (a service folder).

    Finds strays no record names: a server started by a deploy that was killed before it recorded the pid.
    """
    marker = str(folder.resolve()) + os.sep
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if SERVER_MODULE not in cmdline or "--status-file" not in cmdline:
            continue
        index = cmdline.index("--status-file") + 1
        if index < len(cmdline) and os.path.abspath(cmdline[index]).startswith(marker) and not _gone(process):
            found.append(process)
    return found


def stop_processes(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    """Stop supervisors found by :func:`servers_of` with their process groups (SIGTERM, then SIGKILL)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            stop_server(process.pid, process.create_time(), timeout=timeout)


