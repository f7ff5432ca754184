"""Built-in entry script: serves an MLflow model folder (one with an ``MLmodel`` file) with no code.

The model is loaded with ``mlflow.pyfunc.load_model``. Request: ``POST /score`` with ``{"data": rows}``:
rows as lists in the signature's column order (or a tensor, for a tensor signature), ``{column: value}``
records, or a ``{column: [values]}`` table. MLflow clients post ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` to ``/invocations``, which the server turns into ``{"data": rows}`` for this
script. The answer is the model's prediction as JSON (a DataFrame as a list of records).

This is an ordinary entry script (``init()`` and ``@rawhttp run(request)``): copy it and change what you need.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow.pyfunc
import numpy as np
import orjson
import pandas as pd
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

from jupyter_mldeploy.server.builtin.model_file import MLFLOW_MARKER, find_model_file, served_model

model: Any = None
#: The model signature's input schema (None without a signature), read once in ``init()``.
schema: Any = None


def init() -> None:
    """Load the deployed MLflow model (the folder holding its ``MLmodel`` file)."""
    global model, schema
    model = mlflow.pyfunc.load_model(os.path.dirname(find_model_file(served_model(), MLFLOW_MARKER, "MLflow")))
    schema = model.metadata.get_input_schema()


def model_input(data: Any) -> Any:
    """Return ``data`` as the model's input: an array for a tensor signature, else a DataFrame."""
    if schema is not None and schema.is_tensor_spec():
        return np.asarray(data, dtype=schema.numpy_types()[0])
    if isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], dict)):
        return pd.DataFrame(data)
    columns = schema.input_names() if schema is not None and schema.has_input_names() else None
    return pd.DataFrame(data, columns=columns)


def plain(value: Any) -> Any:
    """Return a prediction as JSON-safe values."""
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, (pd.Series, np.ndarray)):
        return value.tolist()
    return value


@rawhttp
def run(request: AMLRequest) -> Any:
    """Answer one request: ``{"data": rows}`` -> the model's prediction."""
    if request.method != "POST":
        return AMLResponse('POST a JSON body {"data": rows}.', 405)
    try:
        body = orjson.loads(request.data)
    except orjson.JSONDecodeError:  # json also reads NaN and UTF-16/32 bodies
        body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or "data" not in body:
        return AMLResponse('The body must be a JSON object {"data": rows} (MLflow clients: POST /invocations).', 400)
    try:
        rows = model_input(body["data"])
    except (TypeError, ValueError) as exc:
        return AMLResponse(f"data cannot be read as the model's input: {exc}", 400)
    return plain(model.predict(rows))
