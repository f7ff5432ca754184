"""Fixtures that start real scoring servers on free loopback ports (see server_harness.py).

Teardown stops each supervisor with SIGTERM (then SIGKILL) and kills any worker that outlived it, by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from server_harness import ServeFactory, Server, start_server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """``serve(source, *args, env=..., wait=True, files=...)`` starts a server for score.py ``source``."""
    servers: list[Server] = []

    def factory(source: str | None, *args: str, env: dict[str, str] | None = None, wait: bool = True,
                files: dict[str, str] | None = None, command: list[str] | None = None) -> Server:
        return start_server(servers, tmp_path, source, args, env, wait, files, command)

    yield factory
    for server in servers:
        server.cleanup()


@pytest.fixture(scope="module")
def serve_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeFactory]:
    """Like :func:`serve`, but the servers live for the whole test module."""
    servers: list[Server] = []
    base = tmp_path_factory.mktemp("servers")

    def factory(source: str | None, *args: str, env: dict[str, str] | None = None, wait: bool = True,
                files: dict[str, str] | None = None, command: list[str] | None = None) -> Server:
        return start_server(servers, base, source, args, env, wait, files, command)

    yield factory
    for server in servers:
        server.cleanup()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
