"""``GET /swagger.json?version=2|3|3.1``: the service's OpenAPI document, as azmlinfsrv 1.5 builds it.

The document describes ``/``, ``/score`` and ``/swagger.json``, then the Open Inference Protocol V2 and MLflow
routes of the same server (generically: their bodies are the protocols' own); the score body and result are the
``ServiceInput`` / ``ServiceOutput`` definitions (``components/schemas`` in 3.x), taken from
inference-schema's own ``get_input_schema`` / ``get_output_schema`` when ``run`` is decorated (with the
samples as examples), else, when the deployment passed a model's samples in ``MLDEPLOY_SWAGGER_SAMPLES``
(a no-code deployment, see below), built from them, else generic objects. Versions the decorators do not
support (inference-schema's ``get_supported_versions``) are left out. A ``swagger2.json`` (or
``swagger.json``), ``swagger3.json`` or ``swagger3.1.json`` in the app root is served instead of the
generated document for that version.

``MLDEPLOY_SWAGGER_SAMPLES`` holds ``{"source": ..., "input": SAMPLE, "output": SAMPLE, "inputKey": "data"}``,
each SAMPLE the content of a registry sample file (``jupyter_mldeploy/registry/samples.py``: ``kind``
``table`` with ``columns`` of ``{name, dtype, type, format}``, ``tensor`` with ``dtype`` and ``shape``, or
``json``; ``data`` or ``value`` holds the example rows), or null. The input schema is an object whose
``inputKey`` member holds the rows (the built-in scripts' ``{"data": rows}``); columns with names become a row
object's properties, columns without become array items; each schema carries the example.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("mldeploy.server")

#: Version -> accepted spellings of ``?version=``.
VERSION_ALIASES: dict[str, tuple[str, ...]] = {"2": ("2", "2.0"), "3": ("3", "3.0"), "3.1": ("3.1",)}
_USER_FILES: dict[str, tuple[str, ...]] = {
    "2": ("swagger.json", "swagger2.json"),
    "3": ("swagger3.json",),
    "3.1": ("swagger3.1.json",),
}
_GENERIC_SCHEMA: dict[str, Any] = {"type": "object", "example": {}}
_ERROR_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"message": {"type": "string"}}}
_BEARER = {"type": "apiKey", "name": "Authorization", "in": "header", "description": "For example: Bearer abc123"}
_HEALTH_DESCRIPTION = "If service is up and running, this response will be returned with the content 'Healthy'"
_ERROR_DESCRIPTION = "The service failed to execute due to an error."


#: The variable a deployment passes a model's samples (or its MLflow signature, in the same shape) in.
SAMPLES_VARIABLE = "MLDEPLOY_SWAGGER_SAMPLES"

#: JSON schema ``format`` of a column's dtype, as inference-schema writes them.
_DTYPE_FORMATS = {"float64": "double", "float32": "float", "int64": "int64", "int32": "int32"}


class SwaggerError(Exception):
    """An unknown or unsupported version was asked for (answered with 404)."""


#: The other wire protocols' routes (docs/protocols.md): path -> (method, operationId, description, needs a key).
_PROTOCOL_ROUTES: tuple[tuple[str, str, str, str, bool], ...] = (
    ("/v2/health/live", "get", "V2ServerLive", "Open Inference Protocol V2: server liveness.", False),
    ("/v2/health/ready", "get", "V2ServerReady", "Open Inference Protocol V2: server readiness.", False),
    ("/v2", "get", "V2ServerMetadata", "Open Inference Protocol V2: server metadata.", True),
    ("/v2/models/{model_name}", "get", "V2ModelMetadata",
     "Open Inference Protocol V2: model metadata (inputs and outputs with datatype and shape).", True),
    ("/v2/models/{model_name}/ready", "get", "V2ModelReady", "Open Inference Protocol V2: model readiness.", True),
    ("/v2/models/{model_name}/infer", "post", "V2ModelInfer",
     "Open Inference Protocol V2: run the model on input tensors (name, shape, datatype, data).", True),
    ("/v2/models/{model_name}/versions/{model_version}", "get", "V2ModelVersionMetadata",
     "Open Inference Protocol V2: metadata of one model version.", True),
    ("/v2/models/{model_name}/versions/{model_version}/ready", "get", "V2ModelVersionReady",
     "Open Inference Protocol V2: readiness of one model version.", True),
    ("/v2/models/{model_name}/versions/{model_version}/infer", "post", "V2ModelVersionInfer",
     "Open Inference Protocol V2: run one model version on input tensors.", True),
    ("/invocations", "post", "MLflowInvocations",
     "MLflow scoring protocol: dataframe_split, dataframe_records, instances or inputs (JSON), or text/csv.", True),
    ("/ping", "get", "MLflowPing", "MLflow scoring protocol: health.", False),
    ("/health", "get", "MLflowHealth", "MLflow scoring protocol: health.", False),
    ("/version", "get", "MLflowVersion", "MLflow scoring protocol: server version.", True),
)


def _protocol_paths(prefix: str, openapi3: bool) -> dict[str, Any]:
    """The V2 and MLflow routes, described generically (their bodies are the protocols' own)."""
    paths: dict[str, Any] = {}
    for path, method, operation_id, description, keyed in _PROTOCOL_ROUTES:
        operation: dict[str, Any] = {"operationId": operation_id, "description": description,
                                     "responses": {"200": {"description": "Success."},
                                                   "default": {"description": _ERROR_DESCRIPTION}}}
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        if names:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True,
                 **({"schema": {"type": "string"}} if openapi3 else {"type": "string"})}
                for name in names
            ]
        if keyed:
            operation["security"] = [{"Bearer": []}]
        paths[f"{prefix}{path}"] = {method: operation}
    return paths


