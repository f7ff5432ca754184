"""REST handlers of the sidebar, under ``<base_url>/mldeploy/api/`` (all JSON, all authenticated).

=========  ==========================================  ============================================
verb       path                                        answer
=========  ==========================================  ============================================
GET        ``workspace``                               ``{path, version}``
GET        ``models``                                  ``{models: [{name, latestVersion, versions}]}``
GET        ``models/{name}``                           ``{name, latestVersion, versions: [...]}``
GET        ``models/{name}/{version}``                 ``Model.serialize()``
DELETE     ``models/{name}/{version}[?force=true]``    ``{deleted: "name:version"}``; 409 when in use
POST       ``models/{name}/{version}/deploy``          202 ``{service, model, state, notes, ...}``: no-code
GET        ``deploys``                                 ``{deploys: [...]}``: under way, or failed
DELETE     ``deploys/{name}``                          ``{dismissed: name}``: forget a failed one
GET        ``services``                                ``{services: [Webservice.serialize()]}``
GET        ``services/{name}``                         ``Webservice.serialize()``
POST       ``services/{name}/reload``                  ``Webservice.serialize()`` after the switch
DELETE     ``services/{name}``                         ``{deleted: name}``
GET        ``services/{name}/logs?tail=N``             ``{name, tail, logs}``
POST       ``services/{name}/score[?protocol=P]``      ``{status, body, latency_ms, headers, location, uri}``
GET        ``services/{name}/example[?protocol=P]``    ``{body}``: the tester's prefill, floats rounded
GET        ``services/{name}/keys``                    ``{primaryKey, secondaryKey}``; an error without key auth
GET        ``environments``                            ``{environments: [Environment.serialize()]}``
=========  ==========================================  ============================================

Every verb is ``@tornado.web.authenticated`` (Jupyter's token or cookie; 403 otherwise). Each handler is
one awaited call of the service layer (:mod:`jupyter_mldeploy.actions`), as jupyterlab-git's handlers are:
the calls touch SQLite, files, processes and HTTP, so they run in a worker thread (``asyncio.to_thread``)
and never block the server's event loop. A :class:`~jupyter_mldeploy.errors.MLDeployError` becomes its
``to_dict()`` JSON body with its ``http_status``, so the sidebar shows the core's own message.

The score proxy validates the body against the service's input schema exactly as ``%test_endpoint`` does
(a mismatch answers 400 ``{"message", "problems": [...]}`` and nothing is sent) and never follows a
redirect: a ``3xx`` from the service is reported as its answer, with ``location``. ``?protocol=v2|mlflow``
sends it to the service's Open Inference Protocol V2 or MLflow route instead of ``/score``.

``POST models/{name}/{version}/deploy`` checks everything quick at once (the version, the service name, a
framework a built-in entry script serves) and answers 400/404/409 with the core's message, or 202 while the
deployment runs in the background (:mod:`.deploys`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler

from jupyter_mldeploy import actions
from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError
from jupyter_mldeploy.jupyter_server.deploys import DeployJob

if TYPE_CHECKING:
    from jupyter_mldeploy.jupyter_server.app import MLDeployExtension
    from jupyter_mldeploy.workspace import Workspace

T = TypeVar("T")

#: Route prefix below the server's ``base_url``.
API_PREFIX = "mldeploy/api"

#: Lines of log returned when ``?tail`` is not given, and the most a caller may ask for.
DEFAULT_LOG_TAIL = 200
MAX_LOG_TAIL = actions.services.MAX_LOG_LINES

# Request headers passed on to the service by the score proxy; hop-by-hop and Jupyter's own headers
# (Authorization, Cookie, X-XSRFToken) stay here so the token never reaches user code.
_FORWARDED_HEADERS = ("Content-Type", "Accept", "x-request-id")

#: The longest JSON body the deploy route reads (it holds a service name and a flag).
MAX_DEPLOY_BODY_BYTES = 4096

_NAME = r"(?P<name>[^/]+)"
_VERSION = r"(?P<version>[0-9]+)"


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
        """Run a blocking service-layer call in a worker thread and return its result.

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

    def protocol_argument(self) -> str:
        """The ``?protocol=`` argument: one of ``actions.PROTOCOLS`` (default ``azureml``, the ``/score`` route).

        Raises:
            tornado.web.HTTPError: 400 naming the protocols when the value is another.
        """
        protocol = self.get_query_argument("protocol", "azureml").strip().lower()
        if protocol not in actions.PROTOCOLS:
            raise _DomainError(InvalidArgument(f"Query argument protocol={protocol!r} must be one of "
                                               f"{', '.join(actions.PROTOCOLS)}."))
        return protocol

    def json_object_body(self, limit: int) -> dict[str, Any]:
        """The request body as a JSON object; an empty body is ``{}``.

        Raises:
            tornado.web.HTTPError: 400 when the body is larger than ``limit`` bytes, not JSON, or not an object.
        """
        raw = self.request.body or b""
        if len(raw) > limit:
            raise _DomainError(InvalidArgument(f"The request body has {len(raw)} bytes; at most {limit} are read."))
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _DomainError(InvalidArgument(f"The request body is not JSON: {exc}.")) from exc
        if not isinstance(body, dict):
            raise _DomainError(InvalidArgument(f"The request body must be a JSON object, not {type(body).__name__}."))
        return body


