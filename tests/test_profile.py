"""Model.profile (v1 API, issue #15): a temporary process-target service, real load, stored profiles."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from fixtures.deploy_support import source_dir, train_ridge

from jupyter_mldeploy import InvalidArgument, Model
from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.deploy.profile import ModelProfile, read_input_dataset
from jupyter_mldeploy.errors import NotFound
from jupyter_mldeploy.inference_config import InferenceConfig

V1_KEYS = {
    "requestedCpu", "requestedMemoryInGB", "requestedQueriesPerSecond", "maxUtilizedMemoryInGB", "maxUtilizedCpu",
    "totalQueries", "successQueries", "successRate", "measuredQueriesPerSecond", "averageLatencyInMs",
    "latencyPercentile50InMs", "latencyPercentile90InMs", "latencyPercentile95InMs", "latencyPercentile99InMs",
    "latencyPercentile999InMs", "recommendedCpu", "recommendedMemoryInGB", "error",
}


def _servers_of(workspace) -> list[int]:
    """Scoring-server processes started for this workspace (other tests' servers may run meanwhile)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        line = " ".join(proc.info["cmdline"] or [])
        if "jupyter_mldeploy.server" in line and (str(workspace.path) in line or str(workspace.path) in (proc.info["cwd"] or "")):
            found.append(proc.pid)
    return found


def test_profile_measures_recommends_stores_and_cleans_up(workspace, tmp_path: Path, capsys) -> None:
    path, _, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    ic = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    bodies = [json.dumps({"data": [row]}) for row in samples]
    started = time.monotonic()
    profile = Model.profile(workspace, "ridge-profile", [registered], ic, bodies, description="quickstart model")
    assert profile.state == "Running"
    time.sleep(3)
    assert _servers_of(workspace), "the temporary service should be running during the profile"
    profile.wait_for_completion(show_output=True)
    took = time.monotonic() - started
    details = profile.get_details()
    assert profile.state == "Succeeded", details
    shown = capsys.readouterr().out
    assert "load level 4/4: 8 concurrent requests" in shown and "Succeeded" in shown
    assert V1_KEYS <= set(details)
    assert details["error"] is None
    assert details["totalQueries"] > 50 and details["successQueries"] == details["totalQueries"]
    assert details["successRate"] == 100.0
    assert details["measuredQueriesPerSecond"] > 10
    assert 0 < details["latencyPercentile50InMs"] <= details["latencyPercentile99InMs"] <= details["latencyPercentile999InMs"]
    assert 0 < details["maxUtilizedMemoryInGB"] < 8 and 0 <= details["maxUtilizedCpu"] <= psutil.cpu_count()
    assert details["recommendedCpu"] >= 0.1 and details["recommendedMemoryInGB"] >= details["maxUtilizedMemoryInGB"]
    assert "headroom" in details["recommendation"]
    assert [level["connections"] for level in details["levels"]] == [1, 2, 4, 8]
    assert took < 60
    # The temporary service is gone, processes included.
    assert Webservice.list(workspace) == []
    assert _servers_of(workspace) == []
    # Stored in the workspace.
    stored = Model.list_profiles(workspace)
    assert [p.name for p in stored] == ["ridge-profile"]
    assert stored[0].get_details()["recommendedCpu"] == details["recommendedCpu"]
    assert stored[0].description == "quickstart model"
    # In a notebook: a table, the recommendation and the plot (latency/throughput, CPU/memory).
    figure = stored[0].plot()
    assert len(figure.axes) == 4  # two panels, each with a second y axis
    page = stored[0]._repr_html_()
    assert "recommendedCpu" in page and "headroom" in page and "data:image/png;base64," in page


def test_profile_bad_inputs_give_clear_errors(workspace, tmp_path: Path) -> None:
    ic = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    with pytest.raises(InvalidArgument, match="input_dataset is empty"):
        Model.profile(workspace, "p", [], ic, [])
    with pytest.raises(InvalidArgument, match="holds int64 values|holds int values"):
        read_input_dataset(pd.DataFrame({"body": [1, 2]}))
    with pytest.raises(InvalidArgument, match="2 columns"):
        read_input_dataset(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(NotFound, match="does not exist"):
        read_input_dataset(tmp_path / "missing.csv")
    with pytest.raises(NotFound):
        Model.profile(workspace, "p", ["no-such-model:3"], ic, ['{"data": [[1]]}'])
    with pytest.raises(InvalidArgument, match="cpu must be a positive number"):
        Model.profile(workspace, "p", [], ic, ['{"data": [[1]]}'], cpu=0)
    with pytest.raises(NotFound, match="No model profile 'nope'"):
        ModelProfile.get(workspace, "nope")
    assert Webservice.list(workspace) == []


def test_input_dataset_forms(tmp_path: Path) -> None:
    csv_file = tmp_path / "bodies.csv"
    csv_file.write_text('body\n"{""data"": [[1, 2]]}"\n"{""data"": [[3, 4]]}"\n')
    assert read_input_dataset(csv_file) == ['{"data": [[1, 2]]}', '{"data": [[3, 4]]}']
    assert read_input_dataset(pd.DataFrame({"b": ['{"data": 1}']})) == ['{"data": 1}']
    assert read_input_dataset([{"data": [[1]]}, b'{"x": 1}']) == ['{"data": [[1]]}', '{"x": 1}']


def test_cli_profile_run_show_list(workspace, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from jupyter_mldeploy.cli import main

    path, _, samples = train_ridge(tmp_path / "train")
    Model.register(workspace, model_path=str(path), model_name="diabetes")
    source_dir(tmp_path, "score_ridge.py")
    ic = tmp_path / "inferenceconfig.json"
    ic.write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": "src"}))
    bodies = tmp_path / "bodies.csv"
    pd.DataFrame({"body": [json.dumps({"data": [row]}) for row in samples]}).to_csv(bodies, index=False)
    ws = str(workspace.path)
    ran = CliRunner().invoke(main, ["model", "profile", "run", "-n", "cli-profile", "-m", "diabetes:1", "--ic", str(ic),
                                    "--input", str(bodies), "--seconds-per-level", "0.5", "-w", ws, "-o", "json"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    details = json.loads(ran.output)
    assert details["state"] == "Succeeded" and details["successRate"] == 100.0
    shown = CliRunner().invoke(main, ["model", "profile", "show", "cli-profile", "-w", ws], catch_exceptions=False)
    assert shown.exit_code == 0 and "headroom" in shown.output and "cli-profile" in shown.output
    listed = CliRunner().invoke(main, ["model", "profile", "list", "-w", ws, "-o", "json"], catch_exceptions=False)
    assert [row["name"] for row in json.loads(listed.output)] == ["cli-profile"]
    missing = CliRunner().invoke(main, ["model", "profile", "show", "nope", "-w", ws])
    assert missing.exit_code == 1 and "No model profile 'nope'" in missing.output
    assert Webservice.list(workspace) == []


def test_profile_model_magic_shows_progress_and_returns_the_profile(tmp_path: Path, monkeypatch, capsys) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from jupyter_mldeploy.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config, history_length=0)
    try:
        shell.run_line_magic("load_ext", "jupyter_mldeploy")
        shell.run_line_magic("mldeploy_workspace", str(tmp_path / "ws"))
        workspace = Workspace(tmp_path / "ws")
        path, _, samples = train_ridge(tmp_path / "train")
        Model.register(workspace, model_path=str(path), model_name="diabetes")
        source_dir(tmp_path, "score_ridge.py")
        shell.user_ns["bodies"] = [json.dumps({"data": [row]}) for row in samples]
        with pytest.raises(UsageError, match="input_dataset is empty"):
            shell.run_line_magic("profile_model", "p --model diabetes:1 --source-dir src --input []")
        profile = shell.run_line_magic(
            "profile_model", "magic-profile --model diabetes:1 --source-dir src --input bodies --seconds-per-level 0.5")
        assert isinstance(profile, ModelProfile) and profile.state == "Succeeded"
        assert "load level 1/4" in capsys.readouterr().out
        assert "data:image/png;base64," in profile._repr_html_()
        assert Webservice.list(workspace) == []
    finally:
        InteractiveShell.clear_instance()
