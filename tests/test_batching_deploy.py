"""Batching through a real deployment: ``deploy_configuration(batching=...)`` reaches the server (issue #15).

The deployment configuration's ``batching`` becomes the server's ``MLDEPLOY_BATCH_*`` variables in
``deploy.plan.scoring_variables``; concurrent callers of the deployed service then ride in shared
``run()`` calls and each gets its own predictions.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from fixtures.deploy_support import source_dir, train_ridge

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig


def test_deployed_service_batches_concurrent_requests(workspace, tmp_path: Path) -> None:
    path, model, _ = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    ic = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    config = LocalWebservice.deploy_configuration(batching={"max_batch_size": 64, "max_latency_ms": 50})
    service = Model.deploy(workspace, "batched", [registered], ic, config)
    try:
        service.wait_for_deployment(timeout_sec=120)
        assert service.deployment_config.batching == {"maxBatchSize": 64, "maxLatencyMs": 50}
        from sklearn.datasets import load_diabetes

        rows = load_diabetes().data[:48].tolist()

        def call(index: int) -> requests.Response:
            return requests.post(service.scoring_uri, json={"data": rows[index * 3:index * 3 + 3]}, timeout=30)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(call, range(16)))
        for index, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            assert answer.json() == pytest.approx(model.predict(rows[index * 3:index * 3 + 3]).tolist())
            assert 3 <= int(answer.headers["x-ms-batch-size"]) <= 48
    finally:
        service.delete()