# -- workspace ------------------------------------------------------------------------------------------


class WorkspaceHandler(MLDeployHandler):
    """``GET workspace``: which workspace the server shows, and the package version."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"path": str, "version": str}``."""
        ws = await self.workspace()
        self.write_json({"path": str(ws.path), "version": __version__})


# -- models ---------------------------------------------------------------------------------------------


class ModelsHandler(MLDeployHandler):
    """``GET models``: every registered model with its versions, newest first."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"models": [{"name", "latestVersion", "versions": [Model.serialize(), ...]}]}``."""
        ws = await self.workspace()
        self.write_json({"models": await self.core(actions.model_groups, ws)})


class ModelHandler(MLDeployHandler):
    """``GET models/{name}``: one model's versions."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer ``{"name", "latestVersion", "versions"}``; 404 when no version of ``name`` exists."""
        ws = await self.workspace()
        groups = await self.core(actions.model_groups, ws, name)
        self.write_json(groups[0])


class ModelVersionHandler(MLDeployHandler):
    """``GET|DELETE models/{name}/{version}``: one registered version."""

    @tornado.web.authenticated
    async def get(self, name: str, version: str) -> None:
        """Answer :meth:`Model.serialize` of ``name:version``; 404 when it does not exist."""
        ws = await self.workspace()
        model = await self.core(actions.get_model, ws, name, int(version))
        self.write_json(model.serialize())

    @tornado.web.authenticated
    async def delete(self, name: str, version: str) -> None:
        """Delete the version; 409 when a service uses it, unless ``?force=true``."""
        force = self.bool_argument("force")
        ws = await self.workspace()
        deleted = await self.core(actions.delete_model, ws, name, int(version), force)
        self.write_json({"deleted": deleted})


def _no_code_deployment(ws: Workspace, model_id: str, service: str, overwrite: bool) -> DeployJob:
    """Check a sidebar deployment before it starts: the version, the service name, a no-code framework.

    Raises:
        NotFound: For an unknown version.
        InvalidArgument: For a bad service name, or a model no built-in entry script serves (the message adds
            how to deploy it with an entry script from a notebook or the CLI).
        Conflict: When the service exists and ``overwrite`` is False.
    """
    name, _, version = model_id.partition(":")
    actions.get_model(ws, name, int(version))
    actions.check_service_name(ws, service, overwrite)
    try:
        config = actions.deployment_inference_config(ws, [model_id])
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"{exc.summary} The sidebar deploys with no code only; to give an entry script, run "
            f"%deploy_local {service} --model {model_id} --entry score.py in a notebook, or "
            f"mldeploy model deploy -n {service} -m {model_id} --ic inferenceconfig.json."
        ) from exc
    return DeployJob(service=service, model=model_id, notes=actions.deployment_notes([model_id], config))


