"""Calling a service's ``/score`` from a face: resolve the target, check the body against the service's input
schema, send once or run a bounded load test, and report.

``%test_endpoint``, the panel's tester, ``mldeploy service run`` and the sidebar's score proxy all call
:func:`call_endpoint`, so they validate the same way (a mismatch is :class:`RequestMismatch`, HTTP 400,
naming the field; nothing is sent), never follow a redirect, and word their results the same way
(:meth:`EndpointCall.status_line`).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import requests

from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.deploy.client import LatencyReport, ScoringResponse, load_test, send_request
from jupyter_mldeploy.deploy.payload_schema import InputSchema, fetch_input_schema, swagger_uri_for
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.server.protocol_v2 import output_tensor
from jupyter_mldeploy.server.wire import WireError
from jupyter_mldeploy.workspace import Workspace

#: Upper bounds of a load test from a face: it runs on the caller's machine, against a local service.
MAX_REPEAT = 10_000
MAX_CONCURRENCY = 64
#: Seconds to wait for one answer unless the caller says otherwise.
DEFAULT_TIMEOUT_S = 60.0
#: Significant digits kept for the floats of an example body put in an editor (the panel's Test tab and the
#: sidebar's tester): a registered sample holds all 17 digits of a float64 (``0.0380759064334241``); four
#: read at a glance and change a prediction far less than its own error.
SAMPLE_SIGNIFICANT_DIGITS = 4


class RequestMismatch(InvalidArgument):
    """The body does not match the service's input schema, so it was not sent (HTTP 400).

    Args:
        problems: One line per mismatching field (``Field 'data[0]': expected 10 values ...``).

    Attributes:
        problems (list[str]): The lines, also in :meth:`to_dict` for the sidebar.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Not sent: the body does not match the service's input schema: " + " ".join(problems))
        self.problems = list(problems)

    def to_dict(self) -> dict[str, object]:
        """``{"message", "error", "status", "problems"}``."""
        return {**super().to_dict(), "problems": self.problems}


class ServiceUnreachable(MLDeployError):
    """The service did not answer at all (connection refused, timeout): HTTP 502."""

    http_status = HTTPStatus.BAD_GATEWAY


@dataclass(frozen=True)
class Endpoint:
    """What a call goes to.

    Attributes:
        scoring_uri: The ``/score`` URI.
        service: The workspace's service, or None when a bare URI was given.
    """

    scoring_uri: str
    service: Webservice | None = None


def is_scoring_uri(target: str) -> bool:
    """True when ``target`` is a URI (``http://...``) rather than a service name."""
    return target.startswith(("http://", "https://"))


#: The wire protocols a service answers (docs/protocols.md): ``/score``, Open Inference Protocol V2, MLflow.
PROTOCOLS = ("azureml", "v2", "mlflow")


def protocol_uri(endpoint: Endpoint, protocol: str = "azureml") -> str:
    """The URI a request of ``protocol`` goes to: ``/score``, ``/v2/models/<model>/infer`` or ``/invocations``.

    Args:
        endpoint: The service or scoring URI.
        protocol: One of :data:`PROTOCOLS`.

    Raises:
        InvalidArgument: For an unknown protocol, a URI that does not end in ``/score``, or ``v2`` with a bare
            URI (the model name is not known).
    """
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"Unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}.")
    uri = endpoint.scoring_uri
    if protocol == "azureml":
        return uri
    if not uri.endswith("/score"):
        raise InvalidArgument(f"{uri} does not end in /score: give the service name or its scoring URI for "
                              f"--protocol {protocol}.")
    base = uri[: -len("/score")]
    if protocol == "mlflow":
        return f"{base}/invocations"
    if endpoint.service is None:
        raise InvalidArgument("--protocol v2 needs the service name (a bare URI does not say which model to call).")
    models = endpoint.service.model_ids
    # the server names a service without a registered model "model" (server/protocol_v2.py)
    name = models[0].split(":", 1)[0] if models else "model"
    return f"{base}/v2/models/{name}/infer"


def resolve_endpoint(target: str, workspace: Workspace | None = None) -> Endpoint:
    """Turn a service name (of ``workspace``) or a scoring URI into an :class:`Endpoint`.

    Raises:
        InvalidArgument: For a name without a workspace.
        NotFound: For an unknown service.
    """
    if is_scoring_uri(target):
        return Endpoint(target)
    if workspace is None:
        raise InvalidArgument(f"{target!r} is not a URI: give a workspace to look the service up by name.")
    service = Webservice(workspace, target)
    return Endpoint(service.scoring_uri, service)


