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
    finally:
        service.delete()
    inputs = service.get_collected_data("inputs")
    predictions = service.get_collected_data("predictions")
    assert len(inputs) == len(X) and predictions["value"].tolist() == model.predict(X).tolist()
    assert set(inputs["$aml_dc_correlation_id"]) == set(predictions["$aml_dc_correlation_id"])


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


def _collect_in_process(workspace, monkeypatch, service: str, rows: np.ndarray) -> None:
    """Collect ``rows`` as a service's worker does (same module, same files), flushed at once."""
    from jupyter_mldeploy.server import data_collector

    monkeypatch.setenv(data_collector.ENABLED_VARIABLE, "true")
    monkeypatch.setenv(data_collector.FOLDER_VARIABLE, str(workspace.path / "modeldata" / service))
    monkeypatch.setenv(data_collector.SERVICE_VARIABLE, service)
    collector = ModelDataCollector("m", designation="inputs", feature_names=["a", "b"], model_version=3)
    for start in range(0, len(rows), 50):
        collector.collect(rows[start:start + 50])
    data_collector.flush()


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
