"""No-code deployment: a model registered with a supported model_framework deploys with no entry script and
no inference config, served by a built-in script on a real server (127.0.0.1), answering as the in-kernel
model does; what cannot be served is refused before anything starts, with the way out."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from jupyter_mldeploy import DeploymentError, InvalidArgument, Model, ResourceConfiguration
from jupyter_mldeploy.deploy import LocalWebservice, Webservice
from jupyter_mldeploy.deploy.no_code import (
    inference_config_from_record,
    mlflow_signature_samples,
    no_code_inference_config,
)
from jupyter_mldeploy.deploy.plan import plan_deployment
from jupyter_mldeploy.deploy.state import write_json_atomic
from jupyter_mldeploy.server.builtin import ONNX_SCRIPT, SKLEARN_SCRIPT
from jupyter_mldeploy.server.swagger import SAMPLES_VARIABLE, SwaggerDocs, samples_schemas


@pytest.fixture(scope="module")
def iris() -> tuple[LogisticRegression, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y), X[::15]


@pytest.fixture
def services():
    deployed: list[Webservice] = []
    yield deployed
    for service in deployed:
        service.delete()


def _pickle(model: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(model, f)
    return path


def test_sklearn_pickle_deploys_with_no_inference_config(workspace, iris, tmp_path: Path, services, capsys) -> None:
    model, X = iris
    registered = Model.register(
        workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
        model_framework=Model.Framework.SCIKITLEARN, model_framework_version=__import__("sklearn").__version__,
    )
    service = Model.deploy(workspace, "iris-nocode", [registered], show_output=True)
    services.append(service)
    out = capsys.readouterr().out
    assert "No-code deployment: the built-in entry script sklearn_score.py" in out
    assert f"scikit-learn=={__import__('sklearn').__version__}" in out
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()
    proba = requests.post(service.scoring_uri + "?method=predict_proba", json={"data": X.tolist()}, timeout=30)
    assert proba.status_code == 200
    np.testing.assert_allclose(proba.json(), model.predict_proba(X), rtol=1e-9)
    # An unknown method or a body without data is a 400 naming the fix.
    bad = requests.post(service.scoring_uri + "?method=transform", json={"data": X.tolist()}, timeout=30)
    assert bad.status_code == 400 and "use one of predict, predict_proba" in bad.text
    no_data = requests.post(service.scoring_uri, json={"rows": []}, timeout=30)
    assert no_data.status_code == 400 and '{"data": rows}' in no_data.text


def test_joblib_in_a_folder_deploys_with_only_a_deployment_config(workspace, iris, tmp_path: Path, services) -> None:
    model, X = iris
    folder = tmp_path / "bundle"
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    (folder / "README.txt").write_text("trained on iris\n")
    registered = Model.register(workspace, model_path=folder, model_name="iris-folder",
                                model_framework=Model.Framework.SCIKITLEARN)
    service = Model.deploy(workspace, "iris-folder", [registered],
                           deployment_config=LocalWebservice.deploy_configuration())
    services.append(service)
    service.wait_for_deployment()
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()


def test_onnx_model_converted_with_skl2onnx(workspace, iris, tmp_path: Path, services) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    from skl2onnx.common.data_types import FloatTensorType

    model, X = iris
    onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 4]))],
                                   options={id(model): {"zipmap": False}})
    path = tmp_path / "iris.onnx"
    path.write_bytes(onx.SerializeToString())
    registered = Model.register(workspace, model_path=path, model_name="iris-onnx",
                                model_framework=Model.Framework.ONNX)
    service = Model.deploy(workspace, "iris-onnx", [registered])
    services.append(service)
    service.wait_for_deployment()
    by_data = service.run({"data": X.tolist()})
    assert by_data["label"] == model.predict(X).tolist()
    np.testing.assert_allclose(by_data["probabilities"], model.predict_proba(X), atol=1e-5)
    assert service.run({"input": X.tolist()}) == by_data
    missing = requests.post(service.scoring_uri, json={"other": [1]}, timeout=30)
    assert missing.status_code == 400 and "this model takes ['input']" in missing.text


def test_the_chosen_configuration(workspace, iris, tmp_path: Path) -> None:
    model, _ = iris
    _pickle(model, tmp_path / "m.pkl")
    Model.register(workspace, model_path=tmp_path / "m.pkl", model_name="pinned",
                   model_framework="scikitlearn", model_framework_version="1.5.2")
    ic = no_code_inference_config(workspace, "pinned")
    assert ic.entry_script == SKLEARN_SCRIPT and ic.source_directory is None
    assert ic.environment.name == "mldeploy-sklearn"
    assert "scikit-learn==1.5.2" in ic.environment.python.conda_dependencies.pip_packages
    (tmp_path / "m.onnx").write_bytes(b"not really onnx")
    Model.register(workspace, model_path=tmp_path / "m.onnx", model_name="onnx", model_framework="Onnx")
    onnx_ic = no_code_inference_config(workspace, "onnx:1")
    assert onnx_ic.entry_script == ONNX_SCRIPT and onnx_ic.environment.name == "mldeploy-onnx"
    assert any(p.startswith("onnxruntime") for p in onnx_ic.environment.python.conda_dependencies.pip_packages)


@pytest.mark.parametrize(
    ("framework", "files", "message"),
    [
        (None, ["m.pkl"], "was registered without model_framework"),
        ("Caffe", ["m.pkl"], "model_framework 'Caffe', which no built-in entry script serves"),
        ("TensorFlow", ["saved_model.pb"], "is a TensorFlow model and TensorFlow is not installable here"),
        ("ScikitLearn", ["a.pkl", "sub/b.joblib"], "holds 2 candidate scikit-learn model files (a.pkl, sub/b.joblib)"),
        ("ScikitLearn", ["notes.txt"], "No scikit-learn model file (*.pkl, *.pickle, *.joblib, *.sav)"),
        ("Onnx", ["a.onnx", "b.onnx"], "holds 2 candidate ONNX model files"),
    ],
)
def test_what_cannot_be_served_is_refused_before_anything_starts(
    workspace, tmp_path: Path, framework: str | None, files: list[str], message: str
) -> None:
    folder = tmp_path / "model"
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    registered = Model.register(workspace, model_path=folder, model_name="m", model_framework=framework)
    with pytest.raises(InvalidArgument, match="entry_script|entry script") as info:
        Model.deploy(workspace, "refused", [registered])
    assert message in str(info.value)
    assert not (workspace.deployments_dir / "refused").exists()


def test_two_models_need_an_inference_config(workspace, iris, tmp_path: Path) -> None:
    model, _ = iris
    for name in ("a", "b"):
        Model.register(workspace, model_path=_pickle(model, tmp_path / name / "m.pkl"), model_name=name,
                       model_framework=Model.Framework.SCIKITLEARN)
    with pytest.raises(InvalidArgument, match="inference_config is required to deploy 2 models"):
        Model.deploy(workspace, "two", ["a", "b"])
    with pytest.raises(InvalidArgument, match="inference_config is required to deploy 0 models"):
        Model.deploy(workspace, "none", [])


def test_cli_deploys_without_ic_and_says_how(workspace, iris, tmp_path: Path, services) -> None:
    from click.testing import CliRunner

    import jupyter_mldeploy.cli.service  # noqa: F401  (registers ``model deploy`` on ``main``)
    from jupyter_mldeploy.cli._common import main

    model, X = iris
    Model.register(workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
                   model_framework=Model.Framework.SCIKITLEARN)
    runner = CliRunner()
    refused = runner.invoke(main, ["model", "deploy", "-n", "x", "-w", str(workspace.path)])
    assert refused.exit_code != 0 and "Give --ic inferenceconfig.json, or -m NAME:VERSION" in refused.output
    deployed = runner.invoke(main, ["model", "deploy", "-m", "iris:1", "-w", str(workspace.path), "-o", "json"])
    services.append(Webservice(workspace, "iris"))
    assert deployed.exit_code == 0, deployed.output
    assert "Service name: iris" in deployed.stderr and "built-in entry script sklearn_score.py" in deployed.stderr
    assert Webservice(workspace, "iris").run({"data": X.tolist()}) == model.predict(X).tolist()


def test_deploy_local_magic_without_entry(workspace, iris, tmp_path: Path, services) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    model, X = iris
    Model.register(workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
                   model_framework=Model.Framework.SCIKITLEARN)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config, history_length=0)
    try:
        shell.run_line_magic("load_ext", "jupyter_mldeploy")
        shell.run_line_magic("mldeploy_workspace", str(workspace.path))
        service = shell.run_line_magic("deploy_local", "iris-magic --model iris:1")
        services.append(service)
        status = shell.magics_manager.registry["MLDeployMagics"].last_deploy_status
    finally:
        InteractiveShell.clear_instance()
    assert any("built-in entry script sklearn_score.py" in note for note in status.notes)
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()


@pytest.mark.slow  # imports mlflow three times (save, plan, the server's init): ~35 s of the suite
def test_mlflow_model_folder_deploys_with_its_own_requirements(workspace, iris, tmp_path: Path, services) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import infer_signature

    model, X = iris
    folder = tmp_path / "mlflow-iris"
    mlflow_sklearn.save_model(model, str(folder), signature=infer_signature(X, model.predict(X)),
                              serialization_format="cloudpickle")
    registered = Model.register(workspace, model_path=folder, model_name="iris-mlflow",
                                model_framework=Model.Framework.MLFLOW)
    ic = no_code_inference_config(workspace, registered)
    packages = ic.environment.python.conda_dependencies.pip_packages
    assert ic.environment.name == "mldeploy-mlflow"
    assert any(p.startswith("mlflow-skinny==") for p in packages) and not any(p.startswith("mlflow==") for p in packages)
    assert f"scikit-learn=={__import__('sklearn').__version__}" in packages
    service = Model.deploy(workspace, "iris-mlflow", [registered])
    services.append(service)
    service.wait_for_deployment()
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()
    # The swagger schema comes from the signature: a float64 tensor of shape [-1, 4] under "data".
    schema = requests.get(service.swagger_uri, timeout=30).json()["definitions"]
    assert schema["ServiceInput"]["properties"]["data"] == {
        "type": "array", "items": {"type": "array", "items": {"type": "number", "format": "double"}}}
    assert schema["ServiceOutput"]["items"] == {"type": "integer", "format": "int64"}
    split = requests.post(service.scoring_uri.replace("/score", "/invocations"),
                          json={"dataframe_split": {"data": X.tolist()}}, timeout=60)
    assert split.status_code == 200, split.text
    assert split.json() == {"predictions": model.predict(X).tolist()}


def test_mlflow_folder_without_requirements_is_refused(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    Model.register(workspace, model_path=folder, model_name="bare", model_framework="MLflow")
    with pytest.raises(InvalidArgument, match="has no requirements.txt to build its environment from"):
        Model.deploy(workspace, "bare", ["bare"])


def test_scaffolded_script_deploys_as_an_ordinary_entry_script(workspace, iris, tmp_path: Path, services) -> None:
    from click.testing import CliRunner

    from jupyter_mldeploy.cli import main
    from jupyter_mldeploy.inference_config import InferenceConfig

    model, X = iris
    registered = Model.register(workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
                                model_framework=Model.Framework.SCIKITLEARN)
    src = tmp_path / "src"
    src.mkdir()
    runner = CliRunner()
    wrote = runner.invoke(main, ["model", "scaffold-entry-script", "--framework", "scikitlearn",
                                 "--out", str(src / "score.py")])
    assert wrote.exit_code == 0, wrote.output
    assert (src / "score.py").read_text() == SKLEARN_SCRIPT.read_text()
    again = runner.invoke(main, ["model", "scaffold-entry-script", "--framework", "Onnx", "--out", str(src / "score.py")])
    assert again.exit_code != 0 and "exists: pass --overwrite" in again.output
    unknown = runner.invoke(main, ["model", "scaffold-entry-script", "--framework", "Caffe"])
    assert unknown.exit_code != 0 and "No built-in entry script for 'Caffe'" in unknown.output
    service = Model.deploy(workspace, "scaffolded", [registered], InferenceConfig("score.py", source_directory=src))
    services.append(service)
    service.wait_for_deployment()
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()


def test_panel_deploys_with_an_empty_entry(workspace, iris, tmp_path: Path, services) -> None:
    from jupyter_mldeploy.notebook.widgets.registry import RegistryPanel

    model, X = iris
    Model.register(workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
                   model_framework=Model.Framework.SCIKITLEARN)
    registry = RegistryPanel(workspace)
    assert registry.model_select.value == "iris"
    registry.deploy_entry.value = ""
    registry.deploy_service.value = "iris-panel"
    registry.deploy_button.click()
    services.append(Webservice(workspace, "iris-panel"))
    assert not registry.message.is_error, registry.message.text
    assert Webservice(workspace, "iris-panel").run({"data": X.tolist()}) == model.predict(X).tolist()


FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris_frame():
    pandas = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True)
    frame = pandas.DataFrame(X, columns=FEATURES)
    return LogisticRegression(max_iter=500).fit(frame, y), frame.iloc[::30]


def test_samples_give_the_swagger_and_the_model_gives_resources(workspace, iris_frame, tmp_path: Path, services,
                                                                capsys) -> None:
    model, rows = iris_frame
    registered = Model.register(
        workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
        model_framework=Model.Framework.SCIKITLEARN, sample_input=rows, sample_output=model.predict(rows),
        resource_configuration=ResourceConfiguration(cpu=0.5, memory_in_gb=1),
    )
    # No resources in the deployment configuration: the model's (v1); the configuration's win when it has some.
    assert plan_deployment(workspace, "p", [registered], None, None).deployment_config \
        .container_resource_requirements == {"cpu": 0.5, "memoryInGB": 1.0}
    own = plan_deployment(workspace, "p", [registered], None, LocalWebservice.deploy_configuration(memory_gb=2))
    assert own.deployment_config.container_resource_requirements == {"memoryInGB": 2}
    service = Model.deploy(workspace, "iris-swagger", [registered], show_output=True)
    services.append(service)
    out = capsys.readouterr().out
    assert "Resources: cpu 0.5, memory 1 GB (not limited by the process target)." in out
    assert "/swagger.json describes the input and output from the model's sample_input and sample_output" in out
    assert service.deployment_config.container_resource_requirements == {"cpu": 0.5, "memoryInGB": 1.0}
    for version, where in (("2", "definitions"), ("3", "components")):
        document = requests.get(service.swagger_uri, params={"version": version}, timeout=30).json()
        schemas = document[where] if version == "2" else document[where]["schemas"]
        service_input, service_output = schemas["ServiceInput"], schemas["ServiceOutput"]
        row = service_input["properties"]["data"]["items"]
        assert list(row["properties"]) == FEATURES and row["required"] == FEATURES
        assert row["properties"]["sepal_length"] == {"type": "number", "format": "double"}
        assert len(rows) == 5 and service_input["example"] == {"data": registered.sample_input["data"][:3]}
        assert service_output == {"type": "array", "items": {"type": "integer", "format": "int64"},
                                  "example": model.predict(rows).tolist()[:3]}
    # The example is a request the service answers.
    answer = requests.post(service.scoring_uri, json=service_input["example"], timeout=30)
    assert answer.status_code == 200 and answer.json() == model.predict(rows.iloc[:3]).tolist()


def test_a_record_names_the_built_in_script_and_survives_a_reinstall(workspace, iris, tmp_path: Path,
                                                                     services) -> None:
    model, X = iris
    Model.register(workspace, model_path=_pickle(model, tmp_path / "iris.pkl"), model_name="iris",
                   model_framework=Model.Framework.SCIKITLEARN)
    service = Model.deploy(workspace, "iris-moved", ["iris:1"])
    services.append(service)
    service.wait_for_deployment()
    record_path = workspace.deployments_dir / "iris-moved" / "service.json"
    record = json.loads(record_path.read_text())
    assert record["inference_config"]["entryScript"] == "mldeploy-builtin:sklearn_score.py"
    assert service.inference_config.entry_script == SKLEARN_SCRIPT
    # A record written before the reference existed holds the script's path in the old installation.
    old_install = "/old/venv/lib/python3.11/site-packages"
    record["inference_config"]["entryScript"] = f"{old_install}/jupyter_mldeploy/server/builtin/sklearn_score.py"
    write_json_atomic(record_path, record)
    assert service.inference_config.entry_script == SKLEARN_SCRIPT
    service.reload()
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()
    assert json.loads(record_path.read_text())["inference_config"]["entryScript"] == "mldeploy-builtin:sklearn_score.py"
    record = json.loads(record_path.read_text())
    record["inference_config"]["entryScript"] = "mldeploy-builtin:gone_score.py"
    write_json_atomic(record_path, record)
    with pytest.raises(DeploymentError, match="built-in entry script 'gone_score.py', which this jupyter-mldeploy "
                                              "does not ship: deploy it again"):
        service.reload()
    assert service.run({"data": X.tolist()}) == model.predict(X).tolist()  # the running server is untouched


def test_a_user_script_path_is_never_taken_for_a_built_in(workspace, tmp_path: Path) -> None:
    script = tmp_path / "builtin" / "sklearn_score.py"  # same names, but not in a jupyter_mldeploy/server folder
    script.parent.mkdir()
    script.write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    assert inference_config_from_record({"entryScript": str(script)}, workspace).entry_script == script


def test_mlflow_signature_of_columns_and_its_input_example(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "flavors: {}\nsignature:\n"
        "  inputs: '[{\"name\": \"age\", \"type\": \"long\"}, {\"name\": \"seen\", \"type\": \"datetime\"}]'\n"
        "  outputs: '[{\"type\": \"double\"}]'\n"
    )
    (tmp_path / "input_example.json").write_text(json.dumps({"columns": ["age", "seen"],
                                                             "data": [[30, "2026-01-01"]] * 5}))
    described = mlflow_signature_samples(tmp_path)
    service_input, service_output = samples_schemas({"inputKey": "data", **described})
    assert service_input["properties"]["data"]["items"]["properties"] == {
        "age": {"type": "integer", "format": "int64"}, "seen": {"type": "string", "format": "date-time"}}
    assert service_input["example"] == {"data": [{"age": 30, "seen": "2026-01-01"}] * 3}
    assert service_output == {"type": "array", "items": {"type": "number", "format": "double"}}
    (tmp_path / "MLmodel").write_text("flavors: {}\n")  # no signature: nothing to describe
    assert mlflow_signature_samples(tmp_path) is None


def test_an_unreadable_samples_variable_leaves_the_swagger_generic(tmp_path: Path, caplog) -> None:
    def run(data):  # an undecorated run(), as the built-in scripts' schema-wise
        return data

    docs = SwaggerDocs(str(tmp_path), run, False, {SAMPLES_VARIABLE: "{not json"})
    assert json.loads(docs.get("2"))["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert f"{SAMPLES_VARIABLE} cannot be read" in caplog.text


def test_no_samples_no_variable(workspace, iris, tmp_path: Path) -> None:
    model, _ = iris
    Model.register(workspace, model_path=_pickle(model, tmp_path / "m.pkl"), model_name="bare",
                   model_framework=Model.Framework.SCIKITLEARN)
    assert SAMPLES_VARIABLE not in no_code_inference_config(workspace, "bare").environment.environment_variables
