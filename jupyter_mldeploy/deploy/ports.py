"""Choosing a free port and explaining a taken one.

``port=None`` asks the kernel for a free ephemeral port (bind to port 0). A given port is tried with a real
``bind`` before anything starts; when it is taken, the error names the port and, when the operating system
lets us see it, the process that holds it (pid, name and command line, from ``psutil.net_connections``).
"""

from __future__ import annotations

import errno
import socket

import psutil

from jupyter_mldeploy.errors import Conflict, InvalidArgument


def validate_port(port: object) -> int:
    """Return ``port`` as an int in 1..65535.

    Raises:
        InvalidArgument: For anything else.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidArgument(f"Invalid port {port!r}: use an integer from 1 to 65535, or None for a free port.")
    return port


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now (chosen by the kernel)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_holder(port: int) -> str | None:
    """Describe the process listening on ``port``: ``"pid 123 (python -m http.server 8000)"``.

    Returns:
        The description, or None when no listener is visible (another user's process without privileges,
        or a platform where ``net_connections`` needs root).
    """
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError, OSError):
        return None
    for conn in connections:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            if conn.pid is None:
                return "a process this user cannot see"
            try:
                proc = psutil.Process(conn.pid)
                cmdline = " ".join(proc.cmdline()) or proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return f"pid {conn.pid}"
            if len(cmdline) > 160:
                cmdline = cmdline[:157] + "..."
            return f"pid {conn.pid} ({cmdline})"
    return None


def ensure_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Check that ``port`` can be bound on ``host`` now, exactly as the scoring server will bind it.

    The server binds with ``SO_REUSEADDR`` and then listens (``server/supervisor.py``), so this check does the
    same: a port held only by closed connections in ``TIME_WAIT`` (left behind by a server that was just stopped
    or killed) is free, and a port another socket listens on is not.

    Args:
        port: The TCP port.
        host: The interface the service will bind (IPv4 or IPv6 literal, or a name).

    Raises:
        Conflict: When the port is taken; the message names the port, the holder when visible, and the fix.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            holder = port_holder(port)
            held = f" by {holder}" if holder else ""
            reason = "is in use" if exc.errno == errno.EADDRINUSE else "needs privileges to bind"
            raise Conflict(
                f"Port {port} on {host} {reason}{held}; choose another port, or port=None for a free one."
            ) from None
