"""The sidebar's runs routes (jupyter_mldeploy.jupyter_server.runs_handlers) on a real Jupyter Server.

Real runs are recorded in the test's workspace (tests/fixtures/run_support.py); requests go over HTTP on
127.0.0.1 through pytest-jupyter's ``jp_fetch``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.rest_support import API, extension_config
from fixtures.run_support import RecordedRuns, record_runs
from tornado.httpclient import HTTPClientError

from jupyter_mldeploy import Experiment
from jupyter_mldeploy.actions import MAX_RUNS
from jupyter_mldeploy.jupyter_server.runs_handlers import runs_route_table
from jupyter_mldeploy.workspace import Workspace

pytest_plugins = ["pytest_jupyter.jupyter_server"]

@pytest.fixture
def jp_server_config(workspace: Workspace) -> dict[str, Any]:
    """Enable the extension and point it at the test's workspace."""
    return extension_config(workspace)


@pytest.fixture
def recorded(workspace: Workspace, tmp_path: Path) -> RecordedRuns:
    return record_runs(workspace, tmp_path / "models")


async def get_json(jp_fetch, *path: str, **kwargs: Any) -> Any:
    response = await jp_fetch(*API, *path, **kwargs)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def error_of(jp_fetch, *path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Make a request that must fail; return its status and JSON body."""
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*API, *path, **kwargs)
    response = info.value.response
    assert response is not None
    return info.value.code, json.loads(response.body)


async def test_runs_are_listed_newest_first_with_status_parameters_metrics_and_models(jp_fetch,
                                                                                      recorded) -> None:
    data = await get_json(jp_fetch, "runs")
    assert data["experiments"] == ["diabetes", "mnist"]
    rows = data["runs"]
    assert [r["id"] for r in rows] == [recorded.running.id, recorded.failed.id, recorded.completed.id]
    assert [r["status"] for r in rows] == ["Running", "Failed", "Completed"]
    done = rows[2]
    assert done["parameters"] == {"alpha": 0.5, "fit_intercept": True}
    assert done["metrics"] == {"rmse": 55.25, "r2": 0.41}  # the last value of a series
    assert done["models"] == ["ridge:1"] and done["kind"] == "pipeline"
    assert rows[1]["error"] == "alpha must be positive"


async def test_runs_filtered_by_experiment_and_limited(jp_fetch, recorded) -> None:
    data = await get_json(jp_fetch, "runs", params={"experiment": "diabetes"})
    assert [r["id"] for r in data["runs"]] == [recorded.failed.id, recorded.completed.id]
    assert data["experiments"] == ["diabetes", "mnist"]  # the filter's choices stay whole
    data = await get_json(jp_fetch, "runs", params={"experiment": "diabetes", "limit": "1"})
    assert [r["id"] for r in data["runs"]] == [recorded.failed.id]
    data = await get_json(jp_fetch, "runs", params={"experiment": ""})
    assert len(data["runs"]) == 3


async def test_a_run_shows_every_metric_its_files_and_models(jp_fetch, recorded) -> None:
    data = await get_json(jp_fetch, "runs", recorded.completed.id)
    assert data["id"] == recorded.completed.id and data["status"] == "Completed"
    assert data["metrics"] == {"rmse": [61.2, 55.25], "r2": 0.41}  # a series whole, as get_metrics()
    assert data["files"] == ["outputs/model.txt"]
    assert [(m["name"], m["version"]) for m in data["models"]] == [("ridge", 1)]
    assert Path(data["folder"]).is_dir()


async def test_runs_of_an_empty_workspace(jp_fetch) -> None:
    assert await get_json(jp_fetch, "runs") == {"runs": [], "experiments": []}


async def test_a_run_logged_meanwhile_shows_on_the_next_read(jp_fetch, recorded) -> None:
    recorded.running.log("accuracy", 0.95)
    data = await get_json(jp_fetch, "runs", recorded.running.id)
    assert data["metrics"]["accuracy"] == [0.93, 0.95] and data["status"] == "Running"
    recorded.running.complete()
    assert (await get_json(jp_fetch, "runs", recorded.running.id))["status"] == "Completed"


async def test_unknown_run_is_404_and_says_how_to_list_runs(jp_fetch, recorded) -> None:
    code, body = await error_of(jp_fetch, "runs", "diabetes_1795803488_3ae5afe3")
    assert code == 404 and body["error"] == "NotFound"
    assert "diabetes_1795803488_3ae5afe3" in body["message"] and "run list" in body["message"]


@pytest.mark.parametrize("bad_id", ["not a run id", "..", "-leading-dash", "a" * 300])
async def test_malformed_run_id_is_400(jp_fetch, recorded, bad_id) -> None:
    code, body = await error_of(jp_fetch, "runs", bad_id)
    assert code == 400 and body["error"] == "InvalidArgument", body


async def test_unknown_experiment_is_404_listing_those_that_exist(jp_fetch, recorded) -> None:
    code, body = await error_of(jp_fetch, "runs", params={"experiment": "ghost"})
    assert code == 404 and "ghost" in body["message"] and "diabetes" in body["message"]
    assert [e.name for e in Experiment.list(recorded.completed.workspace)] == ["diabetes", "mnist"]  # not created
    code, body = await error_of(jp_fetch, "runs", params={"experiment": "bad name!"})
    assert code == 400 and body["error"] == "InvalidArgument"


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "1.5", str(MAX_RUNS + 1)])
async def test_bad_limit_is_400_naming_the_range(jp_fetch, recorded, limit) -> None:
    code, body = await error_of(jp_fetch, "runs", params={"limit": limit})
    assert code == 400 and "limit" in body["message"] and str(MAX_RUNS) in body["message"], body


@pytest.mark.parametrize("auth", [None, "token not-the-token"], ids=["no-token", "wrong-token"])
async def test_runs_routes_refuse_unauthenticated_requests(jp_fetch, recorded, auth) -> None:
    paths = ["runs", f"runs/{recorded.completed.id}"]
    patterns = [re.compile(pattern + "$") for pattern, _ in runs_route_table()]
    assert all(any(p.match(f"mldeploy/api/{path}") for path in paths) for p in patterns)  # every route tried
    for path in paths:
        with pytest.raises(HTTPClientError) as info:
            # An empty Authorization header overrides the fixture's token: no credentials at all.
            await jp_fetch(*API, path, headers={"Authorization": auth or ""})
        assert info.value.code in (401, 403), (path, info.value.code)
