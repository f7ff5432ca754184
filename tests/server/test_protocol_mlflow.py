"""MLflow's scoring protocol (/invocations, /ping, /health, /version) on real servers, called by MLflow's own
``ScoringServerClient`` (mlflow-skinny) and by raw requests for the bad bodies."""

from __future__ import annotations

import pandas as pd
import pytest
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from server_harness import ServeFactory, Server

CLASSIC = """
import json

def init():
    pass

def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == "boom":
        raise ValueError("the script failed")
    if data == "as-json-string":
        return json.dumps([1, 2])
    if data == "unencodable":
        return object()
    return [sum(row) if isinstance(row, list) else row for row in data]
"""

FRAME = """
import pandas as pd
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

def init():
    pass

@input_schema("frame", PandasParameterType(pd.DataFrame({"a": [1.0], "b": [2]})))
def run(frame):
    # attribute access fails unless the decorator built a DataFrame with these columns
    return (frame.a * 10 + frame.b).tolist()
"""

TWO_INPUTS = """
import numpy as np
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

def init():
    pass

@input_schema("x", NumpyParameterType(np.array([[1.0, 2.0]])))
@input_schema("scale", NumpyParameterType(np.array([1.0])))
def run(x, scale):
    return (x.sum(axis=1) * scale).tolist()
"""


@pytest.fixture(scope="module")
def classic(serve_module: ServeFactory) -> Server:
    return serve_module(CLASSIC)


@pytest.fixture(scope="module")
def frame(serve_module: ServeFactory) -> Server:
    return serve_module(FRAME)


@pytest.fixture(scope="module")
def two_inputs(serve_module: ServeFactory) -> Server:
    return serve_module(TWO_INPUTS)


def _client(server: Server) -> ScoringServerClient:
    client = ScoringServerClient("127.0.0.1", server.port)
    client.wait_server_ready(timeout=20)
    return client


def test_mlflow_client_scores_a_dataframe_with_a_classic_run(classic: Server) -> None:
    client = _client(classic)
    response = client.invoke(pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]}))
    assert list(response.get_predictions().iloc[:, 0]) == [4.0, 6.0]
    assert client.get_version()


def test_mlflow_client_scores_a_dataframe_into_a_pandas_decorated_run(frame: Server) -> None:
    response = _client(frame).invoke(pd.DataFrame({"b": [3, 4], "a": [1.0, 2.0]}))
    # columns are matched by name (b came first in the request), not by position
    assert list(response.get_predictions().iloc[:, 0]) == [13.0, 24.0]


