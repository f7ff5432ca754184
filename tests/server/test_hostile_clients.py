"""Clients that half-close, never finish a request, or send over-large headers (issue #19, item 6 and hardening).

Raw sockets against a real server: what an HTTP library would hide (a half-close, a request cut short) is
exactly what is tested here.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from server_harness import ServeFactory, Server

SLOW_SCORE = """
import time

def init():
    pass

def run(raw_data):
    time.sleep(0.2)   # long enough to stay on the run thread
    return {"echo": raw_data}
"""

QUICK_SCORE = """
def init():
    pass

def run(raw_data):
    return {"echo": raw_data}
"""

REQUEST = b'POST /score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket, limit_s: float = 10.0) -> bytes:
    """Read until the server closes the connection (or ``limit_s`` passes)."""
    sock.settimeout(limit_s)
    chunks = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_json(raw: bytes) -> tuple[int, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


@pytest.mark.parametrize("inline_run_ms", ["0", "2"])
def test_half_closed_request_gets_its_answer(serve: ServeFactory, inline_run_ms: str) -> None:
    server = serve(SLOW_SCORE, "--inline-run-ms", inline_run_ms)
    for _ in range(3):
        with _connect(server) as sock:
            sock.sendall(REQUEST)
            sock.shutdown(socket.SHUT_WR)      # the client is done sending, still reading
            raw = _read_all(sock)
        assert raw.startswith(b"HTTP/1.1 200"), (raw, server.log())
        assert _status_and_json(raw) == (200, {"echo": '{"a":1}'})


def test_half_close_of_a_quick_script_and_of_pipelined_requests(serve: ServeFactory) -> None:
    server = serve(QUICK_SCORE)
    with _connect(server) as sock:
        sock.sendall(REQUEST + REQUEST)
        sock.shutdown(socket.SHUT_WR)
        raw = _read_all(sock)
    assert raw.count(b"HTTP/1.1 200") == 2, raw


def test_headers_that_never_complete_are_cut_off(serve: ServeFactory) -> None:
    server = serve(QUICK_SCORE, env={"SCORING_HEADER_TIMEOUT_MS": "500"})
    sockets = [_connect(server) for _ in range(120)]
    try:
        for index, sock in enumerate(sockets):
            # a third send nothing, a third stop inside the headers, a third stop inside the body
            if index % 3 == 1:
                sock.sendall(b"POST /score HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            elif index % 3 == 2:
                sock.sendall(b"POST /score HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"a\":")
        start = time.monotonic()
        deadline = start + 5
        answers = [_read_all(sock, limit_s=max(0.05, deadline - time.monotonic())) for sock in sockets]
        elapsed = time.monotonic() - start
    finally:
        for sock in sockets:
            sock.close()
    assert elapsed < 5, elapsed
    for index, raw in enumerate(answers):
        if index % 3 == 0:
            assert raw in (b"", ) or raw.startswith(b"HTTP/1.1 408"), raw
        else:
            status, body = _status_and_json(raw)
            assert status == 408 and "SCORING_HEADER_TIMEOUT_MS" in body["message"], raw  # type: ignore[index]
    # The server is still fine afterwards.
    with _connect(server) as sock:
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        assert _read_all(sock).startswith(b"HTTP/1.1 200")


def test_slow_but_steady_client_is_not_cut_off(serve: ServeFactory) -> None:
    server = serve(QUICK_SCORE, env={"SCORING_HEADER_TIMEOUT_MS": "1000"})
    with _connect(server) as sock:
        for index in range(0, len(REQUEST), 20):   # the headers arrive over about 0.75 s, under the limit
            sock.sendall(REQUEST[index:index + 20])
            time.sleep(0.15)
        raw = sock.recv(65536)
    assert raw.startswith(b"HTTP/1.1 200"), raw


@pytest.mark.parametrize(("limit", "size"), [(None, 100_000), (None, 4_000_000), ("2048", 4_000)])
def test_over_large_headers_answer_431(serve: ServeFactory, limit: str | None, size: int) -> None:
    server = serve(QUICK_SCORE, env={"SCORING_MAX_HEADER_BYTES": limit} if limit else None)
    with _connect(server) as sock:
        head = b"POST /score HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * size + b"\r\nContent-Length: 2\r\n\r\n{}"
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all
        raw = _read_all(sock)
    status, body = _status_and_json(raw)
    assert status == 431, raw[:200]
    assert "SCORING_MAX_HEADER_BYTES" in body["message"]  # type: ignore[index]


def test_headers_under_the_limit_are_served(serve: ServeFactory) -> None:
    server = serve(QUICK_SCORE, env={"SCORING_MAX_HEADER_BYTES": "2048"})
    with _connect(server) as sock:
        sock.sendall(REQUEST.replace(b"Host: test\r\n", b"Host: test\r\nX-Pad: " + b"p" * 1500 + b"\r\n"))
        sock.shutdown(socket.SHUT_WR)
        assert _read_all(sock).startswith(b"HTTP/1.1 200")