def _openapi2(title: str, version: str, prefix: str, schemas: tuple[Any, Any]) -> dict[str, Any]:
    error = {"description": _ERROR_DESCRIPTION, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": {"title": title, "description": f"API specification for the Azure Machine Learning service {title}",
                 "version": version},
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": dict(_BEARER)},
        "paths": {
            f"{prefix}/": {"get": {
                "operationId": "ServiceHealthCheck",
                "description": "Simple health check endpoint to ensure the service is up at any given point.",
                "responses": {"200": {"description": _HEALTH_DESCRIPTION, "schema": {"type": "string"},
                                      "examples": {"application/json": "Healthy"}},
                              "default": error},
            }},
            f"{prefix}/score": {"post": {
                "operationId": "RunMLService",
                "description": "Run web service's model and get the prediction output",
                "security": [{"Bearer": []}],
                "parameters": [{"name": "serviceInputPayload", "in": "body",
                                "description": "The input payload for executing the real-time machine learning service.",
                                "schema": {"$ref": "#/definitions/ServiceInput"}}],
                "responses": {"200": {"description": "The service processed the input correctly and provided a result prediction, if applicable.",
                                      "schema": {"$ref": "#/definitions/ServiceOutput"}},
                              "default": error},
            }},
            f"{prefix}/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec",
                "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False, "type": "integer",
                                "enum": [2, 3]}],
                "responses": {"200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                              "default": error},
            }},
            **_protocol_paths(prefix, openapi3=False),
        },
        "definitions": {"ServiceInput": schemas[0], "ServiceOutput": schemas[1], "ErrorResponse": _ERROR_SCHEMA},
    }


