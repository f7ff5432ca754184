"""A loky driver that stays warm for the next job: ``keep_warm``, the hand-off socket and the fingerprint.

Starting a driver and its loky workers (a new interpreter each, importing pandas and the script's
libraries) costs more than scoring a million rows. joblib keeps its loky workers alive between calls for
the same reason (loky's reusable executor, 300 s idle timeout); a batch driver does the same while staying
a detached process (a kernel restart does not stop a job, a SIGKILL loses nothing the journal holds):

* After a loky job ends (not when it was cancelled, a worker died, or tries of it were left running),
  its driver keeps its executor for the job's ``keep_warm`` seconds and listens on a Unix socket named
  after (workspace, interpreter, worker count): :func:`socket_path`, in ``/tmp/mldeploy-<uid>/`` (mode
  0700; a Unix socket path is limited to 108 bytes).
* ``submit`` and ``resume`` first offer the job to that socket (:func:`hand_off`). The warm driver replies
  with its pid; the submitter records that pid in ``driver.json`` (as it does for a driver it spawns) and
  says ``go``; the warm driver runs the job only when ``driver.json`` names it, so exactly one driver runs
  a job whatever side gives up half-way. No socket, a refusal, a stale socket file or no reply within
  :data:`HANDOFF_TIMEOUT_S`: the submitter spawns a driver as before.
* A warm driver serves one job at a time: it stops listening while it runs one (a second submit spawns its
  own driver), and a driver that finds another one listening exits after its job.
* The warm workers are reused only when the new job's :func:`fingerprint` equals the last job's (same
  script and source files, ``environment_variables`` and ``logging_level``); otherwise the driver starts a
  fresh executor (still saving its own start). A reused worker drops the previous job's script and restores
  the environment before loading the new one (:mod:`~jupyter_mldeploy.batch.worker`).
* The idle driver exits when ``keep_warm`` runs out, when its workspace folder is gone, or on ``SIGTERM``;
  its workers exit with it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import socket
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_mldeploy.batch.journal import APP, JobFolder
from jupyter_mldeploy.errors import InvalidArgument

#: The environment variable giving ``keep_warm`` when the caller passes None.
KEEP_WARM_ENV = "MLDEPLOY_BATCH_KEEP_WARM"
#: Seconds a driver stays warm by default: loky's reusable executor's idle timeout.
DEFAULT_KEEP_WARM_S = 300.0
#: The longest ``keep_warm`` accepted (a day).
MAX_KEEP_WARM_S = 86400.0
#: Seconds a submitter waits for a warm driver's reply before spawning a driver.
HANDOFF_TIMEOUT_S = 1.0
#: Seconds a warm driver waits for the submitter's ``go`` after replying.
GO_TIMEOUT_S = 5.0
#: Seconds between two checks of an idle driver (idle time, workspace folder, SIGTERM).
CHECK_S = 1.0
#: The app folder's models folder: not part of the fingerprint (``init()`` loads them again every job).
_MODELS_DIRNAME = "azureml-models"


def resolve_keep_warm(value: Any) -> float:
    """The seconds a loky driver stays warm after a job.

    Args:
        value: Seconds (0 exits at once, as before warm drivers); None reads ``MLDEPLOY_BATCH_KEEP_WARM``,
            else :data:`DEFAULT_KEEP_WARM_S`.

    Returns:
        float: Seconds, from 0 to :data:`MAX_KEEP_WARM_S`.

    Raises:
        InvalidArgument: Not a number, negative, infinite or above the maximum (naming the range).
    """
    where = "keep_warm"
    if value is None:
        raw = os.environ.get(KEEP_WARM_ENV)
        if raw is None or not raw.strip():
            return DEFAULT_KEEP_WARM_S
        where = f"{KEEP_WARM_ENV}={raw!r}"
        try:
            value = float(raw)
        except ValueError:
            value = raw
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
            0 <= value <= MAX_KEEP_WARM_S):
        raise InvalidArgument(
            f"{where}: keep_warm must be a number of seconds from 0 (the driver exits after the job) to "
            f"{MAX_KEEP_WARM_S:g}, not {value!r}."
        )
    return float(value)


def socket_path(workspace_path: Path, workers: int) -> Path:
    """Where the warm driver of a workspace, this interpreter and a worker count listens.

    Args:
        workspace_path: The workspace folder (resolved here).
        workers: The loky worker count.

    Returns:
        Path: ``/tmp/mldeploy-<uid>/<hash>.sock`` (short: a Unix socket path holds at most 108 bytes).
    """
    key = json.dumps([str(workspace_path.resolve()), sys.executable, int(workers)])
    return Path(f"/tmp/mldeploy-{os.getuid()}") / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sock"


def _private_folder(folder: Path) -> bool:
    """Create ``folder`` with mode 0700 when missing; True when it is a real folder of this user, 0700."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700


