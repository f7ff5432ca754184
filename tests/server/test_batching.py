"""Adaptive request batching and request-queue limits (issue #15), against real scoring servers.

Each test starts ``python -m jupyter_mldeploy.server`` with the ``MLDEPLOY_BATCH_*`` / queue-limit
variables, sends concurrent requests from threads, and checks every answer against what the same model
predicts in this process. A "blocker" request (a row whose first value is -1 makes ``run()`` sleep) keeps
the worker busy while the requests under test queue up, so they deterministically form one batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from server_harness import ServeFactory, Server

from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.server.batching import split_rows
from jupyter_mldeploy.server.config import ConfigError, ThroughputSettings

N_FEATURES = 4

# The model: a linear map written by the test, so the expected answers are computed here.
CLASSIC = """
import json, os, time
import numpy as np

def init():
    global weights
    with open(os.path.join(os.environ["AML_APP_ROOT"], "weights.json")) as handle:
        weights = np.array(json.load(handle))

def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    if (data[:, 0] == -1).any():
        time.sleep(0.4)  # the blocker
    time.sleep(0.005)  # a per-call cost, as a random forest's
    return (data @ weights).tolist()
"""

SCHEMA = """
import json, os, time
import numpy as np
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

def init():
    global weights
    with open(os.path.join(os.environ["AML_APP_ROOT"], "weights.json")) as handle:
        weights = np.array(json.load(handle))

@input_schema("data", NumpyParameterType(np.zeros((1, 4), dtype=np.float64)))
def run(data):
    if (data[:, 0] == -1).any():
        time.sleep(0.4)
    return data @ weights
"""

# Not row-wise: one total for the whole body.
SUMMARY = """
import json, time

def init():
    pass

def run(raw_data):
    rows = json.loads(raw_data)["data"]
    if rows[0][0] == -1:
        time.sleep(0.4)
    return {"total": sum(sum(row) for row in rows)}
"""

SLOW = """
import time

def init():
    pass

def run(raw_data):
    time.sleep(1.0)
    return "done"
