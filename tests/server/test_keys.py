"""Key auth in the scoring server (MLDEPLOY_KEYS_FILE): 401/200 on every protocol, open probes, keys replaced
on a running server with no failed request for the other key (a file renamed over the old one, and a Kubernetes
Secret volume updated by kubelet's symbolic-link swap), and a missing keys file refusing everything."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from server_harness import ServeFactory, Server

from jupyter_mldeploy.server.keys import RECHECK_S, ServiceKeys

# The kubelet Secret-volume emulation lives with the Kubernetes tests, which use it too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kubernetes"))
from kubelet_volume import publish  # noqa: E402

SCORE = """
import json

def init():
    pass

def run(raw_data):
    return [sum(row) for row in json.loads(raw_data)["data"]]
"""

PRIMARY = "primary-key-0123456789abcdef"
SECONDARY = "secondary-key-0123456789abcdef"
V2_BODY = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}


def write_keys(path: Path, primary: str, secondary: str) -> None:
    # as the deploy layer does: a new file renamed over the old one
    tmp = path.with_name(".keys.tmp")
    tmp.write_text(json.dumps({"primaryKey": primary, "secondaryKey": secondary}))
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def keys_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    write_keys(path, PRIMARY, SECONDARY)
    return path


@pytest.fixture(scope="module")
def server(serve_module: ServeFactory, keys_path: Path) -> Server:
    return serve_module(SCORE, env={"MLDEPLOY_KEYS_FILE": str(keys_path)},
                        files={"azureml-models/m/1/model.txt": "x"})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


CALLS = [
    ("POST", "/score", {"json": {"data": [[1, 2]]}}, "message"),
    ("POST", "/v2/models/m/infer", {"json": V2_BODY}, "error"),
    ("GET", "/v2/models/m", {}, "error"),
    ("POST", "/invocations", {"json": {"inputs": [[1, 2]]}}, "message"),
]


@pytest.mark.parametrize("method, path, kwargs, message_field", CALLS)
def test_every_route_that_runs_the_model_needs_a_key(server: Server, method: str, path: str, kwargs: dict,
                                                      message_field: str) -> None:
    for headers in ({}, bearer("wrong-key-0123456789abcdef"), {"Authorization": PRIMARY}, bearer(PRIMARY[:-1])):
        answer = requests.request(method, server.url + path, headers=headers, timeout=10, **kwargs)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer <key>" in answer.json()[message_field]
    for key in (PRIMARY, SECONDARY):
        answer = requests.request(method, server.url + path, headers=bearer(key), timeout=10, **kwargs)
        assert answer.status_code == 200, answer.text
    assert requests.request(method, server.url + path, headers={"Authorization": f"bearer {PRIMARY}"}, timeout=10,
                            **kwargs).status_code == 200


def test_mlflow_refusal_is_in_mlflows_format(server: Server) -> None:
    answer = requests.post(f"{server.url}/invocations", json={"inputs": [[1]]}, timeout=10)
    assert answer.status_code == 401 and answer.json()["error_code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("path", ["/", "/ping", "/health", "/v2/health/live", "/v2/health/ready", "/swagger.json"])
def test_probes_stay_open(server: Server, path: str) -> None:
    assert requests.get(server.url + path, timeout=10).status_code == 200


def rotate_primary_under_load(url: str, publish_keys: Callable[[str, str], None], rounds: int = 20,
                              prefix: str = "regenerated") -> list[int]:
    """Replace the primary key ``rounds`` times with ``publish_keys(primary, secondary)`` while a caller keeps
    posting with the secondary key; after each replacement the new key must answer 200 and the replaced one
    401. Returns the caller's status codes."""
    outcomes: list[int] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            answer = requests.post(f"{url}/score", json={"data": [[1]]}, headers=bearer(SECONDARY), timeout=10)
            outcomes.append(answer.status_code)

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        primary = PRIMARY
        for round_ in range(rounds):
            new = f"{prefix}-primary-{round_:04d}-abcdef"
            publish_keys(new, SECONDARY)
            # the new key is in force from the next request, the old one no longer
            assert requests.post(f"{url}/score", json={"data": [[1]]}, headers=bearer(new),
                                 timeout=10).status_code == 200
            assert requests.post(f"{url}/score", json={"data": [[1]]}, headers=bearer(primary),
                                 timeout=10).status_code == 401
            primary = new
    finally:
        stop.set()
        thread.join(30)
    return outcomes


def test_regenerating_a_key_fails_no_request_of_the_other(server: Server, keys_path: Path) -> None:
    try:
        outcomes = rotate_primary_under_load(server.url, lambda p, s: write_keys(keys_path, p, s))
    finally:
        write_keys(keys_path, PRIMARY, SECONDARY)
    assert len(outcomes) > 20 and set(outcomes) == {200}


def test_missing_keys_file_refuses_everything_and_no_key_is_logged(serve: ServeFactory, tmp_path: Path) -> None:
    missing = tmp_path / "absent" / "keys.json"
    server = serve(SCORE, env={"MLDEPLOY_KEYS_FILE": str(missing)})
    answer = requests.post(f"{server.url}/score", json={"data": [[1]]}, headers=bearer(PRIMARY), timeout=10)
    assert answer.status_code == 401
    missing.parent.mkdir()
    write_keys(missing, PRIMARY, SECONDARY)
    answer = requests.post(f"{server.url}/score", json={"data": [[1]]}, headers=bearer(PRIMARY), timeout=10)
    assert answer.status_code == 200
    log = server.log()
    assert "Key auth is on but cannot read the keys file" in log
    assert PRIMARY not in log and SECONDARY not in log


