"""The Open Inference Protocol V2 (KServe's REST data plane, also spoken by Triton and Seldon MLServer).

Routes, as the specification (``kserve/docs/predict-api/v2/required_api.md``) lists them:

* ``GET /v2/health/live``, ``GET /v2/health/ready``: 200 (a worker answers only after ``init()`` returned);
* ``GET /v2``: server metadata (``name``, ``version``, ``extensions``);
* ``GET /v2/models/{name}[/versions/{version}]``: model metadata, inputs and outputs with datatype and shape
  taken from the inference-schema decorators when ``run`` has them;
* ``GET /v2/models/{name}[/versions/{version}]/ready``;
* ``POST /v2/models/{name}[/versions/{version}]/infer``.

``{name}`` is a model deployed with the service (each ``azureml-models/<name>/<version>/`` of the app
root; all of them call the same ``run()``); a service without a registered model answers as
``SERVICE_NAME`` (default ``model``). Request tensors (``name``, ``shape``, ``datatype``, ``data`` row-major,
flat or nested) are checked (datatype against the values, shape against their count) and become ``run()``'s
input through :meth:`~jupyter_mldeploy.server.user_script.UserScript.invoke_run`: a classic
``run(raw_data)`` gets its one input as ``{"data": rows}`` (from 1 kB, an FP64 array of floats as the client
wrote it: :mod:`~jupyter_mldeploy.server.passthrough`); a decorated ``run`` gets each tensor as the
parameter of the same name. The answer's outputs have datatype and shape inferred from what ``run()``
returned: a dict gives one output per key, anything else one output ``output-0``. Errors are
``{"error": "..."}`` with 400, 404, 405 or 500. The binary tensor data extension is not implemented; a
request using it is refused with a 400 naming the JSON alternative.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from jupyter_mldeploy._version import __version__
from jupyter_mldeploy.server import passthrough
from jupyter_mldeploy.server.encoding import dumps
from jupyter_mldeploy.server.model_path import models_root
from jupyter_mldeploy.server.run_parameters import RunParameterSchema
from jupyter_mldeploy.server.wire import (
    JSON,
    Prepare,
    Reply,
    RunCall,
    WireError,
    json_request_headers,
    json_value,
    script_response,
)

PREFIX = "/v2"
OUTPUT_NAME = "output-0"
SERVER_NAME = "jupyter-mldeploy"
#: V2 datatype -> numpy dtype, and the numpy kinds of parsed JSON values each accepts.
_DTYPES: dict[str, tuple[Any, str]] = {
    "BOOL": (np.bool_, "b"),
    "INT8": (np.int8, "iu"), "INT16": (np.int16, "iu"), "INT32": (np.int32, "iu"), "INT64": (np.int64, "iu"),
    "UINT8": (np.uint8, "iu"), "UINT16": (np.uint16, "iu"), "UINT32": (np.uint32, "iu"),
    "UINT64": (np.uint64, "iu"),
    "FP16": (np.float16, "iuf"), "FP32": (np.float32, "iuf"), "FP64": (np.float64, "iuf"),
    "BYTES": (np.str_, "U"),
}
_TENSOR_KEYS = ("name", "shape", "datatype", "data")
_FLOATS = {float}
_INTS = {int}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: The header of the binary tensor data extension (ASGI header names are lower case).
_BINARY_HEADER = b"inference-header-content-length"
_KIND_WORDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "floating-point numbers", "U": "strings",
               "O": "mixed values"}


def error(status: int, message: str) -> WireError:
    """The specification's error document: ``{"error": message}``."""
    return WireError(status, orjson.dumps({"error": message}))


def _reply(document: Any) -> Reply:
    return Reply(200, orjson.dumps(document), JSON)


