"""Loading the entry script, checking ``run()``'s signature, and calling ``run()`` for one request.

The rules are azmlinfsrv 1.5's (``server/user_script.py`` and ``input_parsers.py`` there), written once in
:mod:`~jupyter_mldeploy.server.script_rules`:

* the script must define ``init()`` and ``run()``; a ``driver_module`` attribute holding a module with
  ``run`` is followed (Azure ML's generated driver scripts);
* ``run`` may not take ``*args``, ``**kwargs`` or positional-only parameters and needs one input besides
  the optional ``request_headers``; ``@rawhttp`` together with ``@input_schema`` is an error;
* the input mode follows from the decorators: raw request (``@rawhttp``), keyword arguments from a JSON
  object (inference-schema's ``@input_schema``), or the body as one ``str`` (undecorated).

:meth:`UserScript.invoke_run` is the one place that turns a request (body, headers, method, query) into a
``run()`` call; the HTTP app, the ``--check`` trial run and batch scoring all call it, and
:func:`~jupyter_mldeploy.server.encoding.encode_result` turns what ``run()`` returned into the answer.
Where and with which timeout the call runs is :mod:`~jupyter_mldeploy.server.runner`'s business.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from jupyter_mldeploy.server import script_rules, shims
from jupyter_mldeploy.server.script_rules import OBJECT, RAW, STRING, RunParameter
from jupyter_mldeploy.server.shims import AMLRequest, Headers

__all__ = [
    "OBJECT", "RAW", "STRING", "ClientError", "Connection", "NumpyFastPath", "UserScript", "UserScriptError",
    "model_dir_listing", "query_parameters", "walk_path",
]


class UserScriptError(Exception):
    """The entry script cannot be served (missing functions, bad ``run`` signature, import failure)."""


class ClientError(Exception):
    """A request the contract refuses, answered as ``{"message": message}`` with ``status``.

    Raised by :meth:`UserScript.invoke_run` with azmlinfsrv's statuses and messages (400 for a body that is
    not what ``run`` takes, 415 for a non-JSON body to an ``@input_schema`` script, 405 for a method
    ``run`` is not called for), and by the HTTP app for its own refusals (404, 405, 413, 431).

    Attributes:
        status: The HTTP status.
        message: The message.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Connection:
    """Where a request came from, for the ``@rawhttp`` request object (Flask's ``request.url`` etc.).

    Attributes:
        scheme: ``http`` or ``https``.
        host: ``host[:port]`` the client addressed (default: the ``Host`` header).
        remote_addr: The client's IP address, or None.
        root_path: The mount prefix (usually empty).
    """

    scheme: str = "http"
    host: str = ""
    remote_addr: str | None = None
    root_path: str = ""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def query_parameters(query_string: bytes) -> dict[str, Any]:
    """Parse ``/score?...`` as azmlinfsrv does: each value JSON-parsed when it can be, repeated keys -> list.

    Args:
        query_string: The raw query string.

    Returns:
        dict[str, Any]: e.g. ``a=1&b=[1,2]&c=x&c=y`` -> ``{"a": 1, "b": [1, 2], "c": ["x", "y"]}``.
    """
    grouped: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True):
        grouped.setdefault(key, []).append(value)
    return {
        key: _parse_value(values[0]) if len(values) == 1 else [_parse_value(v) for v in values]
        for key, values in grouped.items()
    }


def _is_json(content_type: str | None) -> bool:
    # Flask's request.is_json, which azmlinfsrv's ObjectInput checks.
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # json accepts what orjson does not (NaN, UTF-16/32 bodies); it also gives azmlinfsrv's messages.
        try:
            return json.loads(body)
        except ValueError as exc:
            if body:
                raise ClientError(400, f"POST body could not be decoded as JSON: {exc}") from None
            raise ClientError(400, "POST body is empty. Expecting a JSON dictionary.") from None


@dataclass(frozen=True)
class NumpyFastPath:
    """How to build a ``NumpyParameterType`` argument straight from the parsed JSON list.

    Attributes:
        dtype: The sample's dtype (a plain numeric/bool/str dtype; structured and time dtypes take the
            decorator's own path).
        shape: The sample's shape; every dimension but the first must match when ``enforce_shape``.
        enforce_shape: The parameter type's ``enforce_shape``.
    """

    dtype: Any
    shape: tuple[int, ...]
    enforce_shape: bool

    def build(self, value: Any) -> Any:
        """Return ``value`` as an ndarray, with the checks and messages of inference-schema 1.8.

        Raises:
            ValueError: Not a list, or the wrong number of dimensions or size along a dimension.
        """
        import numpy as np

        if not isinstance(value, list):
            raise ValueError("Invalid input format: expected an array of items.")
        array = np.array(value, dtype=self.dtype)
        if self.enforce_shape:
            if array.ndim != len(self.shape):
                raise ValueError(
                    f"Invalid input array: an array with {len(self.shape)} dimensions is expected; "
                    f"input has {array.ndim} [shape {array.shape}]"
                )
            for dim in range(1, len(self.shape)):
                if array.shape[dim] != self.shape[dim]:
                    raise ValueError(
                        f"Invalid input array: array has size {array.shape[dim]} on dimension #{dim}, "
                        f"while expected value is {self.shape[dim]}"
                    )
        return array


