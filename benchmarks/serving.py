"""Serving benchmark: jupyter_mldeploy's scoring server against azureml-inference-server-http 1.5.1.

What it does (about 10 minutes with the defaults):

1. Creates two virtual environments under ``--venv-dir`` (default ``benchmarks/.venvs``, git-ignored by a
   ``.gitignore`` it writes there): ``azmlinfsrv`` with ``azureml-inference-server-http==1.5.1`` and
   ours with :data:`jupyter_mldeploy.server.RUNTIME_REQUIREMENTS` plus the server copied in by
   :func:`jupyter_mldeploy.server.install_runtime`; both get ``inference-schema==1.8``, the scikit-learn
   version of this interpreter, and joblib. Existing environments are reused.
2. Trains ``Ridge`` on ``load_diabetes`` (10 features) and ``RandomForestClassifier(100)`` on
   ``load_digits`` (64 features) inside the environment, so pickles match the serving scikit-learn.
3. Serves the same classic ``score.py`` (``json.loads`` -> ``np.array(data["data"])`` -> ``predict`` ->
   ``tolist()``) and a ``NumpyParameterType``-decorated one with each server (one worker each, on
   127.0.0.1), and drives them with ``wrk`` (a Lua script sets the POST body): req/s and p50/p99 latency.
4. Cold start: launch of the server command -> first 200 from ``POST /score``.

Both servers run side by side and their wrk runs are interleaved (A, B, B, A, ...), ``--repeats`` runs
of ``--duration`` seconds each after a 1 s warm-up, so load drifting on a shared machine hits both alike.
Cold start is measured over ``--repeats`` alternating launches. The table holds medians and the ratio
ours/azmlinfsrv (for cold start: azmlinfsrv/ours, so above 1 means ours is faster everywhere).

Run: ``python benchmarks/serving.py [--duration 10] [--repeats 3]`` (needs ``wrk`` on PATH:
``apt-get install -y wrk``).

``--protocols`` compares, on our server only, ``/score`` with the Open Inference Protocol V2
(``/v2/models/model/infer``, with nested rows and with flat data as tritonclient sends it) and MLflow
(``/invocations``) for the same rows and model (Ridge, 1 row at 16
connections and 1000 rows at 4), and ``/score`` on a server with key auth (``MLDEPLOY_KEYS_FILE``, a Bearer
key on every request) to price the key check (docs/protocols.md).

Both say which V2 and MLflow bodies are forwarded to ``run()`` as the client wrote them (1000 rows: a 100 kB
array of floats) and which are translated (1 row: below ``passthrough.MIN_BYTES``); docs/protocols.md.

``--in-process`` (with ``--protocols``) prices the same routes without sockets or wrk: the ASGI app of one
worker in this interpreter, the classic Ridge ``score.py``, requests one at a time (``run()`` inline, as for
a lone client), routes alternating over 20 rounds; the figure is the thread CPU time per request
(``time.thread_time``, minimum and median over the rounds), which other processes on a shared machine
disturb far less than req/s. Needs this interpreter to have the server's requirements and scikit-learn.

``--batching`` runs the adaptive-batching comparison instead (issue #15, docs/throughput.md): azmlinfsrv,
ours with batching off and ours with ``MLDEPLOY_BATCH_MAX_SIZE=32``, ``MLDEPLOY_BATCH_MAX_LATENCY_MS=10``
(what ``batching={"max_batch_size": 32, "max_latency_ms": 10}`` sets), on RandomForest(100) / digits with
1 row per request at 16 connections (per-call bound: batching should multiply throughput) and Ridge /
diabetes with 1 row at 1 connection (a lone client: batching must not add latency).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jupyter_mldeploy.server import RUNTIME_REQUIREMENTS, install_runtime  # noqa: E402

CLASSIC_SCORE = """
import json, os
import joblib
import numpy as np

def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), os.getenv("MODEL_FILE")))