def served_models(environ: dict[str, str] | os._Environ[str]) -> dict[str, list[str]]:
    """Return the models this service serves: name -> versions (ascending), from the app's model folder.

    Args:
        environ: The server's environment (``AML_APP_ROOT``, ``SERVICE_NAME``).

    Returns:
        dict[str, list[str]]: ``azureml-models/<name>/<version>/`` folders; without any,
        ``{SERVICE_NAME or "model": []}``.
    """
    root = models_root()
    found: dict[str, list[str]] = {}
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if os.path.isdir(folder):
                found[name] = sorted((v for v in os.listdir(folder) if v.isdigit()), key=int)
    return found or {environ.get("SERVICE_NAME") or "model": []}


#: numpy dtype -> V2 datatype of an output (a dict lookup: ``dtype.name`` costs microseconds per request).
_OUTPUT_DATATYPES: dict[np.dtype[Any], str] = {np.dtype(t): name for name, (t, _) in _DTYPES.items() if name != "BYTES"}


def output_tensor(name: str, value: Any) -> dict[str, Any]:
    """Return ``value`` as a V2 output tensor (datatype and shape inferred, data flat and row-major).

    Raises:
        WireError: 500 when the value is ragged or mixes types, so it has no tensor form.
    """
    if type(value) is list and value:
        # A list of floats or of int64 integers (what ``predict(...).tolist()`` gives) needs no numpy: orjson
        # writes it exactly as it writes the float64 / int64 array numpy would make of it.
        kinds = set(map(type, value))
        if kinds == _FLOATS:
            return {"name": name, "datatype": "FP64", "shape": [len(value)], "data": value}
        if kinds == _INTS and _INT64_MIN <= min(value) and max(value) <= _INT64_MAX:
            return {"name": name, "datatype": "INT64", "shape": [len(value)], "data": value}
    if hasattr(value, "to_numpy"):  # pandas DataFrame / Series
        value = value.to_numpy()
    try:
        array: np.ndarray | None = np.asarray(value)
    except ValueError:  # ragged
        array = None
    # The usual case (numbers or booleans) is one dict lookup; strings and the refusal take the longer way.
    datatype = _OUTPUT_DATATYPES.get(array.dtype) if array is not None else None
    if datatype is None and array is not None:
        if array.dtype.kind in "US":
            datatype = "BYTES"
        elif array.size and all(isinstance(v, str) for v in array.flat):
            datatype, array = "BYTES", array.astype(str)
    if array is None or datatype is None:
        raise error(500, f"run() returned a {type(value).__name__} for output {name!r} that has no tensor form "
                         "(ragged or mixed values); return an array, a list of numbers or strings, or a dict "
                         "of those.")
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8")
    return {"name": name, "datatype": datatype, "shape": list(array.shape) or [1],
            "data": array if array.ndim == 1 else array.ravel()}


def _float_rows(data: Any, shape: list[int]) -> list[Any] | None:
    """Return ``data`` as the rows of a 1-d or 2-d ``shape`` when it holds only JSON floats, else None.

    The usual FP64 request (tritonclient's flat data, or nested rows) needs no numpy: the rows serialize to
    the same JSON as the float64 array would (orjson writes both alike), for a fraction of ``np.asarray``'s
    cost on nested lists. Anything else (other layouts, integers, strings, ragged rows) returns None and
    takes the numpy path with its checks.
    """
    if type(data) is not list or not data:
        return None
    # Plain loops: for one row they cost half what set(map(type, ...)) passes do, and as much for 1000 rows.
    if len(shape) == 1:
        return data if len(data) == shape[0] and _all_floats(data) else None
    if len(shape) != 2:
        return None
    rows, columns = shape
    if type(data[0]) is list:
        if len(data) != rows:
            return None
        for row in data:
            if type(row) is not list or len(row) != columns:
                return None
            for value in row:
                if type(value) is not float:
                    return None
        return data
    if len(data) != rows * columns or not _all_floats(data):
        return None
    return [data[start:start + columns] for start in range(0, len(data), columns)]


def _all_floats(values: list[Any]) -> bool:
    for value in values:
        if type(value) is not float:
            return False
    return True


