"""v1's app layout is the same on the process target, the Docker target and a ``Model.package`` image.

The fixture is Microsoft's v1 "register-model-deploy-local-advanced" layout, in our own words:
``InferenceConfig(source_directory="source_directory", entry_script="x/y/score.py")`` whose ``init()`` opens
``./source_directory/extradata.json`` relative to the working folder. Its ``run()`` reports what the script
sees — the layout variables, the working folder, ``__file__``, ``sys.path`` — as paths relative to
``AML_APP_ROOT``, so the three answers can be compared as they are.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from conftest import DiabetesSetup

from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model
from jupyter_mldeploy.deploy.ports import free_port

LAYOUT_SCORE = '''
import json
import os
import sys

import joblib
import numpy as np

facts = {}


def _rel(path):
    root = os.environ["AML_APP_ROOT"]
    return os.path.relpath(os.path.abspath(path), root)


def init():
    with open("./source_directory/extradata.json") as handle:  # relative to the working folder, as v1
        facts["extradata"] = json.load(handle)
    facts["model_file"] = os.path.isfile(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))
    facts["numpy"] = np.__version__ is not None and joblib is not None


def run(raw_data):
    root = os.environ["AML_APP_ROOT"]
    return {
        **facts,
        "AZUREML_SOURCE_DIRECTORY": os.environ.get("AZUREML_SOURCE_DIRECTORY"),
        "AZUREML_ENTRY_SCRIPT": os.environ.get("AZUREML_ENTRY_SCRIPT"),
        "AZUREML_MODEL_DIR": _rel(os.environ["AZUREML_MODEL_DIR"]),
        "cwd": _rel(os.getcwd()),
        "file": _rel(__file__),
        "root_on_path": any(os.path.abspath(p) == os.path.abspath(root) for p in sys.path if p),
        "source_on_path": any(
            os.path.abspath(p) == os.path.join(os.path.abspath(root), "source_directory") for p in sys.path if p
        ),
    }
'''

EXPECTED = {
    "extradata": {"labels": ["low", "high"]},
    "model_file": True,
    "numpy": True,
    "AZUREML_SOURCE_DIRECTORY": "source_directory",
    "AZUREML_ENTRY_SCRIPT": "source_directory/x/y/score.py",
    "AZUREML_MODEL_DIR": "azureml-models/diabetes/1",
    "cwd": ".",
    "file": "source_directory/x/y/score.py",
    "root_on_path": True,
    "source_on_path": True,
}


@pytest.fixture
def advanced_source(tmp_path: Path) -> Path:
    source = tmp_path / "source_directory"
    (source / "x" / "y").mkdir(parents=True)
    (source / "x" / "y" / "score.py").write_text(LAYOUT_SCORE)
    (source / "extradata.json").write_text('{"labels": ["low", "high"]}')
    return source


def test_the_app_layout_is_v1s_on_every_target_and_in_a_package(
    engine, env_image: str, diabetes: DiabetesSetup, advanced_source: Path, cleanup_services: list
) -> None:
    inference = InferenceConfig(entry_script="x/y/score.py", source_directory=advanced_source)
    seen = {}
    for runtime in ("process", "docker"):
        service = Model.deploy(diabetes.workspace, f"layout-{runtime}", [diabetes.model_id], inference,
                               LocalWebservice.deploy_configuration(runtime=runtime))
        cleanup_services.append(service)
        service.wait_for_deployment(timeout_sec=180)
        seen[runtime] = service.run("{}")

    package = Model.package(diabetes.workspace, [diabetes.model_id], inference, image_name="mldeploy-test-layout:1")
    package.wait_for_creation(show_output=False)
    port = free_port("127.0.0.1")
    container = engine.containers.run(package.location, detach=True, ports={"5001/tcp": ("127.0.0.1", port)})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/score", data="{}", timeout=5)
                if response.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, container.logs(tail=50).decode(errors="replace")
            time.sleep(0.2)
        seen["package"] = response.json()
    finally:
        container.remove(force=True)
        engine.images.remove(package.location, force=True)

    assert seen["package"] == EXPECTED
    assert seen == {"process": EXPECTED, "docker": EXPECTED, "package": EXPECTED}
