"""Experiments and runs: logging, files, ending, register_model lineage, storage under concurrency."""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
from click.testing import CliRunner

from jupyter_mldeploy import (
    Experiment,
    InvalidArgument,
    Model,
    NotFound,
    ResourceConfiguration,
    Run,
    Workspace,
)
from jupyter_mldeploy.cli import main
from jupyter_mldeploy.runs import OfflineRun, list_runs, show_run
from jupyter_mldeploy.workspace import LAYOUT_VERSION

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary folder: a run tracks ./outputs of the current folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_logs_metrics_tags_and_files(workspace: Workspace, in_tmp: Path) -> None:
    exp = Experiment(workspace, "exp-1")
    run = exp.start_logging()
    assert (run.status, run.number, run.kind) == ("Running", 1, "interactive")
    assert run.id.startswith("exp-1_")
    run.log("loss", 0.9)
    run.log("loss", 0.5)
    run.log("accuracy", 0.93)
    run.log_list("errors", [1, 2, 3])
    run.log_row("roc", fpr=0.0, tpr=0.1)
    run.log_row("roc", fpr=0.5, tpr=0.9)
    run.log_table("confusion", {"actual": [0, 1], "predicted": [0, 0]})
    run.tag("stage", "dev")
    run.set_tags({"team": "vision", "n": 3})
    (in_tmp / "notes.txt").write_text("hello")
    assert run.upload_file("logs/notes.txt", in_tmp / "notes.txt") == "logs/notes.txt"
    run.upload_file("logs/stream.bin", io.BytesIO(b"\x00\x01"))
    (in_tmp / "folder" / "sub").mkdir(parents=True)
    (in_tmp / "folder" / "sub" / "a.txt").write_text("a")
    assert run.upload_folder("data", in_tmp / "folder") == ["data/sub/a.txt"]
    (in_tmp / "outputs").mkdir()
    (in_tmp / "outputs" / "result.json").write_text("{}")
    run.complete()

    again = Run(exp, run.id)  # read back from the workspace, as another process would
    assert again.status == "Completed"
    assert again.get_metrics() == {
        "loss": [0.9, 0.5],
        "accuracy": 0.93,
        "errors": [1, 2, 3],
        "roc": {"fpr": [0.0, 0.5], "tpr": [0.1, 0.9]},
        "confusion": {"actual": [0, 1], "predicted": [0, 0]},
    }
    assert again.get_metrics("loss") == {"loss": [0.9, 0.5]}
    assert again.get_tags() == {"stage": "dev", "team": "vision", "n": "3"}
    # the tracked ./outputs folder is uploaded when the run completes
    assert again.get_file_names() == [
        "data/sub/a.txt", "logs/notes.txt", "logs/stream.bin", "outputs/result.json",
    ]
    out = again.download_file("logs/stream.bin", in_tmp / "down")
    assert Path(out).read_bytes() == b"\x00\x01"
    details = again.get_details()
    assert details["status"] == "Completed" and details["experimentName"] == "exp-1" and details["number"] == 1
    assert details["endTimeUtc"] is not None and details["durationSeconds"] >= 0
    assert exp.start_logging(outputs=False).number == 2
    assert [r.number for r in exp.get_runs()] == [2, 1]
    assert [r.number for r in exp.get_runs(status="Completed")] == [1]
    assert [e.name for e in Experiment.list(workspace)] == ["exp-1"]


def test_numpy_values_log_and_bad_values_are_refused(workspace: Workspace, in_tmp: Path) -> None:
    np = pytest.importorskip("numpy")
    run = Experiment(workspace, "np").start_logging()
    run.log("f", np.float32(0.25))
    run.log_list("arr", np.arange(3))
    assert run.get_metrics() == {"f": 0.25, "arr": [0, 1, 2]}
    with pytest.raises(InvalidArgument, match="Cannot log object"):
        run.log("x", object())
    with pytest.raises(InvalidArgument, match="log_list"):
        run.log("x", [1, 2])
    with pytest.raises(InvalidArgument, match="dict of lists"):
        run.log_table("t", {"a": 1})
    with pytest.raises(InvalidArgument, match="non-empty string"):
        run.log("", 1)
    with pytest.raises(InvalidArgument, match="keyword arguments"):
        run.log_row("r")


