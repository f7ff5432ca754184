"""No-code serving and model data collection: what they cost against the classic ``score.py`` (issue #16).

The model is the quickstart's: ``Ridge`` on ``load_diabetes`` (10 features), one row per request. Four
services of it run side by side, one worker each, all in this interpreter (no environment build, so only the
script and the collection differ):

* ``classic``: the quickstart's ``score.py`` (``json.loads`` -> ``np.array`` -> ``predict`` -> ``tolist``);
* ``no_code``: the built-in scikit-learn script (``Model.deploy`` with no inference config);
* ``collect_parquet``: ``no_code`` with ``collect_model_data=True`` (inputs and predictions, Parquet parts);
* ``collect_csv``: the same with ``MLDEPLOY_MODEL_DATA_FORMAT=csv`` (what an environment without pyarrow
  writes).

Two measures, both printed:

1. In-process CPU time per request (``--in-process`` alone; also run first by default): the scripts loaded
   as the server loads them (``UserScript``), ``invoke_run`` called ``--requests`` times per block with a
   request id set, ``--blocks`` blocks per service interleaved; CPU time of the whole process
   (``time.process_time``, so the writer's flush at the end of each block counts); the least block per
   service (the one other processes disturbed least).
2. ``wrk -t2 -c16`` against each service, ``--rounds`` rounds of ``--seconds`` seconds, the services' order
   rotated each round so drifting load on a shared machine hits all alike; the table holds each service's
   median req/s and the median over rounds of the per-round ratios (no-code / classic, collecting /
   no-code).

``--instructions`` counts instead, with valgrind (``cachegrind``), the instructions each service's script runs
per request in-process: two runs of a fresh process each (1,000 and 5,000 requests after a warm-up, the
collected records flushed every 2,000 requests as the writer does once a second at 2,000 req/s); the
difference over 4,000 requests. It does not depend on other load on the machine (but counts no cache misses
or waiting); it takes minutes.

Then it prints the rows read back with ``read_collected_data`` after ``service.delete()`` (a SIGTERM, which
flushes what was queued) next to the requests wrk counted: none may be missing (a few more rows are the
requests in flight when a wrk run stopped).

Run from the repository root: ``python benchmarks/no_code.py [--seconds 10] [--rounds 3]`` (wrk on PATH;
``--in-process`` for the in-process measure alone; ``--instructions`` needs valgrind). Prints a table, then
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: The quickstart's entry script (quickstart/score.py), loading the pickle this benchmark writes.
CLASSIC_SCORE = """
import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pkl"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
"""

#: service name -> (no-code?, collect_model_data?, MLDEPLOY_MODEL_DATA_FORMAT)
SERVICES = {
    "classic": (False, False, ""),
    "no_code": (True, False, ""),
    "collect_parquet": (True, True, "parquet"),
    "collect_csv": (True, True, "csv"),
}
#: Requests per flush of the collected records when counting instructions (a second's worth at 2,000 req/s).
FLUSH_EVERY = 2000


def train(folder: Path) -> tuple[Path, list[list[float]]]:
    """Fit Ridge on load_diabetes, dump it to ``folder/model.pkl``; return the path and one sample row."""
    import joblib
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    joblib.dump(Ridge().fit(X, y), path)
    return path, X[:1].tolist()


def prepare(model_path: Path) -> Path:
    """Lay out a model folder as the server does (``azureml-models/<name>/<version>/``) and the classic
    script next to it; set ``AZUREML_MODEL_DIR``; return the folder holding both."""
    work = Path(tempfile.mkdtemp(prefix="mldeploy-nocode-"))
    model_dir = work / "azureml-models" / "diabetes" / "1"  # the built-in script reads the model name from it
    model_dir.mkdir(parents=True)
    shutil.copy(model_path, model_dir / "model.pkl")
    (work / "score.py").write_text(textwrap.dedent(CLASSIC_SCORE))
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    return work


def load(name: str, work: Path) -> object:
    """Load and ``init()`` service ``name``'s script as the server does, with its collection variables."""
    from jupyter_mldeploy.server import data_collector, shims
    from jupyter_mldeploy.server.builtin import SKLEARN_SCRIPT
    from jupyter_mldeploy.server.user_script import UserScript

    shims.install_finder()
    no_code, collect, _format = SERVICES[name]
    # Each collector reads the variables when it is made (in init()), so each script gets its own.
    os.environ[data_collector.ENABLED_VARIABLE] = "true" if collect else "false"
    os.environ[data_collector.FOLDER_VARIABLE] = str(work / "modeldata" / name)
    script = UserScript(str(SKLEARN_SCRIPT if no_code else work / "score.py"))
    script.init()
    return script


