"""The sidebar's REST API (jupyter_mldeploy.jupyter_server) on a real Jupyter Server, via pytest-jupyter.

Requests go over real HTTP on 127.0.0.1 to a server with the extension enabled, over a real workspace; the
service tests deploy a real scoring-server process and call it through the ``score`` proxy.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.deploy_support import source_dir, train_ridge
from fixtures.rest_support import API, extension_config
from tornado.httpclient import HTTPClientError

from jupyter_mldeploy import Environment, Model
from jupyter_mldeploy.actions.endpoint import SAMPLE_SIGNIFICANT_DIGITS, round_floats
from jupyter_mldeploy.deploy import LocalWebservice, Webservice
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.jupyter_server.handlers import route_table
from jupyter_mldeploy.notebook.widgets import EndpointTester
from jupyter_mldeploy.workspace import Workspace

pytest_plugins = ["pytest_jupyter.jupyter_server"]

@pytest.fixture
def jp_server_config(workspace: Workspace) -> dict[str, Any]:
    """Enable the extension and point it at the test's workspace."""
    return extension_config(workspace)


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


def register_text_model(ws: Workspace, tmp_path: Path, name: str, content: str, **kwargs: Any) -> Model:
    folder = tmp_path / f"{name}-{content}"
    folder.mkdir(parents=True)
    (folder / "weights.txt").write_text(content)
    return Model.register(ws, model_path=str(folder / "weights.txt"), model_name=name, **kwargs)


# One concrete request per route; the test below checks this covers the whole route table.
PROTECTED = [
    ("GET", "workspace"),
    ("GET", "models"),
    ("GET", "models/m"),
    ("GET", "models/m/1"),
    ("DELETE", "models/m/1"),
    ("POST", "models/m/1/deploy"),
    ("GET", "deploys"),
    ("DELETE", "deploys/s"),
    ("GET", "services"),
    ("GET", "services/s"),
    ("DELETE", "services/s"),
    ("POST", "services/s/reload"),
    ("GET", "services/s/logs"),
    ("POST", "services/s/score"),
    ("GET", "services/s/example"),
    ("GET", "services/s/keys"),
    ("GET", "environments"),
]


def test_protected_list_covers_every_route() -> None:
    import re

    patterns = [re.compile(pattern + "$") for pattern, _ in route_table()]
    covered = {i for i, p in enumerate(patterns) for _, path in PROTECTED if p.match(f"mldeploy/api/{path}")}
    assert covered == set(range(len(patterns)))


@pytest.mark.parametrize("auth", [None, "token not-the-token"], ids=["no-token", "wrong-token"])
async def test_every_route_refuses_unauthenticated_requests(jp_fetch, workspace, tmp_path, auth) -> None:
    # A real model and service name behind the routes, so a 403 cannot be a 404 in disguise.
    register_text_model(workspace, tmp_path, "m", "1")
    for method, path in PROTECTED:
        body = b"{}" if method == "POST" else None
        with pytest.raises(HTTPClientError) as info:
            # An empty Authorization header overrides the fixture's token: no credentials at all.
            await jp_fetch(*API, path, method=method, body=body, headers={"Authorization": auth or ""})
        assert info.value.code in (401, 403), (method, path, info.value.code)
    assert Model(workspace, "m", version=1).version == 1  # the DELETE did not go through


async def test_workspace_route_names_the_configured_folder(jp_fetch, workspace) -> None:
    data = await get_json(jp_fetch, "workspace")
    assert data["path"] == str(workspace.path)
    assert data["version"]


