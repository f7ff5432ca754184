"""One entry-script contract: the ``--check`` trial run answers exactly as a real server does.

Each case is a score.py, a request body and headers. The same registered model is laid out once by
``build_app_folder`` for a server started on 127.0.0.1 with the layout's own variables, and once more by the
trial run (``run_entry_check``, what ``%%score_script --check`` calls); status, body and the script's own
headers must be equal.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from server_harness import ServeFactory

from jupyter_mldeploy import Model, Workspace
from jupyter_mldeploy.deploy.app_folder import build_app_folder
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.deploy.trial_run import run_entry_check

CLASSIC = """
import json, os
import numpy as np

def init():
    global factor
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.json")) as handle:
        factor = json.load(handle)["factor"]

def run(raw_data):
    rows = np.array(json.loads(raw_data)["data"], dtype=float)
    return rows.sum(axis=1) * factor          # a numpy array: encoded as a list
"""

SCHEMA = """
import json, os
import numpy as np
import pandas as pd
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    global factor
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.json")) as handle:
        factor = json.load(handle)["factor"]

@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
@input_schema("frame", PandasParameterType(pd.DataFrame({"a": [1], "b": ["x"]})))
@input_schema("scale", StandardPythonParameterType(2))
@output_schema(StandardPythonParameterType({"total": 1.0}))
def run(data, frame, scale, request_headers=None, label="none"):
    return {
        "total": np.float64(data.sum() * factor * scale),
        "frame": frame.assign(c=frame["a"] * factor),
        "label": label,
        "custom": (request_headers or {}).get("X-Custom"),
        "types": [type(data).__name__, type(frame).__name__],
    }
"""

RAW = """
import json
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    body = request.get_json()
    answer = AMLResponse(json.dumps({"method": request.method, "sum": sum(body["data"]),
                                     "custom": request.headers.get("x-custom")}), 201)
    answer.headers["Content-Type"] = "application/json"
    answer.headers["X-Answer"] = "forty-two"
    return answer
"""

HEADERS = """
import json

def init():
    pass

def run(data, request_headers):
    return {"custom": request_headers.get("X-Custom"), "type": request_headers.get("Content-Type"),
            "length": len(json.loads(data)["data"])}
"""

FAILS = """
def init():
    pass

def run(raw_data):
    raise ValueError("no luck")
"""


@dataclass(frozen=True)
class Case:
    script: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json", "X-Custom": "yes"})


CASES = {
    "classic string": Case(CLASSIC, b'{"data": [[1, 2], [3, 4]]}'),
    "schema numpy/pandas/standard": Case(SCHEMA, json.dumps({
        "data": [[1, 2], [3, 4]], "frame": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], "scale": 10,
    }).encode()),
    "schema missing parameter (400)": Case(SCHEMA, b'{"data": [[1, 2]], "scale": 1}'),
    "schema wrong content type (415)": Case(SCHEMA, b'{"data": [[1, 2]]}', {"Content-Type": "text/plain"}),
    "schema bad JSON (400)": Case(SCHEMA, b'{"data": [[1, 2]', {"Content-Type": "application/json"}),
    "rawhttp request and AMLResponse": Case(RAW, b'{"data": [1, 2, 3]}'),
    "request_headers": Case(HEADERS, b'{"data": [1, 2, 3]}'),
    "run raises (500)": Case(FAILS, b'{"data": []}'),
}


@pytest.fixture
def factor_model(workspace: Workspace, tmp_path: Path) -> Model:
    path = tmp_path / "factor.json"
    path.write_text('{"factor": 3}')
    return Model.register(workspace, model_path=str(path), model_name="factor")


@pytest.mark.parametrize("name", list(CASES))
def test_trial_run_answers_as_the_server(
    name: str, workspace: Workspace, factor_model: Model, serve: ServeFactory, tmp_path: Path
) -> None:
    case = CASES[name]
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text(textwrap.dedent(case.script))

    app = build_app_folder(tmp_path / "app", source / "score.py", source,
                           resolve_model_sources(workspace, [factor_model]))
    server = serve(None, env=app.scoring_environment())
    answer = requests.post(server.url + "/score", data=case.body, headers=case.headers, timeout=30)

    trial = run_entry_check(workspace, "score.py", [factor_model.id], source_directory=source,
                            data=case.body, headers=case.headers)

    if answer.status_code == 500:
        # The server hides the traceback behind a generic message; the trial run shows it.
        assert trial.stage == "run" and "ValueError: no luck" in (trial.error or ""), trial
        return
    assert trial.status == answer.status_code, (trial, answer.text)
    assert trial.output == answer.json(), (trial, answer.text)
    assert trial.ok == (answer.status_code < 400)
    for header, value in trial.response_headers:
        assert answer.headers[header] == value, (header, trial.response_headers, dict(answer.headers))


def test_parity_cases_cover_every_input_mode() -> None:
    modes = {"def run(raw_data)", "@input_schema", "@rawhttp", "request_headers"}
    assert all(any(mode in case.script for case in CASES.values()) for mode in modes)