def serve(name: str, script: object, row: list[list[float]], requests: int, flush_every: int) -> None:
    """Call ``run()`` ``requests`` times as the server does for one row each, flushing the collected records
    every ``flush_every`` requests and at the end (what the writer does once a second at that rate)."""
    from jupyter_mldeploy.server import data_collector, logs
    from jupyter_mldeploy.server.shims import Headers

    os.environ[data_collector.FORMAT_VARIABLE] = SERVICES[name][2]  # read by the writer at each flush
    body = json.dumps({"data": row}).encode()
    headers = Headers([(b"content-type", b"application/json")])
    for i in range(requests):
        logs.request_id.set(f"{name}-{i}")
        script.invoke_run(body, headers)
        if (i + 1) % flush_every == 0:
            data_collector.flush()
    data_collector.flush()


def in_process(model_path: Path, row: list[list[float]], requests: int, blocks: int) -> dict[str, float]:
    """Least CPU microseconds per request over interleaved blocks, of each service's script (the minimum is
    the block least disturbed by other processes)."""
    work = prepare(model_path)
    scripts = {name: load(name, work) for name in SERVICES}
    costs: dict[str, list[float]] = {name: [] for name in SERVICES}
    for _block in range(blocks):
        for name, script in scripts.items():
            start = time.process_time()
            serve(name, script, row, requests, requests)
            costs[name].append((time.process_time() - start) / requests * 1e6)
    shutil.rmtree(work, ignore_errors=True)
    return {name: min(values) for name, values in costs.items()}


def count_child(name: str, requests: int) -> None:
    """Under valgrind: load one service's script, warm it up, serve ``requests`` requests (flushing every
    :data:`FLUSH_EVERY`, as at 2,000 req/s), and exit."""
    from jupyter_mldeploy.server import data_collector

    data_collector.FLUSH_INTERVAL_S = 1e9  # only the explicit flushes: the same work per request at any speed
    model_path, row = train(Path(tempfile.mkdtemp(prefix="mldeploy-nocode-model-")))
    work = prepare(model_path)
    script = load(name, work)
    serve(name, script, row, 200, FLUSH_EVERY)  # imports and first calls, in both counted runs alike
    serve(name, script, row, requests, FLUSH_EVERY)
    shutil.rmtree(work, ignore_errors=True)


def instructions(low: int, high: int) -> dict[str, float]:
    """Instructions per request of each service's script: valgrind (cachegrind) counts every instruction
    the process runs for ``low`` and for ``high`` requests; the difference over ``high - low`` is the cost of
    one request, independent of other load on the machine."""

    def refs(name: str, requests: int) -> int:
        done = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
             __file__, "--count-child", name, str(requests)],
            capture_output=True, text=True, check=True)
        return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr).group(1).replace(",", ""))

    runs = [(name, n) for name in SERVICES for n in (low, high)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = dict(zip(runs, pool.map(lambda run: refs(*run), runs), strict=True))
    return {name: (counted[name, high] - counted[name, low]) / (high - low) for name in SERVICES}


def requests_per_second(uri: str, lua: Path, seconds: float) -> tuple[float, int]:
    """Run ``wrk -t2 -c16`` against ``uri``; return its Requests/sec and the number of requests."""
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds:g}s", "-s", str(lua), uri],
                         capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), total