@dataclass(frozen=True)
class EndpointCall:
    """One call: the answer, or a load test's measurements.

    Attributes:
        target: The scoring URI called.
        response: The answer (the last one of a load test), or None when no request got one.
        report: The load test's measurements when ``repeat`` > 1, else None.
    """

    target: str
    response: ScoringResponse | None
    report: LatencyReport | None = None

    @property
    def ok(self) -> bool:
        """True when every request got a 2xx answer."""
        if self.report is not None:
            return self.report.failures == 0
        return self.response is not None and self.response.ok

    def status_line(self) -> str:
        """One line: ``HTTP 200 in 3.1 ms, request id ...``, a redirect's target, or the load test's figures."""
        if self.report is not None:
            report = self.report
            statuses = ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(report.statuses.items()))
            return (f"{report.count} requests, {report.failures} failed ({statuses}); p50 {report.p50_ms:.1f} ms, "
                    f"p99 {report.p99_ms:.1f} ms, {report.requests_per_second:.0f} req/s")
        if self.response is None:
            return "no answer"
        response = self.response
        line = f"HTTP {response.status_code} in {response.latency_ms:.1f} ms"
        if response.location is not None:
            line += f", redirect to {response.location} (not followed)"
        if response.request_id:
            line += f", request id {response.request_id}"
        return line

    def pretty_body(self) -> str:
        """The answer's body: JSON indented by 2, text as sent; empty without an answer."""
        if self.response is None:
            return ""
        body = self.response.body
        return body if isinstance(body, str) else json.dumps(body, indent=2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ``{target, ok, response: ScoringResponse.to_dict() | None, report: ... | None}``."""
        return {
            "target": self.target,
            "ok": self.ok,
            "response": self.response.to_dict() if self.response is not None else None,
            "report": self.report.to_dict() if self.report is not None else None,
        }


def input_schema(endpoint: Endpoint) -> InputSchema | None:
    """The service's input schema from its swagger document, or None (no typed inputs, or no answer)."""
    return fetch_input_schema(swagger_uri_for(endpoint.scoring_uri))


def check_request(schema: InputSchema | None, payload: Any) -> None:
    """Check a body against a schema, as every face does before sending.

    Args:
        schema: The input schema, or None (nothing to check).
        payload: The body: parsed JSON, or ``str``/``bytes`` holding JSON.

    Raises:
        RequestMismatch: Naming each mismatching field.
    """
    if schema is None:
        return
    problems = schema.validate(payload)
    if problems:
        raise RequestMismatch(problems)


def round_floats(value: Any, digits: int = SAMPLE_SIGNIFICANT_DIGITS) -> Any:
    """Round every float in a JSON value to ``digits`` significant digits (``%g`` formatting's rule).

    Integers, strings, booleans, None, NaN and infinities are kept as they are; lists and dicts are copied.
    """
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, list):
        return [round_floats(item, digits) for item in value]
    if isinstance(value, dict):
        return {key: round_floats(item, digits) for key, item in value.items()}
    return value


def protocol_payload(body: Any, protocol: str = "azureml") -> Any:
    """Shape a ``/score`` body as a request of another protocol that reaches ``run()`` with the same input.

    The inverse of the server's translation (docs/protocols.md): a V2 tensor becomes the ``run()`` parameter
    of its name (a classic ``run(raw_data)`` gets its one tensor as ``{"data": rows}``), MLflow's ``inputs``
    become the one parameter's rows, or name the parameters when there are several.

    - ``azureml``: the body as it is;
    - ``v2``: ``{"inputs": [{"name": key, "shape", "datatype", "data": value}]}``, one tensor per key of the
      body, datatype and shape inferred as the server infers an output's
      (:func:`jupyter_mldeploy.server.protocol_v2.output_tensor`: ``float64`` -> ``FP64``, ``int64`` ->
      ``INT64``, strings -> ``BYTES``), ``data`` kept nested as given (rows stay rows);
    - ``mlflow``: ``{"inputs": value}`` for a body with one key, else ``{"inputs": body}``.

    Args:
        body: A ``/score`` body: a JSON object of input name -> value (``{"data": [[...], ...]}``).
        protocol: One of :data:`PROTOCOLS`.

    Returns:
        The request body in ``protocol``'s format (JSON-safe).

    Raises:
        InvalidArgument: For an unknown protocol, or a body that is not a JSON object (or, for ``v2``, holds a
            value with no tensor form: ragged rows or mixed types), naming what to send instead.
    """
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"Unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}.")
    if protocol == "azureml":
        return body
    if not isinstance(body, dict) or not body:
        raise InvalidArgument(f"A {protocol} request is shaped from a /score body that is a JSON object of inputs "
                              f"({{\"data\": rows}}); got {type(body).__name__}: write the {protocol} body yourself.")
    if protocol == "mlflow":
        return {"inputs": next(iter(body.values())) if len(body) == 1 else body}
    tensors = []
    for name, value in body.items():
        try:
            tensor = output_tensor(str(name), value)
        except WireError:
            raise InvalidArgument(f"Input {name!r} has no tensor form (ragged rows or mixed types): write the V2 "
                                  "body yourself (docs/protocols.md).") from None
        tensors.append({"name": tensor["name"], "shape": tensor["shape"], "datatype": tensor["datatype"],
                        "data": value if isinstance(value, list) else [value]})
    return {"inputs": tensors}