def walk_path(path: str, depth: int = 0) -> Any:
    """Yield an indented listing of ``path`` (folders end with ``/``), depth first, sorted by name.

    Args:
        path: A file or folder.
        depth: Indentation level (4 spaces per level).

    Yields:
        str: One line per entry.
    """
    name = os.path.basename(os.path.normpath(path))
    indent = "    " * depth
    if os.path.isdir(path):
        yield f"{indent}{name}{os.sep}"
        try:
            children = sorted(os.listdir(path))
        except OSError as exc:
            yield f"{indent}    <cannot list: {exc}>"
            return
        for child in children:
            yield from walk_path(os.path.join(path, child), depth + 1)
    else:
        yield f"{indent}{name}"


def model_dir_listing(model_dir: str | None, limit: int = 200) -> str:
    """Return the first ``limit`` lines of a listing of ``AZUREML_MODEL_DIR`` (for init failures).

    Args:
        model_dir: The model folder, or None.
        limit: Maximum number of lines (azmlinfsrv shows 200).

    Returns:
        str: The listing, with a note when it was cut or the folder is missing.
    """
    if not model_dir:
        return "AZUREML_MODEL_DIR is not set."
    if not os.path.exists(model_dir):
        return f"AZUREML_MODEL_DIR {model_dir} does not exist."
    lines = []
    for index, line in enumerate(walk_path(model_dir)):
        if index == limit:
            lines.append(f"Output Truncated. First {limit} lines shown.")
            break
        lines.append(line)
    return "Model Directory Contents:\n" + "\n".join(lines)