def with_wrk(model_path: Path, row: list[list[float]], seconds: float, rounds: int) -> dict[str, object]:
    """Deploy the four services, drive each with wrk in rotated order; return medians, ratios, row checks."""
    from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Workspace
    from jupyter_mldeploy.deploy.no_code import no_code_inference_config
    from jupyter_mldeploy.monitoring import read_collected_data

    work = Path(tempfile.mkdtemp(prefix="mldeploy-nocode-"))
    workspace = Workspace.create(work / "ws")
    model = Model.register(workspace, model_path=str(model_path), model_name="diabetes",
                           model_framework=Model.Framework.SCIKITLEARN)
    source = work / "src"
    source.mkdir()
    (source / "score.py").write_text(textwrap.dedent(CLASSIC_SCORE))
    no_code = no_code_inference_config(workspace, model)
    no_code.environment = None  # this interpreter, as the classic service: only the script differs
    lua = work / "post.lua"
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps({"data": row}))}\n'
                   'wrk.headers["Content-Type"] = "application/json"\n')
    services = {}
    answered = {name: 0 for name in SERVICES}
    rps: dict[str, list[float]] = {name: [] for name in SERVICES}
    try:
        for name, (is_no_code, collect, file_format) in SERVICES.items():
            config = LocalWebservice.deploy_configuration(
                collect_model_data=collect,
                environment_variables={"MLDEPLOY_MODEL_DATA_FORMAT": file_format} if file_format else None)
            ic = no_code if is_no_code else InferenceConfig("score.py", source_directory=source)
            services[name] = Model.deploy(workspace, name.replace("_", "-"), [model], ic, config)
            services[name].wait_for_deployment()
            answered[name] += requests_per_second(services[name].scoring_uri, lua, 2)[1]  # warm-up
        names = list(SERVICES)
        for round_index in range(rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in order:
                value, total = requests_per_second(services[name].scoring_uri, lua, seconds)
                rps[name].append(value)
                answered[name] += total
                print(f"round {round_index + 1} {name:16s} {value:9.1f} req/s", flush=True)
    finally:
        for service in services.values():
            service.delete()  # SIGTERM: a collecting worker writes what is still queued before it exits
    rows = {name: len(read_collected_data(workspace, name.replace("_", "-"), "inputs"))
            for name, (_n, collect, _f) in SERVICES.items() if collect}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rps[a], rps[b], strict=True))

    return {
        "rps": {name: statistics.median(values) for name, values in rps.items()},
        "no_code_vs_classic": ratio("no_code", "classic"),
        "collect_parquet_vs_no_code": ratio("collect_parquet", "no_code"),
        "collect_csv_vs_no_code": ratio("collect_csv", "no_code"),
        "collected_rows": rows,
        "answered_requests": {name: answered[name] for name in rows},
    }


def rounded(value: object) -> object:
    """``value`` with every float rounded to 3 decimals (for the JSON line)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def main() -> int:
    """Run the in-process measure, then (unless ``--in-process``) the wrk one; print both."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per service (default 3)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per in-process block (default 2000)")
    parser.add_argument("--blocks", type=int, default=10, help="in-process blocks per service (default 10)")
    parser.add_argument("--in-process", action="store_true", help="only the in-process measure (no wrk)")
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per request under valgrind instead (load-independent; minutes)")
    parser.add_argument("--count-child", nargs=2, metavar=("SERVICE", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_child:
        count_child(args.count_child[0], int(args.count_child[1]))
        return 0
    if args.instructions:
        if shutil.which("valgrind") is None:
            parser.error("valgrind is not on PATH; install it (apt-get install -y valgrind)")
        counts = instructions(1000, 5000)
        print(f"Instructions per request (valgrind, 5000 - 1000 requests, flushed every {FLUSH_EVERY}):")
        for name, value in counts.items():
            print(f"  {name:16s} {value / 1000:8.1f} k  ({value / counts['classic']:.3f}x classic)")
        print(json.dumps(rounded({"instructions_per_request": counts})))
        return 0
    if not args.in_process and shutil.which("wrk") is None:
        parser.error("wrk is not on PATH; install it (apt-get install -y wrk), or pass --in-process")
    model_path, row = train(Path(tempfile.mkdtemp(prefix="mldeploy-nocode-model-")))
    result: dict[str, object] = {}
    cpu = in_process(model_path, row, args.requests, args.blocks)
    result["cpu_us_per_request"] = {name: round(value, 1) for name, value in cpu.items()}
    print("In-process CPU per request (least of the blocks):")
    for name, value in cpu.items():
        print(f"  {name:16s} {value:7.1f} us  ({value / cpu['classic']:.3f}x classic)")
    if not args.in_process:
        measured = with_wrk(model_path, row, args.seconds, args.rounds)
        result.update(measured)
        print(f"wrk -t2 -c16, 1 row, one worker each, median of {args.rounds} rounds of {args.seconds:g} s:")
        for name, value in measured["rps"].items():
            print(f"  {name:16s} {value:9.1f} req/s")
        print(f"  no-code / classic {measured['no_code_vs_classic']:.3f}, collecting (Parquet) / no-code "
              f"{measured['collect_parquet_vs_no_code']:.3f}, collecting (CSV) / no-code "
              f"{measured['collect_csv_vs_no_code']:.3f}")
        # wrk counts the requests it saw answered; the few in flight when a run stops (at most 16 per run) are
        # answered and collected too, so the rows read back may exceed the count by that much, never fall short.
        print(f"  rows read back {measured['collected_rows']}, requests wrk counted {measured['answered_requests']}")
    print(json.dumps(rounded(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
