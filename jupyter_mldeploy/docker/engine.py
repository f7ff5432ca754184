"""Connecting to a Docker engine, failing fast with a clear message when none answers.

The engine is found as the ``docker`` CLI finds it (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``,
``DOCKER_CERT_PATH``, else the local socket), via :func:`docker.from_env`. The first contact (which also
negotiates the API version) uses a short timeout (``MLDEPLOY_DOCKER_PING_TIMEOUT``, 5 s), so a dead socket
or an unreachable host is reported in seconds instead of hanging a notebook cell.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jupyter_mldeploy import settings
from jupyter_mldeploy.errors import DeploymentError, MLDeployError

if TYPE_CHECKING:
    import docker

#: Timeout (seconds) of ordinary API calls once the engine answered; builds stream and are not bound by it.
API_TIMEOUT_SEC = 600

_DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def engine_address() -> str:
    """Return where the engine is looked for: ``$DOCKER_HOST`` or the default local socket."""
    return os.environ.get("DOCKER_HOST") or _DEFAULT_SOCKET


def docker_client(error: type[MLDeployError] = DeploymentError) -> docker.DockerClient:
    """Return a client of the Docker engine, after checking that it answers.

    Args:
        error: The error type to raise when no engine answers (``DeploymentError`` for deployments,
            ``EnvironmentBuildError`` for image builds).

    Returns:
        docker.DockerClient: Connected, with the API version negotiated.

    Raises:
        MLDeployError: Of type ``error``, naming the address, when no engine answers within
            ``MLDEPLOY_DOCKER_PING_TIMEOUT`` seconds, or when the ``docker`` package is missing.
    """
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a dependency; kept for trimmed installs
        raise error("The Docker runtime needs the 'docker' Python package: pip install docker.") from None
    timeout = settings.MLDEPLOY_DOCKER_PING_TIMEOUT.get() or 5.0
    address = engine_address()
    try:
        probe = docker.from_env(timeout=int(max(1, timeout)))
        probe.ping()
        version = probe.api.api_version
        probe.close()
        return docker.from_env(timeout=API_TIMEOUT_SEC, version=version)
    except (DockerException, OSError) as exc:
        raise error(
            f"No Docker engine answers at {address} ({_reason(exc)}): start Docker or use runtime='process' "
            "(to start one: `sudo systemctl start docker`, or `scripts/docker-setup` in a checkout)."
        ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def image_exists(client: docker.DockerClient, name: str) -> bool:
    """Return True when ``name`` (``repo:tag`` or an id) is present in the engine's local image store."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(name)
    except ImageNotFound:
        return False
    return True
