"""Large V2 and MLflow bodies forwarded to a classic ``run(raw_data)`` as the client wrote them
(``server/passthrough.py``): on a real server, every valid body reaches ``run()`` as the same values and gets
the same answer as on the full translation, and every bad body gets the full translation's status and
message, also when only ``run()``'s own parse finds the fault (the re-check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from server_harness import ServeFactory, Server

from jupyter_mldeploy.server import passthrough
from jupyter_mldeploy.server.protocol_mlflow import MlflowProtocol
from jupyter_mldeploy.server.protocol_v2 import V2Protocol
from jupyter_mldeploy.server.wire import WireError

# Writes what it was given next to itself (which path the request took), answers what it parsed.
ECHO = """
import json
import os

def init():
    pass

def run(raw_data):
    with open(os.path.join(os.environ["AML_APP_ROOT"], "last_body.json"), "w") as seen:
        seen.write(raw_data)
    parsed = json.loads(raw_data)
    first = parsed["data"][0] if isinstance(parsed["data"], list) else None
    if (first[0] if isinstance(first, list) else first) == -1.25:
        raise ValueError("the script failed")
    return [repr(parsed)]
"""

MODEL = "echo"
V2_PATH = f"/v2/models/{MODEL}/infer"
# Values a client writes: negatives, exponents of both cases and signs, -0.0, long mantissas.
SPECIAL = [-0.5, 4.7e-05, -3.25e-07, 1.5e20, -0.0, 0.1000000000000000055511151231257827, 123456.789]


def _rows(rows: int = 40, columns: int = 4) -> list[list[float]]:
    values = [round((i * 7919 % 1000) / 997 - 0.3, 6) for i in range(rows * columns)]
    values[: len(SPECIAL)] = SPECIAL
    return [values[r * columns:(r + 1) * columns] for r in range(rows)]


ROWS = _rows()
FLAT = [v for row in ROWS for v in row]


def _v2(data: Any = ROWS, shape: list[int] | None = None, datatype: str = "FP64", name: str = "x",
        first: bool = False, **extra: Any) -> dict[str, Any]:
    if shape is None:
        shape = [len(data), len(data[0])] if isinstance(data[0], list) else [len(data)]
    tensor = {"name": name, "shape": shape, "datatype": datatype}
    tensor = {"data": data, **tensor} if first else {**tensor, "data": data}
    return {**extra, "inputs": [tensor]}


@pytest.fixture(scope="module")
def echo(serve_module: ServeFactory) -> Server:
    return serve_module(ECHO, files={f"azureml-models/{MODEL}/2/model.txt": "x"})


def _full_v2(body: bytes) -> tuple[int, bytes]:
    """What the full translation (no forwarding) answers, with ECHO's run() in this process."""
    protocol = V2Protocol([], None, {MODEL: ["2"]}, passthrough_min_bytes=None)
    return _full(protocol.route("POST", V2_PATH), body, "application/json")


