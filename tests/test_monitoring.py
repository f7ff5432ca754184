"""Model data collection: a real service deployed with collect_model_data=True records its inputs and
predictions in the workspace under v1's layout (Parquet parts, or CSV), joined by correlation id; off, it
records nothing; SIGTERM (a delete) flushes what is queued; collect() only queues, the writer makes the rows."""

from __future__ import annotations

import json
import pickle
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from jupyter_mldeploy import InvalidArgument, Model
from jupyter_mldeploy.deploy import DeploymentConfiguration, LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.monitoring import ModelDataCollector, read_collected_data

SCRIPT = textwrap.dedent('''
    import json, os, pickle
    import numpy as np
    from azureml.core.model import Model
    from azureml.monitoring import ModelDataCollector

    def init():
        global model, inputs_dc, predictions_dc
        with open(Model.get_model_path("iris"), "rb") as f:
            model = pickle.load(f)
        inputs_dc = ModelDataCollector("iris", designation="inputs", feature_names=["sl", "sw", "pl", "pw"])
        predictions_dc = ModelDataCollector("iris", designation="predictions", feature_names=["species"])

    def run(raw):
        data = np.array(json.loads(raw)["data"])
        result = model.predict(data)
        inputs_dc.collect(data)
        predictions_dc.collect(result)
        return result.tolist()
''')


@pytest.fixture(scope="module")
def iris() -> tuple[LogisticRegression, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y), X[::10]


@pytest.fixture
def registered(workspace, iris, tmp_path: Path) -> Model:
    model, _ = iris
    path = tmp_path / "iris.pkl"
    path.write_bytes(pickle.dumps(model))
    return Model.register(workspace, model_path=path, model_name="iris", model_framework=Model.Framework.SCIKITLEARN)


def _script(tmp_path: Path) -> InferenceConfig:
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text(SCRIPT)
    return InferenceConfig("score.py", source_directory=src)


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_collection_on_records_inputs_and_predictions_joined_and_sigterm_flushes(
    workspace, registered, iris, tmp_path: Path, file_format: str
) -> None:
    import pandas as pd

    model, X = iris
    config = LocalWebservice.deploy_configuration(
        collect_model_data=True, environment_variables={"MLDEPLOY_MODEL_DATA_FORMAT": file_format})
    service = Model.deploy(workspace, "collecting", [registered], _script(tmp_path), config)
    try:
        service.wait_for_deployment()
        for i, row in enumerate(X):
            service.run(json.dumps({"data": [row.tolist()]}), headers={"x-request-id": f"req-{i}"})
    finally:
        service.delete()  # SIGTERM: the writer flushes what is still queued (well within its 1 s interval)
    today = datetime.now(timezone.utc)
    day = workspace.path / "modeldata" / "collecting" / "iris" / "1" / "inputs" / f"{today:%Y/%m/%d}"
    if file_format == "parquet":
        assert not (day / "inputs.csv").exists()
        parts = sorted((day / "inputs.parquet").iterdir())
        assert parts and all(p.name.startswith("part-") and p.suffix == ".parquet" for p in parts)
        assert len(pd.read_parquet(day / "inputs.parquet")) == len(X)  # the parts read as one table
    else:
        assert [p.name for p in day.iterdir()] == ["inputs.csv"]
    inputs = read_collected_data(workspace, "collecting", "inputs")
    predictions = read_collected_data(workspace, "collecting", "predictions")
    assert len(inputs) == len(X) and len(predictions) == len(X)
    assert list(inputs.columns[-4:]) == ["sl", "sw", "pl", "pw"]
    assert set(inputs["$aml_request_id"]) == {f"req-{i}" for i in range(len(X))}
    assert str(inputs["$aml_dc_scoring_timestamp"].dt.tz) == "UTC"
    joined = inputs.merge(predictions, on="$aml_dc_correlation_id")
    assert len(joined) == len(X)
    joined = joined.sort_values("$aml_request_id_x", key=lambda s: s.str[4:].astype(int))
    np.testing.assert_allclose(joined[["sl", "sw", "pl", "pw"]].to_numpy(), X)
    assert joined["species"].tolist() == model.predict(X).tolist()
    assert set(inputs["$aml_service_name"]) == {"collecting"} and set(inputs["$aml_model_version"]) == {"1"}
    assert len(read_collected_data(workspace, "collecting", "inputs", since=today + timedelta(minutes=1))) == 0
    assert len(service.get_collected_data("predictions", since=today.date())) == len(X)


