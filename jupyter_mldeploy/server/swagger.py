"""``GET /swagger.json?version=2|3|3.1``: the service's OpenAPI document, as azmlinfsrv 1.5 builds it.

The document describes ``/``, ``/score`` and ``/swagger.json``, then the Open Inference Protocol V2 and MLflow
routes of the same server (generically: their bodies are the protocols' own); the score body and result are the
``ServiceInput`` / ``ServiceOutput`` definitions (``components/schemas`` in 3.x), taken from
inference-schema's own ``get_input_schema`` / ``get_output_schema`` when ``run`` is decorated (with the
samples as examples), else generic objects. Versions the decorators do not support (inference-schema's
``get_supported_versions``) are left out. A ``swagger2.json`` (or ``swagger.json``), ``swagger3.json`` or
``swagger3.1.json`` in the app root is served instead of the generated document for that version.
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


class SwaggerDocs:
    """The swagger documents of one loaded script, encoded once at start-up.

    Args:
        app_root: Folder searched for user swagger files.
        run: The script's ``run`` function.
        decorated: Whether inference-schema decorated ``run``.
        environ: Environment holding ``SERVICE_NAME`` (default ``ML service``), ``SERVICE_VERSION``
            (``1.0``) and ``SERVICE_PATH_PREFIX`` (empty), as azmlinfsrv reads them.
    """

    def __init__(self, app_root: str, run: Callable[..., Any], decorated: bool, environ: dict[str, str]) -> None:
        title = environ.get("SERVICE_NAME") or "ML service"
        service_version = environ.get("SERVICE_VERSION") or "1.0"
        prefix = environ.get("SERVICE_PATH_PREFIX", "").strip("/")
        prefix = f"/{prefix}" if prefix else ""
        input_schema, output_schema, supported = _schemas(run, decorated)
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
