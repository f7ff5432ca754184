"""Batch scoring benchmark: loky and dask against the bare single-process loop; driver memory on a big CSV.

Prints numbers; it is not a timed test. Run from the repository root::

    .venv/bin/python benchmarks/batch_scoring.py                 # 1,000,000 and 5,000,000 rows
    .venv/bin/python benchmarks/batch_scoring.py --rows 200000 --big-rows 0 --no-dask   # a quick look

What it measures, on the same machine in the same run:

1. The bare loop: ``for chunk in pd.read_csv(path, chunksize=...): model.predict(chunk)`` writing each
   prediction on its own line (the ``append_row`` format), one process, timed two ways: *warm*, in this
   process, which has pandas and scikit-learn imported and the model loaded already (imports excluded);
   and *cold*, as a new ``python`` process from its start to its exit (imports and model load included,
   as the job's worker processes pay them).
2. ``BatchJob`` with ``backend="loky"`` and 1 then 2 worker processes: wall time from ``submit`` to
   ``wait_for_completion`` returning with the output file in place (driver start, worker start with
   ``init()``, scoring, assembling), rows/s, and the ratio to both bare loops; then the job's phases, read
   from its log, part files and journal. The outputs must hold the bare loop's rows. With ``--repeat N``
   the bare loops and jobs run interleaved N times and the medians are printed. These jobs run with
   ``keep_warm=0``: each starts its own driver and workers (a cold job).
3. Warm jobs (``keep_warm``, docs/batch.md "Warm workers"): in a second workspace, a first 2-worker job
   leaves its driver and workers running; each repeat then runs ``--warm-jobs`` jobs on them (interleaved
   with the bare loops), timed from ``submit`` to the output as above. Their ratio to the warm bare loop
   is the target line (both have their imports done), printed beside the cold job's ratio to the cold
   loop.
4. ``backend="dask"`` on a ``dask scheduler`` and two ``dask worker`` processes started here on 127.0.0.1
   (stopped by PID at the end), two jobs in a row (the second finds the workers' imports done): time, and
   the output compared with loky's row for row.
5. On a ``--big-rows`` CSV: the bare loop, then loky with 2 workers and the driver's peak RSS while it
   scores (sampled every 50 ms with psutil).

The model is the quickstart's: ``Ridge`` on scikit-learn's diabetes data; the CSV holds its 10 features,
rows drawn from the data set with noise, 6 decimals.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import psutil
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from jupyter_mldeploy.batch import BatchJob, ParallelRunConfig
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace

SCRIPT = '''
import os
import joblib

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "diabetes_ridge.pkl"))

def run(mini_batch):
    return model.predict(mini_batch).tolist()
'''
#: Rows written per chunk while generating the CSV and read per chunk by the bare loop.
CHUNK = 100_000
#: keep_warm of the warm jobs: longer than a repeat takes.
WARM_S = 600.0


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` diabetes-like rows (10 features, 6 decimals) in chunks."""
    features = load_diabetes(as_frame=True).data
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            sample = features.iloc[rng.integers(0, len(features), count)].to_numpy()
            frame = pd.DataFrame(sample + rng.normal(0, 0.005, sample.shape), columns=features.columns)
            frame.to_csv(handle, index=False, header=start == 0, float_format="%.6f")


def bare_loop(model: Ridge, source: Path, output: Path) -> float:
    """The baseline: one process, chunked read, predict, write one line per prediction; return seconds."""
    started = time.perf_counter()
    with open(output, "w") as out:
        for chunk in pd.read_csv(source, chunksize=CHUNK):
            out.write("\n".join(map(str, model.predict(chunk).tolist())) + "\n")
    return time.perf_counter() - started


COLD_LOOP = """
import sys, joblib, pandas as pd
model = joblib.load(sys.argv[1])
with open(sys.argv[3], "w") as out:
    for chunk in pd.read_csv(sys.argv[2], chunksize=int(sys.argv[4])):
        out.write("\\n".join(map(str, model.predict(chunk).tolist())) + "\\n")
"""