def _full_mlflow(body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    return _full(MlflowProtocol([], passthrough_min_bytes=None).route("POST", "/invocations"), body, content_type)


def _full(prepare: Any, body: bytes, content_type: str) -> tuple[int, bytes]:
    try:
        call = prepare(body, content_type, [])
    except WireError as refusal:
        return refusal.status, refusal.body
    return 200, call.finish([repr(json.loads(call.body))]).body


def _post(server: Server, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes, bool]:
    """Post ``body``; return the status, the body, and whether run() got the client's own bytes."""
    seen = Path(server.app_dir) / "last_body.json"
    seen.unlink(missing_ok=True)
    answer = requests.post(server.url + path, data=body, headers={"Content-Type": content_type}, timeout=30)
    forwarded = seen.exists() and seen.read_text().startswith('{"data": ')  # the full path writes {"data":[
    return answer.status_code, answer.content, forwarded


def _dumps(document: Any, style: str) -> bytes:
    if style == "compact":
        return json.dumps(document, separators=(",", ":")).encode()
    if style == "indent":
        return json.dumps(document, indent=2).encode()
    if style == "tabs-crlf":
        return json.dumps(document, indent="\t").replace("\n", "\r\n").encode()
    if style == "utf8":
        return json.dumps(document, ensure_ascii=False).encode()
    return json.dumps(document).encode()  # Python's default ", " and ": ", as tritonclient and requests send


V2_VALID = {
    # name: (document, style, forwarded)
    "default": (_v2(), "default", True),
    "compact": (_v2(), "compact", True),
    "indented": (_v2(), "indent", True),
    "tabs and CRLF": (_v2(), "tabs-crlf", True),
    "data first": (_v2(first=True), "default", True),
    "id, parameters, outputs": (_v2(id="req-1", parameters={"p": 1}, outputs=[{"name": "output-0"}]), "default", True),
    "tensor named data": (_v2(name="data"), "default", True),
    "data inside strings": (_v2(id='says "data": [1.0]', name='the "data": x'), "default", True),
    "escaped quote before data in a key": (_v2(parameters={'x"data': 1}), "compact", True),
    "unicode name, escaped": (_v2(name="données é"), "default", True),
    "unicode name, UTF-8": (_v2(name="données é"), "utf8", True),
    "1-d": (_v2(FLAT), "default", True),
    "1-d compact": (_v2(FLAT), "compact", True),
    "flat data for a 2-d shape": (_v2(FLAT, [40, 4]), "default", True),
    "flat data for a 2-d shape, indented": (_v2(FLAT, [40, 4]), "indent", True),
    "flat data for one column": (_v2(FLAT, [160, 1]), "compact", True),
    "flat data for one row": (_v2(FLAT, [1, 160]), "tabs-crlf", True),
    # The full path's conversions, which forwarding cannot do: these are translated.
    "integers": (_v2([[1, 2, 3, 4]] * 40), "default", False),
    "integers among floats": (_v2([[1.5, 2, 3.5, 4]] * 40), "default", False),
    "3-d": (_v2([[[1.5, 2.5]] * 2] * 40, [40, 2, 2]), "default", False),
    "3-d data for a 2-d shape": (_v2([[[1.5, 2.5, 3.5, 4.5]]] * 40, [40, 4]), "default", False),
    "INT64": (_v2([[1, 2, 3, 4]] * 40, datatype="INT64"), "default", False),
    "FP32": (_v2(datatype="FP32"), "default", False),
    "small body": (_v2([[1.5, 2.5]]), "default", False),
    "data as a parameter too": (_v2(parameters={"data": 1}), "default", False),
}


@pytest.mark.parametrize("name", list(V2_VALID))
def test_v2_valid_bodies_answer_as_the_full_path(echo: Server, name: str) -> None:
    document, style, forwarded = V2_VALID[name]
    body = _dumps(document, style)
    status, answer, was_forwarded = _post(echo, V2_PATH, body)
    assert (status, answer) == _full_v2(body)
    assert status == 200, answer
    assert was_forwarded is forwarded


@pytest.mark.parametrize("body", [
    # data spelled with a \u escape, before and after the plain key: orjson keeps the last one
    b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.5, 2.5, 3.5], '
    b'"\\u0064ata": [9.5, 8.5, 7.5]}], "pad": "' + b"p" * 1100 + b'"}',
    b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "\\u0064ata": [1.5, 2.5], '
    b'"data": [9.5, 8.5, 7.5]}], "pad": "' + b"p" * 1100 + b'"}',
    b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data" :\n [1.5, 2.5, 3.5]}], "pad": "'
    + b"p" * 1100 + b'"}',
    b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1E+2, 2.5e-3, -3E-1]}], "pad": "'
    + b"p" * 1100 + b'"}',
], ids=["escaped key last", "escaped key first", "space before colon", "exponents without dots"])
def test_v2_spellings_of_keys_and_numbers(echo: Server, body: bytes) -> None:
    status, answer, _ = _post(echo, V2_PATH, body)
    assert (status, answer) == _full_v2(body)


def _spelled(number: bytes) -> bytes:
    """A forwarded-size V2 body whose second value is ``number`` as written."""
    values = b", ".join([b"1.5", number] + [b"2.25"] * 198)
    return b'{"inputs": [{"name": "x", "shape": [200], "datatype": "FP64", "data": [' + values + b"]}]}"


V2_BAD = {
    "strings": _dumps(_v2([["a", 1.5, 2.5, 3.5]] * 40), "default"),
    "booleans": _dumps(_v2([[True, False, True, False]] * 40), "default"),
    "null": _dumps(_v2([[None, 1.5, 2.5, 3.5]] * 40), "default"),
    "count": _dumps(_v2(shape=[40, 5]), "default"),
    "count 1-d": _dumps(_v2(FLAT, [161]), "default"),
    "count flat 2-d": _dumps(_v2(FLAT, [41, 4]), "default"),
    "ragged": _dumps(_v2(ROWS[:-1] + [ROWS[-1][:3]]), "default"),
    "extra nesting": _dumps(_v2([[[1.5, 2.5, 3.5]]] * 40, [40, 4]), "default"),
    "truncated": _dumps(_v2(), "default")[:-3],
    "truncated in the data": _dumps(_v2(), "default")[:600],
    "overflowing exponent": _spelled(b"2.5e400"),
    "two dots": _spelled(b"1.2.3"),
    "no inputs": _dumps({"input": ROWS}, "default"),
}
# Spellings only run()'s parse finds: forwarded, then re-checked on the full path.
RECHECKED = {"minus inside": b"1-2.5", "double minus": b"--1.5", "plus": b"+1.5", "leading dot": b".5",
             "trailing dot": b"5.", "leading zero": b"01.5", "space inside": b"1 .5", "dot exponent": b"1.e5"}


