"""Service keys: ``Authorization: Bearer <key>`` checked against the keys file, as v1 key auth.

The deploy layer writes the keys to an owner-only JSON file (``{"primaryKey": ..., "secondaryKey": ...}``)
and gives the server its path in ``MLDEPLOY_KEYS_FILE``; the keys themselves never pass through the
environment, the command line or a log. The file is replaced atomically when a key is regenerated; each
check compares the file's identity (inode, size, modification time) with the one read and re-reads it
when it changed, so a new key is in force from the next request, with no restart, while the other key
keeps working throughout. A keys file that is missing or unreadable refuses every key (fail closed).

Liveness and readiness routes stay open for probes (:data:`OPEN_PATHS`); everything that runs the model
needs a key. Keys are compared with :func:`hmac.compare_digest` (constant time), each against both keys.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Mapping

#: Environment variable holding the keys file's path; unset means the service has no key auth.
KEYS_FILE_VARIABLE = "MLDEPLOY_KEYS_FILE"
#: Routes that never need a key: health probes of the three protocols and the API description.
OPEN_PATHS = frozenset({"/", "/ping", "/health", "/v2/health/live", "/v2/health/ready", "/swagger.json"})
UNAUTHORIZED_MESSAGE = (
    "Missing or invalid service key: send the header 'Authorization: Bearer <key>' with the service's primary "
    "or secondary key (service.get_keys())."
)

logger = logging.getLogger("mldeploy.server")


class ServiceKeys:
    """The keys a request may carry, read from the keys file and re-read when it changes.

    Args:
        path: The keys file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: tuple[bytes, ...] = ()
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServiceKeys | None:
        """Return the keys named by ``MLDEPLOY_KEYS_FILE``, or None when the service has no key auth."""
        path = environ.get(KEYS_FILE_VARIABLE)
        return cls(path) if path else None

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"cannot read the keys file: {exc.strerror}")
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            keys = tuple(str(data[name]).encode() for name in ("primaryKey", "secondaryKey") if data.get(name))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # Never log the content: only what is wrong with it.
            self._fail(f"the keys file is not a JSON object with primaryKey/secondaryKey ({type(exc).__name__})")
            return
        self._stamp, self._keys, self._warned = stamp, keys, False

    def _fail(self, why: str) -> None:
        self._stamp, self._keys = None, ()
        if not self._warned:
            logger.error("Key auth is on but %s (%s); every request that needs a key is refused.", why, self.path)
            self._warned = True

    def allows(self, authorization: bytes | None) -> bool:
        """Return True when ``authorization`` is ``Bearer <primary or secondary key>``.

        Args:
            authorization: The raw ``Authorization`` header, or None.
        """
        self._refresh()
        if not authorization or authorization[:7].lower() != b"bearer ":
            return False
        token = authorization[7:].strip()
        allowed = False
        for key in self._keys:  # compare with every key, so the time does not tell which one matched
            allowed |= hmac.compare_digest(token, key)
        return allowed
