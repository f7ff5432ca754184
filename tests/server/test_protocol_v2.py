"""The Open Inference Protocol V2 routes on real servers: Triton's own HTTP client (tritonclient[http]), the
specification's examples, and every bad body with its status and message."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from server_harness import ServeFactory, Server
from tritonclient.utils import InferenceServerException

CLASSIC = """
import json
import numpy as np

def init():
    pass

def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == [[-1.0]]:
        raise ValueError("the script failed")
    if data == [[-2.0]]:
        return [[1], [1, 2]]
    if data[0][0] == 100.5:  # Python floats, as predict(...).tolist() gives
        return [float(sum(row)) for row in data]
    if data[0][0] == 200.5:  # Python integers
        return [int(sum(row)) for row in data]
    return np.asarray(data).sum(axis=1)
"""

DECORATED = """
import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

def init():
    pass

@input_schema("data", NumpyParameterType(np.array([[5.1, 3.5, 1.4, 0.2]])))
@output_schema(NumpyParameterType(np.array([0])))
def run(data):
    return (data.sum(axis=1) > 12).astype("int64")
"""

# The specification's example model: input0 UINT32 [2, 2] and input1 BOOL, output0 FP32 [3, 2]
# (the example response's values).
SPEC = """
import numpy as np
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

def init():
    pass

@input_schema("input0", NumpyParameterType(np.array([[1, 2]], dtype="uint32")))
@input_schema("input1", NumpyParameterType(np.array([True])))
def run(input0, input1):
    assert input0.dtype == np.uint32 and input0.shape == (2, 2), (input0.dtype, input0.shape)
    return {"output0": np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]], dtype=np.float32),
            "echo": input0.sum(axis=1)}