class ModelDeployHandler(MLDeployHandler):
    """``POST models/{name}/{version}/deploy``: deploy a version with no code, in the background."""

    @tornado.web.authenticated
    async def post(self, name: str, version: str) -> None:
        """Body ``{"service"?: str (default: the model name), "overwrite"?: bool}``.

        Answers 202 ``{service, model, state: "Deploying", notes, startedTime, ...}`` once the quick checks
        passed (:func:`_no_code_deployment`); the deployment (:func:`jupyter_mldeploy.actions.deploy_service`,
        as ``mldeploy model deploy -m`` and ``%deploy_local NAME --model M`` run it, then waits until it is
        healthy) goes on in the background: ``GET deploys`` lists it until the service is healthy, or with
        its error when it failed. 400 for a model without a framework
        (naming how to give an entry script) or a bad body, 404 for an unknown version, 409 when the service
        exists (``"overwrite": true`` updates it) or is being deployed.
        """
        body = self.json_object_body(MAX_DEPLOY_BODY_BYTES)
        service = body.get("service") or name
        overwrite = body.get("overwrite", False)
        if not isinstance(service, str) or not isinstance(overwrite, bool):
            raise _DomainError(InvalidArgument('The body is {"service": "<name>", "overwrite": true|false}.'))
        ws = await self.workspace()
        model_id = f"{name}:{int(version)}"
        job = await self.core(_no_code_deployment, ws, model_id, service, overwrite)
        timeout = self.extension.deploy_timeout

        def deploy() -> None:
            # Waiting also finishes an update in place (the new version adopted, or refused with the old one
            # serving) and turns an init() failure into this job's error.
            actions.deploy_service(ws, service, [model_id], overwrite=overwrite).wait_for_deployment(
                timeout_sec=timeout)

        try:
            self.extension.deploys.start(job, deploy)
        except MLDeployError as error:
            raise _DomainError(error) from error
        self.write_json(job.to_dict(), status=202)


class DeploysHandler(MLDeployHandler):
    """``GET deploys``: the sidebar's deployments under way, and those that failed before a service existed."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"deploys": [DeployJob.to_dict(), ...]}`` by service name."""
        self.write_json({"deploys": self.extension.deploys.list()})


class DeployHandler(MLDeployHandler):
    """``DELETE deploys/{name}``: forget a failed deployment (its error was read)."""

    @tornado.web.authenticated
    async def delete(self, name: str) -> None:
        """Answer ``{"dismissed": name}``; 404 when none is listed, 409 while it is under way."""
        try:
            self.extension.deploys.dismiss(name)
        except MLDeployError as error:
            raise _DomainError(error) from error
        self.write_json({"dismissed": name})


# -- services -------------------------------------------------------------------------------------------


class ServicesHandler(MLDeployHandler):
    """``GET services``: every service with its state observed now."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"services": [Webservice.serialize(), ...]}``, sorted by name."""
        ws = await self.workspace()
        self.write_json({"services": await self.core(actions.service_dicts, ws)})


class ServiceHandler(MLDeployHandler):
    """``GET|DELETE services/{name}``."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer :meth:`Webservice.serialize`; 404 for an unknown service."""
        ws = await self.workspace()
        service = await self.core(actions.get_service, ws, name)
        self.write_json(await self.core(service.serialize))

    @tornado.web.authenticated
    async def delete(self, name: str) -> None:
        """Stop the service and remove it; answer ``{"deleted": name}``."""
        ws = await self.workspace()
        await self.core(actions.delete_service, ws, name)
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
        service = await self.core(actions.reload_service, ws, name)
        self.write_json(await self.core(service.serialize))


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
        logs = await self.core(actions.service_logs, ws, name, tail)
        self.write_json({"name": name, "tail": tail, "logs": logs})