def test_log_image_from_file_and_from_a_figure(workspace: Workspace, in_tmp: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Experiment(workspace, "img").start_logging()
    figure, ax = plt.subplots()
    ax.plot([1, 2, 3])
    run.log_image("curve", plot=figure)
    plt.close(figure)
    (in_tmp / "pic.jpg").write_bytes(b"\xff\xd8fake")
    run.log_image("photo", path=in_tmp / "pic.jpg")
    assert run.get_metrics() == {"curve": "images/curve.png", "photo": "images/photo.jpg"}
    stored = Path(run.download_file("images/curve.png", in_tmp))
    assert stored.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidArgument, match="either path= .* or plot="):
        run.log_image("both", path=in_tmp / "pic.jpg", plot=figure)
    with pytest.raises(InvalidArgument, match="matplotlib figure"):
        run.log_image("bad", plot="not a figure")


def test_context_manager_completes_and_an_exception_fails_with_the_traceback(workspace: Workspace, in_tmp: Path) -> None:
    exp = Experiment(workspace, "ctx")
    with exp.start_logging() as ok:
        ok.log("x", 1)
    assert ok.status == "Completed"
    with pytest.raises(ZeroDivisionError):
        with exp.start_logging() as bad:
            bad.log("x", 2)
            1 / 0  # noqa: B018 - the failure under test
    assert bad.status == "Failed"
    error = bad.get_details()["error"]
    assert "Traceback (most recent call last)" in error and "ZeroDivisionError: division by zero" in error


def test_end_states_cancel_fail_and_their_order(workspace: Workspace, in_tmp: Path) -> None:
    exp = Experiment(workspace, "ends")
    canceled = exp.start_logging()
    canceled.cancel()
    canceled.complete()  # an ended run keeps its status
    assert canceled.status == "Canceled"
    failed = exp.start_logging()
    failed.fail(error_details=ValueError("bad data"), error_code="UserError")
    assert failed.status == "Failed" and "[UserError]" in failed.get_details()["error"]
    assert "ValueError: bad data" in failed.get_details()["error"]
    late = exp.start_logging()
    late.complete()
    late.fail("a failure found after completion wins")
    assert late.status == "Failed"
    assert [r.status for r in exp.get_runs()] == ["Failed", "Failed", "Canceled"]
    with pytest.raises(InvalidArgument, match="Unknown run status"):
        list(exp.get_runs(status="Done"))


def test_seed_register_model_block_runs_with_only_its_imports_changed(workspace: Workspace, in_tmp: Path) -> None:
    """The seed's v1 training-run block ("how and where to deploy"), imports changed only."""
    from sklearn.linear_model import LogisticRegression

    from jupyter_mldeploy import Experiment as ExperimentV1  # was: from azureml.core import Experiment

    ws = workspace
    experiment = ExperimentV1(workspace=ws, name="myexperiment")
    run = experiment.start_logging()
    clf = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    os.makedirs("outputs", exist_ok=True)
    joblib.dump(value=clf, filename="outputs/sklearn_mnist_model.pkl")
    run.log("accuracy", 0.75)

    model = run.register_model(model_name='sklearn_mnist',
                               tags={'area': 'mnist'},
                               model_path='outputs/sklearn_mnist_model.pkl')
    print(model.name, model.id, model.version, sep='\t')

    run.complete()
    assert (model.name, model.version, model.tags) == ("sklearn_mnist", 1, {"area": "mnist"})
    assert joblib.load(model.path).predict([[3.0]]).tolist() == [1]


