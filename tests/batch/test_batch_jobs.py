"""Batch jobs on this machine (loky): real driver and worker processes, real files, the v1 contract.

Each test runs a job of a few hundred rows: results equal to in-kernel predictions, every input row once
in the output, thresholds crossed exactly, retries, timeouts, file input, a driver killed with SIGKILL and
resumed, cancel, and refusals that leave nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_helpers import SCORE_BATCH, STEADY, children_of, write_script
from fixtures.deploy_support import wait_for
from sklearn.linear_model import Ridge

from jupyter_mldeploy.batch import BatchJob, FileInput, JobFailed, ParallelRunConfig, list_jobs
from jupyter_mldeploy.errors import Conflict, InvalidArgument, NotFound
from jupyter_mldeploy.workspace import Workspace

pytestmark = pytest.mark.usefixtures("no_stray_workers")

#: run() returns the ids it got, except ids ending in 7 within each 50 (fewer elements: failed items).
PARTIAL = textwrap.dedent('''
    def init():
        pass

    def run(mini_batch):
        return [i for i in mini_batch["id"] if i % 50 != 7]
''')

#: run() raises for mini-batches holding a poisoned id, every try.
POISON = textwrap.dedent('''
    POISONED = {13, 250}

    def init():
        pass

    def run(mini_batch):
        if POISONED & set(mini_batch["id"]):
            raise ValueError("poisoned row")
        return mini_batch["id"].tolist()
''')

#: The first try of every mini-batch fails (a marker per mini-batch, seen by every worker process).
FLAKY = textwrap.dedent('''
    import os

    def init():
        pass

    def run(mini_batch):
        marker = os.path.join(os.environ["MARKERS"], str(mini_batch["id"].iloc[0]))
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first try fails")
        return mini_batch["id"].tolist()
''')

#: The mini-batch holding id 0 sleeps far past the timeout; the others return their ids.
SLOW_FIRST = textwrap.dedent('''
    import time

    def init():
        pass

    def run(mini_batch):
        if 0 in set(mini_batch["id"]):
            time.sleep(60)
        return mini_batch["id"].tolist()
''')


def _config(script: Path, error_threshold: int = 0, **kwargs: object) -> ParallelRunConfig:
    kwargs.setdefault("mini_batch_size", "1KB")
    kwargs.setdefault("process_count_per_node", 1)
    return ParallelRunConfig(str(script), error_threshold, kwargs.pop("output_action", "append_row"), **kwargs)


def _ids_csv(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": np.arange(rows), "x": np.linspace(0, 1, rows)}).to_csv(path, index=False)
    return path


def _output_ids(job: BatchJob) -> list[int]:
    return np.loadtxt(job.get_details()["outputFile"], dtype=int, ndmin=1).tolist()


def test_predictions_equal_in_kernel(scored_workspace: Workspace, diabetes: tuple[pd.DataFrame, Path, Ridge],
                                     tmp_path: Path) -> None:
    frame, _, model = diabetes
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    config = _config(write_script(tmp_path, SCORE_BATCH), mini_batch_size="4KB", process_count_per_node=2)
    job = BatchJob.submit(scored_workspace, "diabetes-batch", config, str(tmp_path / "diabetes.csv"), "diabetes",
                          tmp_path / "out")
    details = job.wait_for_completion()
    scores = np.loadtxt(tmp_path / "out" / "parallel_run_step.txt")
    np.testing.assert_allclose(scores, model.predict(frame.drop(columns="id")), rtol=1e-12)
    assert details["items"] == {"total": len(frame), "succeeded": len(frame), "failed": 0}
    assert details["miniBatches"]["total"] == details["miniBatches"]["done"] > 5
    assert details["state"] == "Completed" and details["retries"] == 0 and details["rowsPerSecond"] > 0
    # Recorded in the workspace and listed, with the model it used.
    assert job.folder.path.parent == scored_workspace.path / "jobs" / "diabetes-batch"
    assert details["models"] == ["diabetes:1"]
    [row] = list_jobs(scored_workspace)
    assert (row["id"], row["state"], row["progress"], row["items"]) == (job.id, "Completed", 1.0, len(frame))
    logs = job.get_logs()
    assert "Output:" in logs
    # Each worker loaded the script and called init() once, as it started, before the driver planned.
    assert logs.count("entry script loaded and init() done") == 2
    assert logs.index("Backend: loky, 2 worker processes") < logs.index("Planned")
    # The part files stay in the job folder (each written whole by its worker: no temporary left); only the
    # whole output is in the output folder.
    assert sorted(p.name for p in (job.folder.path / "parts").iterdir()) == [
        f"{i:06d}.txt" for i in range(details["miniBatches"]["total"])]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["parallel_run_step.txt"]


def test_parquet_and_json_lines_in_one_folder(scored_workspace: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = pd.DataFrame({"id": np.arange(400), "x": np.linspace(0, 1, 400)})
    frame.iloc[:200].to_parquet(data / "a.parquet", row_group_size=50)
    frame.iloc[200:].to_json(data / "b.jsonl", orient="records", lines=True)
    job = BatchJob.submit(scored_workspace, "mixed", _config(write_script(tmp_path, POISON.replace("{13, 250}", "set()"))),
                          str(data), None, tmp_path / "out")
    job.wait_for_completion()
    assert _output_ids(job) == list(range(400))  # file order, then row order


def test_file_input_sees_the_web_service_layout(scored_workspace: Workspace, tmp_path: Path) -> None:
    files = tmp_path / "images"
    files.mkdir()
    for i in range(7):
        (files / f"img{i}.bin").write_bytes(b"x" * i)
    script = write_script(tmp_path, textwrap.dedent('''
        import os

        def init():
            global listing
            listing = sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"]))

        def run(mini_batch):
            return [f"{os.path.basename(p)} {os.path.getsize(p)} {','.join(listing)} {os.environ['COLOR']} "
                    f"{os.environ['AZUREML_MODEL_DIR'].endswith('azureml-models/diabetes/1')} "
                    f"{os.getcwd() == os.environ['AML_APP_ROOT']} {len(mini_batch)}" for p in mini_batch]
    '''))
    config = _config(script, mini_batch_size=3, environment_variables={"COLOR": "blue"})
    job = BatchJob.submit(scored_workspace, "files", config, FileInput(str(files)), ["diabetes:1"], tmp_path / "out")
    details = job.wait_for_completion()
    lines = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert lines == [f"img{i}.bin {i} diabetes_ridge.pkl blue True True {3 if i < 6 else 1}" for i in range(7)]
    assert details["miniBatches"]["total"] == 3 and details["input"]["kind"] == "files"


def test_retried_tries_give_each_row_once(scored_workspace: Workspace, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    config = _config(write_script(tmp_path, FLAKY), run_max_try=2, environment_variables={"MARKERS": str(markers)})
    job = BatchJob.submit(scored_workspace, "flaky", config, str(_ids_csv(tmp_path, 300)), None, tmp_path / "out")
    details = job.wait_for_completion()
    assert _output_ids(job) == list(range(300))
    assert details["retries"] == details["miniBatches"]["total"] == len(list(markers.iterdir()))
    assert "first try fails" in job.get_logs() and "retrying" in job.get_logs()


def test_error_threshold_fails_the_job_exactly_when_crossed(scored_workspace: Workspace, tmp_path: Path) -> None:
    script = write_script(tmp_path, PARTIAL)
    source = str(_ids_csv(tmp_path, 300))
    failing = [i for i in range(300) if i % 50 == 7]
    at_limit = BatchJob.submit(scored_workspace, "partial", _config(script, error_threshold=len(failing)), source,
                               None, tmp_path / "ok")
    over = BatchJob.submit(scored_workspace, "partial", _config(script, error_threshold=len(failing) - 1), source,
                           None, tmp_path / "over")
    details = at_limit.wait_for_completion()
    assert details["items"]["failed"] == len(failing)
    assert _output_ids(at_limit) == [i for i in range(300) if i not in failing]
    with pytest.raises(JobFailed, match=f"error_threshold={len(failing) - 1} crossed: {len(failing)} input items failed"):
        over.wait_for_completion()
    assert over.state == "Failed"
    assert not (tmp_path / "over").exists()  # no partial output


def test_failed_mini_batches_count_against_allowed_failed(scored_workspace: Workspace, tmp_path: Path) -> None:
    script = write_script(tmp_path, POISON)
    source = str(_ids_csv(tmp_path, 300))
    strict = BatchJob.submit(scored_workspace, "poison", _config(script, -1, run_max_try=2, allowed_failed_count=1),
                             source, None, tmp_path / "strict")
    lenient = BatchJob.submit(scored_workspace, "poison", _config(script, -1, run_max_try=2, allowed_failed_percent=50),
                              source, None, tmp_path / "lenient")
    with pytest.raises(JobFailed, match="allowed_failed_count=1 crossed: 2 mini-batches failed"):
        strict.wait_for_completion()
    assert not (tmp_path / "strict").exists()
    details = lenient.wait_for_completion()
    assert details["miniBatches"]["failed"] == 2 and details["retries"] == 2
    assert all("poisoned row" in e for e in details["errors"].values())
    written = set(_output_ids(lenient))
    assert 13 not in written and 250 not in written
    assert len(written) == len(_output_ids(lenient)) == 300 - details["items"]["failed"]


def test_a_slow_run_times_out_and_is_retried(scored_workspace: Workspace, tmp_path: Path) -> None:
    config = _config(write_script(tmp_path, SLOW_FIRST), -1, run_invocation_timeout=1, run_max_try=2,
                     output_action="summary_only")
    started = time.monotonic()
    job = BatchJob.submit(scored_workspace, "slow", config, str(_ids_csv(tmp_path, 200)), None, tmp_path / "out")
    details = job.wait_for_completion()
    assert time.monotonic() - started < 40  # two 1 s tries, not 60 s sleeps
    assert details["retries"] == 1 and details["miniBatches"]["failed"] == 1
    assert "timed out after run_invocation_timeout=1s" in details["errors"]["0"]
    # summary_only: the counts, no output file.
    assert details["outputFile"] is None and not (tmp_path / "out").exists()
    assert details["items"]["succeeded"] == 200 - details["items"]["failed"] > 0


def test_a_failing_init_fails_the_job_at_once(scored_workspace: Workspace, tmp_path: Path) -> None:
    script = write_script(tmp_path, "def init():\n    raise OSError('no model here')\n\ndef run(mini_batch):\n    return []\n")
    job = BatchJob.submit(scored_workspace, "bad-init", _config(script, run_max_try=3), str(_ids_csv(tmp_path, 100)),
                          None, tmp_path / "out")
    with pytest.raises(JobFailed) as failure:
        job.wait_for_completion()
    # One line for the faces, the traceback and the model folder listing in the error and the log.
    summary = failure.value.summary
    assert "could not be loaded or its init() raised" in summary and summary.endswith("(OSError: no model here)")
    assert "Model Directory Contents" in job.get_details()["error"] and "no model here" in job.get_logs()
    assert job.get_details()["retries"] == 0 and not (tmp_path / "out").exists()


def test_a_killed_driver_resumes_with_every_row_once(scored_workspace: Workspace, tmp_path: Path) -> None:
    config = _config(write_script(tmp_path, STEADY), process_count_per_node=2)
    job = BatchJob.submit(scored_workspace, "killed", config, str(_ids_csv(tmp_path, 3000)), None, tmp_path / "out")
    wait_for(lambda: job.get_details()["miniBatches"]["done"] >= 6, timeout=120, what="6 mini-batches done")
    driver = json.loads((job.folder.path / "driver.json").read_text())
    workers = children_of(driver["pid"])
    os.kill(driver["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while any(w.is_running() and w.status() != "zombie" for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w.pid for w in workers if w.is_running() and w.status() != "zombie"], "workers outlived the driver"
    details = job.get_details()
    assert details["state"] == "Failed" and "resume with `mldeploy batch resume" in details["error"]
    assert 6 <= details["miniBatches"]["done"] < details["miniBatches"]["total"]
    assert not (tmp_path / "out").exists()
    BatchJob.resume(scored_workspace, job.id)
    details = job.wait_for_completion()
    assert _output_ids(job) == list(range(3000))  # every row once, in order
    assert "done earlier" in job.get_logs()
    with pytest.raises(Conflict, match="already completed"):
        BatchJob.resume(scored_workspace, job.id)


def test_cancel_then_resume(scored_workspace: Workspace, tmp_path: Path) -> None:
    config = _config(write_script(tmp_path, STEADY))
    job = BatchJob.submit(scored_workspace, "cancelled", config, str(_ids_csv(tmp_path, 1500)), None, tmp_path / "out")
    with pytest.raises(Conflict, match="still running"):
        BatchJob.resume(scored_workspace, job.id)
    wait_for(lambda: job.get_details()["miniBatches"]["done"] >= 2, timeout=120, what="2 mini-batches done")
    job.cancel()
    assert job.state == "Canceled" and "resume" in job.get_details()["error"]
    assert not (tmp_path / "out").exists()
    source = tmp_path / "ids.csv"
    original, stat = source.read_bytes(), source.stat()
    source.write_bytes(original.replace(b"\n1,", b"\n9,", 1))  # same size, new content
    with pytest.raises(Conflict, match="ids.csv changed or was removed since batch job"):
        BatchJob.resume(scored_workspace, job.id)
    source.write_bytes(original)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    BatchJob.resume(scored_workspace, job.id).wait_for_completion()
    assert _output_ids(job) == list(range(1500))


def test_refusals_record_nothing(scored_workspace: Workspace, tmp_path: Path) -> None:
    script = write_script(tmp_path, STEADY)
    good = str(_ids_csv(tmp_path, 10))
    (tmp_path / "broken.parquet").write_text("not parquet")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "parallel_run_step.txt").write_text("earlier output\n")
    cases = [
        ({"inputs": str(tmp_path / "broken.parquet")}, InvalidArgument, "broken.parquet cannot be read as parquet"),
        ({"inputs": str(tmp_path / "missing.csv")}, InvalidArgument, "does not exist"),
        ({"backend": "spark"}, InvalidArgument, "backend must be 'loky'"),
        ({"scheduler": "tcp://127.0.0.1:1"}, InvalidArgument, "scheduler is for backend='dask'"),
        ({"backend": "dask", "scheduler": "127.0.0.1:8786"}, InvalidArgument, "scheduler must be 'local' or"),
        ({"config": _config(script, node_count=2)}, InvalidArgument, "node_count must be 1"),
        ({"config": _config(tmp_path / "nope.py")}, InvalidArgument, "entry_script .*nope.py' does not exist"),
        ({"config": _config(script, mini_batch_size="1MB"), "inputs": FileInput(good)}, InvalidArgument,
         "number of files"),
        ({"models": "ghost:3"}, NotFound, "ghost"),
        ({"name": "bad name"}, InvalidArgument, "Invalid job name"),
        ({"output_dir": taken}, InvalidArgument, "parallel_run_step.txt already exists"),
        ({"config": {"entry_script": "x"}}, InvalidArgument, "config must be a ParallelRunConfig"),
    ]
    for changes, error, message in cases:
        arguments = {"name": "refused", "config": _config(script), "inputs": good, "models": None,
                     "output_dir": tmp_path / "out", **changes}
        with pytest.raises(error, match=message):
            BatchJob.submit(scored_workspace, **arguments)
    assert not (scored_workspace.path / "jobs").exists() or not any((scored_workspace.path / "jobs").rglob("job.json"))
    assert not (tmp_path / "out").exists()
    assert (taken / "parallel_run_step.txt").read_text() == "earlier output\n"
    with pytest.raises(NotFound, match="No batch job 'nope'"):
        BatchJob(scored_workspace, "nope")


def test_a_killed_worker_fails_the_job_and_resume_finishes_it(scored_workspace: Workspace, tmp_path: Path) -> None:
    config = _config(write_script(tmp_path, STEADY), process_count_per_node=2)
    job = BatchJob.submit(scored_workspace, "worker-killed", config, str(_ids_csv(tmp_path, 2000)), None,
                          tmp_path / "out")
    wait_for(lambda: job.get_details()["miniBatches"]["done"] >= 3, timeout=120, what="3 mini-batches done")
    driver = json.loads((job.folder.path / "driver.json").read_text())
    [worker, *_] = [p for p in children_of(driver["pid"]) if "LokyProcess" in " ".join(p.cmdline())]
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(JobFailed, match="A worker stopped while running mini-batch .*TerminatedWorkerError.*resume with `mldeploy batch resume"):
        job.wait_for_completion(timeout=60)
    assert not (tmp_path / "out").exists()
    BatchJob.resume(scored_workspace, job.id).wait_for_completion()
    assert _output_ids(job) == list(range(2000))


def test_quoted_line_breaks_in_a_csv_give_every_row_once(scored_workspace: Workspace, tmp_path: Path) -> None:
    """Fields holding line breaks, commas and quotes inside quotes: the driver cuts between rows, never
    inside a quoted field, and run() sees each row whole."""
    rows = 1500
    notes = [f'note {i}\nsecond line, "quoted"\r\nthird' if i % 2 else f"n{i}" for i in range(rows)]
    path = tmp_path / "notes.csv"
    pd.DataFrame({"id": np.arange(rows), "note": notes}).to_csv(path, index=False)
    script = write_script(tmp_path, textwrap.dedent('''
        def init():
            pass

        def run(mini_batch):
            assert all(n.count("\\n") == 2 for n in mini_batch["note"] if not n.startswith("n")), "a cut row"
            return mini_batch["id"].tolist()
    '''))
    job = BatchJob.submit(scored_workspace, "quoted", _config(script, process_count_per_node=2), str(path), None,
                          tmp_path / "out")
    details = job.wait_for_completion()
    assert details["miniBatches"]["total"] > 20 and details["items"] == {"total": rows, "succeeded": rows, "failed": 0}
    assert _output_ids(job) == list(range(rows))


def test_an_environment_this_interpreter_satisfies_runs_and_one_it_does_not_is_refused(
    scored_workspace: Workspace, tmp_path: Path
) -> None:
    """Workers run this interpreter: an environment it satisfies is accepted; one it does not (a pinned
    version that is not installed, a package that is not installed) is refused before anything is
    recorded, with each unmet requirement named."""
    import sklearn

    from jupyter_mldeploy.environment import Environment

    satisfied = Environment.from_pip_requirements("batch-ok", _requirements(tmp_path, f"scikit-learn=={sklearn.__version__}\npandas"))
    uses_sklearn = textwrap.dedent('''
        import sklearn

        def init():
            pass

        def run(mini_batch):
            return [f"{i} {sklearn.__version__}" for i in mini_batch["id"]]
    ''')
    config = _config(write_script(tmp_path, uses_sklearn), environment=satisfied)
    job = BatchJob.submit(scored_workspace, "env-ok", config, str(_ids_csv(tmp_path, 50)), ["diabetes:1"],
                          tmp_path / "out")
    assert job.wait_for_completion()["state"] == "Completed"
    lines = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert lines == [f"{i} {sklearn.__version__}" for i in range(50)]
    record = json.loads((next((scored_workspace.path / "jobs" / "env-ok").iterdir()) / "job.json").read_text())
    assert record["config"]["environment"]["name"] == "batch-ok"

    unmet = Environment.from_pip_requirements(
        "batch-old", _requirements(tmp_path, "scikit-learn==0.24.2\nno-such-package-mldeploy>=1"))
    before = sorted(p.name for p in (scored_workspace.path / "jobs").rglob("*"))
    with pytest.raises(InvalidArgument) as refused:
        BatchJob.submit(scored_workspace, "env-old", _config(write_script(tmp_path, PARTIAL), environment=unmet),
                        str(_ids_csv(tmp_path, 50)), ["diabetes:1"], tmp_path / "out2")
    message = str(refused.value)
    assert f"scikit-learn==0.24.2 (installed {sklearn.__version__})" in message
    assert "no-such-package-mldeploy>=1 (not installed)" in message and "environment=None" in message
    assert sorted(p.name for p in (scored_workspace.path / "jobs").rglob("*")) == before
    assert not (tmp_path / "out2").exists()


def _requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"req-{abs(hash(text))}.txt"
    path.write_text(text + "\n")
    return path