class ServiceScoreHandler(MLDeployHandler):
    """``POST services/{name}/score[?protocol=v2|mlflow]``: send the request body to the service and report."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """Check the body against the service's input schema, then send it (with its Content-Type, default
        ``application/json``) through :func:`jupyter_mldeploy.actions.call_endpoint`.

        ``?protocol=v2`` posts it to ``/v2/models/<first model>/infer`` (Open Inference Protocol V2),
        ``?protocol=mlflow`` to ``/invocations``; the body must be in that protocol's format and is not checked
        against the input schema. A service with key auth gets its key from ``call_endpoint``.

        Answers 200 ``{"status": int, "body": str, "latency_ms": float, "headers": {str: str}, "location":
        str | null, "uri": str}`` whatever status the service answered (that status is the payload, not this
        response's); ``latency_ms`` is the wall time of the proxied request as seen from the Jupyter server,
        in milliseconds; a ``3xx`` is not followed (``location`` names where it pointed); ``uri`` is the URI
        called. Answers 400 ``{"message", "problems"}`` when the body does not fit the service's input schema
        (``?validate=false`` sends it anyway) or for an unknown protocol, 502 when the service does not answer
        at all, naming its state.
        """
        validate = self.get_query_argument("validate", None) is None or self.bool_argument("validate")
        protocol = self.protocol_argument()
        headers = {key: self.request.headers[key] for key in _FORWARDED_HEADERS if key in self.request.headers}
        ws = await self.workspace()
        call = await self.core(actions.call_endpoint, name, self.request.body or b"", ws, validate=validate,
                               headers=headers, timeout=self.extension.score_timeout, protocol=protocol)
        response = call.response
        assert response is not None  # one request: an answer, or ServiceUnreachable was raised
        self.write_json(
            {
                "status": response.status_code,
                "body": response.text,
                "latency_ms": round(response.latency_ms, 3),
                "headers": response.headers,
                "location": response.location,
                "uri": call.target,
            }
        )


class ServiceExampleHandler(MLDeployHandler):
    """``GET services/{name}/example[?protocol=v2|mlflow]``: the body the tester starts from, as the panel's Test
    tab shows it."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer ``{"body": example}``: the input schema's example, else a served model's ``sample_input``,
        floats rounded and shaped for ``?protocol`` by :func:`jupyter_mldeploy.actions.example_payload`
        (``rounded=True``); ``body`` is null when the service offers none. 400 for an unknown protocol or an
        example with no form in it (a ragged sample as a V2 tensor), 404 for an unknown service."""
        protocol = self.protocol_argument()
        ws = await self.workspace()
        endpoint = await self.core(actions.resolve_endpoint, name, ws)
        self.write_json({"body": await self.core(actions.example_payload, endpoint, rounded=True, protocol=protocol)})


class ServiceKeysHandler(MLDeployHandler):
    """``GET services/{name}/keys``: the service's keys, for the sidebar's copy button (never in a listing)."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer ``{"primaryKey", "secondaryKey"}``; the core's error (with how to turn key auth on) when the
        service has none. 404 for an unknown service."""
        ws = await self.workspace()
        service = await self.core(actions.get_service, ws, name)
        primary, secondary = await self.core(service.get_keys)
        self.set_header("Cache-Control", "no-store")
        self.write_json({"primaryKey": primary, "secondaryKey": secondary})


# -- environments ---------------------------------------------------------------------------------------


class EnvironmentsHandler(MLDeployHandler):
    """``GET environments``: curated and registered environments (latest version of each name)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer ``{"environments": [Environment.serialize(), ...]}``."""
        ws = await self.workspace()
        self.write_json({"environments": await self.core(actions.environment_dicts, ws)})


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
        (f"models/{_NAME}/{_VERSION}/deploy", ModelDeployHandler),
        ("deploys", DeploysHandler),
        (f"deploys/{_NAME}", DeployHandler),
        ("services", ServicesHandler),
        (f"services/{_NAME}", ServiceHandler),
        (f"services/{_NAME}/reload", ServiceReloadHandler),
        (f"services/{_NAME}/logs", ServiceLogsHandler),
        (f"services/{_NAME}/score", ServiceScoreHandler),
        (f"services/{_NAME}/example", ServiceExampleHandler),
        (f"services/{_NAME}/keys", ServiceKeysHandler),
        ("environments", EnvironmentsHandler),
    ]
    return [(f"{API_PREFIX}/{pattern}", handler) for pattern, handler in routes]
