"""Process behaviour: readiness, init failure, workers, graceful stop, SIGHUP reload, port conflicts, CORS."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import psutil
import requests
from server_harness import ServeFactory

SLOW_INIT = """
import os, time
def init():
    time.sleep(float(os.environ.get("INIT_SLEEP", "2")))
def run(raw_data):
    return {"pid": os.getpid(), "version": os.environ.get("APP_VERSION", "1")}
"""

FAILING_INIT = """
def init():
    raise RuntimeError("model file is corrupt")
def run(raw_data):
    return raw_data
"""

SLOW_RUN = """
import os, time
def init():
    print(f"init in {os.getpid()}")
def run(raw_data):
    time.sleep(float(raw_data or 0))
    return {"pid": os.getpid(), "version": os.environ.get("APP_VERSION", "1")}
"""


def _connect_refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def test_port_closed_until_init_returns(serve: ServeFactory) -> None:
    server = serve(SLOW_INIT, env={"INIT_SLEEP": "2"}, wait=False)
    status = server.wait_for(lambda s: s.get("port") not in (None, 0))
    assert status["state"] == "Transitioning"
    assert _connect_refused(status["port"])
    status = server.wait_healthy()
    assert requests.get(server.url + "/").text == "Healthy"
    assert status["workers"] and status["pid"] == server.proc.pid
    assert status["generation"] == 1 and status["error"] is None


def test_init_failure_exits_3_with_traceback_and_listing(serve: ServeFactory, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    (model_dir / "sub").mkdir(parents=True)
    (model_dir / "model.pkl").write_text("x")
    (model_dir / "sub" / "weights.bin").write_text("y")
    server = serve(FAILING_INIT, "--model_dir", str(model_dir), wait=False)
    assert server.wait_exit() == 3
    status = server.status()
    assert status["state"] == "Failed"
    assert "RuntimeError: model file is corrupt" in status["error"]
    assert "model.pkl" in status["error"] and "weights.bin" in status["error"]
    log = server.log()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: model file is corrupt" in log
    assert "Model Directory Contents:" in log and "    model.pkl" in log and "        weights.bin" in log


def test_bad_run_signature_fails_at_startup(serve: ServeFactory) -> None:
    server = serve("def init():\n    pass\ndef run(*args):\n    pass\n", wait=False)
    assert server.wait_exit() == 3
    assert "run() cannot accept positional-only arguments, *args, or **kwargs." in server.status()["error"]
    server = serve("def init():\n    pass\ndef run(request_headers):\n    pass\n", wait=False)
    assert server.wait_exit() == 3
    assert 'run() needs to accept an argument other than "request_headers".' in server.status()["error"]
    server = serve("def init():\n    pass\n", wait=False)
    assert server.wait_exit() == 3
    assert "does not have a run() function defined" in server.status()["error"]


def test_port_taken_exits_4(serve: ServeFactory) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        # The harness passes --port 0 first; a later --port wins in argparse.
        taken = serve(SLOW_RUN, "--port", str(port), wait=False)
        assert taken.wait_exit() == 4
        assert f"Port {port}" in taken.log()
        assert taken.status()["state"] == "Failed"


def test_two_workers_each_run_init(serve: ServeFactory) -> None:
    server = serve(SLOW_RUN, "--worker_count", "2")
    workers = server.status()["workers"]
    assert len(workers) == 2
    log = server.log()
    for pid in workers:
        assert f"init in {pid}" in log
    seen = set()
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        # Fresh connections spread over both workers' accept() calls.
        seen.add(requests.post(server.url + "/score", data="0", headers={"Connection": "close"}).json()["pid"])
    assert seen == set(workers)


def test_sigterm_finishes_in_flight_request(serve: ServeFactory) -> None:
    server = serve(SLOW_RUN)
    result: dict[str, requests.Response] = {}

    def slow() -> None:
        result["response"] = requests.post(server.url + "/score", data="1.5")

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    thread.join(10)
    assert result["response"].status_code == 200
    assert result["response"].json()["version"] == "1"
    for pid in server.status()["workers"]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _hammer(url: str, stop: threading.Event, outcomes: list[object]) -> None:
    while not stop.is_set():
        try:
            response = requests.post(url, data="0.01", headers={"Connection": "close"}, timeout=30)
            outcomes.append(response.status_code if response.status_code != 200 else response.json()["version"])
        except requests.RequestException as exc:
            outcomes.append(exc)


def test_sighup_reload_under_load_fails_no_request(serve: ServeFactory, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"env": {"APP_VERSION": "1"}}))
    server = serve(SLOW_RUN, "--spec-file", str(spec))
    old_workers = server.status()["workers"]
    stop = threading.Event()
    outcomes: list[object] = []
    threads = [threading.Thread(target=_hammer, args=(server.url + "/score", stop, outcomes)) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        spec.write_text(json.dumps({"env": {"APP_VERSION": "2", "INIT_SLEEP": "0"}, "worker_count": 2}))
        os.kill(server.proc.pid, signal.SIGHUP)
        status = server.wait_for(lambda s: (s.get("last_reload") or {}).get("ok") is True, timeout=30)
        time.sleep(0.7)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert status["generation"] == 2 and len(status["workers"]) == 2
    assert not set(status["workers"]) & set(old_workers)
    failures = [o for o in outcomes if o not in ("1", "2")]
    assert not failures, failures[:5]
    assert "1" in outcomes and "2" in outcomes
    assert outcomes.index("2") > outcomes.index("1")
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in old_workers):
        assert time.monotonic() < deadline, "old generation did not exit"
        time.sleep(0.1)


def test_failed_reload_keeps_old_generation(serve: ServeFactory, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"env": {}}))
    server = serve(SLOW_RUN, "--spec-file", str(spec))
    before = server.status()
    broken = server.app_dir / "broken.py"
    broken.write_text("def init():\n    raise OSError('no model here')\ndef run(data):\n    return data\n")
    spec.write_text(json.dumps({"env": {"AZUREML_ENTRY_SCRIPT": str(broken)}}))
    os.kill(server.proc.pid, signal.SIGHUP)
    status = server.wait_for(lambda s: s.get("last_reload") is not None)
    assert status["last_reload"]["ok"] is False
    assert "OSError: no model here" in status["last_reload"]["error"]
    assert status["generation"] == before["generation"]
    assert status["workers"] == before["workers"]
    assert status["state"] == "Healthy"
    assert requests.post(server.url + "/score", data="0").status_code == 200


def test_dead_worker_is_respawned(serve: ServeFactory) -> None:
    server = serve(SLOW_RUN)
    [pid] = server.status()["workers"]
    os.kill(pid, signal.SIGKILL)
    status = server.wait_for(lambda s: s["workers"] and s["workers"][0] != pid)
    deadline = time.monotonic() + 20
    while True:
        try:
            response = requests.post(server.url + "/score", data="0", timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert response.json()["pid"] == status["workers"][0]
    assert "respawning" in server.log()


def test_cors_off_and_on(serve: ServeFactory) -> None:
    preflight = {"Origin": "http://a.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    plain = serve(SLOW_RUN)
    response = requests.post(plain.url + "/score", data="0", headers={"Origin": "http://a.com"})
    assert "access-control-allow-origin" not in response.headers
    cors = serve(SLOW_RUN, "--access_control_allow_origins", "http://a.com, http://b.com")
    response = requests.options(cors.url + "/score", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://a.com"
    assert "POST" in response.headers["access-control-allow-methods"]
    response = requests.post(cors.url + "/score", data="0", headers={"Origin": "http://b.com"})
    assert response.headers["access-control-allow-origin"] == "http://b.com"
    response = requests.post(cors.url + "/score", data="0", headers={"Origin": "http://evil.com"})
    assert "access-control-allow-origin" not in response.headers
    star = serve(SLOW_RUN, env={"AML_CORS_ORIGINS": "*"})
    response = requests.post(star.url + "/score", data="0", headers={"Origin": "http://x.org"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_config_file_env_and_cli_priority(serve: ServeFactory, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"SCORING_TIMEOUT_MS": 300, "AML_CORS_ORIGINS": "http://file.com"}))
    server = serve(SLOW_RUN, "--config_file", str(config), "--access_control_allow_origins", "http://cli.com",
                   env={"SCORING_TIMEOUT_MS": "600"})
    response = requests.post(server.url + "/score", data="1", headers={"Origin": "http://cli.com"})
    assert response.json() == {"message": "Scoring timeout after 600 ms"}
    assert response.headers["access-control-allow-origin"] == "http://cli.com"
    only_file = serve(SLOW_RUN, "--config_file", str(config))
    response = requests.post(only_file.url + "/score", data="1", headers={"Origin": "http://file.com"})
    assert response.json() == {"message": "Scoring timeout after 300 ms"}
    assert response.headers["access-control-allow-origin"] == "http://file.com"


def test_missing_entry_script_is_a_clear_error(serve: ServeFactory) -> None:
    server = serve(None, wait=False)
    assert server.wait_exit() == 1
    assert "No entry script" in server.log()


def test_mldeploy_serve_is_the_same_server(serve: ServeFactory) -> None:
    server = serve(SLOW_RUN, "--worker-count", "1", command=[shutil.which("mldeploy") or "mldeploy", "serve"])
    assert requests.post(server.url + "/score", data="0").json()["version"] == "1"
    assert server.stop() == 0