class UserScript:
    """An entry script loaded into this process.

    Args:
        path: Absolute path of score.py.

    Raises:
        UserScriptError: The file is missing, lacks ``init``/``run``, or ``run`` breaks a rule of
            :mod:`~jupyter_mldeploy.server.script_rules` (the message is azmlinfsrv's).
        Exception: Whatever importing the script raises.

    Attributes:
        run: The ``run`` function called for requests (the driver module's when there is one).
        init: The ``init`` function.
        mode: :data:`RAW`, :data:`OBJECT` or :data:`STRING`.
        input_name: Name of the first input parameter (RAW / STRING modes).
        parameters: Input parameters other than ``request_headers`` (OBJECT mode).
        wants_headers: Whether ``run`` takes ``request_headers``.
        numpy_fast: Per parameter, how to build NumpyParameterType inputs directly.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.module = self._import()
        for name, rule in (("init", script_rules.NO_INIT), ("run", script_rules.NO_RUN)):
            if not hasattr(self.module, name):
                raise UserScriptError(rule.message.format(path=path))
        driver = getattr(self.module, "driver_module", None)
        if isinstance(driver, types.ModuleType) and hasattr(driver, "run"):
            self.run: Callable[..., Any] = driver.run
        else:
            self.run = self.module.run
        self.init: Callable[[], Any] = self.module.init
        self.numpy_fast: dict[str, NumpyFastPath] = {}
        self._analyze()

    def _import(self) -> types.ModuleType:
        if not os.path.isfile(self.path):
            raise UserScriptError(f"Entry script {self.path} does not exist; check --entry_script / AZUREML_ENTRY_SCRIPT.")
        spec = importlib.util.spec_from_file_location("entry_module", self.path)
        if spec is None or spec.loader is None:
            raise UserScriptError(f"Entry script {self.path} cannot be imported as a Python module.")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def _analyze(self) -> None:
        signature = inspect.signature(self.run).parameters
        described = [RunParameter.from_inspect(p) for p in signature.values()]
        rawhttp = shims.raw_http_requested()
        decorated = self.schema_decorated()
        violations = script_rules.signature_violations(described, rawhttp, decorated)
        if violations:
            raise UserScriptError(violations[0].rule.message)
        self.wants_headers = script_rules.REQUEST_HEADERS in signature
        self.parameters = [signature[p.name] for p in script_rules.input_parameters(described)]
        self.input_name = self.parameters[0].name
        self.mode = script_rules.input_mode(rawhttp, decorated)
        if self.mode == OBJECT:
            self.numpy_fast = _numpy_fast_paths(self.run)

    def schema_decorated(self) -> bool:
        """Return True when inference-schema decorated ``run`` (False when inference-schema is absent)."""
        try:
            from inference_schema.schema_util import is_schema_decorated
        except ImportError:
            return False
        return bool(is_schema_decorated(self.run))

    def describe(self) -> str:
        """One log line saying how ``run()`` will be called."""
        if self.mode == RAW:
            return "run() is decorated with @rawhttp. Server will invoke it with the request object."
        if self.mode == OBJECT:
            names = ", ".join(p.name for p in self.parameters)
            return f"run() is decorated with @input_schema. Server will invoke it with the following arguments: {names}."
        return "run() is not decorated. Server will invoke it with the input in JSON string."

    def invoke_run(
        self,
        body: bytes,
        headers: Headers,
        *,
        method: str = "POST",
        path: str = "/score",
        query_string: bytes = b"",
        connection: Connection | None = None,
    ) -> Any:
        """Call ``run()`` for one request, as azmlinfsrv 1.5 does; synchronous, in the calling thread.

        * ``@rawhttp``: ``run(request)`` with an :class:`~jupyter_mldeploy.server.shims.AMLRequest`, for
          any method.
        * ``@input_schema``: a POST body must be JSON (else 415) holding an object (else 400) whose keys
          name ``run``'s parameters (a missing one without a default is 400); a GET's query parameters
          take the same place. ``NumpyParameterType`` inputs are built with one ``np.array`` call.
        * undecorated: the body decoded as UTF-8 (else 400) is the one argument; a GET passes its query
          parameters as a JSON string.
        * ``request_headers``, when ``run`` takes it, is ``dict(headers)`` (Title-Case names).

        Args:
            body: The request body.
            headers: The request headers.
            method: The HTTP method; other than GET and POST is 405 unless ``@rawhttp``.
            path: The URL path (for the request object).
            query_string: The raw query string.
            connection: Where the request came from (for the request object).

        Returns:
            Any: What ``run()`` returned; :func:`~jupyter_mldeploy.server.encoding.encode_result` makes
            the answer of it.

        Raises:
            ClientError: The request is not one ``run`` can be called with (azmlinfsrv's status and message).
            Exception: Whatever ``run()`` raises.
        """
        if self.mode == RAW:
            where = connection or Connection()
            kwargs: dict[str, Any] = {self.input_name: AMLRequest(
                method, path, query_string, headers, body, scheme=where.scheme, host=where.host,
                remote_addr=where.remote_addr, root_path=where.root_path,
            )}
        elif method == "GET":
            query = query_parameters(query_string)
            kwargs = self._parameters(query) if self.mode == OBJECT else {self.input_name: json.dumps(query)}
        elif method != "POST":
            raise ClientError(405, "Method not allowed")
        elif self.mode == OBJECT:
            if not _is_json(headers.get("content-type")):
                raise ClientError(415, "Expects Content-Type to be application/json")
            kwargs = self._parameters(_loads(body))
        else:
            try:
                kwargs = {self.input_name: body.decode("utf-8")}
            except UnicodeDecodeError as exc:
                raise ClientError(400, f"Input cannot be decoded as UTF-8: {exc}") from None
        for name, fast in self.numpy_fast.items():
            if name in kwargs:
                kwargs[name] = fast.build(kwargs[name])
        if self.wants_headers:
            kwargs[script_rules.REQUEST_HEADERS] = dict(headers)
        return self.run(**kwargs)

    def _parameters(self, parsed: Any) -> dict[str, Any]:
        """Map a parsed JSON body (or query) to ``run``'s parameters (azmlinfsrv's ``ObjectInput``).

        Raises:
            ClientError: 400 when the body is not an object or a required parameter is missing.
        """
        if not isinstance(parsed, dict):
            raise ClientError(400, "POST body should be a JSON dictionary.")
        kwargs = {}
        for parameter in self.parameters:
            value = parsed.get(parameter.name, parameter.default)
            if value is parameter.empty:
                raise ClientError(400, f"A value is not provided for the {parameter.name!r} parameter.")
            kwargs[parameter.name] = value
        return kwargs


def _numpy_fast_paths(run: Callable[..., Any]) -> dict[str, NumpyFastPath]:
    """Find the ``NumpyParameterType`` inputs declared on ``run`` that can skip the per-row conversion.

    inference-schema's ``@input_schema`` wrapper converts a list row by row before ``np.array``; an ndarray
    argument passes through it untouched, so building the array here (one ``np.array`` call with the
    sample's dtype, then the same shape checks) is equivalent and much faster for plain dtypes.
    """
    try:
        from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    except ImportError:
        return {}
    found: dict[str, NumpyFastPath] = {}
    layer: Any = run
    for _ in range(32):  # decorator layers; a bound keeps a cyclic __wrapped__ chain from looping
        wrapper = getattr(layer, "_self_wrapper", None)
        closure = getattr(wrapper, "__closure__", None)
        if wrapper is not None and closure:
            cells = dict(zip(wrapper.__code__.co_freevars, (c.cell_contents for c in closure), strict=False))
            param_type = cells.get("param_type")
            name = cells.get("param_name")
            if (
                isinstance(param_type, NumpyParameterType)
                and isinstance(name, str)
                and cells.get("convert_to_provided_type", True)
                and param_type.enforce_column_type
            ):
                dtype = param_type.sample_input.dtype
                if dtype.names is None and dtype.kind not in "mMOV":
                    found[name] = NumpyFastPath(dtype, tuple(param_type.sample_input.shape), param_type.enforce_shape)
        next_layer = getattr(layer, "__wrapped__", None)
        if next_layer is None or next_layer is layer:
            break
        layer = next_layer
    return found
