"""inference-schema decorated scripts, swagger documents, request_headers, @rawhttp and the azureml shims."""

from __future__ import annotations

import json

import pytest
import requests
from server_harness import ServeFactory, Server

SCHEMA_SCORE = """
import numpy as np
import pandas as pd
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@input_schema("frame", PandasParameterType(pd.DataFrame({"a": [1], "b": ["x"]})))
@input_schema("split", PandasParameterType(pd.DataFrame({"c": [1.5]}), orient="split"))
@input_schema("scale", StandardPythonParameterType(2))
@output_schema(StandardPythonParameterType({"total": 1.0}))
def run(data, frame, split, scale, request_headers=None, label="none"):
    assert isinstance(data, np.ndarray) and data.dtype == np.float64, type(data)
    assert isinstance(frame, pd.DataFrame) and isinstance(split, pd.DataFrame)
    return {
        "total": float(data.sum()) * scale,
        "shape": list(data.shape),
        "frame": frame,
        "split_sum": float(split["c"].sum()),
        "label": label,
        "agent": (request_headers or {}).get("User-Agent", "")[:8],
        "custom": (request_headers or {}).get("X-Custom-Header"),
    }
"""

BODY = {
    "data": [[1, 2, 3], [4, 5, 6]],
    "frame": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
    "split": {"columns": ["c"], "index": [0, 1], "data": [[1.5], [2.5]]},
    "scale": 10,
}


@pytest.fixture(scope="module")
def schema_server(serve_module: ServeFactory) -> Server:
    return serve_module(SCHEMA_SCORE)