def test_register_model_links_model_and_run_both_ways(workspace: Workspace, in_tmp: Path) -> None:
    run = Experiment(workspace, "lineage").start_logging()
    (in_tmp / "outputs").mkdir()
    (in_tmp / "outputs" / "model.pkl").write_bytes(b"weights")
    (in_tmp / "outputs" / "folder").mkdir()
    (in_tmp / "outputs" / "folder" / "w.bin").write_bytes(b"w")
    # before the run ends: ./outputs is uploaded into the run first
    model = run.register_model("lin", "outputs/model.pkl", description="from a run")
    assert (model.run_id, model.experiment_name) == (run.id, "lineage")
    folder_model = run.register_model("lin-folder", "outputs/folder")
    assert folder_model.files == ["folder/w.bin"]
    run.upload_file("lin-default", in_tmp / "outputs" / "model.pkl")
    assert run.register_model("lin-default").files == ["lin-default"]  # model_path defaults to the name (v1)
    run.complete()

    stored = Model(workspace, "lin")
    assert (stored.run_id, stored.experiment_name) == (run.id, "lineage")
    assert stored.serialize()["runId"] == run.id
    assert {m.id for m in Model.list(workspace, run_id=run.id)} == {"lin:1", "lin-folder:1", "lin-default:1"}
    assert {m.id for m in run.get_registered_models()} == {"lin:1", "lin-folder:1", "lin-default:1"}
    frame = Model.list_frame(workspace, name="lin")
    assert frame.loc[0, "run_id"] == run.id
    assert sorted(list_runs(workspace)[0]["models"]) == ["lin-default:1", "lin-folder:1", "lin:1"]
    assert {m["id"] for m in show_run(workspace, run.id)["models"]} == {"lin:1", "lin-folder:1", "lin-default:1"}
    # a model registered outside any run has no run
    plain = Model.register(workspace, in_tmp / "outputs" / "model.pkl", "plain")
    assert plain.run_id is None and plain.experiment_name is None
    with pytest.raises(NotFound, match=r"has no file or folder 'outputs/missing.pkl'.*outputs/model.pkl"):
        run.register_model("x", "outputs/missing.pkl")


def test_register_model_from_a_run_keeps_samples_and_resources(workspace: Workspace, in_tmp: Path) -> None:
    run = Experiment(workspace, "lineage").start_logging()
    (in_tmp / "outputs").mkdir()
    (in_tmp / "outputs" / "model.pkl").write_bytes(b"weights")
    model = run.register_model(
        "sampled", "outputs/model.pkl", model_framework="ScikitLearn",
        sample_input=[[1.0, 2.0], [3.0, 4.0]], sample_output=[0.5, 0.7],
        resource_configuration=ResourceConfiguration(cpu=0.5, memory_in_gb=1),
    )
    stored = Model(workspace, "sampled")
    assert stored.resource_configuration.cpu == 0.5 and stored.resource_configuration.memory_in_gb == 1
    assert stored.sample_input == {"data": [[1.0, 2.0], [3.0, 4.0]]}
    assert stored.sample_output is not None and model.run_id == run.id
    with pytest.raises(InvalidArgument, match="sample_output"):
        run.register_model("sampled", "outputs/model.pkl", sample_output=[1.0])
    assert [m.version for m in Model.list(workspace, name="sampled")] == [1]  # the refused one stored nothing
    run.complete()