@pytest.mark.parametrize("name", list(V2_BAD) + list(RECHECKED))
def test_v2_bad_bodies_get_the_full_paths_status_and_message(echo: Server, name: str) -> None:
    body = V2_BAD[name] if name in V2_BAD else _spelled(RECHECKED[name])
    status, answer, forwarded = _post(echo, V2_PATH, body)
    assert (status, answer) == _full_v2(body)
    assert status == 400, answer
    assert forwarded is (name in RECHECKED)


def test_v2_a_failing_run_on_forwarded_rows_is_run_s_error(echo: Server) -> None:
    body = _dumps(_v2([[-1.25, 1.5, 2.5, 3.5]] * 40), "default")
    status, answer, forwarded = _post(echo, V2_PATH, body)
    assert forwarded
    assert (status, json.loads(answer)) == (
        500, {"error": "An unexpected error occurred in scoring script. Check the logs for more info."})


MLFLOW_VALID = {
    "inputs": ({"inputs": ROWS}, "default", True),
    "inputs indented": ({"inputs": ROWS}, "indent", True),
    "instances compact": ({"instances": ROWS}, "compact", True),
    "inputs 1-d": ({"inputs": FLAT}, "default", True),
    "inputs and params": ({"params": {"k": "inputs"}, "inputs": ROWS}, "default", True),
    "dataframe_split": ({"dataframe_split": {"columns": list("abcd"), "data": ROWS}}, "default", True),
    "dataframe_split data first, index": (
        {"dataframe_split": {"data": ROWS, "index": list(range(40)), "columns": list("abcd")}}, "tabs-crlf", True),
    "dataframe_split named data": (
        {"dataframe_split": {"columns": ["data", "b", "c", "d"], "data": ROWS}}, "utf8", True),
    "integers": ({"inputs": [[1, 2, 3, 4]] * 40}, "default", False),
    "strings": ({"inputs": [["a", 1.5, 2.5, 3.5]] * 40}, "default", False),
    "3-d": ({"inputs": [[[1.5, 2.5]] * 2] * 40}, "default", False),
    "records": ({"dataframe_records": [dict(zip("abcd", row, strict=True)) for row in ROWS]}, "default", False),
    "named inputs": ({"inputs": {"a": FLAT}}, "default", False),
}


@pytest.mark.parametrize("name", list(MLFLOW_VALID))
def test_mlflow_valid_bodies_answer_as_the_full_path(echo: Server, name: str) -> None:
    document, style, forwarded = MLFLOW_VALID[name]
    body = _dumps(document, style)
    status, answer, was_forwarded = _post(echo, "/invocations", body)
    assert (status, answer) == _full_mlflow(body)
    assert status == 200, answer
    assert was_forwarded is forwarded


def test_mlflow_a_json_content_type_with_parameters_is_translated(echo: Server) -> None:
    body, content_type = _dumps({"inputs": ROWS}, "default"), "application/json; charset=utf-8"
    status, answer, forwarded = _post(echo, "/invocations", body, content_type)
    assert (status, answer) == _full_mlflow(body, content_type) and status == 200
    assert not forwarded


def _mlflow_spelled(number: bytes) -> bytes:
    return b'{"inputs": [' + b", ".join([b"[1.5, " + number + b"]"] + [b"[2.25, 3.5]"] * 100) + b"]}"


MLFLOW_BAD = {
    "two format keys": _dumps({"inputs": ROWS, "instances": ROWS}, "default"),
    "no format key": _dumps({"rows": ROWS}, "default"),
    "columns not a list": _dumps({"dataframe_split": {"columns": "abcd", "data": ROWS}}, "default"),
    "truncated": _dumps({"inputs": ROWS}, "default")[:-2],
}


@pytest.mark.parametrize("name", list(MLFLOW_BAD) + list(RECHECKED))
def test_mlflow_bad_bodies_get_the_full_paths_status_and_message(echo: Server, name: str) -> None:
    body = MLFLOW_BAD[name] if name in MLFLOW_BAD else _mlflow_spelled(RECHECKED[name])
    status, answer, forwarded = _post(echo, "/invocations", body)
    assert (status, answer) == _full_mlflow(body)
    assert status == 400, answer
    assert forwarded is (name in RECHECKED)