"""

MODELS = {"azureml-models/iris/1/model.txt": "x", "azureml-models/iris/3/model.txt": "x"}


@pytest.fixture(scope="module")
def classic(serve_module: ServeFactory) -> Server:
    return serve_module(CLASSIC, files=MODELS)


@pytest.fixture(scope="module")
def decorated(serve_module: ServeFactory) -> Server:
    return serve_module(DECORATED, files=MODELS)


@pytest.fixture(scope="module")
def spec(serve_module: ServeFactory) -> Server:
    return serve_module(SPEC, files={"azureml-models/mymodel/1/model.txt": "x"})


def _client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")


def test_triton_client_health_and_metadata(decorated: Server) -> None:
    client = _client(decorated)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "3")
    assert not client.is_model_ready("other")
    server = client.get_server_metadata()
    assert server["name"] == "jupyter-mldeploy" and server["extensions"] == []
    model = client.get_model_metadata("iris")
    assert model["name"] == "iris" and model["versions"] == ["1", "3"]
    assert model["inputs"] == [{"name": "data", "datatype": "FP64", "shape": [-1, 4]}]
    assert model["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]


def test_triton_client_infers_through_a_decorated_run(decorated: Server) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]])
    tensor = triton.InferInput("data", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)
    result = _client(decorated).infer("iris", [tensor], model_version="1", request_id="abc",
                                      outputs=[triton.InferRequestedOutput("output-0", binary_data=False)])
    assert result.as_numpy("output-0").tolist() == [0, 1]
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("iris", "1", "abc")
    assert response["outputs"][0]["datatype"] == "INT64" and response["outputs"][0]["shape"] == [2]


def test_triton_client_infers_through_a_classic_run(classic: Server) -> None:
    rows = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32)
    tensor = triton.InferInput("anything", [3, 2], "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    result = _client(classic).infer("iris", [tensor])
    assert result.as_numpy("output-0").tolist() == [3.0, 7.0, 11.0]
    # no version asked for: the latest answers
    assert result.get_response()["model_version"] == "3"


def test_binary_tensor_extension_is_refused_with_the_json_alternative(classic: Server) -> None:
    tensor = triton.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32))  # binary_data=True by default
    with pytest.raises(InferenceServerException, match="binary tensor data extension is not supported"):
        _client(classic).infer("iris", [tensor])


def test_the_specifications_example_request_and_response(spec: Server) -> None:
    example = {
        "id": "42",
        "inputs": [
            {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
            {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
        ],
        "outputs": [{"name": "output0"}],
    }
    # As printed, the example's input1 declares shape [3] with one value: refused, naming the mismatch.
    answer = requests.post(f"{spec.url}/v2/models/mymodel/infer", json=example, timeout=10)
    assert answer.status_code == 400
    assert answer.json() == {"error": "input 'input1': shape [3] holds 3 values but data has 1; make the shape "
                                      "match the data (row-major)."}
    example["inputs"][1]["shape"] = [1]
    answer = requests.post(f"{spec.url}/v2/models/mymodel/infer", json=example, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "42" and body["model_name"] == "mymodel" and body["model_version"] == "1"
    [output] = body["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == ("output0", [3, 2], "FP32")
    assert output["data"] == pytest.approx([1.0, 1.1, 2.0, 2.1, 3.0, 3.1], rel=1e-6)
    # the specification's nested form of tensor data is the same tensor as the flat one
    example["inputs"][0]["data"] = [[1, 2], [3, 4]]
    del example["outputs"]
    body = requests.post(f"{spec.url}/v2/models/mymodel/infer", json=example, timeout=10).json()
    echo = next(o for o in body["outputs"] if o["name"] == "echo")
    assert (echo["datatype"], echo["shape"], echo["data"]) == ("UINT64", [2], [3, 7])


@pytest.mark.parametrize("data", [
    [1.5, 2.0, 3.0, 4.0, 5.0, 6.5],  # flat, as tritonclient sends it
    [[1.5, 2.0, 3.0], [4.0, 5.0, 6.5]],  # nested rows
    [[1, 2.0, 3.5], [4, 5, 6.5]],  # integers among the floats
])
def test_fp64_rows_flat_nested_or_mixed_reach_run_alike(classic: Server, data: list) -> None:
    body = {"inputs": [{"name": "data", "shape": [2, 3], "datatype": "FP64", "data": data}]}
    answer = requests.post(f"{classic.url}/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert (output["datatype"], output["shape"], output["data"]) == ("FP64", [2], [6.5, 15.5])


@pytest.mark.parametrize("first, datatype, data", [(100.5, "FP64", [103.5, 15.5]), (200.5, "INT64", [203, 15])])
def test_list_results_get_their_datatype(classic: Server, first: float, datatype: str, data: list) -> None:
    body = {"inputs": [{"name": "data", "shape": [2, 3], "datatype": "FP64",
                        "data": [[first, 2.0, 1.0], [4.0, 5.0, 6.5]]}]}
    [output] = requests.post(f"{classic.url}/v2/models/iris/infer", json=body, timeout=10).json()["outputs"]
    assert (output["datatype"], output["shape"], output["data"]) == (datatype, [2], data)


def _infer(server: Server, body: object, path: str = "/v2/models/iris/infer", method: str = "POST") -> tuple[int, str]:
    kwargs = {"json": body} if not isinstance(body, bytes) else {"data": body}
    answer = requests.request(method, server.url + path, timeout=10, **kwargs)
    return answer.status_code, answer.json()["error"]


def _tensor(**overrides: object) -> dict[str, object]:
    return {"inputs": [{"name": "data", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0], **overrides}]}


@pytest.mark.parametrize("body, status, message", [
    (_tensor(datatype="INT32"), 400,
     "input 'data': datatype INT32 does not match the data, which holds floating-point numbers; send integers "
     "or declare the datatype of the data."),
    (_tensor(datatype="FP32", data=["a", "b"]), 400,
     "input 'data': datatype FP32 does not match the data, which holds strings; send floating-point numbers or "
     "declare the datatype of the data."),
    (_tensor(datatype="FLOAT"), 400, "input 'data': unknown datatype 'FLOAT'; use one of BOOL, INT8, INT16, INT32, "
                                     "INT64, UINT8, UINT16, UINT32, UINT64, FP16, FP32, FP64, BYTES."),
    (_tensor(shape=[2, 2]), 400,
     "input 'data': shape [2, 2] holds 4 values but data has 2; make the shape match the data (row-major)."),
    (_tensor(shape=[1, -2]), 400, "input 'data': shape must be a list of non-negative integers, got [1, -2]."),
    (_tensor(data=[[1.0], [2.0, 3.0]], shape=[3]), 400,
     "input 'data': data is not a rectangular array (rows of different lengths)."),
    (_tensor(datatype=["FP32"]), 400, "input 'data': unknown datatype ['FP32']; use one of BOOL, INT8, INT16, "
                                      "INT32, INT64, UINT8, UINT16, UINT32, UINT64, FP16, FP32, FP64, BYTES."),
    (_tensor(name=["data"]), 400, "inputs[0]: name must be a string, got ['data']."),
    (_tensor(parameters=["binary_data_size"]), 400,
     "input 'data': parameters must be an object, got ['binary_data_size']."),
    ({"inputs": [{"name": "data", "shape": [1]}]}, 400,
     "inputs[0] lacks datatype, data; each input needs name, shape, datatype and data."),
    ({"inputs": []}, 400, 'The request must be a JSON object with a non-empty "inputs" list of tensors.'),
    ({"inputs": [_tensor()["inputs"][0], {**_tensor()["inputs"][0], "name": "more"}]}, 400,
     'run() takes one input (passed as {"data": rows}); the request has 2: data, more. Send one tensor, or '
     "decorate run() with @input_schema."),
    ({**_tensor(), "outputs": [{"name": "probabilities"}]}, 400,
     "Requested output 'probabilities' is not produced by model 'iris'; its outputs are: output-0."),
    (_tensor(data=[-1.0], shape=[1, 1]), 500,
     "An unexpected error occurred in scoring script. Check the logs for more info."),
    (_tensor(data=[-2.0], shape=[1, 1]), 500,
     "run() returned a list for output 'output-0' that has no tensor form (ragged or mixed values); return an "
     "array, a list of numbers or strings, or a dict of those."),
])
def test_bad_infer_bodies(classic: Server, body: dict, status: int, message: str) -> None:
    assert _infer(classic, body) == (status, message)


def test_bad_routes_models_and_json(classic: Server, decorated: Server) -> None:
    assert _infer(classic, _tensor(), "/v2/models/mnist/infer") == (
        404, "Model 'mnist' is not served here; this service serves: iris.")
    assert _infer(classic, _tensor(), "/v2/models/iris/versions/2/infer") == (
        404, "Model 'iris' has no version '2'; its versions: 1, 3.")
    assert _infer(classic, None, "/v2/models/iris/infer", method="GET") == (
        405, "GET is not allowed on /v2/models/iris/infer; use POST.")
    assert _infer(classic, None, "/v2/models/iris/explain") == (
        404, "/v2/models/iris/explain is not a route of the Open Inference Protocol V2; a model has /ready and /infer.")
    status, message = _infer(classic, b"{nope")
    assert status == 400 and message.startswith("The request body is not valid JSON")
    assert _infer(decorated, {"inputs": [{**_tensor()["inputs"][0], "name": "features"}]}) == (
        400, "Input 'features' is not an input of model 'iris'; its inputs are: data.")
    with pytest.raises(InferenceServerException, match="Model 'mnist' is not served here"):
        _client(classic).get_model_metadata("mnist")


@pytest.mark.parametrize("version", ["2", "3"])
def test_swagger_lists_every_protocols_routes(decorated: Server, version: str) -> None:
    document = requests.get(f"{decorated.url}/swagger.json", params={"version": version}, timeout=10).json()
    paths = document["paths"]
    for path in ("/score", "/v2", "/v2/health/ready", "/v2/models/{model_name}/infer",
                 "/v2/models/{model_name}/versions/{model_version}/infer", "/invocations", "/ping", "/version"):
        assert path in paths, path
    infer = paths["/v2/models/{model_name}/versions/{model_version}/infer"]["post"]
    assert [p["name"] for p in infer["parameters"]] == ["model_name", "model_version"]
    assert infer["security"] == [{"Bearer": []}] and "security" not in paths["/v2/health/live"]["get"]
