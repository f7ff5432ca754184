"""Built-in entry script: serves an ONNX model with ``onnxruntime`` and no code.

Request: ``POST /score`` with either ``{"data": tensor}`` (a model with one input) or ``{input_name: tensor,
...}`` (every input by name). Each tensor is a nested list, converted to the input's declared element type.
The answer maps each output's name to its value (lists; sequences of maps, as skl2onnx's ``ZipMap`` gives,
become lists of objects).

This is an ordinary entry script (``init()`` and ``@rawhttp run(request)``): copy it with
``mldeploy model scaffold-entry-script`` and change what you need.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime
import orjson
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

from jupyter_mldeploy.server.builtin.model_file import ONNX_SUFFIXES, find_model_file, served_model

#: ONNX tensor element types -> numpy dtypes (what ``InferenceSession.get_inputs()[i].type`` names).
DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}

session: Any = None
#: The model's inputs as ``(name, numpy dtype)``, and its output names, read once in ``init()``.
inputs: list[tuple[str, Any]] = []
output_names: list[str] = []


def init() -> None:
    """Open the deployed model in an ``InferenceSession`` on the CPU."""
    global session, inputs, output_names
    path = find_model_file(served_model(), ONNX_SUFFIXES, "ONNX")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    inputs = [(i.name, DTYPES.get(i.type)) for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]


def plain(value: Any) -> Any:
    """Return an output as JSON-safe values (arrays as lists, map keys as strings)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@rawhttp
def run(request: AMLRequest) -> Any:
    """Answer one request: tensors by input name (or one ``data`` tensor) -> ``{output_name: value}``."""
    if request.method != "POST":
        return AMLResponse('POST a JSON body {"data": tensor} or {input_name: tensor}.', 405)
    try:
        body = orjson.loads(request.data)
    except orjson.JSONDecodeError:  # json also reads NaN and UTF-16/32 bodies
        body = request.get_json(force=True, silent=True)
    names = [name for name, _ in inputs]
    if not isinstance(body, dict):
        return AMLResponse(f"The body must be a JSON object: {{\"data\": tensor}} or tensors named {names}.", 400)
    if "data" in body and "data" not in names:
        if len(inputs) != 1:
            return AMLResponse(f"This model has {len(inputs)} inputs: name each one, {names}.", 400)
        body = {names[0]: body["data"]}
    missing = [n for n in names if n not in body]
    if missing:
        return AMLResponse(f"Missing input(s) {missing}: this model takes {names}.", 400)
    try:
        feeds = {name: np.asarray(body[name], dtype=dtype) for name, dtype in inputs}
    except (TypeError, ValueError) as exc:
        return AMLResponse(f"An input cannot be read as a tensor: {exc}", 400)
    outputs = session.run(output_names, feeds)
    return {name: plain(value) for name, value in zip(output_names, outputs, strict=True)}