def _tensor_header(index: int, tensor: Any) -> tuple[str, list[int], str]:
    """Check an input tensor's fields but its data; return its name, shape and datatype.

    Raises:
        WireError: 400 naming the field that is missing or wrong.
    """
    # On every infer request: the checks cost little when they pass (messages are built only on failure).
    if type(tensor) is not dict:
        raise error(400, f"inputs[{index}] must be an object with name, shape, datatype and data.")
    try:
        name, shape, datatype, _ = tensor["name"], tensor["shape"], tensor["datatype"], tensor["data"]
    except KeyError:
        missing = [key for key in _TENSOR_KEYS if key not in tensor]
        raise error(400, f"inputs[{index}] lacks {', '.join(missing)}; each input needs name, shape, datatype "
                         "and data.") from None
    if type(name) is not str:
        raise error(400, f"inputs[{index}]: name must be a string, got {name!r}.")
    parameters = tensor.get("parameters")
    if parameters and type(parameters) is not dict:
        raise error(400, f"input {name!r}: parameters must be an object, got {parameters!r}.")
    if parameters and parameters.get("binary_data_size") is not None:
        raise error(400, f"input {name!r} uses the binary tensor data extension, which this server does not "
                         "support; send the data as JSON (tritonclient: set_data_from_numpy(..., binary_data=False)).")
    bad_shape = type(shape) is not list
    if not bad_shape:
        for dimension in shape:
            if type(dimension) is not int or dimension < 0:
                bad_shape = True
                break
    if bad_shape:
        raise error(400, f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}.")
    if type(datatype) is not str or datatype not in _DTYPES:
        raise error(400, f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(_DTYPES)}.")
    return name, shape, datatype


def _input_array(index: int, tensor: Any) -> tuple[str, np.ndarray | list[Any]]:
    name, shape, datatype = _tensor_header(index, tensor)
    data = tensor["data"]
    if datatype == "FP64":
        rows = _float_rows(data, shape)
        if rows is not None:
            return name, rows
    dtype, accepted = _DTYPES[datatype]
    try:
        array = np.asarray(data)
    except ValueError:
        raise error(400, f"input {name!r}: data is not a rectangular array (rows of different lengths).") from None
    if array.size and array.dtype.kind not in accepted:
        found = _KIND_WORDS.get(array.dtype.kind, array.dtype.kind)
        raise error(400, f"input {name!r}: datatype {datatype} does not match the data, which holds {found}; send "
                         f"{_KIND_WORDS[accepted[-1]]} or declare the datatype of the data.")
    expected = math.prod(shape)
    if array.size != expected:
        raise error(400, f"input {name!r}: shape {shape} holds {expected} values but data has {array.size}; make "
                         "the shape match the data (row-major).")
    if array.dtype.type is not dtype:
        array = array.astype(dtype)
    return name, array.reshape(shape)