def cold_loop(model_path: Path, source: Path, output: Path) -> float:
    """The bare loop as a new process (imports pandas and scikit-learn, loads the model); return seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", COLD_LOOP, str(model_path), str(source), str(output), str(CHUNK)],
                   check=True)
    return time.perf_counter() - started


def _log_time(line: str) -> float:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def phases(job: BatchJob, submitted: float, returned: float) -> tuple[str, float | None]:
    """The job's phases, in seconds from ``submit`` (wall clock): the driver's backend open (its first log
    line), each worker's ``init()`` done, first and last part file in place, output in place, completion
    seen; and when the first worker was ready (``init()`` done: imports and model load behind it), or None
    (Dask workers do not log it)."""
    folder = job.folder.path
    lines = (folder / "logs" / "driver.log").read_text().splitlines()
    # A job on a warm driver opens no backend: it logs that it reuses the workers instead.
    backend = next(_log_time(line) for line in lines if "Backend:" in line or "reusing the workers" in line)
    inits = [_log_time(line) for line in lines if "init() done" in line]
    parts = sorted(p.stat().st_mtime for p in (folder / "parts").iterdir())
    output = Path(job.folder.read_record()["outputFile"]).stat().st_mtime
    run_seconds = sum(json.loads(line).get("seconds", 0) for line in open(folder / "journal.jsonl"))
    text = (f"backend open {backend - submitted:.2f}, "
            f"init() done {', '.join(f'{t - submitted:.2f}' for t in inits)}, first part {parts[0] - submitted:.2f}, "
            f"last part {parts[-1] - submitted:.2f}, output {output - submitted:.2f}, completion seen "
            f"{returned - submitted:.2f} s; run()+format+part write in workers {run_seconds:.2f} s in all")
    return text, (min(inits) - submitted if inits else None)


def compare(output: bytes, reference: bytes) -> str:
    """Say how the job's output matches the bare loop's.

    Rows are the same and in the same order; a few predictions may differ in the last digit because BLAS
    sums a matrix-vector product in blocks that depend on where a chunk starts (the jobs' mini-batches and
    the bare loop's chunks start at different rows).
    """
    ours, theirs = output.split(), reference.split()
    if len(ours) != len(theirs):
        return f"OUTPUT HAS {len(ours):,} ROWS, THE BARE LOOP {len(theirs):,}"
    last_digit = sum(a != b for a, b in zip(ours, theirs, strict=True))
    if not np.allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=1e-12, atol=0):
        return "OUTPUT DIFFERS FROM THE BARE LOOP"
    return f"same rows as the bare loop; {last_digit} differ in the last digit"


def run_job(ws: Workspace, name: str, script: Path, source: Path, output: Path, processes: int,
            mini_batch_size: str, backend: str = "loky", scheduler: str | None = None,
            keep_warm: float = 0.0) -> tuple[float, float, str, float | None]:
    """Run one job; return (wall seconds from submit to output, driver peak RSS in MB, its phases, seconds
    from submit to its first worker ready)."""
    config = ParallelRunConfig(str(script), 0, "append_row", mini_batch_size=mini_batch_size,
                               process_count_per_node=processes)
    peak = [0]
    done = threading.Event()
    started, submitted = time.perf_counter(), time.time()
    job = BatchJob.submit(ws, name, config, str(source), "diabetes", output, backend=backend, scheduler=scheduler,
                          keep_warm=keep_warm)

    def sample() -> None:
        driver_file = job.folder.path / "driver.json"
        while not driver_file.exists() and not done.is_set():
            time.sleep(0.01)
        try:
            driver = psutil.Process(json.loads(driver_file.read_text())["pid"])
            while not done.is_set():
                peak[0] = max(peak[0], driver.memory_info().rss)
                time.sleep(0.05)
        except (psutil.NoSuchProcess, FileNotFoundError):
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    job.wait_for_completion()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return elapsed, peak[0] / 1024**2, *phases(job, submitted, submitted + elapsed)


def start_cluster(folder: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes on 127.0.0.1."""
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "cluster.log", "ab")  # noqa: SIM115 - lives as long as the processes
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], stdout=log, stderr=subprocess.STDOUT)]
    while not scheduler_file.exists():
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(2):
        processes.append(subprocess.Popen([dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                           "--no-nanny", "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT))
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    return address, processes


def stop_cluster(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop each process by its PID (SIGTERM, then SIGKILL)."""
    for process in reversed(processes):
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_warm_driver(ws: Workspace) -> None:
    """SIGTERM the warm driver of the workspace's last job (its workers exit with it)."""
    last = max((ws.path / "jobs").glob("*/*/driver.json"), key=lambda p: p.stat().st_mtime)
    pid = json.loads(last.read_text())["pid"]
    if psutil.pid_exists(pid):
        os.kill(pid, signal.SIGTERM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows of the timed CSV.")
    parser.add_argument("--big-rows", type=int, default=5_000_000, help="Rows of the memory CSV (0 skips it).")
    parser.add_argument("--mini-batch-size", default="10MB")
    parser.add_argument("--no-dask", action="store_true", help="Skip the Dask cluster run.")
    parser.add_argument("--repeat", type=int, default=3, help="Interleaved runs of the bare loops and loky jobs.")
    parser.add_argument("--warm-jobs", type=int, default=2, help="Jobs on the warm driver per repeat (0 skips them).")
    parser.add_argument("--workdir", default=None, help="Where to write data (default: a temporary folder).")
    args = parser.parse_args()

    # A fresh workspace and outputs every time; the CSVs are kept in --workdir and reused.
    data = Path(args.workdir or tempfile.mkdtemp(prefix="batch-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=data))
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(features, target)
    joblib.dump(model, work / "diabetes_ridge.pkl")
    ws = Workspace.create(work / "ws")
    Model.register(ws, model_path=str(work / "diabetes_ridge.pkl"), model_name="diabetes")
    # The warm driver serves the jobs of its workspace: the cold jobs run in the other one.
    warm_ws = Workspace.create(work / "ws-warm")
    Model.register(warm_ws, model_path=str(work / "diabetes_ridge.pkl"), model_name="diabetes")
    script = work / "score_batch.py"
    script.write_text(SCRIPT)
    cores = os.cpu_count()
    print(f"machine: {cores} cores, load average {os.getloadavg()[0]:.2f}; mini_batch_size={args.mini_batch_size}")

    source = data / f"rows-{args.rows}.csv"
    started = time.perf_counter()
    if not source.exists():
        write_csv(source, args.rows)
    print(f"data: {args.rows:,} rows, {source.stat().st_size / 1024**2:.0f} MB CSV (written in {time.perf_counter() - started:.1f} s)")

    warm: list[float] = []
    cold: list[float] = []
    jobs: dict[int, list[float]] = {1: [], 2: []}
    # The job's time once its first worker was ready: like the warm loop, it excludes the imports.
    after_ready: dict[int, list[float]] = {1: [], 2: []}
    warm_jobs: list[float] = []
    loky_output = b""
    if args.warm_jobs:
        elapsed, _, _, _ = run_job(warm_ws, "warm", script, source, work / "warm-first", 2, args.mini_batch_size,
                                   keep_warm=WARM_S)
        print(f"  warm driver's first job (starts it and its 2 workers): {elapsed:.2f} s")
    for repeat in range(args.repeat):
        warm.append(bare_loop(model, source, work / "bare.txt"))
        cold.append(cold_loop(work / "diabetes_ridge.pkl", source, work / "bare-cold.txt"))
        reference = (work / "bare.txt").read_bytes()
        for processes in (1, 2):
            out = work / f"loky{processes}-{repeat}"
            elapsed, rss, timeline, ready = run_job(ws, f"loky{processes}", script, source, out, processes,
                                                    args.mini_batch_size)
            jobs[processes].append(elapsed)
            after_ready[processes].append(elapsed - (ready or 0.0))
            loky_output = (out / "parallel_run_step.txt").read_bytes()
            print(f"  run {repeat + 1}, loky {processes} worker(s): {elapsed:.2f} s (bare warm {warm[-1]:.2f} s, "
                  f"cold {cold[-1]:.2f} s); driver peak RSS {rss:.0f} MB; {compare(loky_output, reference)}")
            print(f"    phases: {timeline}")
        for index in range(args.warm_jobs):
            out = work / f"warm-{repeat}-{index}"
            elapsed, rss, timeline, _ = run_job(warm_ws, "warm", script, source, out, 2, args.mini_batch_size,
                                                keep_warm=WARM_S)
            warm_jobs.append(elapsed)
            print(f"  run {repeat + 1}, loky 2 workers, warm driver, job {index + 1}: {elapsed:.2f} s (bare warm "
                  f"{warm[-1]:.2f} s); driver peak RSS {rss:.0f} MB; "
                  f"{compare((out / 'parallel_run_step.txt').read_bytes(), reference)}")
            print(f"    phases: {timeline}")
    baseline, baseline_cold = statistics.median(warm), statistics.median(cold)
    label = f"median of {args.repeat}" if args.repeat > 1 else "one run"
    print(f"bare loop, warm (in this process, imports excluded): {baseline:6.2f} s {args.rows / baseline:10,.0f} rows/s ({label})")
    print(f"bare loop, cold (new process, imports included):     {baseline_cold:6.2f} s "
          f"{args.rows / baseline_cold:10,.0f} rows/s")
    for processes, times in jobs.items():
        elapsed = statistics.median(times)
        ready = statistics.median(after_ready[processes])
        print(f"loky, {processes} worker(s):                                {elapsed:6.2f} s {args.rows / elapsed:10,.0f} rows/s"
              f"  {elapsed / baseline:.2f}x warm bare, {elapsed / baseline_cold:.2f}x cold bare; from its first worker "
              f"ready to the output: {ready:.2f} s, {ready / baseline:.2f}x warm bare")
    if warm_jobs:
        elapsed, cold_job = statistics.median(warm_jobs), statistics.median(jobs[2])
        print(f"loky, 2 workers, warm driver:                     {elapsed:6.2f} s {args.rows / elapsed:10,.0f} rows/s"
              f"  {elapsed / baseline:.2f}x warm bare (target <= 1.3x; median of {len(warm_jobs)} jobs); a cold job: "
              f"{cold_job / baseline_cold:.2f}x cold bare")
        stop_warm_driver(warm_ws)
    if not args.no_dask:
        address, processes = start_cluster(work)
        try:
            # The first job's workers import pandas and scikit-learn; a second job on the same running
            # workers finds them imported (only init() runs again): what a long-lived cluster gives.
            for run in ("first job", "second job"):
                out = work / f"dask-{run.split()[0]}"
                elapsed, rss, _, _ = run_job(ws, "dask", script, source, out, 2, args.mini_batch_size,
                                          backend="dask", scheduler=address)
                output = (out / "parallel_run_step.txt").read_bytes()
                same = "same output as loky row for row" if output == loky_output else "OUTPUT DIFFERS FROM LOKY"
                print(f"dask, 2 workers (tcp), {run}: {elapsed:6.2f} s {args.rows / elapsed:10,.0f} rows/s  "
                      f"{elapsed / baseline:.2f}x warm bare, {elapsed / baseline_cold:.2f}x cold bare  driver peak RSS "
                      f"{rss:.0f} MB  ({same})")
        finally:
            stop_cluster(processes)
    if args.big_rows:
        big = data / f"big-{args.big_rows}.csv"
        if not big.exists():
            write_csv(big, args.big_rows, seed=1)
        big_bare = bare_loop(model, big, work / "big-bare.txt")
        print(f"big: {args.big_rows:,} rows ({big.stat().st_size / 1024**2:.0f} MB), bare loop: {big_bare:.1f} s, "
              f"{args.big_rows / big_bare:,.0f} rows/s")
        elapsed, rss, _, _ = run_job(ws, "big", script, big, work / "big-out", 2, args.mini_batch_size)
        print(f"big: loky, 2 workers: {elapsed:.1f} s, {args.big_rows / elapsed:,.0f} rows/s, "
              f"{elapsed / big_bare:.2f}x bare, driver peak RSS {rss:.0f} MB")
    print(f"data and jobs kept in {work}")


if __name__ == "__main__":
    main()