def test_collection_off_records_nothing_and_the_script_runs_unchanged(
    workspace, registered, iris, tmp_path: Path
) -> None:
    _, X = iris
    service = Model.deploy(workspace, "quiet", [registered], _script(tmp_path))
    try:
        service.wait_for_deployment()
        assert len(service.run(json.dumps({"data": X.tolist()}))) == len(X)
    finally:
        service.delete()
    assert not (workspace.path / "modeldata").exists()
    assert read_collected_data(workspace, "quiet", "inputs").empty


def test_no_code_service_collects_with_no_script(workspace, registered, iris) -> None:
    model, X = iris
    service = Model.deploy(workspace, "nocode-dc", [registered],
                           deployment_config=LocalWebservice.deploy_configuration(collect_model_data=True))
    try:
        service.wait_for_deployment()
        assert service.run({"data": X.tolist()}) == model.predict(X).tolist()
        proba = requests.post(f"{service.scoring_uri}?method=predict_proba", json={"data": X[:2].tolist()},
                              headers={"x-request-id": "proba-1"}, timeout=30)
        assert proba.status_code == 200, proba.text
    finally:
        service.delete()
    inputs = service.get_collected_data("inputs")
    predictions = service.get_collected_data("predictions")
    assert len(inputs) == len(X) + 2 and len(predictions) == len(X) + 2
    assert set(inputs["$aml_dc_correlation_id"]) == set(predictions["$aml_dc_correlation_id"])
    # predict's answers fill "value"; predict_proba's (other columns: another Parquet part) fill feature_0..2
    labels = predictions[predictions["$aml_request_id"] != "proba-1"]
    assert labels["value"].tolist() == model.predict(X).tolist()
    probabilities = predictions[predictions["$aml_request_id"] == "proba-1"]
    np.testing.assert_allclose(probabilities[["feature_0", "feature_1", "feature_2"]].to_numpy(),
                               model.predict_proba(X[:2]))
    assert probabilities["value"].isna().all()
    # the curated environment (no pyarrow of its own) gained pyarrow for collection: Parquet parts, not CSV
    written = sorted(p.name for p in (workspace.path / "modeldata" / "nocode-dc").rglob("*") if p.is_file())
    assert written and all(name.endswith(".parquet") for name in written), written


def test_collection_adds_pyarrow_to_a_built_environment_only() -> None:
    from importlib.metadata import version

    from jupyter_mldeploy import Environment
    from jupyter_mldeploy.deploy.plan import with_collection_packages

    env = Environment("scoring")
    env.python.conda_dependencies.add_pip_package("scikit-learn")
    extended = with_collection_packages(env)
    assert extended.name == "scoring+pyarrow" and extended.version is None
    assert f"pyarrow=={version('pyarrow')}" in extended.python.conda_dependencies.pip_packages
    assert "pyarrow" not in " ".join(env.python.conda_dependencies.pip_packages)  # the declared one is untouched
    assert with_collection_packages(extended) is extended  # already lists it
    managed = Environment("mine")
    managed.python.user_managed_dependencies = True
    assert with_collection_packages(managed) is managed  # nothing is installed into a user-managed one


def test_collector_outside_a_service_is_a_no_op_returning_correlation_headers(monkeypatch) -> None:
    monkeypatch.delenv("AML_MODEL_DC_STORAGE_ENABLED", raising=False)
    headers = ModelDataCollector("m", designation="inputs").collect([[1, 2]], user_correlation_id="abc")
    assert headers["$aml_dc_correlation_id"] == "abc" and headers["$aml_dc_scoring_timestamp"].endswith("Z")
    with pytest.raises(ValueError, match="Unknown designation 'outputs'"):
        ModelDataCollector("m", designation="outputs")


