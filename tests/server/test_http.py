"""Routes, status codes, messages and headers of an undecorated score.py, against one real server."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from server_harness import ServeFactory, Server

SCORE = """
import json, os, time
import numpy as np
import pandas as pd

ACTIVE = 0
PEAK = 0

def init():
    print("init says hello")

def run(raw_data):
    print(f"got {len(raw_data)} chars")
    if raw_data == "boom":
        raise ValueError("the script failed")
    if raw_data == "exit":
        raise SystemExit(1)
    if raw_data == "sleep":
        time.sleep(1.5)
        return "slept"
    if raw_data == "concurrency":
        global ACTIVE, PEAK
        ACTIVE += 1
        PEAK = max(PEAK, ACTIVE)
        time.sleep(0.1)
        ACTIVE -= 1
        return PEAK
    if raw_data == "numpy-scalar":
        return np.float32(1.5)
    if raw_data == "frame":
        return pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    if raw_data == "series":
        return pd.Series([1.0, 2.0])
    if raw_data == "unencodable":
        return object()
    if raw_data.startswith("{") and "echo" in raw_data:
        return {"echo": raw_data}
    data = json.loads(raw_data)
    return np.asarray(data["data"]) * 2
"""


@pytest.fixture(scope="module")
def server(serve_module: ServeFactory) -> Server:
    return serve_module(SCORE, env={"SCORING_TIMEOUT_MS": "700"}, files={"helper.txt": "x"})


def test_health(server: Server) -> None:
    response = requests.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "Healthy"


def test_post_raw_body_numpy_result_and_headers(server: Server) -> None:
    response = requests.post(server.url + "/score", data='{"data": [[1, 2], [3, 4]]}')
    assert response.status_code == 200
    assert response.json() == [[2, 4], [6, 8]]
    assert response.headers["content-type"] == "application/json"
    uuid.UUID(response.headers["x-request-id"])
    assert response.headers["x-ms-request-id"] == response.headers["x-request-id"]
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert re.fullmatch(r"\d+\.\d{3}", response.headers["x-ms-run-fn-exec-ms"])


def test_request_id_is_echoed(server: Server) -> None:
    response = requests.post(server.url + "/score", data="numpy-scalar", headers={"x-request-id": "my-id-1"})
    assert response.json() == 1.5
    assert response.headers["x-request-id"] == "my-id-1"
    assert response.headers["x-ms-request-id"] == "my-id-1"
    legacy = requests.post(server.url + "/score", data="numpy-scalar", headers={"x-ms-request-id": "legacy-7"})
    assert legacy.headers["x-ms-request-id"] == "legacy-7"
    assert legacy.headers["x-ms-client-request-id"] == "legacy-7"


def test_pandas_results(server: Server) -> None:
    assert requests.post(server.url + "/score", data="frame").json() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert requests.post(server.url + "/score", data="series").json() == [1.0, 2.0]


def test_get_score_passes_query_as_json_string(server: Server) -> None:
    response = requests.get(server.url + "/score", params=[("echo", "1"), ("b", "[1,2]"), ("c", "x"), ("c", "y")])
    assert response.status_code == 200
    import json

    assert json.loads(response.json()["echo"]) == {"echo": 1, "b": [1, 2], "c": ["x", "y"]}


def test_run_raises_gives_500_and_service_stays_up(server: Server) -> None:
    response = requests.post(server.url + "/score", data="boom", headers={"x-request-id": "boom-request"})
    assert response.status_code == 500
    assert response.json() == {
        "message": "An unexpected error occurred in scoring script. Check the logs for more info."
    }
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert requests.post(server.url + "/score", data="exit").status_code == 500
    assert requests.post(server.url + "/score", data='{"data": [1]}').json() == [2]
    log = server.log()
    assert "boom-request | Traceback" in log or "ValueError: the script failed" in log


def test_malformed_json_in_script_is_500(server: Server) -> None:
    assert requests.post(server.url + "/score", data="{not json").status_code == 500
    assert requests.post(server.url + "/score", data="").status_code == 500


def test_bad_utf8_is_400(server: Server) -> None:
    response = requests.post(server.url + "/score", data=b"\xff\xfe\xfa")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Input cannot be decoded as UTF-8:")


def test_method_not_allowed_and_unknown_path(server: Server) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        response = requests.request(method, server.url + "/score")
        assert response.status_code == 405
        assert response.json() == {"message": "The method is not allowed for the requested URL."}
    assert requests.post(server.url + "/").status_code == 405
    missing = requests.get(server.url + "/nothing-here")
    assert missing.status_code == 404
    assert "was not found" in missing.json()["message"]


def test_options_without_cors(server: Server) -> None:
    response = requests.options(server.url + "/score", headers={"Origin": "http://a.com",
                                                                "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200
    assert response.text == ""
    assert "access-control-allow-origin" not in response.headers


def test_request_id_too_long_is_431(server: Server) -> None:
    response = requests.post(server.url + "/score", data="x", headers={"x-request-id": "a" * 101})
    assert response.status_code == 431
    assert response.json() == {"message": "x-request-id must not exceed 100 characters"}
    ok = requests.post(server.url + "/score", data='{"data": 1}', headers={"x-request-id": "a" * 100})
    assert ok.status_code == 200


def test_unencodable_result_is_500_internal(server: Server) -> None:
    response = requests.post(server.url + "/score", data="unencodable")
    assert response.status_code == 500
    assert response.json() == {"message": "An unexpected internal error occurred. Check the logs for more info."}


def test_timeout_then_service_still_answers(server: Server) -> None:
    started = time.monotonic()
    response = requests.post(server.url + "/score", data="sleep")
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 700 ms"}
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert time.monotonic() - started < 1.4
    # The stuck run is still sleeping in native code; the next request must not wait for it.
    quick = requests.post(server.url + "/score", data='{"data": [5]}')
    assert quick.status_code == 200
    assert quick.json() == [10]
    assert time.monotonic() - started < 1.4


def test_print_lines_carry_request_id_and_access_log(server: Server) -> None:
    rid = "log-check-0001"
    requests.post(server.url + "/score", data='{"data": [1, 2, 3]}', headers={"x-request-id": rid})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and f"{rid} | POST /score 200" not in server.log():
        time.sleep(0.05)
    log = server.log()
    assert f"{rid} | got 19 chars" in log
    assert "00000000-0000-0000-0000-000000000000 | init says hello" in log
    assert re.search(rf"{rid} \| POST /score 200 \d+\.\d{{3}}ms \d+", log)


def test_request_too_large_is_413(serve: ServeFactory) -> None:
    server = serve(SCORE, "--max-request-mb", "0.001")
    response = requests.post(server.url + "/score", data="x" * 2000)
    assert response.status_code == 413
    assert "1000 bytes" not in response.json()["message"]
    assert "0.001 MB" in response.json()["message"]
    assert requests.post(server.url + "/score", data='{"data": [1]}').status_code == 200


def test_runs_are_serialised_per_worker(server: Server) -> None:
    with ThreadPoolExecutor(4) as pool:
        peaks = list(pool.map(lambda _: requests.post(server.url + "/score", data="concurrency").json(), range(4)))
    assert max(peaks) == 1


def test_request_queued_behind_a_timed_out_run_still_succeeds(server: Server) -> None:
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(requests.post, server.url + "/score", data="sleep")
        time.sleep(0.3)
        queued = pool.submit(requests.post, server.url + "/score", data='{"data": [7]}')
        assert slow.result().status_code == 500
        # It waited ~0.4 s behind the stuck run; its own timeout only starts when it starts.
        assert queued.result().status_code == 200
        assert queued.result().json() == [14]