class TestDefaultWorkspace:
    """Without ``MLDeployExtension.workspace``: $MLDEPLOY_WORKSPACE, else the nearest .mldeploy above root_dir."""

    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        return {"ServerApp": {"jpserver_extensions": {"jupyter_mldeploy": True}}}

    async def test_nearest_mldeploy_above_the_root_dir(self, jp_fetch, jp_root_dir, tmp_path) -> None:
        # jp_root_dir is tmp_path/root_dir: a project folder holding .mldeploy/ one level up
        Workspace.create(tmp_path / ".mldeploy")
        data = await get_json(jp_fetch, "workspace")
        assert data["path"] == str((tmp_path / ".mldeploy").resolve())

    async def test_environment_variable_wins(self, jp_fetch, tmp_path, monkeypatch) -> None:
        Workspace.create(tmp_path / ".mldeploy")
        Workspace.create(tmp_path / "from-env")
        monkeypatch.setenv("MLDEPLOY_WORKSPACE", str(tmp_path / "from-env"))
        data = await get_json(jp_fetch, "workspace")
        assert data["path"] == str((tmp_path / "from-env").resolve())

    async def test_a_missing_workspace_is_404_and_never_created(self, jp_fetch, jp_root_dir, tmp_path,
                                                                monkeypatch) -> None:
        monkeypatch.setenv("MLDEPLOY_WORKSPACE", str(tmp_path / "from-env"))
        for route in ("workspace", "models", "services", "environments"):
            code, body = await error_of(jp_fetch, route)
            assert code == 404 and body["error"] == "NotFound", route
            assert str(tmp_path / "from-env") in body["message"] and "mldeploy workspace create" in body["message"]
        assert not (tmp_path / "from-env").exists()
        monkeypatch.delenv("MLDEPLOY_WORKSPACE")
        code, body = await error_of(jp_fetch, "models")
        assert code == 404 and str(jp_root_dir / ".mldeploy") in body["message"]
        assert not (jp_root_dir / ".mldeploy").exists() and not (tmp_path / ".mldeploy").exists()
        # Created later (by a notebook's first register): the sidebar picks it up without a restart.
        Workspace.create(jp_root_dir / ".mldeploy")
        assert (await get_json(jp_fetch, "models")) == {"models": []}


class TestRelativeWorkspace:
    """A relative ``MLDeployExtension.workspace`` is read against the server's root_dir."""

    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_mldeploy": True}},
            "MLDeployExtension": {"workspace": "project"},
        }

    async def test_relative_to_root_dir_and_nested_mldeploy(self, jp_fetch, jp_root_dir) -> None:
        Workspace.create(jp_root_dir / "project" / ".mldeploy")
        data = await get_json(jp_fetch, "workspace")
        assert data["path"] == str((jp_root_dir / "project" / ".mldeploy").resolve())


async def test_models_are_grouped_by_name_newest_first(jp_fetch, workspace, tmp_path) -> None:
    register_text_model(workspace, tmp_path, "iris", "a", tags={"stage": "dev"})
    register_text_model(workspace, tmp_path, "iris", "b", tags={"stage": "prod"})
    register_text_model(workspace, tmp_path, "boston", "c")

    data = await get_json(jp_fetch, "models")
    assert [g["name"] for g in data["models"]] == ["boston", "iris"]
    iris = data["models"][1]
    assert iris["latestVersion"] == 2
    assert [v["version"] for v in iris["versions"]] == [2, 1]
    assert iris["versions"][0]["tags"] == {"stage": "prod"}
    assert iris["versions"][0]["files"][0]["path"] == "weights.txt"

    one = await get_json(jp_fetch, "models", "iris")
    assert one == iris
    version = await get_json(jp_fetch, "models", "iris", "1")
    assert version["id"] == "iris:1" and version["tags"] == {"stage": "dev"}


async def test_model_errors_are_json_with_the_core_status(jp_fetch, workspace, tmp_path) -> None:
    register_text_model(workspace, tmp_path, "iris", "a")
    code, body = await error_of(jp_fetch, "models", "nope")
    assert code == 404 and body["error"] == "NotFound" and "nope" in body["message"]
    code, body = await error_of(jp_fetch, "models", "iris", "7")
    assert code == 404 and "7" in body["message"]
    code, body = await error_of(jp_fetch, "models", "bad name!")
    assert code == 400 and body["error"] == "InvalidArgument"
    code, body = await error_of(jp_fetch, "models", "iris", "1", method="DELETE", params={"force": "maybe"})
    assert code == 400 and "force" in body["message"]


async def test_delete_model_version(jp_fetch, workspace, tmp_path) -> None:
    register_text_model(workspace, tmp_path, "iris", "a")
    register_text_model(workspace, tmp_path, "iris", "b")
    data = await get_json(jp_fetch, "models", "iris", "1", method="DELETE")
    assert data == {"deleted": "iris:1"}
    assert [m.version for m in Model.list(workspace, name="iris")] == [2]
    code, _ = await error_of(jp_fetch, "models", "iris", "1", method="DELETE")
    assert code == 404