def _openapi3(title: str, version: str, prefix: str, schemas: tuple[Any, Any], openapi: str) -> dict[str, Any]:
    def json_body(ref: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    error = {"description": _ERROR_DESCRIPTION, "content": json_body("ErrorResponse")}
    return {
        "openapi": openapi,
        "info": {"title": title, "description": f"API specification for the Azure Machine Learning service {title}",
                 "version": version},
        "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {"get": {
                "operationId": "ServiceHealthCheck",
                "description": "Simple health check endpoint to ensure the service is up at any given point.",
                "responses": {"200": {"description": _HEALTH_DESCRIPTION,
                                      "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}}},
                              "default": error},
            }},
            f"{prefix}/score": {"post": {
                "operationId": "RunMLService",
                "description": "Run web service's model and get the prediction output",
                "security": [{"Bearer": []}],
                "requestBody": {"description": "The input payload for executing the real-time machine learning service.",
                                "content": json_body("ServiceInput")},
                "responses": {"200": {"description": "The service processed the input correctly and provided a result prediction, if applicable.",
                                      "content": json_body("ServiceOutput")},
                              "default": error},
            }},
            f"{prefix}/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec",
                "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False,
                                "schema": {"type": "integer", "enum": [2, 3]}}],
                "responses": {"200": {"description": "The Swagger specification.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "default": error},
            }},
            **_protocol_paths(prefix, openapi3=True),
        },
        "components": {
            "schemas": {"ServiceInput": schemas[0], "ServiceOutput": schemas[1], "ErrorResponse": _ERROR_SCHEMA},
            "securitySchemes": {"Bearer": dict(_BEARER)},
        },
    }


def _schemas(run: Callable[..., Any], decorated: bool) -> tuple[Any, Any, list[str]]:
    """Return (input schema, output schema, supported versions) from inference-schema, or generic ones."""
    if not decorated:
        return copy.deepcopy(_GENERIC_SCHEMA), copy.deepcopy(_GENERIC_SCHEMA), list(VERSION_ALIASES)
    from inference_schema.schema_util import get_input_schema, get_output_schema, get_supported_versions

    supported = [str(v) for v in get_supported_versions(run)]
    return get_input_schema(run), get_output_schema(run), supported


