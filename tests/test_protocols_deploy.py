"""One deployed service answers /score, the Open Inference Protocol V2 and MLflow's /invocations with the same
predictions; each called by its own client (v1's service.run, Triton's client, MLflow's client)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from click.testing import CliRunner
from fixtures.deploy_support import source_dir, train_ridge
from IPython.core.interactiveshell import InteractiveShell
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from traitlets.config import Config

from jupyter_mldeploy import InvalidArgument, Model
from jupyter_mldeploy.actions import call_endpoint
from jupyter_mldeploy.cli import main
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig


def test_one_service_answers_three_protocols(workspace, tmp_path: Path) -> None:
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes", sample_input=samples)
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

        # the faces: actions.call_endpoint (behind the panel and the sidebar), the CLI and %test_endpoint
        v2_body = {"inputs": [{"name": "data", "shape": list(rows.shape), "datatype": "FP64", "data": samples}]}
        call = call_endpoint("three-protocols", v2_body, workspace, protocol="v2")
        assert call.target == f"{service.v2_uri}/models/diabetes/infer"
        assert call.response.body["outputs"][0]["data"] == pytest.approx(expected)
        cli = CliRunner().invoke(main, ["service", "run", "three-protocols", "-w", str(workspace.path), "--protocol",
                                        "mlflow", "-d", json.dumps({"inputs": samples})], catch_exceptions=False)
        assert cli.exit_code == 0 and json.loads(cli.output)["predictions"] == pytest.approx(expected)
        # no body: the model's sample_input shaped as a V2 tensor
        cli = CliRunner().invoke(main, ["service", "run", "three-protocols", "-w", str(workspace.path), "--protocol",
                                        "v2"], catch_exceptions=False)
        assert cli.exit_code == 0 and json.loads(cli.output)["outputs"][0]["data"] == pytest.approx(expected)
        with pytest.raises(InvalidArgument, match="needs the service name"):
            call_endpoint(service.scoring_uri, v2_body, protocol="v2")

        shell = InteractiveShell.instance(config=_shell_config())
        try:
            shell.run_line_magic("load_ext", "jupyter_mldeploy")
            shell.run_line_magic("mldeploy_workspace", str(workspace.path))
            shell.user_ns["body"] = {"dataframe_split": {"data": samples}}
            answer = shell.run_line_magic("test_endpoint", "three-protocols --protocol mlflow --data body")
            assert answer["predictions"] == pytest.approx(expected)
            # no body: the model's sample_input, reshaped into a V2 tensor
            answer = shell.run_line_magic("test_endpoint", "three-protocols --protocol v2")
            assert answer["model_name"] == "diabetes"
            assert answer["outputs"][0]["data"] == pytest.approx(expected)
            answer = shell.run_line_magic("test_endpoint", "three-protocols --protocol mlflow")
            assert answer["predictions"] == pytest.approx(expected)
        finally:
            InteractiveShell.clear_instance()
    finally:
        service.delete()


def _shell_config() -> Config:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    return config