async def test_environments_lists_curated_and_registered(jp_fetch, workspace) -> None:
    Environment("team-env").register(workspace)
    data = await get_json(jp_fetch, "environments")
    names = [env["name"] for env in data["environments"]]
    assert "team-env" in names
    assert len(names) > 1  # curated environments come first
    team = next(env for env in data["environments"] if env["name"] == "team-env")
    assert str(team["version"]) == "1"


async def test_unknown_service_is_404(jp_fetch) -> None:
    for method, path in [("GET", ""), ("DELETE", ""), ("GET", "logs"), ("POST", "score"), ("POST", "reload"),
                         ("GET", "example")]:
        parts = ("services", "ghost", path) if path else ("services", "ghost")
        code, body = await error_of(jp_fetch, *parts, method=method, body=b"{}" if method == "POST" else None)
        assert code == 404 and "ghost" in body["message"], (method, path)
    assert await get_json(jp_fetch, "services") == {"services": []}


@pytest.fixture
def ridge_service(workspace: Workspace, tmp_path: Path):
    """A registered Ridge model and a Healthy process service serving it; deleted afterwards."""
    path, model, samples = train_ridge(tmp_path / "train")
    # The sample holds full float64s (0.0380759064334241 ...), as a notebook registers X[:1].tolist().
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes",
                                sample_input={"data": samples[:1]})
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(
        workspace, "diabetes-svc", [registered], config, LocalWebservice.deploy_configuration()
    )
    try:
        service.wait_for_deployment(timeout_sec=120)
        yield service, model, samples
    finally:
        if "diabetes-svc" in [s.name for s in Webservice.list(workspace)]:
            Webservice(workspace, "diabetes-svc").delete()


async def test_service_lifecycle_through_the_api(jp_fetch, workspace, ridge_service) -> None:
    service, model, samples = ridge_service

    listed = await get_json(jp_fetch, "services")
    assert [s["name"] for s in listed["services"]] == ["diabetes-svc"]
    assert listed["services"][0]["state"] == "Healthy"
    one = await get_json(jp_fetch, "services", "diabetes-svc")
    assert one["scoringUri"] == service.scoring_uri and one["models"] == ["diabetes:1"]

    # score: proxied as is, the service's status/body/headers reported, latency measured
    body = json.dumps({"data": samples})
    scored = await get_json(
        jp_fetch,
        "services",
        "diabetes-svc",
        "score",
        method="POST",
        body=body,
        headers={"x-request-id": "sidebar-test-1"},
    )
    assert scored["status"] == 200
    assert json.loads(scored["body"]) == pytest.approx(model.predict(samples).tolist())
    assert 0 < scored["latency_ms"] < 30_000
    headers = {k.lower(): v for k, v in scored["headers"].items()}
    assert headers["x-request-id"] == "sidebar-test-1"

    failed = await get_json(jp_fetch, "services", "diabetes-svc", "score", method="POST", body="not json")
    assert failed["status"] == 500
    assert "scoring script" in json.loads(failed["body"])["message"]

    # logs: the last N lines, with the request id the score call carried
    logs = await get_json(jp_fetch, "services", "diabetes-svc", "logs", params={"tail": "500"})
    assert "sidebar-test-1" in logs["logs"]
    short = await get_json(jp_fetch, "services", "diabetes-svc", "logs", params={"tail": "2"})
    assert 1 <= len(short["logs"].strip().splitlines()) <= 2
    code, err = await error_of(jp_fetch, "services", "diabetes-svc", "logs", params={"tail": "zero"})
    assert code == 400 and "tail" in err["message"]

    # a model version in use cannot be deleted without force
    code, err = await error_of(jp_fetch, "models", "diabetes", "1", method="DELETE")
    assert code == 409 and err["error"] == "Conflict" and "diabetes-svc" in err["message"]

    # reload runs off the event loop: the server keeps answering while the new workers start
    reload = asyncio.ensure_future(
        jp_fetch(*API, "services", "diabetes-svc", "reload", method="POST", body=b"", request_timeout=120)
    )
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await get_json(jp_fetch, "workspace")
    quick = time.perf_counter() - started
    assert not reload.done(), (
        "GET workspace answered only after the reload: the reload blocked the event loop"
    )
    reloaded = json.loads((await reload).body)
    assert reloaded["state"] == "Healthy"
    assert quick < 1.0, f"GET workspace took {quick:.2f} s during a reload"

    deleted = await get_json(jp_fetch, "services", "diabetes-svc", method="DELETE")
    assert deleted == {"deleted": "diabetes-svc"}
    assert await get_json(jp_fetch, "services") == {"services": []}
    code, _ = await error_of(jp_fetch, "services", "diabetes-svc", "score", method="POST", body=b"{}")
    assert code == 404
    # with the service gone, the model can be deleted
    assert await get_json(jp_fetch, "models", "diabetes", "1", method="DELETE") == {"deleted": "diabetes:1"}


