"""Model data collection in a container: the workspace's modeldata/<service> folder is mounted read-write, and
the records written inside the container are read back on the host after a graceful stop."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import DiabetesSetup

from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.registry import Model

SCRIPT = textwrap.dedent('''
    import json, os
    import joblib
    import numpy as np
    from azureml.monitoring import ModelDataCollector

    def init():
        global model, inputs_dc, predictions_dc
        model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pkl"))
        inputs_dc = ModelDataCollector("diabetes", designation="inputs")
        predictions_dc = ModelDataCollector("diabetes", designation="predictions")

    def run(raw_data):
        data = np.array(json.loads(raw_data)["data"])
        result = model.predict(data)
        inputs_dc.collect(data)
        predictions_dc.collect(result)
        return result.tolist()
''')


def test_container_records_into_the_workspace(engine, env_image: str, diabetes: DiabetesSetup, tmp_path: Path,
                                              cleanup_services: list) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text(SCRIPT)
    config = LocalWebservice.deploy_configuration(runtime="docker", collect_model_data=True)
    service = Model.deploy(diabetes.workspace, "docker-collect", [diabetes.model_id],
                           InferenceConfig("score.py", source_directory=src), config)
    cleanup_services.append(service)
    service.wait_for_deployment(timeout_sec=600)
    for i, row in enumerate(diabetes.samples):
        answer = service.run(json.dumps({"data": [row]}), headers={"x-request-id": f"r{i}"})
        assert answer == [pytest.approx(diabetes.expected[i], rel=1e-12)]
    service.delete()  # docker stop: SIGTERM, the writer flushes
    inputs = service.get_collected_data("inputs")
    predictions = service.get_collected_data("predictions")
    assert sorted(inputs["$aml_request_id"]) == [f"r{i}" for i in range(len(diabetes.samples))]
    joined = inputs.merge(predictions, on="$aml_dc_correlation_id").sort_values("$aml_request_id_x")
    assert joined["value"].round(6).tolist() == [round(v, 6) for v in diabetes.expected]
    folder = diabetes.workspace.path / "modeldata" / "docker-collect" / "diabetes"
    assert [p.name for p in folder.iterdir()] == [diabetes.model_id.split(":")[1]]