def test_offline_context_prints_and_refuses_to_register(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run.get_context()
    assert isinstance(run, OfflineRun) and run.offline and run.id.startswith("OfflineRun_")
    run.log("accuracy", 0.5)
    run.log("accuracy", 0.6)
    run.tag("a", "b")
    run.complete()
    assert "Attempted to log scalar metric accuracy:\n0.5" in capsys.readouterr().out
    assert run.get_metrics() == {"accuracy": [0.5, 0.6]}
    with pytest.raises(InvalidArgument, match="offline run cannot register"):
        run.register_model("m", "outputs/m.pkl")
    with pytest.raises(InvalidArgument, match="no experiment"):
        run.experiment  # noqa: B018
    with pytest.raises(InvalidArgument, match="Not inside a run"):
        Run.get_context(allow_offline=False)


def test_context_inside_a_pipeline_is_that_run(
    workspace: Workspace, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = Experiment(workspace, "ctx-env").start_logging()
    monkeypatch.setenv("MLDEPLOY_RUN_ID", started.id)
    monkeypatch.setenv("MLDEPLOY_RUN_WORKSPACE", str(workspace.path))
    inside = Run.get_context()
    assert inside == started and not inside.offline
    inside.log("from-inside", 1)
    assert started.get_metrics() == {"from-inside": 1}
    monkeypatch.setenv("MLDEPLOY_RUN_ID", "ctx-env_1_deadbeef")
    with pytest.raises(NotFound, match="ctx-env_1_deadbeef"):
        Run.get_context()


def test_bad_names_and_unknown_ids_are_clear_errors(workspace: Workspace, in_tmp: Path) -> None:
    with pytest.raises(InvalidArgument, match="Invalid experiment name 'bad name'"):
        Experiment(workspace, "bad name")
    with pytest.raises(InvalidArgument, match="at most 200"):
        Experiment(workspace, "x" * 201)
    with pytest.raises(InvalidArgument, match="needs a jupyter_mldeploy Workspace"):
        Experiment("ws", "ok")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="Run 'nope_1_abc' not found .*mldeploy run list"):
        Run.get(workspace, "nope_1_abc")
    with pytest.raises(InvalidArgument, match="Invalid run id '../etc'"):
        Run.get(workspace, "../etc")
    run = Experiment(workspace, "mine").start_logging()
    with pytest.raises(NotFound, match="belongs to experiment 'mine', not 'other'"):
        Run(Experiment(workspace, "other"), run.id)
    with pytest.raises(InvalidArgument, match="relative path inside the run"):
        run.upload_file("../escape.txt", io.BytesIO(b"x"))
    with pytest.raises(InvalidArgument, match="relative path inside the run"):
        run.upload_file("/abs.txt", io.BytesIO(b"x"))
    with pytest.raises(NotFound, match="not a file"):
        run.upload_file("a.txt", in_tmp / "missing.txt")
    with pytest.raises(NotFound, match=r"has no file 'nope.txt' \(its files: none\)"):
        run.download_file("nope.txt")
    with pytest.raises(NotFound, match="Experiment 'missing' not found .*experiments: mine, other"):
        list_runs(workspace, "missing")
    with pytest.raises(NotFound, match="logged a metric 'r2'"):
        Experiment(workspace, "mine").compare("r2")


def test_compare_and_plot_a_metric_across_runs(workspace: Workspace, in_tmp: Path) -> None:
    exp = Experiment(workspace, "cmp")
    for value in (0.5, 0.8):
        with exp.start_logging() as run:
            run.log("r2", 0.1)
            run.log("r2", value)  # the last value is compared
    with exp.start_logging() as silent:
        silent.log("other", 1)
    frame = exp.compare("r2")
    assert list(frame.columns) == ["run_id", "number", "status", "r2"]
    assert frame["number"].tolist() == [1, 2, 3]
    assert frame["r2"].tolist()[:2] == [0.5, 0.8] and math.isnan(frame["r2"].tolist()[2])
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = exp.plot("r2")
    assert ax.get_ylabel() == "r2" and list(ax.lines[0].get_ydata()[:2]) == [0.5, 0.8]
    assert "matplotlib.pyplot" in sys.modules


def test_a_release_0_1_workspace_migrates_on_open(tmp_path: Path, in_tmp: Path) -> None:
    """The fixture was written by release 0.1 (layout 1): opening it adds the run tables and model columns."""
    folder = tmp_path / "old"
    shutil.copytree(FIXTURES / "workspace_0_1", folder)
    with sqlite3.connect(folder / "registry.sqlite") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()[0] == "1"
    ws = Workspace(folder)
    with ws.connect() as conn:
        assert int(conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()[0]) == LAYOUT_VERSION
    old = Model(ws, "diabetes")
    assert old.version == 1 and old.run_id is None
    run = Experiment(ws, "after-migration").start_logging()
    run.upload_file("outputs/model.pkl", io.BytesIO(b"m"))
    assert run.register_model("diabetes", "outputs/model.pkl").version == 2
    assert Model(ws, "diabetes").run_id == run.id
    Workspace(folder)  # opening again is a no-op


def _log_many(folder: str, experiment: str, count: int, queue: multiprocessing.Queue) -> None:
    run = Experiment(Workspace(folder), experiment).start_logging(outputs=False)
    for i in range(count):
        run.log("step", i)
        if i % 20 == 0:
            run.tag("at", i)
    run.complete()
    queue.put(run.id)


def _refresh_many(folder: str, stop_after: float, queue: multiprocessing.Queue) -> None:
    ws = Workspace(folder)
    deadline = time.monotonic() + stop_after
    refreshes = 0
    while time.monotonic() < deadline:
        for row in list_runs(ws):
            show_run(ws, row["id"])
        refreshes += 1
    queue.put(refreshes)


def test_two_processes_log_at_once_while_a_panel_refreshes(workspace: Workspace) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    writers = [
        context.Process(target=_log_many, args=(str(workspace.path), "shared", 150, queue)) for _ in range(2)
    ]
    reader = context.Process(target=_refresh_many, args=(str(workspace.path), 3.0, queue))
    for process in (*writers, reader):
        process.start()
    for process in (*writers, reader):
        process.join(60)
        assert process.exitcode == 0
    results = [queue.get(timeout=5) for _ in range(3)]
    run_ids = [r for r in results if isinstance(r, str)]
    assert len(run_ids) == 2 and [r for r in results if isinstance(r, int)][0] > 0
    runs = list(Experiment(workspace, "shared").get_runs())
    assert sorted(r.number for r in runs) == [1, 2]
    for run in runs:
        assert run.status == "Completed"
        assert run.get_metrics()["step"] == list(range(150))
        assert run.get_tags() == {"at": "140"}


def test_a_run_whose_process_was_killed_reads_failed(workspace: Workspace, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from jupyter_mldeploy import Experiment, Workspace\n"
        "run = Experiment(Workspace(sys.argv[1]), 'doomed').start_logging(outputs=False)\n"
        "run.log('started', 1)\n"
        "print(run.id, flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(workspace.path)], stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        run = Run.get(workspace, run_id)
        assert run.status == "Running"  # alive: another process reading it does not end it
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert run.status == "Failed"
    assert f"pid {proc.pid}" in run.get_details()["error"]
    assert list_runs(workspace)[0]["status"] == "Failed"


# -- CLI --------------------------------------------------------------------------------------------------


def test_cli_register_from_a_run_and_list_and_show_runs(workspace: Workspace, in_tmp: Path) -> None:
    run = Experiment(workspace, "myexperiment").start_logging()
    run.log("accuracy", 0.91)
    run.upload_file("outputs/x.pkl", io.BytesIO(b"model"))
    run.complete()
    cli = CliRunner()
    ws = ["-w", str(workspace.path)]
    result = cli.invoke(main, ["model", "register", "-n", "sklearn_mnist", "--asset-path", "outputs/x.pkl",
                               "--experiment-name", "myexperiment", "--run-id", run.id, "-o", "json", *ws])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["runId"], data["experimentName"], data["id"]) == (run.id, "myexperiment", "sklearn_mnist:1")

    wrong = cli.invoke(main, ["model", "register", "-n", "m", "--asset-path", "outputs/x.pkl",
                              "--experiment-name", "other", "--run-id", run.id, *ws])
    assert wrong.exit_code == 1 and "belongs to experiment 'myexperiment', not 'other'" in wrong.output
    unknown = cli.invoke(main, ["model", "register", "-n", "m", "--asset-path", "x", "--run-id", "nope_1_ab", *ws])
    assert unknown.exit_code == 1 and "Run 'nope_1_ab' not found" in unknown.output
    both = cli.invoke(main, ["model", "register", "-n", "m", "-p", str(in_tmp), "--run-id", run.id, *ws])
    assert both.exit_code == 2 and "--run-id" in both.output

    listed = cli.invoke(main, ["run", "list", "-e", "myexperiment", "-o", "json", *ws])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["id"], r["metrics"], r["models"]) for r in rows] == [(run.id, {"accuracy": 0.91}, ["sklearn_mnist:1"])]
    table = cli.invoke(main, ["run", "list", *ws])
    assert run.id in table.output and "Completed" in table.output
    shown = cli.invoke(main, ["run", "show", run.id, *ws])
    assert shown.exit_code == 0 and "outputs/x.pkl" in shown.output and "sklearn_mnist:1" in shown.output
    missing = cli.invoke(main, ["run", "show", "nope_1_ab", *ws])
    assert missing.exit_code == 1 and "mldeploy run list" in missing.output
    bad = cli.invoke(main, ["run", "list", "-e", "no such", *ws])
    assert bad.exit_code == 1 and "Invalid experiment name" in bad.output


def test_snapshot_directory_and_download_files(workspace: Workspace, in_tmp: Path) -> None:
    src = in_tmp / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('train')")
    (src / "pkg" / "util.py").write_text("X = 1")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    run = Experiment(workspace, "snap").start_logging(snapshot_directory=src, outputs=False)
    assert run.get_file_names() == ["snapshot/pkg/util.py", "snapshot/train.py"]
    written = run.download_files(prefix="snapshot/pkg", output_directory=in_tmp / "back")
    assert [Path(p).read_text() for p in written] == ["X = 1"]
    assert Path(written[0]) == in_tmp / "back" / "snapshot" / "pkg" / "util.py"
    with pytest.raises(NotFound, match="not a folder"):
        Experiment(workspace, "snap").start_logging(snapshot_directory=in_tmp / "missing")
    assert len(list(Experiment(workspace, "snap").get_runs())) == 1  # no run was started for the bad call
