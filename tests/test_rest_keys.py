"""The sidebar's keys route: the keys of a service with key auth (for its copy button), never in a listing; the
score proxy sends the key itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.deploy_support import source_dir, train_ridge
from fixtures.rest_support import API, extension_config
from tornado.httpclient import HTTPClientError

from jupyter_mldeploy import Model
from jupyter_mldeploy.deploy import LocalWebservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace

pytest_plugins = ["pytest_jupyter.jupyter_server"]

@pytest.fixture
def jp_server_config(workspace: Workspace) -> dict[str, Any]:
    """Enable the extension and point it at the test's workspace."""
    return extension_config(workspace)


async def test_keys_route_listing_and_score_proxy(jp_fetch, workspace: Workspace, tmp_path: Path) -> None:
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    keyed = Model.deploy(workspace, "keyed", [registered], config, LocalWebservice.deploy_configuration(auth_enabled=True))
    open_ = Model.deploy(workspace, "open", [registered], config, LocalWebservice.deploy_configuration())
    try:
        keyed.wait_for_deployment(timeout_sec=120)
        open_.wait_for_deployment(timeout_sec=120)
        primary, secondary = keyed.get_keys()

        response = await jp_fetch(*API, "services", "keyed", "keys")
        assert json.loads(response.body) == {"primaryKey": primary, "secondaryKey": secondary}
        assert response.headers["Cache-Control"] == "no-store"

        listing = (await jp_fetch(*API, "services")).body.decode()
        assert primary not in listing and secondary not in listing
        flags = {s["name"]: s["authEnabled"] for s in json.loads(listing)["services"]}
        assert flags == {"keyed": True, "open": False}

        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(*API, "services", "open", "keys")
        assert "auth_enabled=True" in json.loads(info.value.response.body)["message"]

        # the sidebar's test request goes through the score proxy, which sends the key
        answer = await jp_fetch(*API, "services", "keyed", "score", method="POST",
                                body=json.dumps({"data": samples}), params={"validate": "false"})
        proxied = json.loads(answer.body)
        assert proxied["status"] == 200, proxied
        assert json.loads(proxied["body"]) == pytest.approx(model.predict(samples).tolist())
    finally:
        keyed.delete()
        open_.delete()
