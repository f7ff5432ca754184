"""Port checks before a deployment starts: the same bind the scoring server does, no stricter."""

from __future__ import annotations

import socket

import pytest

from jupyter_mldeploy.deploy.ports import ensure_port_free, free_port, validate_port
from jupyter_mldeploy.errors import Conflict, InvalidArgument


def _time_wait_port() -> int:
    """Leave a port whose only socket is a server-side connection in TIME_WAIT (the server closed first)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT once the client closes too
    client.recv(1)
    client.close()
    listener.close()
    return port


def test_port_left_in_time_wait_by_a_dead_server_is_free():
    port = _time_wait_port()
    # A plain bind without SO_REUSEADDR is refused while the TIME_WAIT entry lasts (60 s on Linux) ...
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as strict:
        with pytest.raises(OSError):
            strict.bind(("127.0.0.1", port))
    # ... but the scoring server binds with SO_REUSEADDR, so the port is free for it.
    ensure_port_free(port)


def test_listening_port_is_a_conflict_naming_port_and_holder():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(Conflict, match=rf"Port {port} on 127.0.0.1 is in use.*port=None"):
            ensure_port_free(port)


def test_free_port_is_free_and_validate_port_rejects_bad_values():
    ensure_port_free(free_port())
    for bad in (0, 70000, "5001", True, None):
        with pytest.raises(InvalidArgument, match="Invalid port"):
            validate_port(bad)
    assert validate_port(5001) == 5001