def test_mlflow_a_failing_run_on_forwarded_rows_is_run_s_error(echo: Server) -> None:
    status, answer, forwarded = _post(echo, "/invocations", _dumps({"inputs": [[-1.25, 2.5]] * 100}, "default"))
    assert forwarded and status == 500
    assert json.loads(answer) == {"error_code": "INTERNAL_ERROR", "message": "An unexpected error occurred in "
                                  "scoring script. Check the logs for more info."}


@pytest.mark.parametrize("text, shape", [
    (b"[1.5]", (1,)), (b"[ -1.5 ,\n2.0e-3\t]", (2,)), (b"[[1.5, 2.5], [3.5, 4.5], [5.5, 6.5]]", (3, 2)),
    (b"[[1.5]]", (1, 1)), (b"[[1E5, -2.5E-5, 0.0]]", (1, 3)),
    (b"[]", None), (b"[[]]", None), (b"[1, 2.5]", None), (b"[[1.5], [2.5, 3.5]]", None), (b"[[[1.5]]]", None),
    (b"[1.5, true]", None), (b"[1.5e300]", None), (b"[1.5e]", None), (b"[1.5, 2.5]]", None),
])
def test_float_layout(text: bytes, shape: tuple[int, ...] | None) -> None:
    body = b'{"a": ' + text + b"}"
    assert passthrough.float_layout(body, passthrough.Span(6, 6 + len(text))) == shape


@pytest.mark.parametrize("body, found", [
    (b'{"data": [1.5], "b": 1}', b"[1.5]"),
    (b'{"data"\n:\t[[1.5],\n [2.5]]\n}', b"[[1.5],\n [2.5]]"),
    (b'{"x": "\\"data\\": [2.5]", "data": [1.5]}', b"[1.5]"),  # the first is inside a string
    (b'{"data": [1.5], "p": {"data": 1}}', None),  # two keys
    (b'{"data": 1.5}', None),  # not an array
    (b'{"data": [1.5], "\\u0064ata": [2.5]}', None),  # another "data", escaped
    (b'{"name": "\\u00e9", "data": [1.5]}', b"[1.5]"),  # an escape of another letter
    (b'{"a": "data", "b": ["data"]}', None),  # values, not keys
])
def test_locate(body: bytes, found: bytes | None) -> None:
    span = passthrough.locate(body, b'"data"')
    assert (body[span.start:span.end] if span else None) == found


def test_through_the_batching_queue_the_same_answers(serve_module: ServeFactory) -> None:
    # Other protocols' calls go through the dispatcher's queue when batching is on: forwarding and the
    # re-check work there as well.
    batching = serve_module(ECHO, env={"MLDEPLOY_BATCH_MAX_SIZE": "32", "MLDEPLOY_BATCH_MAX_LATENCY_MS": "5"},
                            files={f"azureml-models/{MODEL}/2/model.txt": "x"})
    for body in (_dumps(_v2(), "default"), _spelled(b"1-2.5")):
        status, answer, forwarded = _post(batching, V2_PATH, body)
        assert forwarded and (status, answer) == _full_v2(body)
    for body in (_dumps({"inputs": ROWS}, "default"), _mlflow_spelled(b"01.5")):
        status, answer, forwarded = _post(batching, "/invocations", body)
        assert forwarded and (status, answer) == _full_mlflow(body)


def test_tritonclient_flat_rows_are_forwarded_cut_into_rows(echo: Server) -> None:
    import numpy as np
    import tritonclient.http as triton

    rows = np.asarray(ROWS)
    tensor = triton.InferInput("x", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)  # flat data, as tritonclient sends it
    client = triton.InferenceServerClient(url=f"127.0.0.1:{echo.port}")
    seen = Path(echo.app_dir) / "last_body.json"
    [parsed] = client.infer(MODEL, [tensor]).as_numpy("output-0").tolist()
    assert seen.read_text().startswith('{"data": [[')
    assert (parsed.decode() if isinstance(parsed, bytes) else parsed) == repr({"data": rows.tolist()})


def test_v2_flat_rows_with_a_misspelled_number_get_the_full_paths_refusal(echo: Server) -> None:
    values = b", ".join([b"1.5", b"1-2.5"] + [b"2.25"] * 198)
    body = b'{"inputs": [{"name": "x", "shape": [100, 2], "datatype": "FP64", "data": [' + values + b"]}]}"
    status, answer, forwarded = _post(echo, V2_PATH, body)
    assert forwarded and status == 400 and (status, answer) == _full_v2(body)