def test_configuration_and_reader_errors(workspace) -> None:
    config = DeploymentConfiguration.from_dict({"computeType": "local", "dataCollection": {"storageEnabled": True}})
    assert config.collect_model_data is True
    assert config.serialize()["dataCollection"] == {"storageEnabled": True}
    with pytest.raises(InvalidArgument, match="Invalid collect_model_data 'yes'"):
        LocalWebservice.deploy_configuration(collect_model_data="yes")
    with pytest.raises(InvalidArgument, match="Unknown designation 'outputs'"):
        read_collected_data(workspace, "svc", "outputs")
    with pytest.raises(InvalidArgument, match="since must be a datetime"):
        read_collected_data(workspace, "svc", "inputs", since="last tuesday")


def _collecting(monkeypatch, workspace, service: str, file_format: str = "") -> None:
    """Set the variables a service deployed with collect_model_data=True gives its workers."""
    from jupyter_mldeploy.server import data_collector

    monkeypatch.setenv(data_collector.ENABLED_VARIABLE, "true")
    monkeypatch.setenv(data_collector.FOLDER_VARIABLE, str(workspace.path / "modeldata" / service))
    monkeypatch.setenv(data_collector.SERVICE_VARIABLE, service)
    monkeypatch.setenv(data_collector.FORMAT_VARIABLE, file_format)


def _collect_in_process(workspace, monkeypatch, service: str, rows: np.ndarray) -> None:
    """Collect ``rows`` as a service's worker does (same module, same files), flushed at once."""
    from jupyter_mldeploy.server import data_collector

    _collecting(monkeypatch, workspace, service)
    collector = ModelDataCollector("m", designation="inputs", feature_names=["a", "b"], model_version=3)
    for start in range(0, len(rows), 50):
        collector.collect(rows[start:start + 50])
    data_collector.flush()


def test_flushes_write_parquet_parts_read_as_one_table_with_csv_of_the_same_day(workspace, monkeypatch) -> None:
    import pandas as pd

    from jupyter_mldeploy.server import data_collector

    _collecting(monkeypatch, workspace, "parts", "parquet")
    collector = ModelDataCollector("m", designation="inputs", feature_names=["a", "b"], model_version=1)
    batches = [np.arange(6.0).reshape(3, 2) + 10 * i for i in range(5)]
    for batch in batches[:3]:
        collector.collect(batch, user_correlation_id=f"c{batch[0, 0]:g}")
        data_collector.flush()
    day = workspace.path / "modeldata" / "parts" / "m" / "1" / "inputs" / f"{datetime.now(timezone.utc):%Y/%m/%d}"
    parts = sorted((day / "inputs.parquet").glob("*.parquet"))
    assert len(parts) == 3 and not list((day / "inputs.parquet").glob(".*"))  # no partial part left behind
    whole = pd.read_parquet(day / "inputs.parquet")  # what any Parquet reader sees: one table
    assert sorted(whole["a"].tolist()) == sorted(np.concatenate(batches[:3])[:, 0].tolist())
    monkeypatch.setenv(data_collector.FORMAT_VARIABLE, "csv")  # e.g. redeployed without pyarrow
    for batch in batches[3:]:
        collector.collect(batch)
    data_collector.flush()
    assert (day / "inputs.csv").is_file()
    collected = read_collected_data(workspace, "parts", "inputs")
    np.testing.assert_array_equal(collected[["a", "b"]].to_numpy(), np.concatenate(batches))
    assert collected["$aml_dc_correlation_id"].tolist()[:9] == ["c0"] * 3 + ["c10"] * 3 + ["c20"] * 3
    assert collected["$aml_dc_scoring_timestamp"].is_monotonic_increasing
    assert set(collected["$aml_model_version"]) == {"1"} and set(collected["$aml_service_name"]) == {"parts"}