"""

BLOCKER = [[-1.0, 0.0, 0.0, 0.0]]


@pytest.fixture(scope="module")
def weights() -> np.ndarray:
    return np.array([1.5, -2.0, 0.25, 3.0])


def _start(serve: ServeFactory, source: str, weights: np.ndarray | None, env: dict[str, str]) -> Server:
    files = {"weights.json": json.dumps(weights.tolist())} if weights is not None else None
    return serve(source, env=env, files=files)


def _post(url: str, rows: Any, key: str = "data") -> requests.Response:
    return requests.post(f"{url}/score", json={key: rows}, timeout=30)


def _rows(seed: int, count: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 10, size=(count, N_FEATURES)).round(3).tolist()


def _behind_blocker(url: str, send: Callable[[int], requests.Response], count: int) -> list[requests.Response]:
    """Start the blocker, then ``count`` requests while it runs; return their responses in order."""
    with ThreadPoolExecutor(count + 1) as pool:
        blocker = pool.submit(_post, url, BLOCKER)
        time.sleep(0.15)
        answers = [pool.submit(send, index) for index in range(count)]
        assert blocker.result().status_code == 200
        return [answer.result() for answer in answers]


def test_sixteen_concurrent_clients_get_exactly_their_own_rows(serve: ServeFactory, weights: np.ndarray) -> None:
    server = _start(serve, CLASSIC, weights, {"MLDEPLOY_BATCH_MAX_SIZE": "32", "MLDEPLOY_BATCH_MAX_LATENCY_MS": "20"})
    url = server.url
    results: list[tuple[list[list[float]], requests.Response]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def client(index: int) -> None:
        barrier.wait()
        with requests.Session() as session:
            for turn in range(12):
                # Mixed sizes: 1 to 5 rows, and now and then one larger than the batch size (runs alone).
                count = 40 if (index, turn) in ((3, 5), (11, 2)) else 1 + (index + turn) % 5
                rows = _rows(index * 100 + turn, count)
                answer = session.post(f"{url}/score", json={"data": rows}, timeout=30)
                with lock:
                    results.append((rows, answer))

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(client, index) for index in range(16)]:
            future.result()
    sizes = []
    for rows, answer in results:
        assert answer.status_code == 200, answer.text
        assert answer.json() == pytest.approx((np.array(rows) @ weights).tolist())
        batch = int(answer.headers["x-ms-batch-size"])
        sizes.append(batch)
        if len(rows) > 32:
            assert batch == len(rows)  # larger than the batch size: alone
        else:
            assert len(rows) <= batch <= 32
    assert len(results) == 16 * 12
    assert max(sizes) > 5, f"no request rode with company: {sorted(set(sizes))}"
    assert "Batch of" in server.log()


def test_schema_numpy_run_is_batched(serve: ServeFactory, weights: np.ndarray) -> None:
    server = _start(serve, SCHEMA, weights, {"MLDEPLOY_BATCH_MAX_SIZE": "64"})
    sent = {index: _rows(index, 1 + index % 3) for index in range(8)}
    answers = _behind_blocker(server.url, lambda i: _post(server.url, sent[i]), 8)
    total = sum(len(rows) for rows in sent.values())
    for index, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        assert answer.json() == pytest.approx((np.array(sent[index]) @ weights).tolist())
        assert int(answer.headers["x-ms-batch-size"]) == total  # all eight rode in one run() call
    # The documents are unchanged by batching.
    plain = _start(serve, SCHEMA, weights, {})
    swagger = requests.get(f"{server.url}/swagger.json", timeout=30)
    assert swagger.status_code == 200 and "x-ms-batch-size" not in swagger.headers
    assert swagger.json() == requests.get(f"{plain.url}/swagger.json", timeout=30).json()


def test_a_bad_row_poisons_only_its_own_request(serve: ServeFactory, weights: np.ndarray) -> None:
    server = _start(serve, CLASSIC, weights, {"MLDEPLOY_BATCH_MAX_SIZE": "64"})
    sent = {index: _rows(index, 2) for index in range(8)}
    sent[5] = [[1.0, 2.0, 3.0, 4.0], [1.0, "not a number", 3.0, 4.0]]
    answers = _behind_blocker(server.url, lambda i: _post(server.url, sent[i]), 8)
    for index, answer in enumerate(answers):
        if index == 5:
            assert answer.status_code == 500
            assert answer.headers["x-ms-run-function-failed"] == "True"
            assert "unexpected error occurred in scoring script" in answer.json()["message"]
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json() == pytest.approx((np.array(sent[index]) @ weights).tolist())
    assert "running each alone" in server.log()


def test_a_run_that_is_not_row_wise_is_detected_and_served_correctly(serve: ServeFactory) -> None:
    server = _start(serve, SUMMARY, None, {"MLDEPLOY_BATCH_MAX_SIZE": "64"})
    sent = {index: [[index, 1], [2, 3]] for index in range(6)}
    answers = _behind_blocker(server.url, lambda i: _post(server.url, sent[i]), 6)
    for index, answer in enumerate(answers):
        assert answer.status_code == 200
        assert answer.json() == {"total": index + 6}
    log = server.log()
    assert log.count("not one element per row") == 1
    # Batching stays off from then on: a second burst is served one by one, without another warning.
    answers = _behind_blocker(server.url, lambda i: _post(server.url, sent[i]), 6)
    assert [a.json() for a in answers] == [{"total": i + 6} for i in range(6)]
    assert server.log().count("not one element per row") == 1


def test_company_wait_is_bounded_and_a_lone_client_does_not_wait(serve: ServeFactory, weights: np.ndarray) -> None:
    server = _start(serve, CLASSIC, weights, {"MLDEPLOY_BATCH_MAX_SIZE": "32", "MLDEPLOY_BATCH_MAX_LATENCY_MS": "600"})
    with requests.Session() as session:
        for _ in range(5):
            session.post(f"{server.url}/score", json={"data": _rows(1, 1)}, timeout=30)
        # A lone client: nothing to wait for, so no 600 ms wait.
        start = time.perf_counter()
        answer = session.post(f"{server.url}/score", json={"data": _rows(2, 1)}, timeout=30)
        lone_ms = (time.perf_counter() - start) * 1000
    assert answer.status_code == 200
    assert lone_ms < 300, f"a lone request took {lone_ms:.0f} ms"
    # After a burst of 8 the dispatcher expects 8 again: the next lone request waits for company, at most 600 ms.
    answers = _behind_blocker(server.url, lambda i: _post(server.url, _rows(i, 1)), 8)
    assert {a.headers["x-ms-batch-size"] for a in answers} == {"8"}
    start = time.perf_counter()
    answer = _post(server.url, _rows(3, 1))
    waited_ms = (time.perf_counter() - start) * 1000
    assert answer.status_code == 200
    assert 550 <= waited_ms < 600 + 400, f"the request waited {waited_ms:.0f} ms for company (bound 600 ms)"
    # Nobody came: the next lone request goes at once again.
    start = time.perf_counter()
    _post(server.url, _rows(4, 1))
    assert (time.perf_counter() - start) * 1000 < 300


def test_queue_wait_limit_answers_503_naming_the_limit(serve: ServeFactory) -> None:
    server = _start(serve, SLOW, None, {"MLDEPLOY_MAX_QUEUE_WAIT_MS": "150"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(requests.post, f"{server.url}/score", data="x", timeout=30)
        time.sleep(0.1)
        second = pool.submit(requests.post, f"{server.url}/score", data="y", timeout=30)
        assert first.result().status_code == 200
        refused = second.result()
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/json"
    message = refused.json()["message"]
    assert "maxQueueWaitMs" in message and "MLDEPLOY_MAX_QUEUE_WAIT_MS = 150" in message
    assert "x-ms-batch-size" not in refused.headers  # batching is off: only the queue limit is on
    assert requests.post(f"{server.url}/score", data="z", timeout=30).status_code == 200


def test_concurrency_limit_answers_503_at_once(serve: ServeFactory) -> None:
    server = _start(serve, SLOW, None, {"MLDEPLOY_MAX_CONCURRENT_REQUESTS": "1"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(requests.post, f"{server.url}/score", data="x", timeout=30)
        time.sleep(0.15)
        start = time.perf_counter()
        refused = requests.post(f"{server.url}/score", data="y", timeout=30)
        refused_ms = (time.perf_counter() - start) * 1000
        assert first.result().status_code == 200
    assert refused.status_code == 503
    assert refused_ms < 600  # refused at once, not after the running request (which needs 850 ms more)
    assert "replica_max_concurrent_requests / MLDEPLOY_MAX_CONCURRENT_REQUESTS = 1" in refused.json()["message"]


def test_a_bad_setting_fails_the_start_naming_the_variable(serve: ServeFactory) -> None:
    server = serve(SLOW, env={"MLDEPLOY_BATCH_MAX_SIZE": "lots"}, wait=False)
    status = server.wait_for(lambda s: s.get("state") == "Failed")
    assert "MLDEPLOY_BATCH_MAX_SIZE must be an integer" in status["error"]


def test_throughput_settings_from_environ() -> None:
    assert not ThroughputSettings.from_environ({}).enabled
    settings = ThroughputSettings.from_environ({"MLDEPLOY_BATCH_MAX_SIZE": "8", "MLDEPLOY_BATCH_MAX_LATENCY_MS": "2.5"})
    assert (settings.batch_max_size, settings.batch_max_latency_ms, settings.enabled) == (8, 2.5, True)
    for env, name in (({"MLDEPLOY_BATCH_MAX_SIZE": "0"}, "MLDEPLOY_BATCH_MAX_SIZE"),
                      ({"MLDEPLOY_BATCH_MAX_LATENCY_MS": "-1"}, "MLDEPLOY_BATCH_MAX_LATENCY_MS"),
                      ({"MLDEPLOY_MAX_QUEUE_WAIT_MS": "soon"}, "MLDEPLOY_MAX_QUEUE_WAIT_MS")):
        with pytest.raises(ConfigError, match=name):
            ThroughputSettings.from_environ(env)


def test_split_rows_accepts_row_wise_results_only() -> None:
    import pandas as pd

    assert split_rows([1, 2, 3], [1, 2]) == [[1], [2, 3]]
    parts = split_rows(np.arange(6).reshape(3, 2), [2, 1])
    assert parts is not None and parts[1].tolist() == [[4, 5]]
    frame = split_rows(pd.DataFrame({"a": [1, 2, 3]}), [1, 2])
    assert frame is not None and frame[1].to_dict(orient="records") == [{"a": 2}, {"a": 3}]
    for value in ({"a": [1, 2, 3]}, "abc", 3, None, [1, 2], np.float64(1.0)):
        assert split_rows(value, [1, 2]) is None


def test_deployment_config_batching_round_trip_and_errors(tmp_path: Path) -> None:
    config = local_deploy_configuration(batching={"max_batch_size": 32, "max_latency_ms": 10})
    assert config.serialize()["batching"] == {"maxBatchSize": 32, "maxLatencyMs": 10}
    path = config.to_file(tmp_path / "deploymentconfig.json")
    assert json.loads(path.read_text())["batching"] == {"maxBatchSize": 32, "maxLatencyMs": 10}
    assert DeploymentConfiguration.from_file(path).batching == {"maxBatchSize": 32, "maxLatencyMs": 10}
    with pytest.raises(InvalidArgument, match="max_batch_size must be an integer >= 1"):
        local_deploy_configuration(batching={"max_latency_ms": 5})
    with pytest.raises(InvalidArgument, match="unknown key 'size'"):
        local_deploy_configuration(batching={"size": 5})


def test_scoring_variables_carry_batching_and_queue_limits_to_the_server(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from jupyter_mldeploy.deploy.app_folder import AppFolder
    from jupyter_mldeploy.deploy.plan import scoring_variables

    app = AppFolder(root=tmp_path, source_dir=None, entry_script=tmp_path / "score.py",
                    model_dir=tmp_path / "azureml-models", linked_files=0, copied_files=0)
    no_env = SimpleNamespace(environment=None)
    plain = scoring_variables(no_env, local_deploy_configuration(), app)  # type: ignore[arg-type]
    assert not any(name.startswith(("MLDEPLOY_BATCH", "MLDEPLOY_MAX_")) for name in plain)
    config = DeploymentConfiguration.from_dict({
        "computeType": "local", "batching": {"maxBatchSize": 16, "maxLatencyMs": 5},
        "maxQueueWaitMs": 500, "maxConcurrentRequestsPerContainer": 4,
    })
    env = scoring_variables(no_env, config, app)  # type: ignore[arg-type]
    settings = ThroughputSettings.from_environ(env)
    assert (settings.batch_max_size, settings.batch_max_latency_ms) == (16, 5.0)
    assert (settings.max_queue_wait_ms, settings.max_concurrent_requests) == (500, 4)


def test_queue_limits_cover_the_other_wire_protocols(serve: ServeFactory) -> None:
    server = _start(serve, SLOW, None, {"MLDEPLOY_MAX_CONCURRENT_REQUESTS": "1"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(requests.post, f"{server.url}/score", data="x", timeout=30)
        time.sleep(0.15)
        refused = requests.post(f"{server.url}/invocations", json={"inputs": [[1, 2]]}, timeout=30)
        assert first.result().status_code == 200
    assert refused.status_code == 503
    assert "MLDEPLOY_MAX_CONCURRENT_REQUESTS = 1" in refused.text


def test_with_a_wait_limit_the_concurrency_limit_queues_as_v1(serve: ServeFactory) -> None:
    server = _start(serve, SLOW, None, {"MLDEPLOY_MAX_CONCURRENT_REQUESTS": "1", "MLDEPLOY_MAX_QUEUE_WAIT_MS": "3000"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(requests.post, f"{server.url}/score", data="x", timeout=30)
        time.sleep(0.15)
        second = requests.post(f"{server.url}/score", data="y", timeout=30)  # waits about 0.85 s, then runs
        assert first.result().status_code == 200
    assert second.status_code == 200 and second.json() == "done"