def _read_line(conn: socket.socket, limit: int = 65536) -> bytes:
    """Read up to the first newline (or EOF); raises ``socket.timeout`` as the socket's timeout says."""
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def hand_off(workspace_path: Path, workers: int, folder: JobFolder, record_driver: Callable[[int], None]) -> int | None:
    """Offer a job to the warm driver of its workspace; return that driver's pid, or None to spawn one.

    Args:
        workspace_path: The job's workspace.
        workers: The job's loky worker count.
        folder: The job folder (its record written, ``driverStarts`` set).
        record_driver: Writes ``driver.json`` naming the given pid; called before ``go`` is sent.

    Returns:
        int | None: The warm driver's pid when it took the job; None when there is no warm driver, it
        refused, or it did not reply within :data:`HANDOFF_TIMEOUT_S` (a stale socket file included).
    """
    path = socket_path(workspace_path, workers)
    if not path.exists() or not _private_folder(path.parent):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(HANDOFF_TIMEOUT_S)
        try:
            conn.connect(str(path))
            conn.sendall(json.dumps({"job": str(folder.path)}).encode("utf-8") + b"\n")
            reply = json.loads(_read_line(conn) or b"{}")
        except (OSError, ValueError):
            return None
        pid = reply.get("pid") if isinstance(reply, dict) else None
        if not isinstance(pid, int):
            return None
        # From here the job is this driver's: driver.json names it before it may start (see module docs).
        record_driver(pid)
        try:
            conn.sendall(b"go\n")
        except OSError:
            pass  # the warm driver reads driver.json when the go does not arrive
        return pid


def fingerprint(folder: JobFolder, record: dict[str, Any]) -> str:
    """What must be equal for a job to run on the last job's warm workers.

    A sha256 of the app folder's files except its models (the entry script and the source directory: a
    module the script imported stays imported in a worker), the job's ``environment_variables`` and its
    ``logging_level`` (set once per worker process).

    Args:
        folder: The job folder.
        record: Its record.

    Returns:
        str: The hex digest.
    """
    digest = hashlib.sha256()
    root = folder.path / APP
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != _MODELS_DIRNAME):
        digest.update(str(path.relative_to(root)).encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    config = record.get("config", {})
    digest.update(json.dumps([config.get("environment_variables") or {}, config.get("logging_level")],
                             sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


class WarmListener:
    """The socket an idle driver waits for its next job on.

    Args:
        path: :func:`socket_path` of the driver's workspace and worker count.
        workspace_path: The driver's workspace: jobs of another one are refused, and the driver stops
            waiting when this folder is gone.
    """

    def __init__(self, path: Path, workspace_path: Path) -> None:
        self.path = path
        self.workspace_path = workspace_path.resolve()
        self._sock: socket.socket | None = None
        self._inode: int | None = None

    def bind(self) -> bool:
        """Start listening; False when another driver listens there (this one then exits after its job).

        A socket file nobody listens on (its driver was killed) is replaced.
        """
        if not _private_folder(self.path.parent):
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(2):
            try:
                sock.bind(str(self.path))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or self._someone_listens():
                    sock.close()
                    return False
                self.path.unlink(missing_ok=True)
        else:
            sock.close()
            return False
        sock.listen(8)
        sock.settimeout(CHECK_S)
        self._sock, self._inode = sock, os.stat(self.path).st_ino
        return True

    def _someone_listens(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(HANDOFF_TIMEOUT_S)
            try:
                probe.connect(str(self.path))
            except OSError:
                return False
            return True

    def wait_for_job(self, seconds: float, stopped: Callable[[], bool]) -> JobFolder | None:
        """Wait for a job handed off to this driver.

        Args:
            seconds: Idle time left (``keep_warm``).
            stopped: True when the driver must exit (``SIGTERM``).

        Returns:
            JobFolder | None: The job to run (``driver.json`` names this driver); None when the idle time ran
            out, the workspace folder is gone, or ``stopped()`` said so.
        """
        assert self._sock is not None, "bind() first"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stopped() and self.workspace_path.is_dir():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, InterruptedError):
                continue
            with conn:
                folder = self._take(conn)
            if folder is not None:
                return folder
        return None

    def _take(self, conn: socket.socket) -> JobFolder | None:
        """Reply to one offer; return the job when the submitter recorded this driver for it."""
        conn.settimeout(HANDOFF_TIMEOUT_S)
        try:
            request = json.loads(_read_line(conn) or b"{}")
            folder = JobFolder(Path(str(request["job"])).resolve())
            record = json.loads(folder.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no reply: the submitter spawns a driver
        if folder.workspace_path != self.workspace_path or record.get("backend") != "loky":
            with contextlib.suppress(OSError):
                conn.sendall(b'{"refused": "another workspace or backend"}\n')
            return None
        try:
            conn.sendall(json.dumps({"pid": os.getpid()}).encode("utf-8") + b"\n")
            conn.settimeout(GO_TIMEOUT_S)
            _read_line(conn)
        except OSError:
            pass  # no go: the job is this driver's only if the submitter recorded it in driver.json
        return folder if self._named_in(folder, record) else None

    @staticmethod
    def _named_in(folder: JobFolder, record: dict[str, Any]) -> bool:
        driver = folder.read_driver()
        return driver.get("pid") == os.getpid() and int(driver.get("start", 0)) == int(record.get("driverStarts", 1))

    def close(self) -> None:
        """Stop listening and remove the socket file (unless another driver's replaced it)."""
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
