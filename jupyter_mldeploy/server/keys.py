"""Service keys: ``Authorization: Bearer <key>`` checked against the keys file, as v1 key auth.

The deploy layer writes the keys to an owner-only JSON file (``{"primaryKey": ..., "secondaryKey": ...}``)
and gives the server its path in ``MLDEPLOY_KEYS_FILE``; the keys themselves never pass through the
environment, the command line or a log. The file is replaced atomically when a key is regenerated. A check
compares the identity of the file the path leads to (device, inode, size, modification and change times,
following symbolic links) with the one read and re-reads it when it changed: at most every
:data:`RECHECK_S` seconds, and at once when a request carries a key that is not among those read. So a new
key works from its first request and a replaced one stops working within :data:`RECHECK_S` (the deploy
layer's ``regen_key`` returns only after that), with no restart, while the other key keeps working
throughout. A keys file that is missing or unreadable refuses every key (fail closed).

Why not look on every request: ``os.stat`` releases the GIL, and in a worker whose other threads are
runnable (the access log's writer, the run thread) that hand-off cost about 20 us of CPU per request at 16
connections, 5-8% of a 1-row request, against a target of 3% for the whole key check; a monotonic clock
read costs nothing of the kind.

The same check follows a Kubernetes Secret mounted as a volume: kubelet publishes a changed Secret by
writing a new ``..<timestamp>`` folder, swapping the ``..data`` symbolic link to it (a rename) and then
deleting the old folder, and ``keys.json`` is a link through ``..data``; the path then leads to another
file, so the keys are re-read. A read that races the swap (the old folder deleted while the path was being
followed) is retried, so the swap never fails a request.

Liveness and readiness routes stay open for probes (:data:`OPEN_PATHS`); everything that runs the model
needs a key. Keys are compared with :func:`hmac.compare_digest` (constant time), each against both keys.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
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

#: Seconds between two looks at the keys file while requests carry known keys: a replaced key stops working
#: within this (a key not among those read makes the server look at once).
RECHECK_S = 0.1
#: Reads of a changed keys file before it counts as missing (a kubelet swap can remove a folder mid-lookup).
_READ_ATTEMPTS = 3


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What tells one version of the keys file from another: its identity and times."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ServiceKeys:
    """The keys a request may carry, read from the keys file and re-read when it changes.

    Args:
        path: The keys file.
        recheck_s: Seconds between two looks at the file while requests carry known keys (:data:`RECHECK_S`;
            0 looks on every check).
    """

    def __init__(self, path: str, recheck_s: float = RECHECK_S) -> None:
        self.path = path
        self.recheck_s = recheck_s
        self._stamp: tuple[int, ...] | None = None
        self._keys: tuple[bytes, ...] = ()
        self._warned = False
        #: ``time.monotonic()`` from which the next check looks at the file.
        self._next_look = 0.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServiceKeys | None:
        """Return the keys named by ``MLDEPLOY_KEYS_FILE``, or None when the service has no key auth."""
        path = environ.get(KEYS_FILE_VARIABLE)
        return cls(path) if path else None

    def _refresh(self, now: float) -> None:
        # One stat, compared with what was read.
        self._next_look = now + self.recheck_s
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == self._stamp:
                return
        except OSError:
            pass  # missing, or mid-swap: _reload retries and says which
        self._reload()

    def _reload(self) -> None:
        for attempt in range(_READ_ATTEMPTS):
            try:
                with open(self.path, "rb") as handle:
                    # The identity of what was read, not of what the path led to a moment earlier.
                    stamp = _stamp(os.fstat(handle.fileno()))
                    content = handle.read()
            except FileNotFoundError as exc:
                if attempt + 1 < _READ_ATTEMPTS:
                    continue  # kubelet removed the old folder while the path was followed: follow it again
                self._fail(f"cannot read the keys file: {exc.strerror}")
                return
            except OSError as exc:
                self._fail(f"cannot read the keys file: {exc.strerror}")
                return
            if stamp == self._stamp:
                return  # the stat above raced a swap; what is read now is what was read before
            try:
                data = json.loads(content)
                keys = tuple(str(data[name]).encode() for name in ("primaryKey", "secondaryKey") if data.get(name))
            except (ValueError, TypeError, AttributeError) as exc:
                # Never log the content: only what is wrong with it.
                self._fail(f"the keys file is not a JSON object with primaryKey/secondaryKey ({type(exc).__name__})")
                return
            self._stamp, self._keys, self._warned = stamp, keys, False
            return

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
        now = time.monotonic()
        looked = now >= self._next_look
        if looked:
            self._refresh(now)
        if not authorization or authorization[:7].lower() != b"bearer ":
            return False
        token = authorization[7:].strip()
        if self._matches(token):
            return True
        if looked:
            return False
        # Not among the keys read: perhaps just published (regen_key), so look now rather than at the next turn.
        self._refresh(now)
        return self._matches(token)

    def _matches(self, token: bytes) -> bool:
        allowed = False
        for key in self._keys:  # compare with every key, so the time does not tell which one matched
            allowed |= hmac.compare_digest(token, key)
        return allowed