def test_csv_rows_with_other_columns_go_to_a_second_file_and_ids_are_quoted(workspace, monkeypatch) -> None:
    from jupyter_mldeploy.server import data_collector

    _collecting(monkeypatch, workspace, "mixed", "csv")
    predictions = ModelDataCollector("m", designation="predictions", model_version=2)
    predictions.collect(np.array([1, 0]), user_correlation_id='a,"b"')
    data_collector.flush()
    predictions.collect(np.array([[0.25, 0.75]]), user_correlation_id="proba")  # predict_proba's columns
    predictions.collect([7], user_correlation_id="list")
    data_collector.flush()
    day = workspace.path / "modeldata" / "mixed" / "m" / "2" / "predictions" / f"{datetime.now(timezone.utc):%Y/%m/%d}"
    assert sorted(p.name for p in day.iterdir()) == ["predictions.csv", "predictions_2.csv"]
    assert (day / "predictions_2.csv").read_text().splitlines()[0].endswith(",feature_0,feature_1")
    collected = read_collected_data(workspace, "mixed", "predictions").set_index("$aml_dc_correlation_id")
    assert sorted(collected.index) == ['a,"b"', 'a,"b"', "list", "proba"]
    assert collected.loc['a,"b"', "value"].tolist() == [1, 0] and collected.loc["list", "value"] == 7
    assert collected.loc["proba", ["feature_0", "feature_1"]].tolist() == [0.25, 0.75]


def test_collect_only_queues_what_the_writer_turns_into_rows(workspace, monkeypatch, caplog) -> None:
    from jupyter_mldeploy.server import data_collector, logs

    class Unreadable:
        def tolist(self) -> list:
            raise RuntimeError("cannot be listed")

    _collecting(monkeypatch, workspace, "queued")
    collector = ModelDataCollector("m", designation="inputs", model_version=1)
    token = logs.request_id.set("req-42")
    try:
        data = np.array([[1.0, 2.0]])
        headers = collector.collect(data)
        data[0, 0] = -1.0  # changed after collect(): the row keeps what was collected
        dropped = data_collector.dropped_rows()
        assert collector.collect(Unreadable()) is not None  # no error on the request path
        rows = [{"x": 1, "y": "s"}, {"x": 2}]
        collector.collect(rows, user_correlation_id="records")
        rows.append({"x": 3})  # the list was copied too
    finally:
        logs.request_id.reset(token)
    data_collector.flush()
    assert data_collector.dropped_rows() == dropped + 1
    assert "cannot be listed" in caplog.text
    collected = read_collected_data(workspace, "queued", "inputs")
    assert headers["$aml_dc_correlation_id"] == "req-42"
    first = collected[collected["$aml_dc_correlation_id"] == "req-42"].iloc[0]
    assert first["$aml_request_id"] == "req-42"
    assert first["$aml_dc_scoring_timestamp"].isoformat(timespec="milliseconds").replace("+00:00", "Z") == \
        headers["$aml_dc_scoring_timestamp"]
    assert [first["feature_0"], first["feature_1"]] == [1.0, 2.0]
    records = collected[collected["$aml_dc_correlation_id"] == "records"]
    assert records["x"].tolist() == [1, 2] and records["y"].iloc[0] == "s"


def test_format_variable(monkeypatch, caplog) -> None:
    from jupyter_mldeploy.server import data_collector

    for value, expected in (("csv", "csv"), ("PARQUET", "parquet"), ("", "parquet"), ("xml", "parquet")):
        monkeypatch.setenv(data_collector.FORMAT_VARIABLE, value)
        assert data_collector.file_format() == expected
    assert "MLDEPLOY_MODEL_DATA_FORMAT='xml' is not one of parquet, csv" in caplog.text


def test_since_skips_earlier_days_of_both_formats(workspace, monkeypatch) -> None:
    _collect_in_process(workspace, monkeypatch, "days", np.ones((4, 2)))
    old_day = workspace.path / "modeldata" / "days" / "m" / "3" / "inputs" / "2026" / "01" / "02"
    old_day.mkdir(parents=True)
    (old_day / "inputs.csv").write_text(
        "$aml_dc_correlation_id,$aml_dc_scoring_timestamp,$aml_request_id,$aml_service_name,$aml_model_name,"
        "$aml_model_version,a,b\nold,2026-01-02T10:00:00.000Z,,days,m,3,5.0,6.0\n")
    everything = read_collected_data(workspace, "days", "inputs")
    assert len(everything) == 5 and everything["$aml_dc_correlation_id"].iloc[0] == "old"
    assert everything["$aml_request_id"].isna().iloc[0]
    assert len(read_collected_data(workspace, "days", "inputs", since="2026-01-03")) == 4


