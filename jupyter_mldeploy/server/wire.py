"""What a wire protocol besides Azure's ``/score`` hands the ASGI app: a ready answer, or a ``run()`` call.

The Open Inference Protocol V2 (:mod:`~jupyter_mldeploy.server.protocol_v2`) and MLflow's scoring protocol
(:mod:`~jupyter_mldeploy.server.protocol_mlflow`) each translate their request into the body and headers
:meth:`~jupyter_mldeploy.server.user_script.UserScript.invoke_run` takes (the one definition of how
``run()`` is called) and translate what ``run()`` returned back into their own response. The app
(:mod:`~jupyter_mldeploy.server.app`) owns the I/O in between: reading the body, the runner, timeouts and
logging, so every protocol gets the same limits and the same placement of ``run()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from jupyter_mldeploy.server.encoding import encode_result
from jupyter_mldeploy.server.shims import Headers

JSON = b"application/json"
#: The request headers describing the body, which the translated body replaces.
_BODY_HEADERS = (b"content-type", b"content-length")
_JSON_CONTENT_TYPE = (b"content-type", JSON)


class WireError(Exception):
    """A request a protocol refuses; ``body`` is already in that protocol's error format.

    Attributes:
        status: The HTTP status.
        body: The encoded error document.
        content_type: Its media type.
    """

    def __init__(self, status: int, body: bytes, content_type: bytes = JSON) -> None:
        super().__init__(body.decode("utf-8", "replace"))
        self.status = status
        self.body = body
        self.content_type = content_type


@dataclass(slots=True)
class Reply:
    """A complete answer (made on every request of these protocols: not frozen, whose ``__init__`` costs 3x).

    Attributes:
        status: The HTTP status.
        body: The body.
        content_type: Its media type.
    """

    status: int
    body: bytes
    content_type: bytes = JSON


@dataclass(slots=True)
class RunCall:
    """One ``run()`` call a protocol asks for, and how to answer with what it returned.

    Attributes:
        body: The body for ``invoke_run`` (JSON: ``{"data": rows}`` or the decorated parameters).
        headers: The headers for ``invoke_run`` (the request's, with ``Content-Type: application/json``).
        finish: Makes the answer of ``run()``'s return value; raises :class:`WireError` when the value
            has no form in the protocol.
        recheck: Set when ``body`` forwards the client's bytes, whose numbers were not parsed
            (:mod:`~jupyter_mldeploy.server.passthrough`): the full translation, called when ``run()``
            raises, which raises the :class:`WireError` the full path would have answered the request with.
    """

    body: bytes
    headers: Headers
    finish: Callable[[Any], Reply]
    recheck: Callable[[], object] | None = None


#: Parses the request (body, Content-Type, ASGI headers) into a :class:`RunCall`; raises :class:`WireError`.
Prepare = Callable[[bytes, str, list[tuple[bytes, bytes]]], RunCall]


class WireProtocol(Protocol):
    """What the app asks of a protocol module's handler."""

    def route(self, method: str, path: str) -> Reply | Prepare:
        """Answer ``method path`` directly, or return how to prepare the ``run()`` call from the body.

        Raises:
            WireError: 404 for an unknown path or model, 405 for a method the path does not take.
        """
        ...

    def error(self, status: int, message: str) -> WireError:
        """Return ``message`` as this protocol's error with ``status`` (for refusals of ``invoke_run``)."""
        ...


def json_request_headers(raw: list[tuple[bytes, bytes]]) -> Headers:
    """The request's headers for ``invoke_run``, saying the body is JSON (as the translated body is).

    Args:
        raw: The ASGI request headers.

    Returns:
        Headers: Every header but ``Content-Type``/``Content-Length``, then ``Content-Type: application/json``.
    """
    kept = [pair for pair in raw if pair[0] not in _BODY_HEADERS]
    kept.append(_JSON_CONTENT_TYPE)
    return Headers.from_request(kept)


def script_response(value: Any) -> Reply | None:
    """Return the answer a ``run()`` that built its own response (``AMLResponse``) gave, as built; else None.

    Such a script answers every protocol the same way, as it does ``/score``.
    """
    if not (hasattr(value, "status_code") and hasattr(value, "get_data")):
        return None
    result = encode_result(value)
    return Reply(result.status, result.body, (result.content_type or "application/json").encode("latin-1"))


def json_value(value: Any) -> Any:
    """Return a string ``run()`` result parsed when it is JSON (v1 scripts often ``return json.dumps(...)``).

    The other protocols carry predictions as JSON values rather than a JSON string holding JSON; a string
    that is not JSON stays a string.
    """
    if isinstance(value, (str, bytes)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value