def test_schema_types_are_converted(schema_server: Server) -> None:
    response = requests.post(schema_server.url + "/score", json=BODY, headers={"X-Custom-Header": "yes"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["total"] == 210.0
    assert result["shape"] == [2, 3]
    assert result["frame"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert result["split_sum"] == 4.0
    assert result["label"] == "none"
    assert result["agent"] == "python-r"
    assert result["custom"] == "yes"


def test_schema_optional_parameter_from_body(schema_server: Server) -> None:
    response = requests.post(schema_server.url + "/score", json={**BODY, "label": "given"})
    assert response.json()["label"] == "given"


def test_numpy_shape_is_enforced(schema_server: Server) -> None:
    response = requests.post(schema_server.url + "/score", json={**BODY, "data": [[1, 2], [3, 4]]})
    assert response.status_code == 500
    assert "Invalid input array: array has size 2 on dimension #1" in schema_server.log()


def test_schema_errors(schema_server: Server) -> None:
    url = schema_server.url + "/score"
    missing = requests.post(url, json={k: v for k, v in BODY.items() if k != "frame"})
    assert missing.status_code == 400
    assert missing.json() == {"message": "A value is not provided for the 'frame' parameter."}
    not_object = requests.post(url, json=[1, 2])
    assert not_object.status_code == 400
    assert not_object.json() == {"message": "POST body should be a JSON dictionary."}
    wrong_type = requests.post(url, data=json.dumps(BODY), headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.json() == {"message": "Expects Content-Type to be application/json"}
    bad_json = requests.post(url, data="{oops", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["message"].startswith("POST body could not be decoded as JSON:")
    empty = requests.post(url, data="", headers={"Content-Type": "application/json"})
    assert empty.status_code == 400
    assert empty.json() == {"message": "POST body is empty. Expecting a JSON dictionary."}


def test_schema_get_with_query_arguments(schema_server: Server) -> None:
    params = {k: json.dumps(v) for k, v in BODY.items()}
    response = requests.get(schema_server.url + "/score", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 210.0


@pytest.mark.parametrize(
    ("version", "key", "value", "where"),
    [
        (None, "swagger", "2.0", "definitions"),
        ("2", "swagger", "2.0", "definitions"),
        ("2.0", "swagger", "2.0", "definitions"),
        ("3", "openapi", "3.0.3", "components"),
        ("3.1", "openapi", "3.1.0", "components"),
    ],
)
def test_swagger_versions_from_schema(schema_server: Server, version: str | None, key: str, value: str,
                                      where: str) -> None:
    params = {"version": version} if version else None
    document = requests.get(schema_server.url + "/swagger.json", params=params).json()
    assert document[key] == value
    schemas = document["definitions"] if where == "definitions" else document["components"]["schemas"]
    service_input = schemas["ServiceInput"]
    assert {"data", "frame", "split", "scale"} <= set(service_input["properties"])
    assert service_input["properties"]["data"]["format"] == "numpy.ndarray"
    assert service_input["example"]["scale"] == 2
    assert schemas["ServiceOutput"]["example"] == {"total": 1.0}
    assert "/score" in document["paths"]


def test_swagger_unknown_version_is_404(schema_server: Server) -> None:
    response = requests.get(schema_server.url + "/swagger.json", params={"version": "9"})
    assert response.status_code == 404
    assert response.json() == {"message": "Swagger version [9] is not valid. Supported versions: [2, 3, 3.1]."}


def test_generic_swagger_and_user_file_wins(serve: ServeFactory) -> None:
    user_doc = {"swagger": "2.0", "info": {"title": "mine"}}
    server = serve("def init():\n    pass\ndef run(data):\n    return data\n",
                   files={"swagger2.json": json.dumps(user_doc)})
    assert requests.get(server.url + "/swagger.json").json() == user_doc
    generic = requests.get(server.url + "/swagger.json", params={"version": "3"}).json()
    assert generic["openapi"] == "3.0.3"
    assert generic["components"]["schemas"]["ServiceInput"] == {"type": "object", "example": {}}


RAW_SCORE = """
import json
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from azureml.core.model import Model

def init():
    global MODEL
    MODEL = open(Model.get_model_path("mymodel")).read()

@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse(f"{MODEL} {request.args.get('q')} {request.full_path}", 203, {"X-Extra": "a, b"})
    if request.path != "/score":
        return AMLResponse("wrong path", 500)
    if request.headers.get("content-type") == "application/json":
        return {"json": request.json, "text": request.get_data(as_text=True), "kind": type(request).__name__}
    return AMLResponse(request.get_data()[::-1], 200, {"Content-Type": "application/octet-stream"})
"""


def test_rawhttp_and_azureml_shims_with_unchanged_v1_script(serve: ServeFactory) -> None:
    server = serve(RAW_SCORE, files={"azureml-models/mymodel/1/model.txt": "old",
                                     "azureml-models/mymodel/2/model.txt": "weights-v2"})
    got = requests.get(server.url + "/score", params={"q": "hi"})
    assert got.status_code == 203
    assert got.text == "weights-v2 hi /score?q=hi"
    assert got.headers["x-extra"] == "a, b"
    assert got.headers["x-ms-run-function-failed"] == "False"
    posted = requests.post(server.url + "/score", json={"a": 1})
    assert posted.json() == {"json": {"a": 1}, "text": '{"a": 1}', "kind": "AMLRequest"}
    raw = requests.post(server.url + "/score", data=b"\x01\x02\x03")
    assert raw.content == b"\x03\x02\x01"
    assert raw.headers["content-type"] == "application/octet-stream"


def test_rawhttp_with_input_schema_is_rejected(serve: ServeFactory) -> None:
    source = """
    import numpy as np
    from azureml.contrib.services.aml_request import rawhttp
    from inference_schema.schema_decorators import input_schema
    from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
    def init():
        pass
    @rawhttp
    @input_schema("data", StandardPythonParameterType(1))
    def run(data):
        return data
    """
    server = serve(source, wait=False)
    assert server.wait_exit() == 3
    assert "run() cannot be decorated with both @rawhttp and @input_schema" in server.status()["error"]


def test_model_not_found_names_where_it_looked(serve: ServeFactory) -> None:
    source = """
    from azureml.core.model import Model
    def init():
        Model.get_model_path("absent-model")
    def run(data):
        return data
    """
    server = serve(source, wait=False)
    assert server.wait_exit() == 3
    assert "absent-model" in server.status()["error"]
    assert "azureml-models" in server.status()["error"]


def test_undecorated_run_with_request_headers(serve: ServeFactory) -> None:
    source = """
    def init():
        pass
    def run(raw_data, request_headers):
        return {"body": raw_data, "rid": request_headers.get("X-Request-Id"), "ct": request_headers.get("Content-Type")}
    """
    server = serve(source)
    response = requests.post(server.url + "/score", data="hello", headers={"x-request-id": "abc",
                                                                          "Content-Type": "text/plain"})
    assert response.json() == {"body": "hello", "rid": "abc", "ct": "text/plain"}


UPLOAD_SCORE = """
import hashlib, os, tempfile
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    if "image" not in request.files:
        return AMLResponse({"error": "send an image", "form": request.form.to_dict(flat=False)}, 400,
                           json_str=True)
    image = request.files["image"]
    digest = hashlib.sha256(image.read()).hexdigest()
    image.stream.seek(0)
    target = os.path.join(tempfile.mkdtemp(), "upload.bin")
    image.save(target)
    with open(target, "rb") as handle:
        saved = handle.read()
    return {
        "filename": image.filename,
        "mimetype": image.mimetype,
        "sha256": digest,
        "saved_sha256": hashlib.sha256(saved).hexdigest(),
        "labels": request.form.getlist("label"),
        "threshold": request.form.get("threshold", type=float),
        "extra_files": [f.filename for f in request.files.getlist("extra")],
    }
"""


def test_rawhttp_multipart_upload_gives_files_and_form(serve: ServeFactory) -> None:
    import hashlib

    server = serve(UPLOAD_SCORE)
    image = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
    response = requests.post(
        server.url + "/score",
        files=[("image", ("cat.png", image, "image/png")), ("extra", ("a.txt", b"a")), ("extra", ("b.txt", b"b"))],
        data={"label": ["cat", "kätzchen"], "threshold": "0.25"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "cat.png",
        "mimetype": "image/png",
        "sha256": hashlib.sha256(image).hexdigest(),
        "saved_sha256": hashlib.sha256(image).hexdigest(),
        "labels": ["cat", "kätzchen"],
        "threshold": 0.25,
        "extra_files": ["a.txt", "b.txt"],
    }
    # Form fields without a file, urlencoded: the script's own 400.
    plain = requests.post(server.url + "/score", data={"label": "dog"})
    assert plain.status_code == 400
    assert plain.json() == {"error": "send an image", "form": {"label": ["dog"]}}
    # A malformed multipart body leaves files and form empty, as werkzeug does, and says why in the log.
    broken = requests.post(server.url + "/score", data=b"garbage without parts",
                           headers={"Content-Type": "multipart/form-data"})
    assert broken.status_code == 400
    assert broken.json()["form"] == {}
    assert "Could not parse the multipart/form-data body" in server.log()
