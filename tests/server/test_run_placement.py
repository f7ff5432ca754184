"""Where ``run()`` executes: the run thread, or inline on the event-loop thread once runs are short.

The script reports ``threading.current_thread().name``: ``mldeploy-run`` for the run thread,
``MainThread`` for an inline call (the worker's event loop runs on its main thread).
"""

from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from server_harness import ServeFactory, Server

from jupyter_mldeploy.server.runner import INLINE_AFTER_SHORT_RUNS

SCORE = """
import asyncio, json, signal, threading, time

ACTIVE = 0
PEAK = 0

async def _double(x):
    await asyncio.sleep(0)
    return 2 * x

def init():
    pass

def run(raw_data):
    global ACTIVE, PEAK
    data = json.loads(raw_data)
    what = data.get("what")
    thread = threading.current_thread().name
    if what == "print":
        print(f"printed from {thread}")
    if what == "sleep":
        time.sleep(data["seconds"])
        return {"thread": thread, "slept": True}
    if what == "swallow":
        try:
            time.sleep(data["seconds"])
        except Exception:
            return {"thread": thread, "swallowed": True}
    if what == "asyncio":
        return {"thread": thread, "value": asyncio.run(_double(data["x"]))}
    if what == "count":
        ACTIVE += 1
        PEAK = max(PEAK, ACTIVE)
        sum(range(2000))
        ACTIVE -= 1
        return {"thread": thread, "peak": PEAK}
    if what == "alarm":
        return {"thread": thread, "handler": getattr(signal.getsignal(signal.SIGALRM), "__name__", None)}
    return {"thread": thread}
"""

OWN_ALARM = """
import signal, threading

def mine(signum, frame):
    pass

def init():
    signal.signal(signal.SIGALRM, mine)

def run(raw_data):
    return {"thread": threading.current_thread().name,
            "handler": getattr(signal.getsignal(signal.SIGALRM), "__name__", None)}
"""


def score(session: requests.Session, server: Server, **body: object) -> requests.Response:
    return session.post(server.url + "/score", json=body, timeout=30)


def threads_of(session: requests.Session, server: Server, count: int) -> list[str]:
    names = []
    for _ in range(count):
        response = score(session, server)
        assert response.status_code == 200, response.text
        names.append(response.json()["thread"])
    return names


@pytest.fixture
def server(serve: ServeFactory) -> Server:
    return serve(SCORE, env={"SCORING_TIMEOUT_MS": "700"})


def test_short_runs_go_inline_and_a_slow_run_sends_the_next_back(server: Server, http: requests.Session) -> None:
    names = threads_of(http, server, INLINE_AFTER_SHORT_RUNS + 3)
    assert names[:INLINE_AFTER_SHORT_RUNS] == ["mldeploy-run"] * INLINE_AFTER_SHORT_RUNS
    assert names[INLINE_AFTER_SHORT_RUNS:] == ["MainThread"] * 3
    # Lines printed by an inline run carry the request id, as in the run thread.
    printed = http.post(server.url + "/score", json={"what": "print"}, headers={"x-request-id": "inline-print-1"})
    assert printed.json() == {"thread": "MainThread"}
    deadline = time.monotonic() + 5
    while "inline-print-1 | printed from MainThread" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "inline-print-1 | printed from MainThread" in server.log()
    assert re.search(r"inline-print-1 \| POST /score 200 \d+\.\d{3}ms", server.log())
    slow = score(http, server, what="sleep", seconds=0.05)
    assert slow.status_code == 200
    assert slow.json() == {"thread": "MainThread", "slept": True}
    # 50 ms is not short (default bound 2 ms): the next calls go back to the run thread until the streak
    # of short runs is rebuilt.
    after = threads_of(http, server, INLINE_AFTER_SHORT_RUNS + 1)
    assert after[:INLINE_AFTER_SHORT_RUNS] == ["mldeploy-run"] * INLINE_AFTER_SHORT_RUNS
    assert after[-1] == "MainThread"


def test_inline_run_past_the_timeout_is_interrupted(server: Server, http: requests.Session) -> None:
    assert threads_of(http, server, INLINE_AFTER_SHORT_RUNS + 1)[-1] == "MainThread"
    started = time.monotonic()
    response = score(http, server, what="sleep", seconds=5)
    took = time.monotonic() - started
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 700 ms"}
    assert response.headers["x-ms-run-function-failed"] == "True"
    # SIGALRM interrupts time.sleep, as under azmlinfsrv: the answer comes at the timeout, not after 5 s.
    assert 0.65 < took < 2.0
    assert requests.get(server.url + "/", timeout=5).text == "Healthy"
    assert threads_of(http, server, 1) == ["mldeploy-run"]
    assert "run() did not finish within 700 ms" in server.log()


