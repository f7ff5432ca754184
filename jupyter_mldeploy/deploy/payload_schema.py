"""A service's input schema, read from its swagger, and a check of a request body against it.

A ``run()`` decorated with inference-schema's ``@input_schema`` publishes its inputs as the
``ServiceInput`` definition of ``GET /swagger.json?version=2`` (a JSON schema with ``properties`` and an
``example`` built from the decorators' samples; see ``server/swagger.py``). Checking a payload against it
before sending turns a bare ``500 An unexpected error occurred in scoring script`` into one line naming the
field that does not fit. An undecorated ``run(raw_data)`` publishes a generic object: nothing to check.

Client-side, beside :mod:`.client`: used through :func:`jupyter_mldeploy.actions.call_endpoint` by every
face (``%test_endpoint``, the panel's tester, ``mldeploy service run``, the sidebar's score proxy), so they
validate and prefill requests the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

#: Seconds to wait for a local service's swagger document.
SWAGGER_TIMEOUT_S = 5.0
#: How many problems a check reports at most (the first ones are the useful ones).
MAX_PROBLEMS = 5

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


@dataclass(frozen=True)
class InputSchema:
    """The ``ServiceInput`` schema of a schema-decorated ``run()``.

    Attributes:
        schema: The JSON schema (swagger 2 ``definitions.ServiceInput``): ``type: object`` with one
            property per ``run`` input.
        example: The request example generated from the decorators' samples, or None.
    """

    schema: dict[str, Any]
    example: Any = None

    @property
    def fields(self) -> list[str]:
        """The input names, in the order the schema lists them."""
        return list((self.schema.get("properties") or {}).keys())

    def validate(self, payload: Any) -> list[str]:
        """Check a request body against the schema.

        Args:
            payload: The parsed JSON body (a ``str`` or ``bytes`` body is parsed first).

        Returns:
            list[str]: Up to :data:`MAX_PROBLEMS` lines, each naming a field (``data[0][1]``), what the
            schema expects and what the payload holds; empty when the body fits.
        """
        if isinstance(payload, (bytes, bytearray)):
            payload = payload.decode("utf-8", errors="replace")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except json.JSONDecodeError as exc:
                return [f"The body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})."]
        problems: list[str] = []
        if not isinstance(payload, dict):
            return [f"The body must be a JSON object with the fields {', '.join(self.fields)}; got {_kind(payload)}."]
        for name, sub in (self.schema.get("properties") or {}).items():
            if name not in payload:
                problems.append(f"Field '{name}' is missing (the service's inputs: {', '.join(self.fields)}).")
                continue
            sample = self.example.get(name) if isinstance(self.example, dict) else None
            _check(payload[name], sub, name, problems, sample)
        return problems[:MAX_PROBLEMS]


def _kind(value: Any) -> str:
    """Name a JSON value's type as JSON schema does, with a short sample of the value."""
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        types = _JSON_TYPES[name]
        if isinstance(value, types) and not (name in ("integer", "number") and isinstance(value, bool)):
            shown = json.dumps(value)
            return f"{name} {shown if len(shown) <= 40 else shown[:37] + '...'}"
    return type(value).__name__


def _matches_type(value: Any, expected: str) -> bool:
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(expected, (object,)))


def _check(value: Any, schema: dict[str, Any], where: str, problems: list[str], sample: Any = None) -> None:
    """Append a problem per mismatch of ``value`` against ``schema`` (recursively, first few only).

    ``sample`` is the field's value in the schema's example: numpy inputs take their shape from it.
    """
    if len(problems) >= MAX_PROBLEMS or not isinstance(schema, dict):
        return
    expected = schema.get("type")
    types = expected if isinstance(expected, list) else [expected] if isinstance(expected, str) else []
    if schema.get("nullable") and value is None:
        return
    if types and not any(_matches_type(value, t) for t in types):
        problems.append(f"Field '{where}': expected {' or '.join(types)}, got {_kind(value)}.")
        return
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _check(item, items, f"{where}[{index}]", problems)
                if len(problems) >= MAX_PROBLEMS:
                    return
        if schema.get("format") == "numpy.ndarray":
            _check_shape(value, schema.get("example", sample), where, problems)
    elif isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                _check(value[name], sub, f"{where}.{name}", problems)


def _shape(value: Any) -> list[int]:
    """The shape of a rectangular nested list (as far as it is rectangular)."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _check_shape(value: list[Any], example: Any, where: str, problems: list[str]) -> None:
    """numpy inputs: every dimension but the first must match the sample's (inference-schema enforces it)."""
    want = _shape(example) if isinstance(example, list) else []
    if len(want) < 2:
        return

    def walk(node: list[Any], dims: list[int], path: str) -> bool:
        for index, child in enumerate(node):
            if not isinstance(child, list):
                return False
            if len(child) != dims[0]:
                problems.append(
                    f"Field '{path}[{index}]': expected {dims[0]} values (the schema's sample has shape "
                    f"{tuple(want)}), got {len(child)}."
                )
                return True
            if len(dims) > 1 and walk(child, dims[1:], f"{path}[{index}]"):
                return True
        return False

    walk(value, want[1:], where)


def input_schema_from_swagger(document: dict[str, Any]) -> InputSchema | None:
    """Extract the ``ServiceInput`` schema from a swagger 2 or OpenAPI 3 document.

    Args:
        document: The parsed ``/swagger.json`` answer.

    Returns:
        InputSchema | None: None when the service publishes no typed inputs (an undecorated ``run``, whose
        input is a generic object without ``properties``).
    """
    definitions = document.get("definitions") or (document.get("components") or {}).get("schemas") or {}
    schema = definitions.get("ServiceInput")
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        return None
    return InputSchema(schema=schema, example=schema.get("example"))


def fetch_input_schema(swagger_uri: str, timeout: float = SWAGGER_TIMEOUT_S) -> InputSchema | None:
    """Read a service's input schema from its swagger document.

    Args:
        swagger_uri: ``http://127.0.0.1:<port>/swagger.json``.
        timeout: Seconds to wait.

    Returns:
        InputSchema | None: None when the service has no typed inputs, or does not answer (a check that
        cannot be made is skipped: the request itself will tell).
    """
    try:
        response = requests.get(swagger_uri, params={"version": "2"}, timeout=timeout, allow_redirects=False)
        if response.status_code != 200:
            return None
        document = response.json()
    except (requests.RequestException, ValueError):
        return None
    return input_schema_from_swagger(document) if isinstance(document, dict) else None


def swagger_uri_for(scoring_uri: str) -> str:
    """``http://host:port/score`` -> ``http://host:port/swagger.json`` (any path ending in ``/score``)."""
    base = scoring_uri.split("?", 1)[0].rstrip("/")
    if base.endswith("/score"):
        base = base[: -len("/score")]
    return base + "/swagger.json"


__all__ = [
    "InputSchema",
    "fetch_input_schema",
    "input_schema_from_swagger",
    "swagger_uri_for",
]