def _value_schema(json_type: Any, dtype: Any = None, fmt: Any = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": json_type} if json_type else {}
    found = fmt or _DTYPE_FORMATS.get(str(dtype))
    if found and json_type:
        schema["format"] = found
    return schema


def _sample_schema(sample: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Return ``(JSON schema, example)`` of one sample description (see the module docstring)."""
    kind = sample.get("kind")
    if kind == "table":
        columns = sample.get("columns") or []
        data = sample.get("data") or []
        cells = [_value_schema(c.get("type"), c.get("dtype"), c.get("format")) for c in columns]
        if int(sample.get("ndim", 2)) == 1:
            return {"type": "array", "items": cells[0] if cells else {}}, data
        if columns and all(c.get("name") is not None for c in columns):
            names = [str(c["name"]) for c in columns]
            properties = dict(zip(names, cells, strict=True))
            row: dict[str, Any] = {"type": "object", "properties": properties, "required": names}
            return {"type": "array", "items": row}, [dict(zip(names, values, strict=False)) for values in data]
        same = cells[0] if cells and all(cell == cells[0] for cell in cells) else {}
        row = {"type": "array", "items": same, "minItems": len(columns), "maxItems": len(columns)}
        return {"type": "array", "items": row}, data
    if kind == "tensor":
        schema = _value_schema(sample.get("type"), sample.get("dtype"))
        for _ in sample.get("shape") or []:
            schema = {"type": "array", "items": schema}
        return schema, sample.get("data")
    value = sample.get("value")
    json_type = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
                 float: "number"}.get(type(value))
    return ({"type": json_type} if json_type else {}), value


def samples_schemas(description: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Return the ``ServiceInput`` and ``ServiceOutput`` schemas of a ``MLDEPLOY_SWAGGER_SAMPLES`` description.

    Args:
        description: The parsed variable (see the module docstring).

    Returns:
        The input and output schemas, each with its ``example``; None for a sample not given.
    """
    schemas: list[dict[str, Any] | None] = []
    for which in ("input", "output"):
        sample = description.get(which)
        if not isinstance(sample, dict):
            schemas.append(None)
            continue
        schema, example = _sample_schema(sample)
        key = description.get("inputKey") if which == "input" and sample.get("kind") != "json" else None
        if key:
            schema = {"type": "object", "properties": {key: schema}, "required": [key]}
            example = {key: example}
        if example is not None and example != []:
            schema["example"] = example
        schemas.append(schema)
    return schemas[0], schemas[1]


def _described_schemas(environ: dict[str, str]) -> tuple[Any, Any] | None:
    """The schemas from ``MLDEPLOY_SWAGGER_SAMPLES``, or None when unset or unreadable (logged)."""
    raw = environ.get(SAMPLES_VARIABLE)
    if not raw:
        return None
    try:
        description = json.loads(raw)
        input_schema, output_schema = samples_schemas(description)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        logger.warning("%s cannot be read (%s): the swagger documents use generic schemas.", SAMPLES_VARIABLE, exc)
        return None
    logger.info("Swagger schemas come from the model's %s.", description.get("source") or "samples")
    return (input_schema or copy.deepcopy(_GENERIC_SCHEMA), output_schema or copy.deepcopy(_GENERIC_SCHEMA))


class SwaggerDocs:
    """The swagger documents of one loaded script, encoded once at start-up.

    Args:
        app_root: Folder searched for user swagger files.
        run: The script's ``run`` function.
        decorated: Whether inference-schema decorated ``run``.
        environ: Environment holding ``SERVICE_NAME`` (default ``ML service``), ``SERVICE_VERSION``
            (``1.0``) and ``SERVICE_PATH_PREFIX`` (empty), as azmlinfsrv reads them, and
            ``MLDEPLOY_SWAGGER_SAMPLES`` (used when ``run`` is not decorated).
    """

    def __init__(self, app_root: str, run: Callable[..., Any], decorated: bool, environ: dict[str, str]) -> None:
        title = environ.get("SERVICE_NAME") or "ML service"
        service_version = environ.get("SERVICE_VERSION") or "1.0"
        prefix = environ.get("SERVICE_PATH_PREFIX", "").strip("/")
        prefix = f"/{prefix}" if prefix else ""
        input_schema, output_schema, supported = _schemas(run, decorated)
        described = None if decorated else _described_schemas(environ)
        if described is not None:
            input_schema, output_schema = described
        self.documents: dict[str, bytes] = {}
        self.supported: list[str] = []
        for version, aliases in VERSION_ALIASES.items():
            document = self._user_file(app_root, version)
            if document is None and any(alias in supported for alias in aliases):
                schemas = (copy.deepcopy(input_schema), copy.deepcopy(output_schema))
                if version == "2":
                    document = _openapi2(title, service_version, prefix, schemas)
                else:
                    document = _openapi3(title, service_version, prefix, schemas, "3.1.0" if version == "3.1" else "3.0.3")
            if document is not None:
                self.supported.append(version)
                encoded = json.dumps(document).encode()
                for alias in aliases:
                    self.documents[alias] = encoded
        logger.info("Swaggers are prepared for the following versions: [%s].", ", ".join(self.supported))

    @staticmethod
    def _user_file(app_root: str, version: str) -> Any:
        for name in _USER_FILES[version]:
            path = os.path.join(app_root, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    document = json.load(handle)
                logger.info("Loaded user's swagger file for version [%s] from %s", version, path)
                return document
        return None

    def get(self, version: str) -> bytes:
        """Return the encoded document for ``version`` (an alias such as ``2.0`` is accepted).

        Raises:
            SwaggerError: With azmlinfsrv's message, when the version is unknown or unsupported.
        """
        valid = {alias for aliases in VERSION_ALIASES.values() for alias in aliases}
        supported = ", ".join(sorted(self.supported))
        if version not in valid:
            raise SwaggerError(f"Swagger version [{version}] is not valid. Supported versions: [{supported}].")
        document = self.documents.get(version)
        if document is None:
            raise SwaggerError(
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}]."
            )
        return document