def _secret(primary: str, secondary: str) -> dict[str, bytes]:
    return {"keys.json": json.dumps({"primaryKey": primary, "secondaryKey": secondary}).encode()}


def test_a_secret_volume_swapped_by_kubelet_is_followed_with_no_failed_check(tmp_path: Path) -> None:
    """In process, as fast as it goes: one thread swaps ``..data`` 300 times while another checks the other key.

    Each swap deletes the old folder right after the rename, so a check can follow the path into a folder that
    is being removed; it must retry, never refuse."""
    volume = tmp_path / "keys"
    publish(volume, _secret(PRIMARY, SECONDARY))
    keys = ServiceKeys(str(volume / "keys.json"), recheck_s=0)  # every check follows the path: the race
    assert keys.allows(b"Bearer " + PRIMARY.encode())
    failures: list[int] = []
    checks = 0
    done = threading.Event()

    def swapper() -> None:
        try:
            for round_ in range(300):
                publish(volume, _secret(f"rotated-primary-{round_:05d}-abcdef", SECONDARY))
        finally:
            done.set()

    thread = threading.Thread(target=swapper)
    thread.start()
    while not done.is_set():
        checks += 1
        if not keys.allows(b"Bearer " + SECONDARY.encode()):
            failures.append(checks)
    thread.join()
    assert failures == [] and checks > 300
    assert keys.allows(b"Bearer rotated-primary-00299-abcdef")
    assert not keys.allows(b"Bearer " + PRIMARY.encode())
    assert sorted(p.name for p in volume.iterdir() if not p.name.startswith("..2")) == ["..data", "keys.json"]


def test_a_read_that_races_the_old_folders_removal_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact race, made certain: the path is followed into the old folder just as kubelet deletes it."""
    from jupyter_mldeploy.server import keys as keys_module

    volume = tmp_path / "keys"
    publish(volume, _secret(PRIMARY, SECONDARY))
    keys = ServiceKeys(str(volume / "keys.json"), recheck_s=0)
    assert keys.allows(b"Bearer " + PRIMARY.encode())
    publish(volume, _secret("swapped-primary-0123456789", SECONDARY))
    opened: list[str] = []

    def racing_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(path)
        if len(opened) == 1:  # what open() meets when ..data led into the folder kubelet just removed
            raise FileNotFoundError(2, "No such file or directory", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(keys_module, "open", racing_open, raising=False)
    assert keys.allows(b"Bearer " + SECONDARY.encode())
    assert keys.allows(b"Bearer swapped-primary-0123456789") and len(opened) == 2


def test_a_server_follows_kubelets_swap_with_no_failed_request(serve: ServeFactory, tmp_path: Path) -> None:
    volume = tmp_path / "secret-volume"
    publish(volume, _secret(PRIMARY, SECONDARY))
    server = serve(SCORE, env={"MLDEPLOY_KEYS_FILE": str(volume / "keys.json")})
    outcomes = rotate_primary_under_load(server.url, lambda p, s: publish(volume, _secret(p, s)), prefix="swapped")
    assert len(outcomes) > 20 and set(outcomes) == {200}
    assert "Key auth is on but" not in server.log()


def test_known_keys_look_at_the_file_at_most_every_recheck_interval(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No stat per request (it hands the GIL to the worker's other threads): known keys look at the file once
    per RECHECK_S; a replaced key is refused after that, a new key works at once."""
    path = tmp_path / "keys.json"
    write_keys(path, PRIMARY, SECONDARY)
    keys = ServiceKeys(str(path))
    assert keys.allows(b"Bearer " + PRIMARY.encode())
    looks: list[str] = []
    real_stat = os.stat

    def counting_stat(target: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(target) == str(path):
            looks.append(str(target))
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(2000):
        assert keys.allows(b"Bearer " + SECONDARY.encode())
    assert len(looks) <= 2, f"{len(looks)} stats for 2000 checks"
    write_keys(path, "replacing-primary-0123456789", SECONDARY)
    assert keys.allows(b"Bearer replacing-primary-0123456789")  # unknown, so looked at once
    assert not keys.allows(b"Bearer " + PRIMARY.encode())
    write_keys(path, "replacing-again-0123456789ab", SECONDARY)
    time.sleep(RECHECK_S * 1.5)
    assert not keys.allows(b"Bearer replacing-primary-0123456789")  # replaced: refused after the interval
    assert keys.allows(b"Bearer replacing-again-0123456789ab")


def test_a_replaced_key_is_refused_by_a_server_after_the_recheck_interval(server: Server, keys_path: Path) -> None:
    """Without a request carrying the new key first (which makes the server look at once)."""
    try:
        write_keys(keys_path, "replaced-by-the-test-0123456789", SECONDARY)
        time.sleep(RECHECK_S * 1.5)
        answer = requests.post(f"{server.url}/score", json={"data": [[1]]}, headers=bearer(PRIMARY), timeout=10)
        assert answer.status_code == 401
        answer = requests.post(f"{server.url}/score", json={"data": [[1]]}, headers=bearer(SECONDARY), timeout=10)
        assert answer.status_code == 200
    finally:
        write_keys(keys_path, PRIMARY, SECONDARY)