async def test_example_is_the_sample_rounded_as_the_panel_shows_it(jp_fetch, workspace, ridge_service) -> None:
    _, _, samples = ridge_service
    data = await get_json(jp_fetch, "services", "diabetes-svc", "example")
    assert data["body"] == {"data": [[float(f"{x:.4g}") for x in samples[0]]]}
    assert data["body"] != {"data": samples[:1]}  # the registered sample has more digits than shown
    # The panel's Test tab prefills the same body from the same core function.
    tester = EndpointTester(workspace)
    try:
        assert tester.service_select.value == "diabetes-svc"
        assert json.loads(tester.request.value) == data["body"]
        assert "0.03808" in tester.request.value and "0.0380759" not in tester.request.value
    finally:
        tester.close()


def test_the_rounding_rule_touches_only_finite_floats() -> None:
    value = {"data": [[0.0380759064334241, -0.0446416365069974, 3, True, None, "0.123456"]],
             "scale": 123456.789, "tiny": 1.23456e-9, "nan": math.nan, "inf": -math.inf}
    rounded = round_floats(value)
    assert rounded["data"] == [[0.03808, -0.04464, 3, True, None, "0.123456"]]
    assert rounded["scale"] == 123500.0 and rounded["tiny"] == 1.235e-9
    assert math.isnan(rounded["nan"]) and rounded["inf"] == -math.inf
    assert value["data"][0][0] == 0.0380759064334241  # a copy: the registered sample is left alone
    assert round_floats([1.23456], digits=2) == [1.2] and SAMPLE_SIGNIFICANT_DIGITS == 4


async def test_score_on_a_stopped_service_is_502_naming_its_state(jp_fetch, ridge_service) -> None:
    import psutil

    service, _, _ = ridge_service
    proc = psutil.Process(service.pid)
    for child in proc.children(recursive=True):
        child.kill()
    proc.kill()
    proc.wait(timeout=30)
    code, err = await error_of(jp_fetch, "services", "diabetes-svc", "score", method="POST", body=b"{}")
    assert code == 502 and "diabetes-svc" in err["message"] and "logs" in err["message"]


SCHEMA_SCORE = """
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
def run(data):
    return data.sum(axis=1).tolist()
"""

REDIRECT_SCORE = """
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    return AMLResponse("", 307, {"Location": STEAL_URL})
"""


def deploy_script(ws: Workspace, tmp_path: Path, name: str, script: str) -> Webservice:
    folder = tmp_path / f"src-{name}"
    folder.mkdir()
    (folder / "score.py").write_text(script)
    model = register_text_model(ws, tmp_path, f"{name}-model", "1")
    config = InferenceConfig("score.py", source_directory=str(folder))
    service = Model.deploy(ws, name, [model], config, LocalWebservice.deploy_configuration())
    service.wait_for_deployment(timeout_sec=120)
    return service