def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
"""

SCHEMA_SCORE = """
import os
import joblib
import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), os.getenv("MODEL_FILE")))

@input_schema("data", NumpyParameterType(np.zeros((1, int(os.getenv("N_FEATURES"))), dtype=np.float64)))
@output_schema(StandardPythonParameterType([1.0]))
def run(data):
    return model.predict(data).tolist()
"""

TRAIN = """
import sys, joblib
from sklearn.datasets import load_diabetes, load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
out = sys.argv[1]
X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge().fit(X, y), f"{out}/ridge.pkl")
X, y = load_digits(return_X_y=True)
joblib.dump(RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y), f"{out}/forest.pkl")
"""

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.1f %.1f %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class Scenario:
    """One wrk run: which script and model, how many rows per request, how many connections."""

    name: str
    script: str
    model: str
    features: int
    rows: int
    connections: int


SCENARIOS = [
    Scenario("ridge 1 row, c=1", "classic", "ridge.pkl", 10, 1, 1),
    Scenario("ridge 1 row, c=16", "classic", "ridge.pkl", 10, 1, 16),
    Scenario("ridge 1000 rows, c=4", "classic", "ridge.pkl", 10, 1000, 4),
    Scenario("forest 1 row, c=16", "classic", "forest.pkl", 64, 1, 16),
    Scenario("forest 1000 rows, c=4", "classic", "forest.pkl", 64, 1000, 4),
    Scenario("schema numpy ridge 1000 rows, c=4", "schema", "ridge.pkl", 10, 1000, 4),
]


def _python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _make_env(env_dir: Path, requirements: list[str]) -> Path:
    python = _python(env_dir)
    marker = env_dir / ".complete"
    if marker.exists() and marker.read_text() == "\n".join(requirements):
        return python
    if env_dir.exists():
        shutil.rmtree(env_dir)
    print(f"creating {env_dir} ...", flush=True)
    venv.EnvBuilder(with_pip=True).create(env_dir)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        capture_output=True, text=True,
    )
    if install.returncode != 0:
        raise RuntimeError(f"pip install failed in {env_dir}:\n{install.stdout}\n{install.stderr}")
    marker.write_text("\n".join(requirements))
    return python


def prepare_envs(venv_dir: Path) -> tuple[Path, Path]:
    """Create (or reuse) the azmlinfsrv environment and ours; return their interpreters."""
    import joblib
    import sklearn

    venv_dir.mkdir(parents=True, exist_ok=True)
    (venv_dir / ".gitignore").write_text("*\n")
    common = ["inference-schema[numpy-support]==1.8", f"scikit-learn=={sklearn.__version__}",
              f"joblib=={joblib.__version__}"]
    theirs = _make_env(venv_dir / "azmlinfsrv", ["azureml-inference-server-http==1.5.1", *common])
    ours = _make_env(venv_dir / "mldeploy", [*RUNTIME_REQUIREMENTS, *common])
    install_runtime(_site_packages(ours))
    return theirs, ours


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def body_file(folder: Path, rows: int, features: int) -> Path:
    import numpy as np

    path = folder / f"body_{rows}x{features}.json"
    if not path.exists():
        data = np.random.default_rng(0).random((rows, features)).round(6).tolist()
        path.write_text(json.dumps({"data": data}))
    return path


class RunningServer:
    """One server process, started fresh, with its cold-start time measured."""

    def __init__(self, kind: str, python: Path, script: Path, model_dir: Path, scenario: Scenario,
                 log_path: Path, probe: Path, extra_env: dict[str, str] | None = None, auth: str = "") -> None:
        self.port = free_port()
        env = dict(os.environ, MODEL_FILE=scenario.model, N_FEATURES=str(scenario.features),
                   AML_APP_ROOT=str(script.parent), PYTHONUNBUFFERED="1", **(extra_env or {}))
        env.pop("PYTHONPATH", None)
        if kind == "azmlinfsrv":
            cmd = [str(python.parent / "azmlinfsrv")]
        else:
            cmd = [str(python), "-m", "jupyter_mldeploy.server"]
        cmd += ["--entry_script", str(script), "--model_dir", str(model_dir), "--port", str(self.port)]
        self.log = open(log_path, "ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=str(script.parent), env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        payload = probe.read_bytes()
        url = f"http://127.0.0.1:{self.port}/score"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {self.proc.returncode}; see {log_path}")
            try:
                response = requests.post(url, data=payload, timeout=5,
                                         headers={"Content-Type": "application/json", "Authorization": auth})
                if response.status_code == 200:
                    break
                raise RuntimeError(f"{kind} answered {response.status_code}: {response.text[:200]}")
            except requests.ConnectionError:
                time.sleep(0.005)
        self.cold_start_s = time.perf_counter() - started
        self.url = url

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the server's processes (supervisor and workers)."""
        import psutil

        root = psutil.Process(self.proc.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        # Stop the whole process group (gunicorn arbiter + worker, or our supervisor + worker).
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        self.log.close()


def run_wrk(url: str, body: Path, connections: int, duration: float, lua: Path, auth: str = "") -> dict[str, float]:
    """Run wrk once; return req/s, p50/p99 latency (ms) and the error count (HTTP 4xx/5xx answers included)."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s", "-s", str(lua), url],
        check=True, capture_output=True, text=True, env=dict(os.environ, BENCH_BODY=str(body), BENCH_AUTH=auth),
    ).stdout
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)", out)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests_done, duration_us, p50, p99, errors = match.groups()
    return {"rps": int(requests_done) / (int(duration_us) / 1e6), "p50_ms": float(p50) / 1000,
            "p99_ms": float(p99) / 1000, "errors": int(errors), "requests": int(requests_done)}


#: What ``batching={"max_batch_size": 32, "max_latency_ms": 10}`` gives the server (deploy.plan.scoring_variables).
BATCHING_ENV = {"MLDEPLOY_BATCH_MAX_SIZE": "32", "MLDEPLOY_BATCH_MAX_LATENCY_MS": "10"}
BATCHING_SCENARIOS = [
    Scenario("forest 1 row, c=16", "classic", "forest.pkl", 64, 1, 16),
    Scenario("ridge 1 row, c=1", "classic", "ridge.pkl", 10, 1, 1),
]


def run_batching(args: argparse.Namespace, pythons: dict[str, Path], work: Path, models: Path,
                 scripts: dict[str, Path], lua: Path) -> None:
    """Compare azmlinfsrv, ours with batching off and ours with batching on; print the table of medians."""
    kinds = {"azmlinfsrv": (pythons["azmlinfsrv"], None), "ours, batching off": (pythons["mldeploy"], None),
             "ours, batching on": (pythons["mldeploy"], BATCHING_ENV)}
    results: dict[str, dict[str, list[dict[str, float]]]] = {s.name: {k: [] for k in kinds} for s in BATCHING_SCENARIOS}
    for scenario in BATCHING_SCENARIOS:
        body = body_file(work, scenario.rows, scenario.features)
        servers: dict[str, RunningServer] = {}
        try:
            # Started one by one inside the try, so a server that fails to start does not leak the others.
            for index, (kind, (python, env)) in enumerate(kinds.items()):
                servers[kind] = RunningServer("azmlinfsrv" if kind == "azmlinfsrv" else "mldeploy", python,
                                              scripts[scenario.script], models, scenario,
                                              work / f"batching-{index}.log", body, env)
            for server in servers.values():
                run_wrk(server.url, body, scenario.connections, 1, lua)
            for round_index in range(args.repeats):
                order = list(kinds) if round_index % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    result = run_wrk(servers[kind].url, body, scenario.connections, args.duration, lua)
                    results[scenario.name][kind].append(result)
                    print(f"round {round_index + 1} {kind:20s} {scenario.name:20s} {result['rps']:9.1f} req/s "
                          f"p50 {result['p50_ms']:7.2f} ms p99 {result['p99_ms']:7.2f} ms errors {result['errors']}",
                          flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"Method: wrk on 127.0.0.1, {args.repeats} runs x {args.duration:g} s per scenario and server (after a "
          "1 s warm-up), the three servers' runs interleaved, 1 worker each; medians shown. Batching on: "
          f"{BATCHING_ENV}.")
    print()
    print_median_table(results, BATCHING_SCENARIOS, "server", "azmlinfsrv")
    if args.json:
        args.json.write_text(json.dumps({"batching": results}, indent=2))


def print_median_table(results: dict[str, dict[str, list[dict[str, float]]]], scenarios: list[Scenario],
                       column: str, baseline: str) -> None:
    """Print a Markdown table of each scenario's median req/s, latencies and errors per server or route.

    Args:
        results: ``{scenario name: {server or route: [one dict per wrk run: rps, p50_ms, p99_ms, errors]}}``.
        scenarios: The scenarios, in table order.
        column: The second column's title (``"server"`` or ``"route"``).
        baseline: The server or route the ``x`` column divides by.
    """
    print(f"| scenario | {column} | req/s | x {baseline} | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for scenario in scenarios:
        rows = {kind: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms", "errors")}
                for kind, runs in results[scenario.name].items()}
        for kind, row in rows.items():
            print(f"| {scenario.name} | {kind} | {row['rps']:.0f} | {row['rps'] / rows[baseline]['rps']:.2f}x | "
                  f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']:.0f} |")


PROTOCOL_SCENARIOS = [
    Scenario("ridge 1 row, c=16", "classic", "ridge.pkl", 10, 1, 16),
    Scenario("ridge 1000 rows, c=4", "classic", "ridge.pkl", 10, 1000, 4),
]
BENCH_KEY = "benchmark-key-0123456789abcdefghij"


def protocol_bodies(folder: Path, rows: int, features: int) -> dict[str, Path]:
    """The same rows as a /score body, an Open Inference Protocol V2 request (nested rows, and flat data as
    tritonclient sends it) and an MLflow ``inputs`` body."""
    data = json.loads(body_file(folder, rows, features).read_text())["data"]
    v2 = folder / f"v2_{rows}x{features}.json"
    v2.write_text(json.dumps({"inputs": [{"name": "data", "shape": [rows, features], "datatype": "FP64",
                                          "data": data}]}))
    flat = folder / f"v2flat_{rows}x{features}.json"
    flat.write_text(json.dumps({"inputs": [{"name": "data", "shape": [rows, features], "datatype": "FP64",
                                            "data": [value for row in data for value in row]}]}))
    mlflow = folder / f"mlflow_{rows}x{features}.json"
    mlflow.write_text(json.dumps({"inputs": data}))
    return {"/score": body_file(folder, rows, features), "/v2 infer": v2, "/v2 infer flat": flat,
            "/invocations": mlflow}


def forwarded_routes(bodies: dict[str, Path]) -> str:
    """Say which of the protocol bodies a classic ``run()`` gets as the client wrote them (the large-body path of
    docs/protocols.md) rather than translated, as our server's protocol modules decide it."""
    from jupyter_mldeploy.server.protocol_mlflow import MlflowProtocol
    from jupyter_mldeploy.server.protocol_v2 import V2Protocol

    v2 = V2Protocol([], None, {"model": []}).route("POST", "/v2/models/model/infer")
    prepares = {"/v2 infer": v2, "/v2 infer flat": v2, "/invocations": MlflowProtocol([]).route("POST", "/invocations")}
    said = []
    for kind, prepare in prepares.items():
        call = prepare(bodies[kind].read_bytes(), "application/json", [])
        said.append(f"{kind} {'forwarded' if call.recheck is not None else 'translated'}")
    return ", ".join(said)


def run_protocols(args: argparse.Namespace, python: Path, work: Path, models: Path, scripts: dict[str, Path],
                  lua: Path) -> None:
    """Ours only: /score against /v2/models/model/infer and /invocations on one server, and /score with key
    auth on a second server (Authorization: Bearer checked on every request); print the table of medians."""
    keys = work / "keys.json"
    keys.write_text(json.dumps({"primaryKey": BENCH_KEY, "secondaryKey": BENCH_KEY[::-1]}))
    kinds = ["/score", "/v2 infer", "/v2 infer flat", "/invocations", "/score with key"]
    scenarios = [s for s in PROTOCOL_SCENARIOS if args.rows is None or s.rows == args.rows]
    results: dict[str, dict[str, list[dict[str, float]]]] = {s.name: {k: [] for k in kinds} for s in scenarios}
    paths_taken = {}
    for scenario in scenarios:
        bodies = protocol_bodies(work, scenario.rows, scenario.features)
        paths_taken[scenario.rows] = forwarded_routes(bodies)
        plain = RunningServer("mldeploy", python, scripts["classic"], models, scenario, work / "protocols.log",
                              bodies["/score"])
        keyed = RunningServer("mldeploy", python, scripts["classic"], models, scenario, work / "protocols-keyed.log",
                              bodies["/score"], {"MLDEPLOY_KEYS_FILE": str(keys)}, f"Bearer {BENCH_KEY}")
        base = plain.url[: -len("/score")]
        # (url, body, Authorization) per kind; each is checked to answer 200 before it is measured.
        # (url, body, Authorization, server) per kind; each is checked to answer 200 before it is measured.
        targets = {"/score": (plain.url, bodies["/score"], "", plain),
                   "/v2 infer": (f"{base}/v2/models/model/infer", bodies["/v2 infer"], "", plain),
                   "/v2 infer flat": (f"{base}/v2/models/model/infer", bodies["/v2 infer flat"], "", plain),
                   "/invocations": (f"{base}/invocations", bodies["/invocations"], "", plain),
                   "/score with key": (keyed.url, bodies["/score"], f"Bearer {BENCH_KEY}", keyed)}
        try:
            for url, body, auth, _ in targets.values():
                check = requests.post(url, data=body.read_bytes(), timeout=30,
                                      headers={"Content-Type": "application/json", "Authorization": auth})
                check.raise_for_status()
                run_wrk(url, body, scenario.connections, 1, lua, auth)
            for round_index in range(args.repeats):
                for kind in (kinds if round_index % 2 == 0 else list(reversed(kinds))):
                    url, body, auth, server = targets[kind]
                    cpu_before = server.cpu_seconds()
                    result = run_wrk(url, body, scenario.connections, args.duration, lua, auth)
                    # The server's own CPU per request: what bounds a CPU-bound worker's throughput, and what
                    # the shared VM's noise (steal, wrk on the same cores) disturbs far less than req/s.
                    result["cpu_us"] = (server.cpu_seconds() - cpu_before) / max(result["requests"], 1) * 1e6
                    results[scenario.name][kind].append(result)
                    print(f"round {round_index + 1} {kind:16s} {scenario.name:22s} {result['rps']:9.1f} req/s "
                          f"p50 {result['p50_ms']:7.2f} ms p99 {result['p99_ms']:7.2f} ms errors {result['errors']} "
                          f"server CPU {result['cpu_us']:8.1f} us/request", flush=True)
        finally:
            plain.stop()
            keyed.stop()
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"Method: wrk on 127.0.0.1, {args.repeats} runs x {args.duration:g} s per scenario and route (after a 1 s "
          "warm-up), runs interleaved, 1 worker per server; classic score.py (json.loads -> np.array -> predict); "
          "medians shown.")
    for rows, taken in paths_taken.items():
        print(f"Bodies of {rows} row(s): {taken}.")
    print()
    print_median_table(results, scenarios, "route", "/score")
    print()
    print("Server CPU per request (user + system of the server's processes over each wrk run / requests done);")
    print("x /score = /score's CPU per request over the route's: the throughput ratio of a CPU-bound worker.")
    print("Per-round: the median over rounds of each round's ratio; short runs (--duration 2 --repeats 15) keep a")
    print("round's runs seconds apart, so the machine's slow swings cancel.")
    print()
    print("| scenario | route | CPU us/request (median) | x /score | x /score per-round median | req/s x /score "
          "per-round median |")
    print("|---|---|---:|---:|---:|---:|")
    for scenario in scenarios:
        runs = results[scenario.name]
        base = statistics.median(r["cpu_us"] for r in runs["/score"])
        for kind, kind_runs in runs.items():
            cpu = statistics.median(r["cpu_us"] for r in kind_runs)
            pairs = list(zip(runs["/score"], kind_runs, strict=True))
            paired = statistics.median(b["cpu_us"] / r["cpu_us"] for b, r in pairs)
            paired_rps = statistics.median(r["rps"] / b["rps"] for b, r in pairs)
            print(f"| {scenario.name} | {kind} | {cpu:.1f} | {base / cpu:.2f}x | {paired:.2f}x | {paired_rps:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"protocols": results}, indent=2))


def run_in_process(args: argparse.Namespace, work: Path, models: Path, scripts: dict[str, Path]) -> None:
    """The protocol routes through one worker's ASGI app in this interpreter: thread CPU time per request."""
    import asyncio

    keys = work / "keys.json"
    keys.write_text(json.dumps({"primaryKey": BENCH_KEY, "secondaryKey": BENCH_KEY[::-1]}))
    script_path = scripts["classic"]
    os.environ.update(AZUREML_MODEL_DIR=str(models), MODEL_FILE="ridge.pkl", AML_APP_ROOT=str(script_path.parent))
    from jupyter_mldeploy.server import logs
    from jupyter_mldeploy.server.app import ScoringApp
    from jupyter_mldeploy.server.runner import Runner
    from jupyter_mldeploy.server.swagger import SwaggerDocs
    from jupyter_mldeploy.server.user_script import UserScript

    script = UserScript(str(script_path))
    script.init()
    swagger = SwaggerDocs(str(script_path.parent), script.run, False, dict(os.environ))
    sink = open(os.devnull, "w")  # noqa: SIM115 - the access lines are written, as by a worker, and dropped
    # Every call inline (also the 1000-row ones), so the thread CPU time holds the whole request.
    runner = Runner(3_600_000, inline_run_ms=60_000)
    plain = ScoringApp(script, runner, swagger, 100_000_000, logs.AccessLog(sink, True))
    os.environ["MLDEPLOY_KEYS_FILE"] = str(keys)
    keyed = ScoringApp(script, runner, swagger, 100_000_000, logs.AccessLog(sink, True))
    del os.environ["MLDEPLOY_KEYS_FILE"]
    paths = {"/score": "/score", "/v2 infer": "/v2/models/model/infer", "/v2 infer flat": "/v2/models/model/infer",
             "/invocations": "/invocations", "/score with key": "/score"}

    async def one(app: ScoringApp, path: str, body: bytes, auth: list[tuple[bytes, bytes]]) -> None:
        scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": [
            (b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *auth]}
        status = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"{path} answered {status}")

    paths_taken = {}

    async def measure() -> dict[str, dict[str, list[float]]]:
        results: dict[str, dict[str, list[float]]] = {}
        for scenario in PROTOCOL_SCENARIOS:
            files = protocol_bodies(work, scenario.rows, scenario.features)
            paths_taken[scenario.rows] = forwarded_routes(files)
            bodies = {kind: path.read_bytes() for kind, path in files.items()}
            bodies["/score with key"] = bodies["/score"]
            count = 400 if scenario.rows == 1 else 20
            results[scenario.name] = {kind: [] for kind in paths}
            for round_index in range(21):  # round 0 warms up
                for kind in (list(paths) if round_index % 2 == 0 else list(reversed(paths))):
                    app = keyed if kind == "/score with key" else plain
                    auth = [(b"authorization", f"Bearer {BENCH_KEY}".encode())] if app is keyed else []
                    started = time.thread_time()
                    for _ in range(count):
                        await one(app, paths[kind], bodies[kind], auth)
                    if round_index:
                        results[scenario.name][kind].append((time.thread_time() - started) / count * 1e6)
        return results

    results = asyncio.run(measure())
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print("Method: one worker's ASGI app in this interpreter (no sockets), classic ridge score.py, run() inline, "
          "requests one at a time, routes alternating over 20 rounds; thread CPU time per request.")
    for rows, taken in paths_taken.items():
        print(f"Bodies of {rows} row(s): {taken}.")
    print()
    print("| rows | route | us/request (min) | x /score | us/request (median) |")
    print("|---|---|---:|---:|---:|")
    for scenario in PROTOCOL_SCENARIOS:
        rows = results[scenario.name]
        base = min(rows["/score"])
        for kind, runs in rows.items():
            print(f"| {scenario.rows} | {kind} | {min(runs):.1f} | {base / min(runs):.2f} | {statistics.median(runs):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"in_process": results}, indent=2))


def main() -> int:
    """Run the benchmark and print the table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per server (default 3)")
    parser.add_argument("--venv-dir", type=Path, default=REPO / "benchmarks" / ".venvs")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--batching", action="store_true",
                        help="run the adaptive-batching comparison (forest c=16, ridge c=1) instead")
    parser.add_argument("--protocols", action="store_true",
                        help="compare /score, /v2 infer (nested, flat), /invocations and /score with key auth (ours only) "
                             "instead")
    parser.add_argument("--rows", type=int, choices=[s.rows for s in PROTOCOL_SCENARIOS], default=None,
                        help="with --protocols (wrk): only the scenario with this many rows per request")
    parser.add_argument("--in-process", action="store_true",
                        help="with --protocols: the same routes through the ASGI app in this interpreter, thread CPU "
                             "time per request (no wrk, no sockets)")
    args = parser.parse_args()
    if args.in_process:
        if not args.protocols:
            parser.error("--in-process goes with --protocols")
        work = Path(tempfile.mkdtemp(prefix="mldeploy-bench-"))
        models = work / "models"
        models.mkdir()
        subprocess.run([sys.executable, "-c", TRAIN, str(models)], check=True)
        (work / "classic").mkdir()
        (work / "classic" / "score.py").write_text(textwrap.dedent(CLASSIC_SCORE))
        try:
            run_in_process(args, work, models, {"classic": work / "classic" / "score.py"})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    if shutil.which("wrk") is None:
        parser.error("wrk is not on PATH; install it (apt-get install -y wrk)")
    theirs, ours = prepare_envs(args.venv_dir)
    pythons = {"azmlinfsrv": theirs, "mldeploy": ours}
    work = Path(tempfile.mkdtemp(prefix="mldeploy-bench-"))
    models = work / "models"
    models.mkdir()
    subprocess.run([str(ours), "-c", TRAIN, str(models)], check=True)
    scripts = {}
    for name, source in (("classic", CLASSIC_SCORE), ("schema", SCHEMA_SCORE)):
        folder = work / name
        folder.mkdir()
        (folder / "score.py").write_text(textwrap.dedent(source))
        scripts[name] = folder / "score.py"
    lua = work / "post.lua"
    lua.write_text(WRK_LUA)
    if args.batching:
        run_batching(args, pythons, work, models, scripts, lua)
        shutil.rmtree(work, ignore_errors=True)
        return 0
    if args.protocols:
        run_protocols(args, ours, work, models, scripts, lua)
        shutil.rmtree(work, ignore_errors=True)
        return 0
    results: dict[str, dict[str, list[dict[str, float]]]] = {s.name: {k: [] for k in pythons} for s in SCENARIOS}
    cold: dict[str, list[float]] = {k: [] for k in pythons}
    logs = {kind: work / f"{kind}.log" for kind in pythons}
    ridge = SCENARIOS[0]
    # Cold start: launch -> first 200, alternating which server goes first.
    for round_index in range(args.repeats):
        for kind in (list(pythons) if round_index % 2 == 0 else list(reversed(pythons))):
            server = RunningServer(kind, pythons[kind], scripts["classic"], models, ridge, logs[kind],
                                   body_file(work, 1, ridge.features))
            cold[kind].append(server.cold_start_s)
            server.stop()
            print(f"cold start {kind:10s} {server.cold_start_s:.2f} s", flush=True)
    # Throughput: both servers run side by side (an idle one costs nothing) and every wrk run of one is
    # immediately followed by the same run against the other, so drifting load on the machine hits both.
    groups: dict[tuple[str, str], list[Scenario]] = {}
    for scenario in SCENARIOS:
        groups.setdefault((scenario.script, scenario.model), []).append(scenario)
    for (script, _model), scenarios in groups.items():
        first = scenarios[0]
        servers = {kind: RunningServer(kind, pythons[kind], scripts[script], models, first, logs[kind],
                                       body_file(work, 1, first.features)) for kind in pythons}
        try:
            for scenario in scenarios:
                body = body_file(work, scenario.rows, scenario.features)
                for server in servers.values():
                    run_wrk(server.url, body, scenario.connections, 1, lua)
                for round_index in range(args.repeats):
                    for kind in (list(pythons) if round_index % 2 == 0 else list(reversed(pythons))):
                        result = run_wrk(servers[kind].url, body, scenario.connections, args.duration, lua)
                        results[scenario.name][kind].append(result)
                        print(f"round {round_index + 1} {kind:10s} {scenario.name:36s} {result['rps']:9.1f} req/s "
                              f"p50 {result['p50_ms']:7.2f} ms p99 {result['p99_ms']:7.2f} ms "
                              f"errors {result['errors']}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"Method: wrk on 127.0.0.1, {args.repeats} runs x {args.duration:g} s per scenario and server (after a "
          "1 s warm-up), the two servers' runs interleaved, 1 worker each; medians shown. Cold start: median "
          f"of {args.repeats} launches.")
    print()
    print("| scenario | azmlinfsrv req/s | ours req/s | ours/azmlinfsrv | azmlinfsrv p50 / p99 ms | ours p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {}
    for scenario in SCENARIOS:
        row = {}
        for kind in pythons:
            runs = results[scenario.name][kind]
            row[kind] = {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms", "errors")}
        ratio = row["mldeploy"]["rps"] / row["azmlinfsrv"]["rps"]
        summary[scenario.name] = {**row, "ratio": ratio}
        print(f"| {scenario.name} | {row['azmlinfsrv']['rps']:.0f} | {row['mldeploy']['rps']:.0f} | {ratio:.2f}x | "
              f"{row['azmlinfsrv']['p50_ms']:.2f} / {row['azmlinfsrv']['p99_ms']:.2f} | "
              f"{row['mldeploy']['p50_ms']:.2f} / {row['mldeploy']['p99_ms']:.2f} |")
    theirs_cold, ours_cold = statistics.median(cold["azmlinfsrv"]), statistics.median(cold["mldeploy"])
    summary["cold start"] = {"azmlinfsrv_s": theirs_cold, "mldeploy_s": ours_cold}
    print(f"| cold start (launch -> first 200), s | {theirs_cold:.2f} | {ours_cold:.2f} | "
          f"{theirs_cold / ours_cold:.2f}x faster | | |")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "raw": results, "cold": cold}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
