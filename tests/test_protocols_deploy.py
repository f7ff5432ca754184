"""One deployed service answers /score, the Open Inference Protocol V2 and MLflow's /invocations with the same
predictions; each called by its own client (v1's service.run, Triton's client, MLflow's client)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from fixtures.deploy_support import source_dir, train_ridge
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig


def test_one_service_answers_three_protocols(workspace, tmp_path: Path) -> None:
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(workspace, "three-protocols", [registered], config, LocalWebservice.deploy_configuration())
    try:
        service.wait_for_deployment(timeout_sec=120)
        expected = model.predict(samples).tolist()
        root = f"http://127.0.0.1:{service.port}"
        assert (service.v2_uri, service.invocations_uri) == (f"{root}/v2", f"{root}/invocations")
        listing = service.serialize()
        assert (listing["v2Uri"], listing["invocationsUri"]) == (service.v2_uri, service.invocations_uri)

        assert service.run({"data": samples}) == pytest.approx(expected)

        rows = np.asarray(samples)
        client = triton.InferenceServerClient(url=urlsplit(service.v2_uri).netloc)
        assert client.is_model_ready("diabetes", "1")
        tensor = triton.InferInput("data", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows, binary_data=False)
        result = client.infer("diabetes", [tensor], model_version="1")
        assert result.as_numpy("output-0").tolist() == pytest.approx(expected)

        mlflow = ScoringServerClient("127.0.0.1", service.port)
        mlflow.wait_server_ready(timeout=20)
        frame = pd.DataFrame(rows, columns=[f"x{i}" for i in range(rows.shape[1])])
        predictions = mlflow.invoke(frame).get_predictions()
        assert predictions.iloc[:, 0].tolist() == pytest.approx(expected)
    finally:
        service.delete()