def test_inline_timeout_swallowed_by_run_still_answers_500(server: Server, http: requests.Session) -> None:
    assert threads_of(http, server, INLINE_AFTER_SHORT_RUNS + 1)[-1] == "MainThread"
    started = time.monotonic()
    response = score(http, server, what="swallow", seconds=5)
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 700 ms"}
    assert time.monotonic() - started < 2.0
    assert score(http, server).status_code == 200


def test_health_check_answers_while_a_slow_run_is_in_the_run_thread(server: Server) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(requests.post, server.url + "/score", json={"what": "sleep", "seconds": 0.6})
        time.sleep(0.15)
        started = time.monotonic()
        health = requests.get(server.url + "/", timeout=5)
        assert health.status_code == 200
        assert time.monotonic() - started < 0.3
        assert slow.result().json() == {"thread": "mldeploy-run", "slept": True}


def test_asyncio_run_inside_run_works_in_both_places(server: Server, http: requests.Session) -> None:
    seen = set()
    for x in range(INLINE_AFTER_SHORT_RUNS + 3):
        response = score(http, server, what="asyncio", x=x)
        assert response.status_code == 200, response.text
        assert response.json()["value"] == 2 * x
        seen.add(response.json()["thread"])
    assert seen == {"mldeploy-run", "MainThread"}
    # The worker's own loop is intact afterwards.
    assert requests.get(server.url + "/", timeout=5).text == "Healthy"


def test_concurrent_short_runs_stay_one_at_a_time(server: Server) -> None:
    def client(_: int) -> list[int]:
        with requests.Session() as session:
            return [score(session, server, what="count").json()["peak"] for _ in range(40)]

    with ThreadPoolExecutor(6) as pool:
        peaks = [peak for result in pool.map(client, range(6)) for peak in result]
    assert len(peaks) == 240
    assert max(peaks) == 1
    # The workload did go inline at some point (otherwise this test would not cover that path).
    with requests.Session() as session:
        assert threads_of(session, server, 1) == ["MainThread"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_inline_runs_can_be_turned_off(serve: ServeFactory, how: str) -> None:
    if how == "flag":
        server = serve(SCORE, "--inline-run-ms", "0")
    else:
        server = serve(SCORE, env={"MLDEPLOY_INLINE_RUN_MS": "0"})
    with requests.Session() as session:
        assert set(threads_of(session, server, INLINE_AFTER_SHORT_RUNS * 3)) == {"mldeploy-run"}


def test_a_script_that_owns_sigalrm_is_never_run_inline(serve: ServeFactory) -> None:
    server = serve(OWN_ALARM)
    with requests.Session() as session:
        for _ in range(INLINE_AFTER_SHORT_RUNS * 3):
            assert session.post(server.url + "/score", data="x").json() == {"thread": "mldeploy-run",
                                                                            "handler": "mine"}


def test_requests_arriving_together_go_to_the_run_thread(serve: ServeFactory) -> None:
    # A 500 ms bound makes a 0.3 s run "short", so it runs inline and blocks the event loop while three
    # more requests arrive; those are then read together, and with company the run thread serves them.
    server = serve(SCORE, "--inline-run-ms", "500")
    with requests.Session() as session:
        assert threads_of(session, server, INLINE_AFTER_SHORT_RUNS + 1)[-1] == "MainThread"
    sessions = [requests.Session() for _ in range(3)]
    for session in sessions:  # connect first: the three requests then arrive on open keep-alive connections
        assert session.get(server.url + "/", timeout=5).status_code == 200
    with ThreadPoolExecutor(4) as pool:
        blocker = pool.submit(requests.post, server.url + "/score", json={"what": "sleep", "seconds": 0.3})
        time.sleep(0.1)
        together = [pool.submit(session.post, server.url + "/score", json={}) for session in sessions]
        assert blocker.result().json() == {"thread": "MainThread", "slept": True}
        assert [f.result().json()["thread"] for f in together] == ["mldeploy-run"] * 3
    for session in sessions:
        session.close()


def test_sigterm_during_an_inline_run_lets_it_finish(serve: ServeFactory) -> None:
    server = serve(SCORE, "--inline-run-ms", "5000")
    with requests.Session() as session:
        assert threads_of(session, server, INLINE_AFTER_SHORT_RUNS + 1)[-1] == "MainThread"
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(requests.post, server.url + "/score", json={"what": "sleep", "seconds": 1.0})
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        # The signal interrupts time.sleep inside run(); it must resume, not fail the request.
        response = slow.result()
        assert response.status_code == 200
        assert response.json() == {"thread": "MainThread", "slept": True}
    assert server.wait_exit(20) == 0
