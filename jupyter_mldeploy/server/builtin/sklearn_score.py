"""Built-in entry script: serves a scikit-learn model (a pickle or joblib file) with no code.

Request: ``POST /score`` with ``{"data": rows}``, where rows are a list of feature lists, a list of
``{feature: value}`` records or a ``{feature: [values]}`` table. The answer is the list ``model.predict``
returns; ``?method=predict_proba`` (or ``predict_log_proba``, ``decision_function``) calls that method
instead when the model has it. With ``collect_model_data=True`` in the deployment configuration, each
request's rows and the model's answer are recorded (``ModelDataCollector``, designations ``inputs`` and
``predictions``, joined by the request id).

This is an ordinary entry script (``init()`` and ``@rawhttp run(request)``): copy it with
``mldeploy model scaffold-entry-script`` and change what you need.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
import orjson
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from azureml.monitoring import ModelDataCollector

from jupyter_mldeploy.server.builtin.model_file import SKLEARN_SUFFIXES, find_model_file, served_model

#: The model methods a request may ask for with ``?method=``.
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")

model: Any = None
#: The model's bound methods of :data:`METHODS` that it has, looked up once in ``init()``.
methods: dict[str, Any] = {}
inputs_dc: Any = None
predictions_dc: Any = None


def init() -> None:
    """Load the deployed model (``joblib.load`` reads joblib files and plain pickles alike); set up collection."""
    global model, methods, inputs_dc, predictions_dc
    path = served_model()
    model = joblib.load(find_model_file(path, SKLEARN_SUFFIXES, "scikit-learn"))
    methods = {name: getattr(model, name) for name in METHODS if hasattr(model, name)}
    model_name = os.path.basename(os.path.dirname(os.path.dirname(path)))  # azureml-models/<name>/<version>/<entry>
    names = getattr(model, "feature_names_in_", None)
    inputs_dc = ModelDataCollector(model_name, designation="inputs",
                                   feature_names=list(names) if names is not None else None)
    predictions_dc = ModelDataCollector(model_name, designation="predictions")


def rows_of(data: Any) -> Any:
    """Return the model's input: a DataFrame for records or a column table (feature names kept), else an array."""
    if isinstance(data, dict) or (isinstance(data, list) and data and isinstance(data[0], dict)):
        import pandas as pd

        return pd.DataFrame(data)
    return np.asarray(data)


@rawhttp
def run(request: AMLRequest) -> Any:
    """Answer one request: ``{"data": rows}`` -> the chosen method's output as a list."""
    if request.method != "POST":
        return AMLResponse('POST a JSON body {"data": rows}.', 405)
    method = request.args.get("method", "predict")
    predict = methods.get(method)
    if predict is None:
        if method not in METHODS:
            return AMLResponse(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.", 400)
        return AMLResponse(f"This {type(model).__name__} model has no {method}(); use ?method=predict.", 400)
    try:
        body = orjson.loads(request.data)
    except orjson.JSONDecodeError:  # json also reads NaN and UTF-16/32 bodies
        body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or "data" not in body:
        return AMLResponse('The body must be a JSON object {"data": rows}.', 400)
    try:
        rows = rows_of(body["data"])
    except ValueError as exc:
        return AMLResponse(f"data cannot be read as rows: {exc}", 400)
    result = np.asarray(predict(rows))
    inputs_dc.collect(rows)
    predictions_dc.collect(result)
    return result.tolist()