async def test_score_proxy_validates_against_the_input_schema_as_test_endpoint_does(
    jp_fetch, workspace, tmp_path
) -> None:
    service = deploy_script(workspace, tmp_path, "schema-svc", SCHEMA_SCORE)
    json_body = {"headers": {"Content-Type": "application/json"}}  # as the sidebar sends it
    try:
        good = await get_json(jp_fetch, "services", "schema-svc", "score", method="POST", **json_body,
                              body=json.dumps({"data": [[1.0, 2.0, 3.0]]}))
        assert good["status"] == 200 and json.loads(good["body"]) == [6.0]
        code, err = await error_of(jp_fetch, "services", "schema-svc", "score", method="POST", **json_body,
                                   body=json.dumps({"data": [[1.0, "two", 3.0]]}))
        assert code == 400 and err["error"] == "RequestMismatch"
        assert err["message"].startswith("Not sent") and any("data[0][1]" in p for p in err["problems"])
        # the very check %test_endpoint, the panel and `mldeploy service run` make
        from jupyter_mldeploy import actions

        schema = actions.input_schema(actions.resolve_endpoint("schema-svc", workspace))
        assert schema is not None and err["problems"] == schema.validate({"data": [[1.0, "two", 3.0]]})
        code, err = await error_of(jp_fetch, "services", "schema-svc", "score", method="POST", **json_body,
                                   body=json.dumps({"rows": []}))
        assert code == 400 and "Field 'data' is missing" in err["message"]
        # nothing reached the service: its log holds only the one good request
        assert service.get_logs().count("POST /score") == 1
        sent = await get_json(jp_fetch, "services", "schema-svc", "score", method="POST", **json_body,
                              params={"validate": "false"}, body=json.dumps({"rows": []}))
        assert sent["status"] >= 400
    finally:
        service.delete()


async def test_score_proxy_reports_a_redirect_and_never_follows_it(jp_fetch, workspace, tmp_path) -> None:
    from fixtures.http_servers import recording_answer, serve

    with serve(recording_answer) as (target, stolen):
        script = f"STEAL_URL = {f'{target}/steal'!r}\n{REDIRECT_SCORE}"
        service = deploy_script(workspace, tmp_path, "redirect-svc", script)
        try:
            answered = await get_json(jp_fetch, "services", "redirect-svc", "score", method="POST",
                                      body=json.dumps({"secret": "token"}))
        finally:
            service.delete()
    assert answered["status"] == 307
    assert answered["location"] == f"{target}/steal"
    assert answered["headers"]["location"] == f"{target}/steal"
    assert stolen.paths() == [], "the Jupyter server sent the caller's body on to the redirect's target"


# -- protocols through the score proxy (issue #14) ---------------------------------------------------------


async def test_score_proxy_and_example_speak_each_protocol_with_the_key(jp_fetch, workspace, tmp_path) -> None:
    path, model, samples = train_ridge(tmp_path / "train")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes",
                                sample_input={"data": samples[:1]})
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(workspace, "keyed", [registered], config,
                           LocalWebservice.deploy_configuration(auth_enabled=True))
    try:
        service.wait_for_deployment(timeout_sec=120)
        expected = model.predict(samples).tolist()
        rounded = [[float(f"{x:.4g}") for x in samples[0]]]

        v2_example = await get_json(jp_fetch, "services", "keyed", "example", params={"protocol": "v2"})
        assert v2_example["body"] == {"inputs": [{"name": "data", "shape": [1, 10], "datatype": "FP64",
                                                   "data": rounded}]}
        mlflow_example = await get_json(jp_fetch, "services", "keyed", "example", params={"protocol": "mlflow"})
        assert mlflow_example["body"] == {"inputs": rounded}

        tensor = {"name": "data", "shape": [len(samples), 10], "datatype": "FP64", "data": samples}
        v2 = await get_json(jp_fetch, "services", "keyed", "score", method="POST", params={"protocol": "v2"},
                            body=json.dumps({"id": "rest-1", "inputs": [tensor]}))
        assert v2["status"] == 200, v2
        assert v2["uri"] == f"{service.v2_uri}/models/diabetes/infer"
        answer = json.loads(v2["body"])
        assert answer["model_name"] == "diabetes" and answer["id"] == "rest-1"
        assert answer["outputs"][0]["data"] == pytest.approx(expected)

        # as the sidebar sends it (tornado's client would say application/x-www-form-urlencoded: MLflow's 415)
        as_json = {"Content-Type": "application/json"}
        mlflow = await get_json(jp_fetch, "services", "keyed", "score", method="POST", headers=as_json,
                                params={"protocol": "mlflow"}, body=json.dumps({"inputs": samples}))
        assert mlflow["status"] == 200 and mlflow["uri"] == service.invocations_uri
        assert json.loads(mlflow["body"])["predictions"] == pytest.approx(expected)

        score = await get_json(jp_fetch, "services", "keyed", "score", method="POST",
                               body=json.dumps({"data": samples}))
        assert score["status"] == 200 and score["uri"] == service.scoring_uri

        # the protocol's own refusal comes back as the service's answer; a body in another protocol's format
        # is not checked against /score's schema
        wrong = await get_json(jp_fetch, "services", "keyed", "score", method="POST", headers=as_json,
                               params={"protocol": "mlflow"}, body=json.dumps({"data": samples}))
        assert wrong["status"] == 400 and json.loads(wrong["body"])["error_code"] == "BAD_REQUEST"
        code, err = await error_of(jp_fetch, "services", "keyed", "score", method="POST",
                                   params={"protocol": "grpc"}, body=b"{}")
        assert code == 400 and "azureml, v2, mlflow" in err["message"]
        code, err = await error_of(jp_fetch, "services", "keyed", "example", params={"protocol": "grpc"})
        assert code == 400 and "protocol" in err["message"]
    finally:
        service.delete()


