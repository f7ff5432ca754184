"""REST handlers of the sidebar, under ``<base_url>/mldeploy/api/`` (all JSON, all authenticated).

=========  ==========================================  ============================================
verb       path                                        answer
=========  ==========================================  ============================================
GET        ``workspace``                               ``{path, version}``
GET        ``models``                                  ``{models: [{name, latestVersion, versions}]}``
GET        ``models/{name}``                           ``{name, latestVersion, versions: [...]}``
GET        ``models/{name}/{version}``                 ``Model.serialize()``
DELETE     ``models/{name}/{version}[?force=true]``    ``{deleted: "name:version"}``; 409 when in use
GET        ``services``                                ``{services: [Webservice.serialize()]}``
GET        ``services/{name}``                         ``Webservice.serialize()``
POST       ``services/{name}/reload``                  ``Webservice.serialize()`` after the switch
DELETE     ``services/{name}``                         ``{deleted: name}``
GET        ``services/{name}/logs?tail=N``             ``{name, tail, logs}``
POST       ``services/{name}/score``                   ``{status, body, latency_ms, headers}``
GET        ``environments``                            ``{environments: [Environment.serialize()]}``
=========  ==========================================  ============================================

Every verb is ``@tornado.web.authenticated`` (Jupyter's token or cookie; 403 otherwise). Core calls touch
SQLite, files, processes and HTTP health checks, so they run in a worker thread (``asyncio.to_thread``) and
never block the server's event loop; the score proxy uses tornado's non-blocking HTTP client. A
:class:`~jupyter_mldeploy.errors.MLDeployError` becomes its ``to_dict()`` JSON body with its
``http_status``, so the sidebar shows the core's own message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError

if TYPE_CHECKING:
    from jupyter_mldeploy.jupyter_server.app import MLDeployExtension
    from jupyter_mldeploy.workspace import Workspace

T = TypeVar("T")

#: Route prefix below the server's ``base_url``.
API_PREFIX = "mldeploy/api"

#: Lines of log returned when ``?tail`` is not given, and the most a caller may ask for.
DEFAULT_LOG_TAIL = 200
MAX_LOG_TAIL = 100_000

# Request headers passed on to the service by the score proxy; hop-by-hop and Jupyter's own headers
# (Authorization, Cookie, X-XSRFToken) stay here so the token never reaches user code.
_FORWARDED_HEADERS = ("Content-Type", "Accept", "x-request-id")

_NAME = r"(?P<name>[^/]+)"
_VERSION = r"(?P<version>[0-9]+)"


class ServiceUnreachable(MLDeployError):
    """The score proxy could not reach a service at all (connection refused, timeout): HTTP 502."""

    http_status = HTTPStatus.BAD_GATEWAY


class _DomainError(tornado.web.HTTPError):
    """Carries an :class:`MLDeployError` through tornado's error path to :meth:`MLDeployHandler.write_error`."""

    def __init__(self, error: MLDeployError) -> None:
        # The status line keeps the standard phrase: core messages may span lines (a DeploymentError carries
        # the log tail), which tornado refuses in a reason; the message travels in the JSON body instead.
        super().__init__(int(error.http_status), reason=HTTPStatus(int(error.http_status)).phrase)
        self.error = error