def example_payload(endpoint: Endpoint, schema: InputSchema | None = None, rounded: bool = False,
                    protocol: str = "azureml") -> Any:
    """A body to start from: the schema's example, else a served model's ``sample_input``.

    Args:
        endpoint: The endpoint.
        schema: Its input schema when already fetched (else it is fetched).
        rounded: Round its floats to :data:`SAMPLE_SIGNIFICANT_DIGITS` significant digits, as the editors
            show it (the panel's Test tab, and the sidebar through ``GET services/{name}/example``).
        protocol: Shape it for this protocol (:func:`protocol_payload`): the panel's and the sidebar's
            protocol choice.

    Returns:
        The example (JSON-safe), or None when the service offers none.

    Raises:
        InvalidArgument: For an unknown protocol, or an example that has no form in ``protocol``.
    """
    schema = schema if schema is not None else input_schema(endpoint)
    example = None
    if schema is not None and schema.example is not None:
        example = schema.example
    elif endpoint.service is not None:
        for model_id in endpoint.service.model_ids:
            name, _, version = model_id.partition(":")
            # A served version deleted with force=True has no sample any more: try the next one.
            with contextlib.suppress(NotFound):
                model = Model(endpoint.service.workspace, name, version=int(version) if version else None)
                if model.sample_input is not None:
                    example = model.sample_input
                    break
    if example is None:
        return None
    return protocol_payload(round_floats(example) if rounded else example, protocol)


def _unreachable(endpoint: Endpoint, exc: Exception) -> ServiceUnreachable:
    where = f"Service {endpoint.service.name!r}" if endpoint.service is not None else endpoint.scoring_uri
    state = ""
    if endpoint.service is not None:
        try:
            state = f" (state {endpoint.service.state})"
        except MLDeployError:
            state = " (state unknown)"
    return ServiceUnreachable(f"{where} did not answer at {endpoint.scoring_uri}{state}: {type(exc).__name__}. "
                              "Open its logs, then reload or redeploy it.")


def call_endpoint(target: str | Endpoint, payload: Any, workspace: Workspace | None = None, validate: bool = True,
                  repeat: int = 1, concurrency: int = 1, headers: dict[str, str] | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S, schema: InputSchema | None = None,
                  protocol: str = "azureml") -> EndpointCall:
    """Check a body against the service's input schema, then send it once or ``repeat`` times.

    Args:
        target: A service name of ``workspace``, a scoring URI, or an :class:`Endpoint`.
        payload: The body: bytes or str (sent as is) or a JSON-safe value (numpy/pandas encoded).
        workspace: Where to look a service name up.
        validate: Check the body first when the service publishes an input schema (an inference-schema
            decorated ``run``); a service without one, or whose swagger does not answer, is not checked.
        repeat: Requests to send, 1..:data:`MAX_REPEAT`; above 1 this is a load test.
        concurrency: Parallel clients of a load test, 1..:data:`MAX_CONCURRENCY`.
        headers: Extra request headers (``Content-Type: application/json`` unless given); a service with key
            auth gets ``Authorization: Bearer <primary key>`` unless the headers carry their own.
        timeout: Seconds to wait for each answer.
        schema: The input schema when the caller already fetched it (to prefill the body); else it is
            fetched when ``validate`` is True.
        protocol: ``"azureml"`` (``/score``), ``"v2"`` (``/v2/models/<first model>/infer``) or ``"mlflow"``
            (``/invocations``); the body must be in that protocol's format. Only ``/score`` bodies are
            checked against the input schema.

    Returns:
        EndpointCall: whatever status the service answered (a ``3xx`` is reported, never followed).

    Raises:
        InvalidArgument: For ``repeat``/``concurrency`` out of range or an unencodable payload.
        RequestMismatch: When the body does not fit the schema (nothing was sent).
        NotFound: For an unknown service name.
        ServiceUnreachable: When a single request gets no answer at all, naming the service's state.
    """
    if isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEAT:
        raise InvalidArgument(f"repeat ({repeat!r}) must be from 1 to {MAX_REPEAT}.")
    if isinstance(concurrency, bool) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidArgument(f"concurrency ({concurrency!r}) must be from 1 to {MAX_CONCURRENCY}.")
    endpoint = target if isinstance(target, Endpoint) else resolve_endpoint(target, workspace)
    uri = protocol_uri(endpoint, protocol)
    if endpoint.service is not None:
        headers = endpoint.service.auth_headers(headers)  # a service with key auth: its primary key
    if validate and protocol == "azureml":
        check_request(schema if schema is not None else input_schema(endpoint), payload)
    if repeat > 1:
        report = load_test(uri, payload, repeat, concurrency, headers=headers, timeout=timeout)
        return EndpointCall(uri, report.last, report)
    try:
        response = send_request(uri, payload, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise _unreachable(endpoint, exc) from exc
    return EndpointCall(uri, response)


__all__ = [
    "MAX_CONCURRENCY",
    "MAX_REPEAT",
    "PROTOCOLS",
    "SAMPLE_SIGNIFICANT_DIGITS",
    "Endpoint",
    "EndpointCall",
    "RequestMismatch",
    "ServiceUnreachable",
    "call_endpoint",
    "check_request",
    "example_payload",
    "input_schema",
    "is_scoring_uri",
    "protocol_payload",
    "protocol_uri",
    "resolve_endpoint",
    "round_floats",
]