class V2Protocol:
    """The Open Inference Protocol V2 routes of one loaded script.

    Args:
        parameters: The decorated ``run``'s inputs; empty for a classic ``run(raw_data)``.
        output: The decorated ``run``'s output (from ``@output_schema``), or None.
        models: Model name -> versions (:func:`served_models`).
        passthrough_min_bytes: For a classic ``run``, bodies at least this large whose one input is an FP64
            array of floats, 1-d, or 2-d as nested rows or flat, are forwarded as the client wrote them
            (:mod:`~jupyter_mldeploy.server.passthrough`); None translates every body.
    """

    def __init__(self, parameters: list[RunParameterSchema], output: RunParameterSchema | None,
                 models: dict[str, list[str]], passthrough_min_bytes: int | None = passthrough.MIN_BYTES) -> None:
        self.parameters = {p.name: p for p in parameters}
        self.output = output
        self.models = models
        self._forward_from = passthrough_min_bytes if passthrough_min_bytes is not None and not parameters else None
        #: The infer paths, with and without a version -> their preparation: an infer request's route is one
        #: dict lookup (other spellings, e.g. with a trailing slash, take the general parse in ``route``).
        self._infer: dict[str, Prepare] = {}
        for name, versions in models.items():
            self._infer[f"{PREFIX}/models/{name}/infer"] = self._infer_call(name, versions[-1] if versions else None)
            for version in versions:
                self._infer[f"{PREFIX}/models/{name}/versions/{version}/infer"] = self._infer_call(name, version)

    def error(self, status: int, message: str) -> WireError:
        """See :func:`error`."""
        return error(status, message)

    def route(self, method: str, path: str) -> Reply | Prepare:
        """Answer health and metadata routes; return the preparation of an ``infer`` call.

        Raises:
            WireError: 404 for an unknown route, model or version; 405 for the wrong method.
        """
        if method == "POST":
            infer = self._infer.get(path)
            if infer is not None:
                return infer
        parts = path[len(PREFIX):].strip("/").split("/") if path != PREFIX else []
        if parts[:1] == ["models"] and len(parts) >= 2:
            return self._model_route(method, parts[1:])
        self._require(method, "GET", path)
        if not parts:
            return _reply({"name": SERVER_NAME, "version": __version__, "extensions": []})
        if parts == ["health", "live"]:
            return _reply({"live": True})
        if parts == ["health", "ready"]:
            return _reply({"ready": True})
        raise error(404, f"{path} is not a route of the Open Inference Protocol V2; see GET /v2 and "
                         "/v2/models/{name}.")

    @staticmethod
    def _require(method: str, wanted: str, path: str) -> None:
        if method != wanted and not (wanted == "GET" and method == "HEAD"):
            raise error(405, f"{method} is not allowed on {path}; use {wanted}.")

    def _model_route(self, method: str, parts: list[str]) -> Reply | Prepare:
        name, rest = parts[0], parts[1:]
        if name not in self.models:
            raise error(404, f"Model {name!r} is not served here; this service serves: {', '.join(self.models)}.")
        version: str | None = None
        if rest[:1] == ["versions"]:
            if len(rest) < 2:
                raise error(404, f"/v2/models/{name}/versions needs a version: /v2/models/{name}/versions/<version>.")
            version, rest = rest[1], rest[2:]
            if version not in self.models[name]:
                known = ", ".join(self.models[name]) or "none (the service has no registered model)"
                raise error(404, f"Model {name!r} has no version {version!r}; its versions: {known}.")
        path = f"/v2/models/{'/'.join(parts)}"
        if rest == []:
            self._require(method, "GET", path)
            return _reply(self._metadata(name))
        if rest == ["ready"]:
            self._require(method, "GET", path)
            return _reply({"name": name, "ready": True})
        if rest == ["infer"]:
            self._require(method, "POST", path)
            return self._infer_call(name, version or (self.models[name][-1] if self.models[name] else None))
        raise error(404, f"{path} is not a route of the Open Inference Protocol V2; a model has /ready and /infer.")

    def _infer_call(self, name: str, version: str | None) -> Prepare:
        """The preparation of ``name``'s infer call, answered as ``version`` (None: the model has none)."""
        return lambda body, content_type, raw: self._prepare(name, version, body, raw)

    def _metadata(self, name: str) -> dict[str, Any]:
        outputs = [self.output.to_metadata()] if self.output is not None else []
        return {
            "name": name,
            "versions": self.models[name],
            "platform": "azureml_entry_script",
            "inputs": [p.to_metadata() for p in self.parameters.values()],
            "outputs": outputs,
        }

    def _prepare(self, name: str, version: str | None, body: bytes, raw: list[tuple[bytes, bytes]]) -> RunCall:
        for key, _ in raw:
            if key == _BINARY_HEADER:
                raise error(400, "The binary tensor data extension is not supported; send the request as JSON "
                                 "(tritonclient: binary_data=False on inputs and requested outputs).")
        if self._forward_from is not None and len(body) >= self._forward_from:
            forwarded = self._forward(name, version, body, raw)
            if forwarded is not None:
                return forwarded
        return self._translate(name, version, body, raw)

    def _forward(self, name: str, version: str | None, body: bytes, raw: list[tuple[bytes, bytes]]) -> RunCall | None:
        """The call of a classic ``run`` with the client's own bytes of the one FP64 input's rows, or None
        when the body is not of that form (then :meth:`_translate` answers, refusals included)."""
        span = passthrough.locate(body, b'"data"')
        if span is None:
            return None
        try:
            request = orjson.loads(span.rest(body))
            inputs = request["inputs"]
            if type(inputs) is not list or len(inputs) != 1 or inputs[0].get("data") != []:
                return None
            _, shape, datatype = _tensor_header(0, inputs[0])
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError, WireError):
            return None
        if datatype != "FP64" or len(shape) > 2:
            return None
        layout = passthrough.float_layout(body, span)
        if layout == tuple(shape):
            rows = span.rows_body(body)
        elif len(shape) == 2 and layout == (shape[0] * shape[1],):  # flat data, as tritonclient sends it
            rows = span.cut_rows_body(body, shape[1])
        else:
            return None
        return RunCall(rows, json_request_headers(raw), self._finish(name, version, request),
                       lambda: self._translate(name, version, body, raw))

    def _translate(self, name: str, version: str | None, body: bytes, raw: list[tuple[bytes, bytes]]) -> RunCall:
        """The full path: parse the body, check every tensor's values, encode ``run()``'s input."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise error(400, f"The request body is not valid JSON: {exc}") from None
        inputs = request.get("inputs") if type(request) is dict else None
        if type(inputs) is not list or not inputs:
            raise error(400, 'The request must be a JSON object with a non-empty "inputs" list of tensors.')
        tensors: dict[str, np.ndarray | list[Any]] = {}
        for index, tensor in enumerate(inputs):
            tensor_name, array = _input_array(index, tensor)
            tensors[tensor_name] = array
        if self.parameters:
            unknown = [n for n in tensors if n not in self.parameters]
            if unknown:
                raise error(400, f"Input {unknown[0]!r} is not an input of model {name!r}; its inputs are: "
                                 f"{', '.join(self.parameters)}.")
            arguments = {n: self.parameters[n].rows_to_argument(a if type(a) is list else a.tolist())
                         if self.parameters[n].columns else a for n, a in tensors.items()}
        elif len(tensors) == 1:
            arguments = {"data": next(iter(tensors.values()))}
        else:
            raise error(400, f"run() takes one input (passed as {{\"data\": rows}}); the request has {len(tensors)}: "
                             f"{', '.join(tensors)}. Send one tensor, or decorate run() with @input_schema.")
        return RunCall(dumps(arguments), json_request_headers(raw), self._finish(name, version, request))

    @staticmethod
    def _finish(name: str, version: str | None, request: dict[str, Any]) -> Callable[[Any], Reply]:
        """How to answer ``run()``'s value for ``request`` (its requested ``outputs`` and ``id``)."""
        outputs = request.get("outputs")
        wanted = [o.get("name") for o in outputs if isinstance(o, dict)] if outputs else []
        request_id = request.get("id")

        def finish(value: Any) -> Reply:
            own = script_response(value)
            if own is not None:
                return own
            result = json_value(value)
            named = result if isinstance(result, dict) else {OUTPUT_NAME: result}
            if wanted:
                missing = [n for n in wanted if n not in named]
                if missing:
                    raise error(400, f"Requested output {missing[0]!r} is not produced by model {name!r}; its "
                                     f"outputs are: {', '.join(named)}.")
                named = {n: named[n] for n in wanted}
            answer: dict[str, Any] = {"model_name": name}
            if version is not None:
                answer["model_version"] = version
            if request_id is not None:
                answer["id"] = request_id
            answer["outputs"] = [output_tensor(str(n), v) for n, v in named.items()]
            return Reply(200, dumps(answer), JSON)

        return finish
