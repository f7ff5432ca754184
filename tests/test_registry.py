"""Model registry API: register, look up, list, download, delete, tags/properties, lineage, model paths."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas
import pytest

import jupyter_mldeploy
from jupyter_mldeploy.errors import Conflict, IntegrityError, InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.registry import Model, ResourceConfiguration
from jupyter_mldeploy.server import model_path as server_model_path
from jupyter_mldeploy.workspace import Workspace


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "sklearn_mnist_model.pkl"
    path.parent.mkdir()
    path.write_bytes(b"pickled model bytes \x00\x01")
    return path


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "src2" / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(3000))
    (folder / "config.json").write_text('{"layers": 3}')
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")
    return folder


# -- register -------------------------------------------------------------------------------------------


def test_public_import() -> None:
    assert jupyter_mldeploy.Model is Model
    assert jupyter_mldeploy.ResourceConfiguration is ResourceConfiguration


def test_register_file_keeps_basename_at_version_root(workspace: Workspace, model_file: Path) -> None:
    model = Model.register(workspace, model_file, "mnist", tags={"area": "mnist"}, description="digits")
    assert (model.name, model.version, model.id) == ("mnist", 1, "mnist:1")
    assert model.files == ["sklearn_mnist_model.pkl"]
    assert Path(model.url) == workspace.path / "models" / "mnist" / "1"
    assert Path(model.path) == Path(model.url) / "sklearn_mnist_model.pkl"
    assert Path(model.path).read_bytes() == model_file.read_bytes()
    assert not os.stat(model.path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    stored = model.serialize()["files"]
    assert stored == [{"path": "sklearn_mnist_model.pkl", "size": model_file.stat().st_size, "sha256": _sha(model_file)}]
    assert model.tags == {"area": "mnist"}
    assert model.description == "digits"
    assert Model.register(workspace, model_file, "mnist").version == 2


def test_register_folder_keeps_folder_name(workspace: Workspace, model_folder: Path) -> None:
    model = Model.register(workspace, model_folder, "bert")
    assert model.files == ["models/config.json", "models/sub/vocab.txt", "models/weights.bin"]
    assert Path(model.path) == Path(model.url) / "models"
    assert Path(model.path).is_dir()
    assert os.listdir(model.url) == ["models"]  # exactly one entry, as get_model_path requires
    for rel in model.files:
        source = model_folder / rel.split("/", 1)[1]
        assert (Path(model.url) / rel).read_bytes() == source.read_bytes()


def test_register_relative_dot_path_uses_folder_name(
    workspace: Workspace, model_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(model_folder.parent)
    model = Model.register(workspace, "./models/", "rel")
    assert Path(model.path).name == "models"


def test_register_child_paths_keeps_only_those(workspace: Workspace, model_folder: Path) -> None:
    model = Model.register(workspace, model_folder, "subset", child_paths=["config.json", "sub"])
    assert model.files == ["models/config.json", "models/sub/vocab.txt"]


@pytest.mark.parametrize("child", ["../outside.txt", "sub/../../outside.txt", "/etc/hostname", ".."])
def test_child_paths_escaping_the_folder_are_refused(workspace: Workspace, model_folder: Path, child: str) -> None:
    (model_folder.parent / "outside.txt").write_text("secret")
    with pytest.raises(InvalidArgument, match="child_paths entry"):
        Model.register(workspace, model_folder, "esc", child_paths=[child])
    assert Model.list(workspace) == []


def test_child_paths_missing_or_on_a_file_are_refused(
    workspace: Workspace, model_folder: Path, model_file: Path
) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        Model.register(workspace, model_folder, "m", child_paths=["nope.bin"])
    with pytest.raises(InvalidArgument, match="folder"):
        Model.register(workspace, model_file, "m", child_paths=["x"])


def test_missing_model_path_is_not_found_naming_it(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nowhere.pkl"):
        Model.register(workspace, tmp_path / "nowhere.pkl", "m")


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", "a..b", " a", "a b", "-a", ".hidden", "a\\b", "x" * 256, "name\n", "../etc"]
)
def test_bad_names_are_refused_and_store_nothing(workspace: Workspace, model_file: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"\^\[A-Za-z0-9\]"):
        Model.register(workspace, model_file, name)
    assert sorted(p.name for p in workspace.models_dir.iterdir() if p.name != ".staging") == []
    assert Model.list(workspace) == []


def test_longest_valid_name(workspace: Workspace, model_file: Path) -> None:
    name = "a" + "b" * 254
    assert Model.register(workspace, model_file, name).name == name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tags": {"n": 1}}, "values must be strings"),
        ({"tags": ["a"]}, "dict of strings"),
        ({"properties": {"": "x"}}, "non-empty strings"),
        ({"model_framework_version": "1.0"}, "needs model_framework"),
        ({"sample_input": {"x": object()}}, "JSON-safe"),
        ({"sample_input": [float("nan")]}, "JSON-safe"),
        ({"description": 5}, "description must be a string"),
    ],
)
def test_bad_metadata_is_refused(workspace: Workspace, model_file: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Model.register(workspace, model_file, "m", **kwargs)
    assert Model.list(workspace) == []


def test_metadata_round_trips(workspace: Workspace, model_file: Path) -> None:
    sample = {"data": [[1.0, 2.5], [3, 4]], "method": "predict"}
    Model.register(
        workspace,
        model_file,
        "meta",
        properties={"accuracy": "0.93"},
        model_framework=Model.Framework.SCIKITLEARN,
        model_framework_version="1.3.0",
        sample_input=sample,
    )
    model = Model(workspace, "meta")
    assert model.properties == {"accuracy": "0.93"}
    assert (model.model_framework, model.model_framework_version) == ("ScikitLearn", "1.3.0")
    assert model.sample_input == sample
    assert model.created_time.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - model.created_time) < timedelta(minutes=5)


def test_samples_and_resources_are_stored_in_the_version_folder(workspace: Workspace, model_file: Path,
                                                               tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    frame = pandas.DataFrame({"sepal_length": [5.1, 6.2], "petals": [3, 4], "kind": ["a", "b"],
                              "seen": pandas.to_datetime(["2026-01-01", "2026-02-01"])})
    model = Model.register(
        workspace, model_file, "iris", model_framework=Model.Framework.SCIKITLEARN,
        sample_input=frame, sample_output=numpy.array([0, 2]),
        resource_configuration=ResourceConfiguration(cpu=0.5, memory_in_gb=1, gpu=None),
    )
    stored = Path(model.url) / ".mldeploy-samples" / "sample_input.json"
    content = json.loads(stored.read_text())
    assert content["format"] == "mldeploy-sample" and content["kind"] == "table" and content["named"] is True
    assert [(c["name"], c["type"]) for c in content["columns"]] == [
        ("sepal_length", "number"), ("petals", "integer"), ("kind", "string"), ("seen", "string")]
    assert content["columns"][3]["format"] == "date-time" and content["data"][0][:3] == [5.1, 3, "a"]
    assert not os.stat(stored).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    again = Model(workspace, "iris")  # a fresh read from the registry and the files
    assert again.sample_input == {"data": [
        {"sepal_length": 5.1, "petals": 3, "kind": "a", "seen": "2026-01-01T00:00:00.000"},
        {"sepal_length": 6.2, "petals": 4, "kind": "b", "seen": "2026-02-01T00:00:00.000"}]}
    assert again.sample_output == [0, 2]
    read_back = again.sample_input_dataset.to_pandas_dataframe()
    assert list(read_back.columns) == list(frame.columns) and read_back["petals"].dtype == frame["petals"].dtype
    assert again.resource_configuration == ResourceConfiguration(cpu=0.5, memory_in_gb=1.0)
    data = again.serialize()
    assert data["resourceConfiguration"] == {"cpu": 0.5, "memoryInGB": 1.0, "gpu": None}
    assert data["sampleInputDatasetId"] == ".mldeploy-samples/sample_input.json"
    assert data["sampleOutputDatasetId"] == ".mldeploy-samples/sample_output.json"
    assert data["sampleOutput"] == [0, 2] and json.loads(json.dumps(data)) == data
    assert "<th style='text-align:left'>Resources</th><td style='text-align:left'>cpu 0.5, memory 1 GB</td>" in \
        again._repr_html_()
    # The samples are not model content: not listed, downloaded or deployed with it.
    assert again.files == ["sklearn_mnist_model.pkl"]
    assert sorted(p.name for p in Path(again.download(tmp_path / "out")).parent.iterdir()) == ["sklearn_mnist_model.pkl"]
    assert Model.register(workspace, model_file, "iris").serialize()["resourceConfiguration"] is None


@pytest.mark.parametrize(
    ("given", "body", "columns"),
    [
        ({"data": [[1.0, 2.5], [3, 4]]}, {"data": [[1.0, 2.5], [3, 4]]}, [(None, "number"), (None, "number")]),
        ([[1, "x"], [2, "y"]], {"data": [[1, "x"], [2, "y"]]}, [(None, "integer"), (None, "string")]),
        ([{"a": 1, "b": True}], {"data": [{"a": 1, "b": True}]}, [("a", "integer"), ("b", "boolean")]),
        ([0.5, 1.5], {"data": [0.5, 1.5]}, [(None, "number")]),
        ({"data": [[1]], "method": "predict"}, {"data": [[1]], "method": "predict"}, []),  # other keys: JSON
        ("a sentence", "a sentence", []),
    ],
)
def test_sample_forms(workspace: Workspace, model_file: Path, given: object, body: object, columns: list) -> None:
    model = Model(workspace, id=Model.register(workspace, model_file, "m", sample_input_dataset=given).id)
    assert model.sample_input == body
    assert [(c.name, c.type) for c in model.sample_input_dataset.columns] == columns


def test_numpy_samples_keep_their_shape(workspace: Workspace, model_file: Path) -> None:
    numpy = pytest.importorskip("numpy")
    model = Model.register(workspace, model_file, "m", sample_input=numpy.arange(6, dtype="float32").reshape(2, 3),
                           sample_output=numpy.array([[0.1, 0.9], [0.8, 0.2]]))
    assert model.sample_input == {"data": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]}
    assert [c.dtype for c in model.sample_input_dataset.columns] == ["float32"] * 3
    tensor = Model.register(workspace, model_file, "t", sample_input=numpy.zeros((1, 2, 2))).sample_input_dataset
    assert (tensor.kind, tensor.shape, tensor.data) == ("tensor", (1, 2, 2), [[[0.0, 0.0], [0.0, 0.0]]])
    with pytest.raises(InvalidArgument, match="not a table"):
        tensor.to_pandas_dataframe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_output": [1]}, "sample_output needs sample_input: give the input rows"),
        ({"sample_input": [[1], [2]], "sample_output": [1, 2, 3]},
         "sample_output has 3 rows but sample_input has 2: give one answer per sample row"),
        ({"sample_input": [[1]], "sample_input_dataset": [[1]]}, "Give sample_input or sample_input_dataset"),
        ({"sample_input": []}, "sample_input is empty: give at least one row"),
        ({"sample_input": pandas.DataFrame({"a": []})}, "sample_input is an empty table"),
        ({"sample_input": [[1.0], [float("inf")]]}, "sample_input holds a value that is not JSON-safe"),
        ({"resource_configuration": {"cpu": 1}},
         "resource_configuration must be a ResourceConfiguration, e.g. ResourceConfiguration(cpu=1, memory_in_gb=0.5)"),
    ],
)
def test_bad_samples_and_resources_are_refused(workspace: Workspace, model_file: Path, kwargs: dict,
                                               message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Model.register(workspace, model_file, "m", **kwargs)
    assert message in str(info.value)
    assert Model.list(workspace) == []
    assert not (workspace.models_dir / "m").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": 0}, "cpu must be a number greater than 0"),
        ({"cpu": "1"}, "cpu must be a number greater than 0"),
        ({"memory_in_gb": -1.5}, "memory_in_gb must be a number greater than 0"),
        ({"gpu": 1.5}, "gpu must be a whole number of GPUs >= 0"),
        ({"gpu": True}, "gpu must be a whole number of GPUs >= 0"),
    ],
)
def test_bad_resource_configuration_values(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match="ResourceConfiguration") as info:
        ResourceConfiguration(**kwargs)
    assert message in str(info.value) and "ResourceConfiguration(cpu=1, memory_in_gb=0.5, gpu=None)" in str(info.value)
    assert ResourceConfiguration.deserialize({"cpu": 2, "memoryInGB": 4, "gpu": 1}).serialize() == {
        "cpu": 2.0, "memoryInGB": 4.0, "gpu": 1}
    with pytest.raises(InvalidArgument, match="keys cpu, memoryInGB and gpu"):
        ResourceConfiguration.deserialize({"cores": 2})


def test_a_changed_sample_file_is_an_integrity_error(workspace: Workspace, model_file: Path) -> None:
    model = Model.register(workspace, model_file, "m", sample_input=[[1, 2]])
    stored = Path(model.url) / ".mldeploy-samples" / "sample_input.json"
    os.chmod(stored, 0o644)
    stored.write_text(stored.read_text().replace("[[1,2]]", "[[1,3]]"))
    with pytest.raises(IntegrityError, match="sample_input.json was changed after registration"):
        _ = Model(workspace, "m").sample_input
    stored.unlink()
    with pytest.raises(IntegrityError, match="sample file .* is missing"):
        _ = Model(workspace, "m").sample_input_dataset


def test_a_model_folder_named_like_the_samples_folder_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / ".mldeploy-samples"
    folder.mkdir()
    (folder / "m.bin").write_bytes(b"x")
    with pytest.raises(InvalidArgument, match="is named .mldeploy-samples"):
        Model.register(workspace, folder, "m")


def test_register_folder_containing_the_workspace_skips_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "model.txt").write_text("m")
    ws = Workspace.create(project / ".mldeploy")
    model = Model.register(ws, project, "whole")
    assert model.files == ["project/model.txt"]


# -- lookup ---------------------------------------------------------------------------------------------


def test_lookup_latest_by_version_and_by_id(workspace: Workspace, model_file: Path) -> None:
    for _ in range(3):
        Model.register(workspace, model_file, "m")
    assert Model(workspace, "m").version == 3
    assert Model(workspace, "m", version=2).version == 2
    assert Model(workspace, id="m:1").version == 1
    assert Model(workspace, id="m").version == 3
    assert Model(workspace, "m", version=2) == Model(workspace, id="m:2")


def test_lookup_errors_name_what_exists(workspace: Workspace, model_file: Path) -> None:
    with pytest.raises(NotFound, match="no models yet"):
        Model(workspace, "x")
    Model.register(workspace, model_file, "x")
    Model.register(workspace, model_file, "x")
    Model.register(workspace, model_file, "other")
    with pytest.raises(NotFound, match="Model 'x' has no version 7; it has versions 1, 2"):
        Model(workspace, "x", version=7)
    with pytest.raises(NotFound, match="registered models: other, x"):
        Model(workspace, "nope")
    with pytest.raises(InvalidArgument, match="positive integer"):
        Model(workspace, "x", version=0)
    with pytest.raises(InvalidArgument, match="disagree"):
        Model(workspace, "x", id="other:1")
    with pytest.raises(InvalidArgument, match="name or an id"):
        Model(workspace)
    with pytest.raises(InvalidArgument, match="Invalid model version"):
        Model(workspace, id="x:abc")


def test_lookup_with_tag_filter_picks_latest_match(workspace: Workspace, model_file: Path) -> None:
    Model.register(workspace, model_file, "m", tags={"stage": "prod"})
    Model.register(workspace, model_file, "m", tags={"stage": "prod"})
    Model.register(workspace, model_file, "m", tags={"stage": "dev"})
    assert Model(workspace, "m", tags=[["stage", "prod"]]).version == 2
    with pytest.raises(NotFound, match="matches"):
        Model(workspace, "m", tags=[["stage", "qa"]])


# -- list -----------------------------------------------------------------------------------------------


def test_list_filters_as_in_v1(workspace: Workspace, model_file: Path) -> None:
    Model.register(workspace, model_file, "a", tags={"team": "vision", "stage": "dev"})
    Model.register(workspace, model_file, "a", tags={"team": "vision"}, properties={"acc": "0.9"})
    Model.register(workspace, model_file, "b", tags={"team": "nlp"}, properties={"acc": "0.8"})

    def ids(**kwargs: object) -> list[str]:
        return [m.id for m in Model.list(workspace, **kwargs)]

    assert ids() == ["a:2", "a:1", "b:1"]
    assert ids(name="a") == ["a:2", "a:1"]
    assert ids(tags=["stage"]) == ["a:1"]
    assert ids(tags=[["team", "vision"]]) == ["a:2", "a:1"]
    assert ids(tags=["team", ["team", "nlp"]]) == ["b:1"]
    assert ids(properties=["acc"]) == ["a:2", "b:1"]
    assert ids(properties=[["acc", "0.8"]]) == ["b:1"]
    assert ids(latest=True) == ["a:2", "b:1"]
    assert ids(tags=["stage"], latest=True) == ["a:1"]
    assert ids(name="zzz") == []
    with pytest.raises(InvalidArgument, match="Bad tags filter"):
        Model.list(workspace, tags=[["a", "b", "c"]])


def test_list_frame(workspace: Workspace, model_file: Path) -> None:
    Model.register(workspace, model_file, "a", tags={"k": "v"})
    Model.register(workspace, model_file, "b")
    frame = Model.list_frame(workspace)
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["id"]) == ["a:1", "b:1"]
    assert frame.loc[0, "tags"] == {"k": "v"}
    assert int(frame.loc[0, "size_bytes"]) == model_file.stat().st_size
    assert Model.list_frame(workspace, name="zzz").empty


# -- download -------------------------------------------------------------------------------------------


def test_download_file_and_folder(workspace: Workspace, model_file: Path, model_folder: Path, tmp_path: Path) -> None:
    single = Model.register(workspace, model_file, "single")
    folder = Model.register(workspace, model_folder, "folder")
    out = tmp_path / "out"
    path = single.download(out)
    assert path == str(out / "sklearn_mnist_model.pkl")
    assert Path(path).read_bytes() == model_file.read_bytes()
    assert os.access(path, os.W_OK)
    path = folder.download(out)
    assert path == str(out / "models")
    assert (Path(path) / "sub" / "vocab.txt").read_text() == "a\nb\n"
    assert sorted(p.name for p in out.iterdir()) == ["models", "sklearn_mnist_model.pkl"]  # no temp left


def test_download_exist_ok(workspace: Workspace, model_file: Path, model_folder: Path, tmp_path: Path) -> None:
    single = Model.register(workspace, model_file, "single")
    folder = Model.register(workspace, model_folder, "folder")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sklearn_mnist_model.pkl").write_text("old")
    with pytest.raises(Conflict, match="exist_ok=True"):
        single.download(out)
    assert (out / "sklearn_mnist_model.pkl").read_text() == "old"
    single.download(out, exist_ok=True)
    assert (out / "sklearn_mnist_model.pkl").read_bytes() == model_file.read_bytes()
    (out / "models").mkdir()
    (out / "models" / "config.json").write_text("stale")
    (out / "models" / "mine.txt").write_text("keep")
    folder.download(out, exist_ok=True)
    assert (out / "models" / "config.json").read_text() == '{"layers": 3}'
    assert (out / "models" / "mine.txt").read_text() == "keep"


# -- delete ---------------------------------------------------------------------------------------------


def test_delete_removes_rows_and_files(workspace: Workspace, model_file: Path) -> None:
    first = Model.register(workspace, model_file, "m")
    second = Model.register(workspace, model_file, "m")
    first.delete()
    assert not Path(first.url).exists()
    assert [m.id for m in Model.list(workspace)] == ["m:2"]
    with pytest.raises(NotFound):
        first.delete()
    second.delete()
    assert not (workspace.models_dir / "m").exists()
    with workspace.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM model_files").fetchone()[0] == 0
    assert list((workspace.models_dir / ".staging").iterdir()) == []


def test_delete_model_used_by_a_service_is_a_conflict(workspace: Workspace, model_file: Path) -> None:
    model = Model.register(workspace, model_file, "served")
    with sqlite3.connect(workspace.registry_path) as conn:
        conn.execute(
            "INSERT INTO services (name, runtime, created_time, updated_time) VALUES ('svc1', 'process', 'now', 'now')"
        )
        conn.execute("INSERT INTO service_models VALUES ('svc1', 'served', 1)")
    # a service exists while its record does (rows without one are dropped as leftovers of a crash)
    (workspace.deployments_dir / "svc1").mkdir(parents=True)
    (workspace.deployments_dir / "svc1" / "service.json").write_text("{}")
    with pytest.raises(Conflict, match="used by service 'svc1'"):
        model.delete()
    assert Path(model.path).read_bytes() == model_file.read_bytes()
    assert Model(workspace, "served").version == 1
    model.delete(force=True)
    assert Model.list(workspace) == []


# -- tags and properties --------------------------------------------------------------------------------


def test_tags_and_properties(workspace: Workspace, model_file: Path) -> None:
    model = Model.register(workspace, model_file, "m", tags={"a": "1"}, properties={"p": "1"})
    model.add_tags({"b": "2", "a": "changed"})
    model.remove_tags(["b", "never-set"])
    model.add_properties({"q": "2", "p": "1"})
    fresh = Model(workspace, "m")
    assert fresh.tags == model.tags == {"a": "changed"}
    assert fresh.properties == model.properties == {"p": "1", "q": "2"}
    with pytest.raises(InvalidArgument, match="add-only"):
        model.add_properties({"p": "2", "r": "3"})
    assert Model(workspace, "m").properties == {"p": "1", "q": "2"}
    with pytest.raises(InvalidArgument):
        model.add_tags({"x": 3})
    with pytest.raises(InvalidArgument, match="list of tag keys"):
        model.remove_tags("a")


# -- serialize and display ------------------------------------------------------------------------------


def test_serialize_is_stable_and_json_safe(workspace: Workspace, model_file: Path) -> None:
    model = Model.register(workspace, model_file, "m", description="<b>bold</b>")
    data = model.serialize()
    assert list(data) == [
        "name", "version", "id", "tags", "properties", "description", "createdTime", "url", "files",
        "modelFramework", "modelFrameworkVersion", "sampleInput", "sampleOutput", "sampleInputDatasetId",
        "sampleOutputDatasetId", "resourceConfiguration", "lineage", "runId", "experimentName",
    ]
    assert json.loads(json.dumps(data)) == data
    assert datetime.fromisoformat(data["createdTime"]) == model.created_time
    assert "name='m'" in repr(model) and "id='m:1'" in repr(model)
    page = model._repr_html_()
    assert page.startswith("<table") and "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page


# -- lineage --------------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_lineage_records_git_notebook_and_framework(
    workspace: Workspace, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sklearn

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    commit = _git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/work/train.ipynb")
    lineage = Model.register(workspace, model_file, "m", model_framework=Model.Framework.SCIKITLEARN).lineage
    assert lineage["gitCommit"] == commit and lineage["gitDirty"] is False
    assert lineage["notebook"] == "/home/me/work/train.ipynb"
    assert lineage["frameworkVersion"] == sklearn.__version__
    assert lineage["pythonVersion"].count(".") == 2 and lineage["user"]
    assert lineage["sourcePath"] == str(model_file)

    (repo / "train.py").write_text("print(2)\n")
    monkeypatch.delenv("JPY_SESSION_NAME")
    lineage = Model.register(workspace, model_file, "m").lineage
    assert lineage["gitDirty"] is True
    assert "notebook" not in lineage and "frameworkVersion" not in lineage


def test_lineage_outside_git(workspace: Workspace, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    lineage = Model.register(workspace, model_file, "m").lineage
    assert "gitCommit" not in lineage
    assert datetime.fromisoformat(lineage["createdTime"]).tzinfo is not None


# -- model paths ----------------------------------------------------------------------------------------


def test_get_model_path_in_workspace(workspace: Workspace, model_file: Path, model_folder: Path) -> None:
    Model.register(workspace, model_file, "m")
    Model.register(workspace, model_folder, "m")
    assert Model.get_model_path("m", _workspace=workspace) == str(workspace.models_dir / "m" / "2" / "models")
    assert Model.get_model_path("m", 1, _workspace=workspace) == str(
        workspace.models_dir / "m" / "1" / "sklearn_mnist_model.pkl"
    )
    with pytest.raises(NotFound, match="versions 1, 2"):
        Model.get_model_path("m", 3, _workspace=workspace)


def _deployed(root: Path, name: str, version: int, entries: list[str]) -> None:
    folder = root / "azureml-models" / name / str(version)
    folder.mkdir(parents=True)
    for entry in entries:
        (folder / entry).write_text(entry)


def test_get_model_path_container_semantics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AML_APP_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    _deployed(tmp_path, "mnist", 1, ["v1.pkl"])
    _deployed(tmp_path, "mnist", 2, ["v2.pkl"])
    _deployed(tmp_path, "mnist", 10, ["v10.pkl"])
    _deployed(tmp_path, "bad", 1, ["a", "b"])
    assert Model.get_model_path("mnist") == os.path.join("azureml-models", "mnist", "10", "v10.pkl")
    assert Model.get_model_path("mnist", 2) == os.path.join("azureml-models", "mnist", "2", "v2.pkl")
    with pytest.raises(InvalidArgument, match="int"):
        Model.get_model_path("mnist", "2")  # type: ignore[arg-type]
    with pytest.raises(MLDeployError, match="exactly one"):
        Model.get_model_path("bad")
    (tmp_path / "legacy.pkl").write_text("x")
    assert Model.get_model_path("legacy.pkl") == "legacy.pkl"
    with pytest.raises(NotFound, match="azureml-models") as info:
        Model.get_model_path("missing")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(NotFound, match="mnist/3"):
        Model.get_model_path("mnist", 3)


def test_server_model_path_honours_app_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "app"
    _deployed(app, "m", 4, ["model.onnx"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AML_APP_ROOT", str(app))
    assert server_model_path.get_model_path("m") == str(app / "azureml-models" / "m" / "4" / "model.onnx")
    with pytest.raises(server_model_path.ModelPathNotFound):
        server_model_path.get_model_path("other")
    with pytest.raises(TypeError):
        server_model_path.get_model_path("m", True)
