"""A local service's keys (v1 key auth): generated, stored owner-only in the service folder, handed to the server.

The keys live in ``deployments/<service>/keys/keys.json`` (folder ``0700``, file ``0600``), never in
``service.json``, ``deploymentconfig.json`` as saved with the record, the environment, a log or a listing.
The server gets the file's path in ``MLDEPLOY_KEYS_FILE`` (:mod:`jupyter_mldeploy.server.keys`): the process
target gives the host path, the Docker target the path inside its read-only mount of the service folder,
the Kubernetes target the path inside the pod's mount of the keys Secret (whose one item holds
:func:`keys_document`). A key is changed by replacing the file atomically; the server re-reads it on the next
request.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.server.keys import KEYS_FILE_VARIABLE, RECHECK_S

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.deploy.config import DeploymentConfiguration

KEYS_DIRNAME = "keys"
KEYS_FILENAME = "keys.json"
#: Random bytes in a generated key (v1 AKS keys are 32 bytes, base64).
KEY_BYTES = 32
# RFC 6750's b64token: what may follow "Bearer " in an Authorization header.
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
_MIN_LENGTH = 16


def generate_key() -> str:
    """Return a new key: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(KEY_BYTES)


def check_key(value: object, name: str) -> str:
    """Return ``value`` when it can be a key; never echo a bad key back (it may be a real secret).

    Raises:
        InvalidArgument: When it is not a string of 16+ characters a Bearer header can carry.
    """
    if not isinstance(value, str) or len(value) < _MIN_LENGTH or not _TOKEN.match(value):
        raise InvalidArgument(
            f"Invalid {name}: use a string of at least {_MIN_LENGTH} characters from A-Z a-z 0-9 - . _ ~ + / "
            "(trailing '=' allowed), or leave it out to have one generated."
        )
    return value


def keys_document(primary: str, secondary: str) -> str:
    """The keys file's content, as the server reads it: ``{"primaryKey": ..., "secondaryKey": ...}``."""
    return json.dumps({"primaryKey": primary, "secondaryKey": secondary})


def regenerated(service_folder: Path, service: str, key: str, set_key: str | None) -> tuple[str, str]:
    """The service's keys with one replaced, as v1 ``regen_key(key, set_key)``: by ``set_key``, else a new key.

    The arguments are checked before the keys file is read, so bad input gets its own error even on a service
    without key auth. Every target's ``regen_key`` goes through here; each then publishes the result its way.

    Args:
        service_folder: ``deployments/<service>``.
        service: The service name (for the error of a service without keys).
        key: ``"Primary"`` or ``"Secondary"``.
        set_key: The new value (16+ URL-safe characters); None generates one (32 random bytes).

    Returns:
        ``(primary, secondary)`` after the change (nothing is written).

    Raises:
        InvalidArgument: For another ``key`` name or a bad ``set_key``.
        DeploymentError: When the service has no keys file (key auth off).
    """
    if key not in ("Primary", "Secondary"):
        raise InvalidArgument(f"Invalid key {key!r}: use 'Primary' or 'Secondary'.")
    new = check_key(set_key, "set_key") if set_key is not None else generate_key()
    primary, secondary = read_keys(service_folder, service)
    return (new, secondary) if key == "Primary" else (primary, new)


def keys_file(service_folder: Path) -> Path:
    """``<service folder>/keys/keys.json``."""
    return service_folder / KEYS_DIRNAME / KEYS_FILENAME


def write_keys(service_folder: Path, primary: str, secondary: str) -> None:
    """Store both keys owner-only, replacing the file atomically (a reader sees the old or the new one).

    Args:
        service_folder: ``deployments/<service>``.
        primary: The primary key.
        secondary: The secondary key.
    """
    folder = service_folder / KEYS_DIRNAME
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    tmp = folder / f".{KEYS_FILENAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(keys_document(primary, secondary))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / KEYS_FILENAME)


def publish_keys(service_folder: Path, primary: str, secondary: str) -> None:
    """Replace the keys of a running service (process or Docker target) and return once they are in force.

    The server looks at its keys file at least every ``RECHECK_S`` seconds (a key it does not know makes it
    look at once; see :mod:`jupyter_mldeploy.server.keys`); waiting that long after the atomic replace means
    that when this returns, every worker refuses the replaced key and accepts the new one.

    Args:
        service_folder: ``deployments/<service>``.
        primary: The primary key.
        secondary: The secondary key.
    """
    write_keys(service_folder, primary, secondary)
    time.sleep(RECHECK_S)


def read_keys(service_folder: Path, service: str) -> tuple[str, str]:
    """Return ``(primary, secondary)``.

    Raises:
        DeploymentError: When the service has no keys file (key auth off, or a half-made service).
    """
    path = keys_file(service_folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["primaryKey"]), str(data["secondaryKey"])
    except FileNotFoundError:
        raise DeploymentError(
            f"Service {service!r} has no keys: key auth is off. Redeploy or update it with "
            "deploy_configuration(auth_enabled=True) to turn it on."
        ) from None
    except (ValueError, KeyError, TypeError):
        raise DeploymentError(f"The keys file of service {service!r} ({path}) is damaged; regen_key('Primary') "
                              "and regen_key('Secondary') write a new one.") from None


def ensure_keys(service_folder: Path, config: DeploymentConfiguration) -> None:
    """Write the keys of a configuration with ``auth_enabled``: the given ones, else the existing, else new.

    Args:
        service_folder: ``deployments/<service>`` (exists).
        config: The deployment configuration (its ``keys`` are ``{"primaryKey", "secondaryKey"}`` or None).
    """
    if not config.auth_enabled:
        return
    given = config.keys or {}
    existing: tuple[str | None, str | None] = (None, None)
    path = keys_file(service_folder)
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        existing = (data.get("primaryKey"), data.get("secondaryKey"))
    primary = given.get("primaryKey") or existing[0] or generate_key()
    secondary = given.get("secondaryKey") or existing[1] or generate_key()
    if (primary, secondary) != existing:
        write_keys(service_folder, primary, secondary)


def keys_variables(config: DeploymentConfiguration, service_folder: Path,
                   place: Callable[[Path], str] | None = None) -> dict[str, str]:
    """The server's ``MLDEPLOY_KEYS_FILE`` for a configuration with ``auth_enabled`` (else nothing).

    Args:
        config: The deployment configuration.
        service_folder: ``deployments/<service>``.
        place: Maps a host path to where the server sees it (the Docker target's mount); default: itself.
    """
    if not config.auth_enabled:
        return {}
    path = keys_file(service_folder)
    return {KEYS_FILE_VARIABLE: place(path) if place is not None else str(path)}
