"""Entry scripts written for Azure ML v1, unchanged, answering as azmlinfsrv 1.5.1 does.

Two of Microsoft's v1 samples, restated in these tests' own words from their documented behaviour:

* the "advanced entry script" CORS example: a ``@rawhttp`` ``run`` that builds an ``AMLResponse`` and sets
  its CORS headers by item assignment, answering GET (the request's ``full_path``), POST (the body echoed)
  and OPTIONS (empty). The expected answers are azmlinfsrv's, recorded by running it on this script.
* ``register-model-deploy-local-advanced``: ``source_directory="source_directory"``,
  ``entry_script="x/y/score.py"``, and an ``init()`` that opens ``./source_directory/extradata.json``
  relative to the working folder, which only works in v1's layout (source folder copied to
  ``<app root>/<its name>``, working folder = app root).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import requests
from server_harness import ServeFactory

from jupyter_mldeploy import Model, Workspace
from jupyter_mldeploy.deploy.app_folder import build_app_folder
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.deploy.trial_run import run_entry_check

CORS_SCRIPT = """
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

ALLOWED = "OPTIONS, GET, POST"


def init():
    print("cors sample ready")


def _answer(body, status=200):
    answer = AMLResponse(body, status)
    answer.headers["Allow"] = ALLOWED
    answer.headers["Access-Control-Allow-Methods"] = ALLOWED
    answer.headers["Access-Control-Allow-Origin"] = "http://www.example.com"
    answer.headers["Access-Control-Allow-Headers"] = "*"
    return answer


@rawhttp
def run(request):
    if request.method == "GET":
        return _answer(request.full_path.encode())
    if request.method == "POST":
        return _answer(request.get_data(False))
    if request.method == "OPTIONS":
        return _answer("")
    return AMLResponse("bad request", 400)
"""

#: What azmlinfsrv 1.5.1 answers to each method (besides its per-request ids and timing).
CORS_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "x-ms-run-function-failed": "False",
    "Allow": "OPTIONS, GET, POST",
    "Access-Control-Allow-Methods": "OPTIONS, GET, POST",
    "Access-Control-Allow-Origin": "http://www.example.com",
    "Access-Control-Allow-Headers": "*",
}


@pytest.mark.parametrize(("method", "body"), [("GET", b"/score?x=1&y=two"), ("POST", b'{"a": 1}'), ("OPTIONS", b"")])
def test_cors_advanced_entry_script_answers_as_azmlinfsrv(serve: ServeFactory, method: str, body: bytes) -> None:
    server = serve(CORS_SCRIPT)
    answer = requests.request(method, server.url + "/score?x=1&y=two", data=b'{"a": 1}',
                              headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 200, (answer.text, server.log())
    assert answer.content == body
    for name, value in CORS_HEADERS.items():
        assert answer.headers[name] == value, (name, dict(answer.headers))
    assert answer.headers["Content-Length"] == str(len(body))


ADVANCED_SCORE = """
import json, os, sys

from azureml.core.model import Model

import helpers   # source_directory/helpers.py: the source folder is on sys.path, as in v1


def init():
    global factor, extra, nearby
    with open(Model.get_model_path("factor")) as handle:
        factor = json.load(handle)["factor"]
    # The sample opens its data file relative to the working folder, which v1 makes the app root.
    with open("./source_directory/extradata.json") as handle:
        extra = json.load(handle)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nearby.txt")) as handle:
        nearby = handle.read().strip()


def run(raw_data):
    root = os.environ["AML_APP_ROOT"]
    source = os.path.join(root, os.environ["AZUREML_SOURCE_DIRECTORY"])
    return {
        "result": helpers.scale(json.loads(raw_data)["data"], factor),
        "extra": extra,
        "nearby": nearby,
        "cwd_is_app_root": os.path.samefile(os.getcwd(), root),
        "entry_script": os.environ["AZUREML_ENTRY_SCRIPT"],
        "source_directory": os.environ["AZUREML_SOURCE_DIRECTORY"],
        "app_root_on_path": root in sys.path,
        "source_on_path": source in sys.path,
    }
"""

EXPECTED_ADVANCED = {
    "result": [3, 6, 9],
    "extra": {"greeting": "hello from extradata"},
    "nearby": "beside score.py",
    "cwd_is_app_root": True,
    "entry_script": "source_directory/x/y/score.py",
    "source_directory": "source_directory",
    "app_root_on_path": True,
    "source_on_path": True,
}


@pytest.fixture
def advanced_sample(tmp_path: Path, workspace: Workspace) -> tuple[Path, Model]:
    source = tmp_path / "project" / "source_directory"
    (source / "x" / "y").mkdir(parents=True)
    (source / "x" / "y" / "score.py").write_text(textwrap.dedent(ADVANCED_SCORE))
    (source / "x" / "y" / "nearby.txt").write_text("beside score.py\n")
    (source / "extradata.json").write_text(json.dumps({"greeting": "hello from extradata"}))
    (source / "helpers.py").write_text("def scale(values, factor):\n    return [v * factor for v in values]\n")
    model_file = tmp_path / "factor.json"
    model_file.write_text('{"factor": 3}')
    return source, Model.register(workspace, model_path=str(model_file), model_name="factor")


def test_advanced_sample_starts_in_the_trial_run(workspace: Workspace, advanced_sample: tuple[Path, Model]) -> None:
    source, model = advanced_sample
    trial = run_entry_check(workspace, "x/y/score.py", [model], source_directory=source, data={"data": [1, 2, 3]})
    assert trial.ok, trial
    assert trial.output == EXPECTED_ADVANCED


def test_advanced_sample_starts_in_the_server(
    workspace: Workspace, advanced_sample: tuple[Path, Model], serve: ServeFactory, tmp_path: Path
) -> None:
    source, model = advanced_sample
    app = build_app_folder(tmp_path / "app-1", source / "x" / "y" / "score.py", source,
                           resolve_model_sources(workspace, [model]))
    layout = app.scoring_environment()
    assert layout["AZUREML_ENTRY_SCRIPT"] == "source_directory/x/y/score.py"   # relative, as in a v1 image
    server = serve(None, env=layout)
    answer = requests.post(server.url + "/score", json={"data": [1, 2, 3]}, timeout=30)
    assert answer.status_code == 200, (answer.text, server.log())
    assert answer.json() == EXPECTED_ADVANCED