@pytest.mark.parametrize("body, expected", [
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}, [3, 7]),
    ({"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}, [3, 7]),
    ({"instances": [[1, 2], [3, 4]]}, [3, 7]),
    ({"inputs": [[1, 2], [3, 4]], "params": {"ignored": True}}, [3, 7]),
    ({"inputs": "as-json-string"}, [1, 2]),
])
def test_each_json_format_reaches_a_classic_run_as_rows(classic: Server, body: dict, expected: list) -> None:
    answer = requests.post(f"{classic.url}/invocations", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": expected}


def test_csv_rows_reach_the_run(classic: Server, frame: Server) -> None:
    csv = "a,b\n1,2\n3.5,4\n"
    answer = requests.post(f"{classic.url}/invocations", data=csv, headers={"Content-Type": "text/csv"}, timeout=10)
    assert answer.json() == {"predictions": [3, 7.5]}
    answer = requests.post(f"{frame.url}/invocations", data="b,a\n3,1\n", headers={"Content-Type": "text/csv"},
                           timeout=10)
    assert answer.json() == {"predictions": [13.0]}


def test_named_inputs_map_to_the_decorated_parameters(two_inputs: Server) -> None:
    body = {"inputs": {"x": [[1.0, 2.0], [3.0, 4.0]], "scale": [10.0]}}
    answer = requests.post(f"{two_inputs.url}/invocations", json=body, timeout=10)
    assert answer.json() == {"predictions": [30.0, 70.0]}


def test_probes_and_version(classic: Server) -> None:
    for path in ("/ping", "/health"):
        answer = requests.get(f"{classic.url}{path}", timeout=10)
        assert (answer.status_code, answer.text) == (200, "\n")
    from jupyter_mldeploy._version import __version__

    assert requests.get(f"{classic.url}/version", timeout=10).text == __version__


def _refusal(server: Server, body: bytes | str, content_type: str = "application/json",
             method: str = "POST") -> tuple[int, dict]:
    answer = requests.request(method, f"{server.url}/invocations", data=body, headers={"Content-Type": content_type},
                              timeout=10)
    return answer.status_code, answer.json()


@pytest.mark.parametrize("body, status, code, words", [
    ('{"instances": [1], "inputs": [2]}', 400, "BAD_REQUEST", "exactly one of the input fields"),
    ('{"rows": [1]}', 400, "BAD_REQUEST", "Received dictionary with input fields: ['rows']"),
    ("[1, 2]", 400, "BAD_REQUEST", "Received a JSON list"),
    ("{not json", 400, "BAD_REQUEST", "valid JSON"),
    ('{"dataframe_records": {"a": 1}}', 400, "BAD_REQUEST", "list of objects, one per row"),
    ('{"dataframe_split": {"columns": ["a"]}}', 400, "BAD_REQUEST", '"data" list of rows'),
    ('{"inputs": "boom"}', 500, "INTERNAL_ERROR", "unexpected error occurred in scoring script"),
])
def test_bad_json_bodies(classic: Server, body: str, status: int, code: str, words: str) -> None:
    got_status, error = _refusal(classic, body)
    assert got_status == status
    assert error["error_code"] == code
    assert words in error["message"]


def test_failures_of_run_and_of_its_answer_are_told_apart(classic: Server) -> None:
    # run() raised: its failure (x-ms-run-function-failed: True); run() returned what has no JSON form: the
    # server's (False), as on /score.
    raised = requests.post(f"{classic.url}/invocations", json={"inputs": "boom"}, timeout=10)
    assert raised.status_code == 500 and raised.headers["x-ms-run-function-failed"] == "True"
    unencodable = requests.post(f"{classic.url}/invocations", json={"inputs": "unencodable"}, timeout=10)
    assert unencodable.status_code == 500 and unencodable.headers["x-ms-run-function-failed"] == "False"
    assert unencodable.json() == {"error_code": "INTERNAL_ERROR",
                                  "message": "An unexpected internal error occurred. Check the logs for more info."}
    ok = requests.post(f"{classic.url}/invocations", json={"inputs": [[1, 2]]}, timeout=10)
    assert ok.json() == {"predictions": [3]} and ok.headers["x-ms-run-function-failed"] == "False"
    assert float(ok.headers["x-ms-run-fn-exec-ms"]) >= 0


def test_bad_content_types_and_methods(classic: Server, two_inputs: Server) -> None:
    status, error = _refusal(classic, "a=1", "application/x-www-form-urlencoded")
    assert status == 415 and "only supports the following content types" in error["message"]
    status, error = _refusal(classic, '{"inputs": [1]}', "application/json; charset=latin-1")
    assert status == 415 and "UTF-8" in error["message"]
    status, error = _refusal(classic, "a,b\n1\n", "text/csv")
    assert status == 400 and "line 2 has 1 fields, the header has 2" in error["message"]
    status, error = _refusal(classic, "", method="GET")
    assert status == 405 and "POST the input" in error["message"]
    status, error = _refusal(two_inputs, '{"inputs": [[1.0, 2.0]]}')
    assert status == 400 and '{"inputs": {"x": ..., "scale": ...}}' in error["message"]
    # a missing decorated parameter is invoke_run's own refusal, in MLflow's error format
    status, error = _refusal(two_inputs, '{"inputs": {"x": [[1.0, 2.0]]}}')
    assert (status, error["error_code"]) == (400, "BAD_REQUEST")
    assert "'scale'" in error["message"]
