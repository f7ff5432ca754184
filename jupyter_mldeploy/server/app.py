"""The ASGI application of a worker: ``GET /``, ``GET|POST|OPTIONS /score``, ``GET /swagger.json``, and the
other wire protocols' routes (MLflow's ``/invocations``, Open Inference Protocol V2's ``/v2/...``, see
:mod:`~jupyter_mldeploy.server.wire`).

Statuses, messages and headers follow azmlinfsrv 1.5 (``server/routes.py`` and ``input_parsers.py``
there); see docs/server.md. It is a plain ASGI callable rather than a routed framework app because ``/score``
is the hot path: one pass over the headers, one body read, one orjson call.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from jupyter_mldeploy.server import logs, protocol_mlflow, protocol_v2
from jupyter_mldeploy.server.batching import Dispatcher
from jupyter_mldeploy.server.config import ThroughputSettings
from jupyter_mldeploy.server.encoding import encode_result
from jupyter_mldeploy.server.keys import OPEN_PATHS, UNAUTHORIZED_MESSAGE, ServiceKeys
from jupyter_mldeploy.server.run_parameters import run_output_schema, run_parameter_schemas
from jupyter_mldeploy.server.runner import Runner, RunOutcome, ScoringTimeout
from jupyter_mldeploy.server.shims import Headers
from jupyter_mldeploy.server.swagger import SwaggerDocs, SwaggerError
from jupyter_mldeploy.server.user_script import OBJECT, RAW, ClientError, Connection, UserScript
from jupyter_mldeploy.server.wire import Prepare, Reply, WireError, WireProtocol

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HEADER_LIMIT = 100
_JSON = b"application/json"
_MSG_RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
_MSG_INTERNAL = "An unexpected internal error occurred. Check the logs for more info."
_MSG_NOT_ALLOWED = "The method is not allowed for the requested URL."
_MSG_NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)

logger = logging.getLogger("mldeploy.server")


def _error_body(message: str) -> bytes:
    # json.dumps, not orjson: byte-identical to azmlinfsrv's error bodies ({"message": "..."} with a space).
    return json.dumps({"message": message}).encode()


class _Request:
    """What one request carried, gathered in a single pass over the ASGI headers."""

    __slots__ = ("scope", "method", "path", "raw_headers", "content_type", "content_length", "request_id",
                 "id_headers", "start", "legacy_id", "client_id", "authorization")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.start = time.perf_counter()
        self.content_type = ""
        self.content_length: int | None = None
        self.authorization: bytes | None = None
        rid = legacy = client = trace = ""
        for name, value in self.raw_headers:
            if name == b"content-type":
                self.content_type = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
            elif name == b"x-request-id":
                rid = value.decode("latin-1")
            elif name == b"x-ms-request-id":
                legacy = value.decode("latin-1")
            elif name == b"x-ms-client-request-id":
                client = value.decode("latin-1")
            elif name == b"traceid":
                trace = value.decode("latin-1")
            elif name == b"authorization":
                self.authorization = value
        self.id_headers: list[tuple[bytes, bytes]] = []
        if trace:
            self.id_headers.append((b"TraceId", trace.encode("latin-1")))
        self.request_id = rid or str(uuid.uuid4())
        self.legacy_id = legacy
        self.client_id = client

    def check_ids(self) -> None:
        """Validate the id headers and prepare the echoed ones (azmlinfsrv's ``_init_headers``).

        Raises:
            ClientError: 431 when an id is longer than 100 characters.
        """
        rid = self.request_id
        if len(rid) > HEADER_LIMIT:
            raise ClientError(431, f"x-request-id must not exceed {HEADER_LIMIT} characters")
        legacy, client = self.legacy_id, self.client_id
        self.id_headers.append((b"x-request-id", rid.encode("latin-1")))
        if legacy:
            client = client or legacy
        else:
            legacy = client or rid
        if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
            raise ClientError(431, f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters")
        self.id_headers.append((b"x-ms-request-id", legacy.encode("latin-1")))
        if client:
            self.id_headers.append((b"x-ms-client-request-id", client.encode("latin-1")))

    def headers(self) -> Headers:
        """The request headers as Flask under azmlinfsrv has them (decoded only when read)."""
        return Headers.from_request(self.raw_headers)


class ScoringApp:
    """The ASGI app serving one loaded entry script.

    Args:
        script: The loaded script (``init()`` already ran).
        runner: Calls ``run()`` with the timeout.
        swagger: The prepared swagger documents.
        max_body_bytes: Largest accepted body; larger gets 413.
        access_log: Where the per-request access lines go.
        throughput: Adaptive batching and queue limits of ``/score``; None or all off: each request goes
            straight to the runner.
    """

    def __init__(self, script: UserScript, runner: Runner, swagger: SwaggerDocs, max_body_bytes: int,
                 access_log: logs.AccessLog, throughput: ThroughputSettings | None = None) -> None:
        self.script = script
        self.access_log = access_log
        self.runner = runner
        self.swagger = swagger
        self.max_body_bytes = max_body_bytes
        self._max_mb = max_body_bytes / 1_000_000
        # The HTTP server's request tasks (see watch_requests): the runner calls run() inline only for a
        # request that is alone, since with company the run thread overlaps their I/O with the run.
        self._tasks: Collection[Any] | None = None
        #: /score requests being read, not yet handed to the dispatcher (it waits for them to batch).
        self._arriving = 0
        self.dispatcher = (
            Dispatcher(script, runner, throughput, lambda: self._arriving)
            if throughput is not None and throughput.enabled else None
        )
        decorated = script.mode == OBJECT
        parameters = run_parameter_schemas(script.run, decorated)
        mlflow = protocol_mlflow.MlflowProtocol(parameters)
        self._wire_paths: dict[str, WireProtocol] = dict.fromkeys(protocol_mlflow.PATHS, mlflow)
        self._v2 = protocol_v2.V2Protocol(parameters, run_output_schema(script.run, decorated, protocol_v2.OUTPUT_NAME),
                                          protocol_v2.served_models(os.environ))
        self._keys = ServiceKeys.from_environ(os.environ)

    def watch_requests(self, tasks: Collection[Any]) -> None:
        """Count in-flight requests from the HTTP server's own set of request tasks.

        A request task exists from the moment its headers are parsed, before the task first runs, so this
        also sees requests that are read but not yet started (uvicorn's ``ServerState.tasks``).

        Args:
            tasks: A live collection holding one entry per request being handled.
        """
        self._tasks = tasks

    def _alone(self) -> bool:
        return len(self._tasks) <= 1 if self._tasks is not None else True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI HTTP request (other scope types are ignored)."""
        if scope["type"] != "http":
            return
        request = _Request(scope)
        logs.request_id.set(request.request_id)
        fn_ms: float | None = None
        failed: bool | None = None
        try:
            request.check_ids()
            if self._keys is not None and not self._open(request) and not self._keys.allows(request.authorization):
                status, headers, body = self._unauthorized(request)
                failed = False
            elif request.path == "/score":
                status, headers, body, fn_ms, failed = await self._score(request, receive)
            elif request.path == "/":
                if request.method not in ("GET", "HEAD"):
                    raise ClientError(405, _MSG_NOT_ALLOWED)
                status, headers, body = 200, [(b"content-type", b"text/html; charset=utf-8")], b"Healthy"
            elif (wire := self._wire_paths.get(request.path)) is not None:
                status, headers, body, fn_ms, failed = await self._wire(wire, request, receive)
            elif request.path == protocol_v2.PREFIX or request.path.startswith(protocol_v2.PREFIX + "/"):
                status, headers, body, fn_ms, failed = await self._wire(self._v2, request, receive)
            elif request.path == "/swagger.json":
                if request.method not in ("GET", "HEAD"):
                    raise ClientError(405, _MSG_NOT_ALLOWED)
                status, headers, body = self._swagger(request)
                failed = False
            else:
                raise ClientError(404, _MSG_NOT_FOUND)
        except ClientError as exc:
            status, headers, body = exc.status, [(b"content-type", _JSON)], _error_body(exc.message)
            failed = False
        except Exception:
            # As azmlinfsrv's catch-all handler: log the traceback, answer JSON 500.
            logger.error("Encountered Exception: %s", traceback.format_exc().rstrip())
            status, headers, body = 500, [(b"content-type", _JSON)], _error_body(_MSG_INTERNAL)
            failed = False
        headers.extend(request.id_headers)
        if failed is not None:
            headers.append((b"x-ms-run-function-failed", b"True" if failed else b"False"))
        if fn_ms is not None:
            headers.append((b"x-ms-run-fn-exec-ms", f"{fn_ms:.3f}".encode()))
        if request.method == "HEAD":
            body_out = b""
        else:
            body_out = body
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body_out})
        self._access_log(request, status, len(body))

    def _open(self, request: _Request) -> bool:
        # Probes stay open; so does a CORS preflight the app answers itself (browsers send no key with it).
        path = request.path
        return path in OPEN_PATHS or (path == "/score" and request.method == "OPTIONS" and self.script.mode != RAW)

    def _unauthorized(self, request: _Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """401 with ``WWW-Authenticate: Bearer``, in the error format of the protocol the path belongs to."""
        wire = self._wire_paths.get(request.path)
        if wire is None and (request.path == protocol_v2.PREFIX or request.path.startswith(protocol_v2.PREFIX + "/")):
            wire = self._v2
        if wire is not None:
            refusal = wire.error(401, UNAUTHORIZED_MESSAGE)
            content_type, body = refusal.content_type, refusal.body
        else:
            content_type, body = _JSON, _error_body(UNAUTHORIZED_MESSAGE)
        return 401, [(b"content-type", content_type), (b"www-authenticate", b"Bearer")], body

    def _access_log(self, request: _Request, status: int, length: int) -> None:
        # Health probes are polled constantly; as azmlinfsrv, they are not access-logged.
        if not self.access_log.enabled or request.path == "/":
            return
        elapsed = (time.perf_counter() - request.start) * 1000
        query = request.scope.get("query_string") or b""
        path = request.path + (f"?{query.decode('latin-1')}" if query else "")
        self.access_log.write(request.request_id, request.method, path, status, elapsed, length)

    def _swagger(self, request: _Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        version = "2"
        for key, value in parse_qsl((request.scope.get("query_string") or b"").decode("latin-1"),
                                    keep_blank_values=True):
            if key == "version":
                version = value
                break
        try:
            return 200, [(b"content-type", _JSON)], self.swagger.get(version)
        except SwaggerError as exc:
            raise ClientError(404, str(exc)) from None

    async def _read_body(self, request: _Request, receive: Receive) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise ClientError(413, self._too_large())
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # Nobody is left to answer, and run() must not see a truncated body.
                raise ClientError(400, "The client disconnected before sending the whole body.")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise ClientError(413, self._too_large())
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> str:
        return (f"Request body is larger than the {self._max_mb:g} MB limit; send less data or start the "
                "server with a larger --max-request-mb.")

    async def _score(
        self, request: _Request, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, float | None, bool]:
        method = request.method
        if method not in ("GET", "POST", "OPTIONS"):
            raise ClientError(405, _MSG_NOT_ALLOWED)
        script = self.script
        if method == "OPTIONS" and script.mode != RAW:
            # azmlinfsrv answers a preflight itself when run() is not given the raw request.
            return 200, [(b"content-type", b"text/html; charset=utf-8")], b"", None, False
        self._arriving += 1
        try:
            body = await self._read_body(request, receive) if method != "GET" or script.mode == RAW else b""
        finally:
            self._arriving -= 1
        kwargs: dict[str, Any] = {
            "body": body, "headers": request.headers(), "method": method,
            "query_string": request.scope.get("query_string") or b"",
        }
        if script.mode == RAW:
            server = request.scope.get("server") or ("", None)
            client = request.scope.get("client")
            kwargs["path"] = request.path
            kwargs["connection"] = Connection(
                scheme=request.scope.get("scheme", "http"),
                host=f"{server[0]}:{server[1]}" if server[1] else str(server[0]),
                remote_addr=client[0] if client else None,
                root_path=request.scope.get("root_path", ""),
            )
        # Parsing the body happens in invoke_run, in the run thread: the CPU work of a request stays in one
        # thread instead of contending for the GIL with the event loop.
        batch_rows: int | None = None
        if self.dispatcher is not None:
            dispatched = await self.dispatcher.submit(kwargs, request.request_id)
            outcome, batch_rows = dispatched.outcome, dispatched.batch_rows
        else:
            outcome = await self.runner.call(script.invoke_run, kwargs, request.request_id, alone=self._alone())
        answer = self._answer(outcome)
        if batch_rows is not None:
            # The rows of the run() call that answered this request (alone: its own rows).
            answer[1].append((b"x-ms-batch-size", str(batch_rows).encode()))
        return answer

    def _answer(self, outcome: RunOutcome) -> tuple[int, list[tuple[bytes, bytes]], bytes, float | None, bool]:
        """Make the ``/score`` answer of one ``run()`` outcome: status, headers, body, run ms, run failed."""
        if isinstance(outcome.error, ClientError):
            raise outcome.error
        if outcome.timed_out:
            logger.error("Encountered Exception: run() did not finish within %d ms", self.runner.timeout_ms)
            body = _error_body(f"Scoring timeout after {self.runner.timeout_ms} ms")
            return 500, [(b"content-type", _JSON)], body, None, True
        if outcome.error is not None:
            logger.error("Encountered Exception: %s", outcome.traceback.rstrip())
            return 500, [(b"content-type", _JSON)], _error_body(_MSG_RUN_FAILED), None, True
        try:
            result = encode_result(outcome.value)
        except TypeError:
            logger.error("Encountered Exception: %s", traceback.format_exc().rstrip())
            return 500, [(b"content-type", _JSON)], _error_body(_MSG_INTERNAL), None, False
        if result.is_response:
            logger.info("run() output is HTTP Response")
        return result.status, result.headers, result.body, outcome.elapsed_ms, result.run_function_failed

    async def _wire(
        self, protocol: WireProtocol, request: _Request, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, float | None, bool | None]:
        """Serve one request of another wire protocol; its refusals come in its own error format."""
        try:
            routed = protocol.route(request.method, request.path)
            if isinstance(routed, Reply):
                return routed.status, [(b"content-type", routed.content_type)], routed.body, None, None
            try:
                raw = await self._read_body(request, receive)
            except ClientError as exc:
                raise protocol.error(exc.status, exc.message) from None
            kwargs = {"prepare": routed, "body": raw, "content_type": request.content_type,
                      "raw_headers": request.raw_headers, "path": request.path}
            if self.dispatcher is not None:
                # The same queue (and queue limits) as /score; other protocols' bodies are not merged.
                try:
                    outcome = (await self.dispatcher.submit(kwargs, request.request_id, self._translated_run)).outcome
                except ClientError as exc:
                    raise protocol.error(exc.status, exc.message) from None
            else:
                outcome = await self.runner.call(self._translated_run, kwargs, request.request_id, alone=self._alone())
            if isinstance(outcome.error, ClientError):
                raise protocol.error(outcome.error.status, outcome.error.message)
            if outcome.timed_out:
                logger.error("Encountered Exception: run() did not finish within %d ms", self.runner.timeout_ms)
                failure = protocol.error(500, f"Scoring timeout after {self.runner.timeout_ms} ms")
                return 500, [(b"content-type", failure.content_type)], failure.body, None, True
            if outcome.error is not None:
                logger.error("Encountered Exception: %s", outcome.traceback.rstrip())
                failure = protocol.error(500, _MSG_RUN_FAILED)
                return 500, [(b"content-type", failure.content_type)], failure.body, None, True
            reply = outcome.value
            if isinstance(reply, _Untranslated):
                if reply.finishing and isinstance(reply.error, TypeError):
                    # What run() returned has no JSON form.
                    logger.error("Encountered Exception: %s", "".join(traceback.format_exception(reply.error)).rstrip())
                    raise protocol.error(500, _MSG_INTERNAL) from None
                raise reply.error  # a refusal in the protocol's format; anything else is the catch-all 500
            return reply.status, [(b"content-type", reply.content_type)], reply.body, outcome.elapsed_ms, reply.status >= 500
        except WireError as exc:
            return exc.status, [(b"content-type", exc.content_type)], exc.body, None, False

    def _translated_run(self, prepare: Prepare, body: bytes, content_type: str, raw_headers: list[tuple[bytes, bytes]],
                        path: str) -> Reply | _Untranslated:
        """Translate a request of another protocol, call ``run()``, translate its answer: in one call.

        It runs where ``run()`` runs (the run thread under concurrency), so the translation's CPU work stays
        in that thread, as ``/score``'s body parsing does inside ``invoke_run``, instead of holding the GIL
        on the event loop between the run thread's calls; the other protocols then load the two threads as
        ``/score`` does.

        Returns:
            Reply | _Untranslated: The answer, or what translating the request or the answer raised (also
            when ``run()`` raised on forwarded bytes that the full translation refuses: ``RunCall.recheck``).

        Raises:
            ClientError: ``invoke_run`` refused the translated request.
            Exception: Whatever ``run()`` raised.
        """
        try:
            call = prepare(body, content_type, raw_headers)
        except Exception as exc:
            return _Untranslated(exc, finishing=False)
        try:
            value = self.script.invoke_run(body=call.body, headers=call.headers, path=path)
        except ScoringTimeout:
            raise
        except Exception:
            if call.recheck is not None:
                # run() got the client's bytes unparsed: a body the full path refuses gets that refusal (a
                # misspelled number), not run()'s error.
                try:
                    call.recheck()
                except Exception as refusal:
                    return _Untranslated(refusal, finishing=False)
            raise
        try:
            return call.finish(value)
        except Exception as exc:
            return _Untranslated(exc, finishing=True)


@dataclass(slots=True)
class _Untranslated:
    """An exception raised translating a request (or ``run()``'s answer) of another protocol, to raise in the
    event loop: it is the request's or the server's failure, not ``run()``'s.

    Attributes:
        error: The exception (a :class:`WireError` is the protocol's refusal).
        finishing: True when it came from translating ``run()``'s answer.
    """

    error: Exception
    finishing: bool