# -- no-code deploy from the sidebar (issue #16) -----------------------------------------------------------


def register_iris(workspace: Workspace, tmp_path: Path, **kwargs: Any) -> tuple[Any, list[list[float]]]:
    """A LogisticRegression on iris pickled and registered as ``iris``; returns the model and four rows."""
    import pickle

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = tmp_path / "iris.pkl"
    path.write_bytes(pickle.dumps(model))
    Model.register(workspace, model_path=str(path), model_name="iris", **kwargs)
    return model, X[::40].tolist()


async def wait_json(jp_fetch, condition, *path: str, timeout: float = 180.0, **kwargs: Any) -> Any:
    """GET ``path`` until ``condition(answer)`` holds; return that answer. Waiting for ``services``, a
    background deployment that failed ends the wait with its error."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await get_json(jp_fetch, *path, **kwargs)
        if condition(answer):
            return answer
        if path == ("services",):
            failed = [job for job in (await get_json(jp_fetch, "deploys"))["deploys"] if job["state"] == "Failed"]
            assert not failed, failed
        assert time.monotonic() < deadline, f"not met in {timeout} s: {answer}"
        await asyncio.sleep(0.2)


async def test_deploy_a_framework_model_with_no_code_in_the_background(jp_fetch, workspace, tmp_path) -> None:
    model, rows = register_iris(workspace, tmp_path, model_framework=Model.Framework.SCIKITLEARN)
    try:
        started = time.perf_counter()
        accepted = await jp_fetch(*API, "models", "iris", "1", "deploy", method="POST", body=b"")
        answered_s = time.perf_counter() - started
        job = json.loads(accepted.body)
        assert accepted.code == 202
        assert job["service"] == "iris" and job["model"] == "iris:1" and job["state"] == "Deploying"
        assert any("built-in entry script sklearn_score.py" in note for note in job["notes"]), job["notes"]
        listed = await get_json(jp_fetch, "deploys")
        # answered before the deployment ended (unless the whole deploy beat the answer, which then says so)
        assert listed["deploys"] == [] or listed["deploys"][0]["service"] == "iris", listed
        assert answered_s < 10, f"the deploy route held the request {answered_s:.1f} s"
        # a second deploy of the same name while the first runs is a conflict
        if listed["deploys"]:
            code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST", body=b"")
            assert code == 409 and "iris" in err["message"]

        services = await wait_json(
            jp_fetch, lambda a: [s["state"] for s in a["services"]] == ["Healthy"], "services")
        assert services["services"][0]["models"] == ["iris:1"]
        await wait_json(jp_fetch, lambda a: a == {"deploys": []}, "deploys", timeout=30)  # done, so unlisted
        scored = await get_json(jp_fetch, "services", "iris", "score", method="POST",
                                body=json.dumps({"data": rows}))
        assert scored["status"] == 200 and json.loads(scored["body"]) == model.predict(rows).tolist()

        # the name is taken now: 409, unless the caller asks to update the service
        code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST", body=b"")
        assert code == 409 and err["error"] == "Conflict" and "iris" in err["message"]
        other = await jp_fetch(*API, "models", "iris", "1", "deploy", method="POST",
                               body=json.dumps({"service": "iris-b"}))
        assert json.loads(other.body)["service"] == "iris-b"
        await wait_json(jp_fetch, lambda a: sorted((s["name"], s["state"]) for s in a["services"])
                        == [("iris", "Healthy"), ("iris-b", "Healthy")], "services")
        Model.register(workspace, model_path=str(tmp_path / "iris.pkl"), model_name="iris",
                       model_framework=Model.Framework.SCIKITLEARN)
        update = await jp_fetch(*API, "models", "iris", "2", "deploy", method="POST",
                                body=json.dumps({"service": "iris", "overwrite": True}))
        assert update.code == 202
        await wait_json(jp_fetch, lambda a: any(s["name"] == "iris" and s["models"] == ["iris:2"]
                                                and s["state"] == "Healthy" for s in a["services"]), "services")
    finally:
        for service in Webservice.list(workspace):
            service.delete()


async def test_deploy_route_refusals_name_the_way_out(jp_fetch, workspace, tmp_path) -> None:
    register_iris(workspace, tmp_path)  # no model_framework
    code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST", body=b"")
    assert code == 400 and err["error"] == "InvalidArgument"
    assert "registered without model_framework" in err["message"]
    assert "%deploy_local iris --model iris:1 --entry score.py" in err["message"]
    assert "mldeploy model deploy -n iris -m iris:1 --ic inferenceconfig.json" in err["message"]

    code, err = await error_of(jp_fetch, "models", "iris", "7", "deploy", method="POST", body=b"")
    assert code == 404 and "7" in err["message"]
    code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST", body=b"[1]")
    assert code == 400 and "JSON object" in err["message"]
    code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST", body=b"{nope")
    assert code == 400 and "not JSON" in err["message"]
    code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST",
                               body=json.dumps({"service": "bad name!"}))
    assert code == 400 and "service name" in err["message"]
    code, err = await error_of(jp_fetch, "models", "iris", "1", "deploy", method="POST",
                               body=json.dumps({"overwrite": "yes"}))
    assert code == 400 and '"overwrite": true|false' in err["message"]
    assert Webservice.list(workspace) == [] and (await get_json(jp_fetch, "deploys")) == {"deploys": []}
    code, err = await error_of(jp_fetch, "deploys", "iris", method="DELETE")
    assert code == 404


async def test_a_deployment_failing_in_the_background_is_listed_until_dismissed(jp_fetch, workspace,
                                                                              tmp_path) -> None:
    # An MLflow folder whose requirements cannot be installed: the quick checks pass, the build fails later.
    folder = tmp_path / "mlflow-broken"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "requirements.txt").write_text("no-such-package-mldeploy-xyz==1.0\n")
    Model.register(workspace, model_path=folder, model_name="broken", model_framework=Model.Framework.MLFLOW)
    accepted = await jp_fetch(*API, "models", "broken", "1", "deploy", method="POST", body=b"")
    assert accepted.code == 202
    failed = await wait_json(jp_fetch, lambda a: a["deploys"] and a["deploys"][0]["state"] == "Failed", "deploys")
    job = failed["deploys"][0]
    assert job["service"] == "broken" and job["model"] == "broken:1" and job["finishedTime"]
    assert "no-such-package-mldeploy-xyz" in job["error"], job["error"]
    assert (await get_json(jp_fetch, "services")) == {"services": []}
    assert await get_json(jp_fetch, "deploys", "broken", method="DELETE") == {"dismissed": "broken"}
    assert (await get_json(jp_fetch, "deploys")) == {"deploys": []}

    # A pickle that does not load: the service is created, its init() fails, and the job carries the reason.
    (tmp_path / "garbage.pkl").write_bytes(b"not a pickle")
    Model.register(workspace, model_path=str(tmp_path / "garbage.pkl"), model_name="garbage",
                   model_framework=Model.Framework.SCIKITLEARN)
    try:
        accepted = await jp_fetch(*API, "models", "garbage", "1", "deploy", method="POST", body=b"")
        assert accepted.code == 202
        failed = await wait_json(jp_fetch, lambda a: a["deploys"] and a["deploys"][0]["state"] == "Failed",
                                 "deploys")
        assert "init function failed" in failed["deploys"][0]["error"], failed
        listed = await get_json(jp_fetch, "services")
        assert [(s["name"], s["state"]) for s in listed["services"]] == [("garbage", "Failed")]
    finally:
        for service in Webservice.list(workspace):
            service.delete()