class MLDeployHandler(APIHandler):
    """Base of the sidebar handlers: workspace access, off-loop core calls, JSON errors."""

    @property
    def extension(self) -> MLDeployExtension:
        """The running :class:`~jupyter_mldeploy.jupyter_server.app.MLDeployExtension`."""
        return self.settings["mldeploy"]

    async def core(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call in a worker thread and return its result.

        Raises:
            tornado.web.HTTPError: Wrapping any :class:`MLDeployError` the call raised, with its status.
        """
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except MLDeployError as error:
            raise _DomainError(error) from error

    async def workspace(self) -> Workspace:
        """Return the configured workspace, opening it (off the event loop) on first use."""
        return await self.core(self.extension.get_workspace)

    def write_json(self, payload: Any, status: int = 200) -> None:
        """Finish the request with ``payload`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer domain errors as ``{"message", "error", "status"}``; others as Jupyter's APIHandler does."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, _DomainError):
            self.log.warning(
                "mldeploy: %s %s -> %s: %s",
                self.request.method,
                self.request.path,
                status_code,
                error.error.message,
            )
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error.error.to_dict()))
            return
        super().write_error(status_code, **kwargs)

    def bool_argument(self, name: str) -> bool:
        """Parse a boolean query argument (``true``/``false``/``1``/``0``; absent means False).

        Raises:
            tornado.web.HTTPError: 400 naming the argument when the value is anything else.
        """
        raw = self.get_query_argument(name, "false").strip().lower()
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no", ""):
            return False
        raise _DomainError(InvalidArgument(f"Query argument {name}={raw!r} must be true or false."))


# -- workspace ------------------------------------------------------------------------------------------


class WorkspaceHandler(MLDeployHandler):
    """``GET workspace``: which workspace the server shows, and the package version."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"path": str, "version": str}``."""
        ws = await self.workspace()
        self.write_json({"path": str(ws.path), "version": __version__})


# -- models ---------------------------------------------------------------------------------------------


def _group_models(models: list[Any]) -> list[dict[str, Any]]:
    """Group serialized versions by name (input sorted by name, newest version first, as ``Model.list``)."""
    groups: dict[str, dict[str, Any]] = {}
    for model in models:
        data = model.serialize()
        group = groups.setdefault(
            data["name"], {"name": data["name"], "latestVersion": data["version"], "versions": []}
        )
        group["versions"].append(data)
    return list(groups.values())


def _list_models(ws: Workspace, name: str | None) -> list[dict[str, Any]]:
    from jupyter_mldeploy.registry import Model

    if name is not None:
        Model(ws, name)  # raises NotFound naming the models that exist
    return _group_models(Model.list(ws, name=name))


def _get_model(ws: Workspace, name: str, version: int) -> dict[str, Any]:
    from jupyter_mldeploy.registry import Model

    return Model(ws, name, version=version).serialize()


def _delete_model(ws: Workspace, name: str, version: int, force: bool) -> str:
    from jupyter_mldeploy.registry import Model

    model = Model(ws, name, version=version)
    model.delete(force=force)
    return model.id


class ModelsHandler(MLDeployHandler):
    """``GET models``: every registered model with its versions, newest first."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"models": [{"name", "latestVersion", "versions": [Model.serialize(), ...]}]}``."""
        ws = await self.workspace()
        self.write_json({"models": await self.core(_list_models, ws, None)})


class ModelHandler(MLDeployHandler):
    """``GET models/{name}``: one model's versions."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer ``{"name", "latestVersion", "versions"}``; 404 when no version of ``name`` exists."""
        ws = await self.workspace()
        groups = await self.core(_list_models, ws, name)
        self.write_json(groups[0])


class ModelVersionHandler(MLDeployHandler):
    """``GET|DELETE models/{name}/{version}``: one registered version."""

    @tornado.web.authenticated
    async def get(self, name: str, version: str) -> None:
        """Answer :meth:`Model.serialize` of ``name:version``; 404 when it does not exist."""
        ws = await self.workspace()
        self.write_json(await self.core(_get_model, ws, name, int(version)))

    @tornado.web.authenticated
    async def delete(self, name: str, version: str) -> None:
        """Delete the version; 409 when a service uses it, unless ``?force=true``."""
        force = self.bool_argument("force")
        ws = await self.workspace()
        deleted = await self.core(_delete_model, ws, name, int(version), force)
        self.write_json({"deleted": deleted})


# -- services -------------------------------------------------------------------------------------------


def _list_services(ws: Workspace) -> list[dict[str, Any]]:
    from jupyter_mldeploy.deploy import Webservice

    return [service.serialize() for service in Webservice.list(ws)]


def _get_service(ws: Workspace, name: str) -> dict[str, Any]:
    from jupyter_mldeploy.deploy import Webservice

    return Webservice(ws, name).serialize()


def _reload_service(ws: Workspace, name: str) -> dict[str, Any]:
    from jupyter_mldeploy.deploy import Webservice

    service = Webservice(ws, name)
    service.reload(wait=True)
    return service.serialize()


def _delete_service(ws: Workspace, name: str) -> None:
    from jupyter_mldeploy.deploy import Webservice

    Webservice(ws, name).delete()


def _service_logs(ws: Workspace, name: str, tail: int) -> str:
    from jupyter_mldeploy.deploy import Webservice

    return Webservice(ws, name).get_logs(num_lines=tail)


def _scoring_uri(ws: Workspace, name: str) -> str:
    from jupyter_mldeploy.deploy import Webservice

    return Webservice(ws, name).scoring_uri


def _service_state(ws: Workspace, name: str) -> str:
    from jupyter_mldeploy.deploy import Webservice

    return str(Webservice(ws, name).state)


class ServicesHandler(MLDeployHandler):
    """``GET services``: every service with its state observed now."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"services": [Webservice.serialize(), ...]}``, sorted by name."""
        ws = await self.workspace()
        self.write_json({"services": await self.core(_list_services, ws)})


class ServiceHandler(MLDeployHandler):
    """``GET|DELETE services/{name}``."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer :meth:`Webservice.serialize`; 404 for an unknown service."""
        ws = await self.workspace()
        self.write_json(await self.core(_get_service, ws, name))

    @tornado.web.authenticated
    async def delete(self, name: str) -> None:
        """Stop the service and remove it; answer ``{"deleted": name}``."""
        ws = await self.workspace()
        await self.core(_delete_service, ws, name)
        self.write_json({"deleted": name})


class ServiceReloadHandler(MLDeployHandler):
    """``POST services/{name}/reload``: serve the current entry script and source folder, zero downtime."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """Wait for the switch and answer the service's new :meth:`Webservice.serialize`.

        A failed start answers the core's ``DeploymentError`` (message plus log tail); the old code keeps
        serving then.
        """
        ws = await self.workspace()
        self.write_json(await self.core(_reload_service, ws, name))


class ServiceLogsHandler(MLDeployHandler):
    """``GET services/{name}/logs?tail=N``: the last N lines of the scoring server's log."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer ``{"name", "tail", "logs"}``; ``tail`` defaults to 200, at most 100000."""
        raw = self.get_query_argument("tail", str(DEFAULT_LOG_TAIL))
        try:
            tail = int(raw)
        except ValueError:
            tail = 0
        if not 1 <= tail <= MAX_LOG_TAIL:
            raise _DomainError(
                InvalidArgument(
                    f"Query argument tail={raw!r} must be a whole number of lines from 1 to {MAX_LOG_TAIL}."
                )
            )
        ws = await self.workspace()
        logs = await self.core(_service_logs, ws, name, tail)
        self.write_json({"name": name, "tail": tail, "logs": logs})


class ServiceScoreHandler(MLDeployHandler):
    """``POST services/{name}/score``: send the request body to the service's ``/score`` and report."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """Proxy the body as is (with its Content-Type, default ``application/json``).

        Answers 200 ``{"status": int, "body": str, "latency_ms": float, "headers": {str: str}}`` whatever
        status the service answered (that status is the payload, not this response's); ``latency_ms`` is
        the wall time of the proxied request as seen from the Jupyter server, in milliseconds. Answers 502
        when the service does not answer at all, naming its state.
        """
        ws = await self.workspace()
        uri = await self.core(_scoring_uri, ws, name)
        headers = {
            key: self.request.headers[key] for key in _FORWARDED_HEADERS if key in self.request.headers
        }
        headers.setdefault("Content-Type", "application/json")
        request = HTTPRequest(
            uri,
            method="POST",
            body=self.request.body or b"",
            headers=headers,
            connect_timeout=5,
            request_timeout=self.extension.score_timeout,
            allow_nonstandard_methods=True,
        )
        started = time.perf_counter()
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            state = await self.core(_service_state, ws, name)
            raise _DomainError(
                ServiceUnreachable(
                    f"Service {name!r} did not answer at {uri} (state {state}): {exc}. "
                    "Open its logs, then reload or redeploy it."
                )
            ) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if response.code == 599:  # tornado's code for "no HTTP answer" (timeout, connection reset)
            state = await self.core(_service_state, ws, name)
            raise _DomainError(
                ServiceUnreachable(
                    f"Service {name!r} did not answer at {uri} within {self.extension.score_timeout:g} s "
                    f"(state {state}): {response.error}. Open its logs, then reload or redeploy it."
                )
            )
        body = response.body.decode("utf-8", errors="replace") if response.body else ""
        self.write_json(
            {
                "status": response.code,
                "body": body,
                "latency_ms": round(latency_ms, 3),
                "headers": {key: value for key, value in response.headers.get_all()},
            }
        )


# -- environments ---------------------------------------------------------------------------------------


def _list_environments(ws: Workspace) -> list[dict[str, Any]]:
    from jupyter_mldeploy.environment import Environment

    return [env.serialize() for env in Environment.list(ws).values()]


class EnvironmentsHandler(MLDeployHandler):
    """``GET environments``: curated and registered environments (latest version of each name)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"environments": [Environment.serialize(), ...]}``."""
        ws = await self.workspace()
        self.write_json({"environments": await self.core(_list_environments, ws)})


def route_table() -> list[tuple[str, type[MLDeployHandler]]]:
    """Return ``(pattern, handler)`` pairs relative to the server's ``base_url``.

    Returns:
        One entry per route of the module docstring's table; tornado matches each pattern against the whole
        path, and passes the named groups (``name``, ``version``) URL-decoded to the verb methods.
    """
    routes: list[tuple[str, type[MLDeployHandler]]] = [
        ("workspace", WorkspaceHandler),
        ("models", ModelsHandler),
        (f"models/{_NAME}", ModelHandler),
        (f"models/{_NAME}/{_VERSION}", ModelVersionHandler),
        ("services", ServicesHandler),
        (f"services/{_NAME}", ServiceHandler),
        (f"services/{_NAME}/reload", ServiceReloadHandler),
        (f"services/{_NAME}/logs", ServiceLogsHandler),
        (f"services/{_NAME}/score", ServiceScoreHandler),
        ("environments", EnvironmentsHandler),
    ]
    return [(f"{API_PREFIX}/{pattern}", handler) for pattern, handler in routes]