def test_psi_and_the_drift_table(workspace, monkeypatch, tmp_path: Path) -> None:
    from jupyter_mldeploy.monitoring.drift import drift_table, population_stability_index

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2000, 2))
    assert population_stability_index(reference[:, 0], rng.normal(size=2000)) < 0.02
    assert population_stability_index(reference[:, 0], rng.normal(loc=1.0, size=2000)) > 0.25
    assert np.isnan(population_stability_index([], [1.0]))
    current = np.column_stack([rng.normal(size=400), rng.normal(loc=1.5, size=400)])
    _collect_in_process(workspace, monkeypatch, "drifting", current)
    collected = read_collected_data(workspace, "drifting", "inputs")
    assert len(collected) == 400 and set(collected["$aml_model_version"]) == {"3"}
    table = drift_table(collected, {"data": reference.tolist()})  # a model's sample_input shape
    assert table["feature"].tolist() == ["a", "b"] and table["rows"].tolist() == [400, 400]
    assert table["drift"].tolist() == ["none", "large"]
    with pytest.raises(InvalidArgument, match="none of the collected features"):
        drift_table(collected, __import__("pandas").DataFrame({"x": [1.0]}))


def test_cli_data_show(workspace, monkeypatch, tmp_path: Path) -> None:
    import pandas as pd
    from click.testing import CliRunner

    from jupyter_mldeploy.cli import main

    rng = np.random.default_rng(1)
    _collect_in_process(workspace, monkeypatch, "svc", rng.normal(size=(100, 2)))
    reference = tmp_path / "reference.csv"
    pd.DataFrame(rng.normal(loc=[0.0, 2.0], size=(500, 2)), columns=["a", "b"]).to_csv(reference, index=False)
    runner = CliRunner()
    plain = runner.invoke(main, ["data", "show", "svc", "-w", str(workspace.path)])
    assert plain.exit_code == 0, plain.output
    assert "100" in plain.output and "No drift table: register the model with sample_input" in plain.output
    shown = runner.invoke(main, ["data", "show", "svc", "-w", str(workspace.path), "--reference", str(reference),
                                 "-o", "json"])
    assert shown.exit_code == 0, shown.output
    result = json.loads(shown.output)
    assert [r["rows"] for r in result["rows_per_day"]] == [100]
    assert {r["feature"]: r["drift"] for r in result["drift"]} == {"a": "none", "b": "large"}
    empty = runner.invoke(main, ["data", "show", "nothing", "-w", str(workspace.path)])
    assert empty.exit_code == 0 and "No inputs collected for service 'nothing'" in empty.output


def test_drift_panel(workspace, monkeypatch) -> None:
    import pandas as pd

    from jupyter_mldeploy.notebook.widgets.drift import DriftPanel

    empty = DriftPanel(workspace)
    assert "No service has collected data yet" in empty.message.text
    rng = np.random.default_rng(2)
    _collect_in_process(workspace, monkeypatch, "svc", np.column_stack([rng.normal(size=300),
                                                                        rng.normal(loc=2.0, size=300)]))
    panel = DriftPanel(workspace)
    assert panel.service_select.options == ("svc",) and panel.last is not None
    assert "No drift table" in panel.summary.value and bytes(panel.plot.value) == b""
    panel.set_reference(pd.DataFrame(rng.normal(size=(1000, 2)), columns=["a", "b"]))
    assert panel.last.drift["drift"].tolist() == ["none", "large"]
    assert "mldeploy-drift" in panel.summary.value and "300" in panel.summary.value
    assert bytes(panel.plot.value).startswith(b"\x89PNG")
    panel.set_reference(pd.DataFrame({"x": [1.0]}))
    assert panel.message.is_error and "none of the collected features" in panel.message.text
