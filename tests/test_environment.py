"""Environments without building: file formats, conda YAML, curated names, registry versioning, planning."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest
import yaml

from jupyter_mldeploy import CondaDependencies, Environment
from jupyter_mldeploy.environment.build import find_interpreter, pip_index_settings, plan_build
from jupyter_mldeploy.environment.conda_map import map_conda_package
from jupyter_mldeploy.errors import Conflict, EnvironmentBuildError, InvalidArgument, NotFound
from jupyter_mldeploy.workspace import Workspace

# An azureml_environment.json exactly as Azure ML SDK v1's save_to_directory writes it (4-space indent,
# condaDependencies moved out to conda_dependencies.yml), with a key newer SDKs add ("assetId").
V1_DEFINITION = {
    "name": "sklearn-env",
    "version": "3",
    "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE", "AZUREML_ENTRY_SCRIPT": "score.py"},
    "python": {
        "userManagedDependencies": False,
        "interpreterPath": "python",
        "condaDependenciesFile": None,
        "baseCondaEnvironment": None,
    },
    "docker": {
        "enabled": False,
        "baseImage": "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20220208.v1",
        "baseDockerfile": None,
        "sharedVolumes": True,
        "shmSize": "2g",
        "arguments": [],
        "baseImageRegistry": {"address": None, "username": None, "password": None, "registryIdentity": None},
        "platform": {"os": "Linux", "architecture": "amd64"},
    },
    "spark": {"repositories": [], "packages": [], "precachePackages": True},
    "databricks": {"mavenLibraries": [], "pypiLibraries": [], "rcranLibraries": [], "jarLibraries": [],
                   "eggLibraries": []},
    "r": None,
    "inferencingStackVersion": None,
    "assetId": "azureml://locations/westeurope/workspaces/x/environments/sklearn-env/versions/3",
}

V1_CONDA = """\
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

name: project_environment
dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.5.2 and later.
- python=3.8.13

- pip:
    # Required packages for AzureML execution, history, and data preparation.
  - azureml-defaults~=1.48.0
  - inference-schema[numpy-support]
  - scikit-learn==1.0.2
- numpy=1.21
channels:
- anaconda
- conda-forge
"""


@pytest.fixture
def v1_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "v1env"
    folder.mkdir()
    (folder / "azureml_environment.json").write_text(json.dumps(V1_DEFINITION, indent=4))
    (folder / "conda_dependencies.yml").write_text(V1_CONDA)
    return folder


# -- CondaDependencies ------------------------------------------------------------------------------------


def test_conda_yaml_round_trip(tmp_path: Path) -> None:
    cd = CondaDependencies.create(
        python_version="3.10", pip_packages=["six==1.16.0", "requests>=2"], conda_packages=["numpy=1.26"],
        pip_indexurl="https://example.invalid/simple",
    )
    cd.set_pip_option("--extra-index-url https://extra.invalid/simple")
    text = cd.serialize_to_string()
    assert text.startswith("# Conda environment specification.")
    data = yaml.safe_load(text)
    assert list(data) == ["name", "dependencies", "channels"]
    assert data["dependencies"][:2] == ["python=3.10", "numpy=1.26"]
    assert data["dependencies"][2] == {"pip": [
        "--index-url https://example.invalid/simple", "--extra-index-url https://extra.invalid/simple",
        "six==1.16.0", "requests>=2",
    ]}
    path = Path(cd.save(tmp_path / "env.yml"))
    again = CondaDependencies(path)
    assert again == cd
    assert again.python_version == "3.10"
    assert again.pip_packages == ["six==1.16.0", "requests>=2"]
    assert again.pip_options == ["--index-url https://example.invalid/simple",
                                 "--extra-index-url https://extra.invalid/simple"]
    assert again.conda_packages == ["python=3.10", "numpy=1.26"]


def test_conda_add_remove_replace_by_name() -> None:
    cd = CondaDependencies.create(pip_packages=["Scikit_Learn==1.0", "six"], conda_packages=["numpy"])
    cd.add_pip_package("scikit-learn[alldeps]==1.3")
    cd.add_conda_package("numpy=1.26")
    cd.add_conda_package("conda-forge::pandas>=2")
    assert cd.pip_packages == ["scikit-learn[alldeps]==1.3", "six"]
    assert cd.conda_packages[1:] == ["numpy=1.26", "conda-forge::pandas>=2"]
    cd.remove_pip_package("SIX")
    cd.remove_conda_package("pandas")
    cd.remove_conda_package("not-there")
    assert cd.pip_packages == ["scikit-learn[alldeps]==1.3"]
    assert cd.conda_packages[1:] == ["numpy=1.26"]
    with pytest.raises(InvalidArgument, match="set_pip_option"):
        cd.add_pip_package("--index-url x")
    with pytest.raises(InvalidArgument, match="X.Y"):
        cd.set_python_version("three")


def test_create_defaults_to_azureml_defaults_like_v1() -> None:
    cd = CondaDependencies.create()
    assert cd.pip_packages == ["azureml-defaults"]
    assert cd.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_conda_file_with_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("name: x\nbogus: 1\ndependencies: [numpy]\n")
    with pytest.raises(InvalidArgument, match="bogus"):
        CondaDependencies(path)


# -- v1 files ----------------------------------------------------------------------------------------------


def test_load_v1_folder_written_by_the_sdk(v1_folder: Path) -> None:
    env = Environment.load_from_directory(v1_folder)
    assert env.name == "sklearn-env"
    assert env.version == "3"
    assert env.environment_variables["AZUREML_ENTRY_SCRIPT"] == "score.py"
    assert env.docker.base_image.endswith("20220208.v1")
    assert env.docker.enabled is False
    assert env.python.user_managed_dependencies is False
    cd = env.python.conda_dependencies
    assert cd.python_version == "3.8.13"
    assert cd.pip_packages == ["azureml-defaults~=1.48.0", "inference-schema[numpy-support]", "scikit-learn==1.0.2"]
    assert cd.conda_packages == ["python=3.8.13", "numpy=1.21"]


def test_v1_json_round_trip_is_exact(v1_folder: Path, tmp_path: Path) -> None:
    env = Environment.load_from_directory(v1_folder)
    out = tmp_path / "out"
    env.save_to_directory(out)
    written = json.loads((out / "azureml_environment.json").read_text())
    assert written == V1_DEFINITION
    assert list(written) == list(V1_DEFINITION)
    assert list(written["docker"]) == list(V1_DEFINITION["docker"])
    assert (out / "azureml_environment.json").read_text().startswith('{\n    "name": "sklearn-env"')
    again = Environment.load_from_directory(out)
    assert again == env
    assert yaml.safe_load((out / "conda_dependencies.yml").read_text()) == yaml.safe_load(V1_CONDA)


def test_save_to_directory_refuses_existing_without_overwrite(tmp_path: Path) -> None:
    env = Environment("e1")
    env.save_to_directory(tmp_path / "d")
    with pytest.raises(Conflict, match="overwrite=True"):
        env.save_to_directory(tmp_path / "d")
    env.environment_variables = {"A": "1"}
    env.save_to_directory(tmp_path / "d", overwrite=True)
    assert Environment.load_from_directory(tmp_path / "d").environment_variables == {"A": "1"}


def test_base_dockerfile_goes_to_its_own_file(tmp_path: Path) -> None:
    env = Environment("dock")
    env.docker.base_dockerfile = "FROM ubuntu:22.04\nRUN echo hi\n"
    env.save_to_directory(tmp_path / "d")
    definition = json.loads((tmp_path / "d" / "azureml_environment.json").read_text())
    assert "baseDockerfile" not in definition["docker"]
    assert (tmp_path / "d" / "BaseDockerfile").read_text() == env.docker.base_dockerfile
    assert Environment.load_from_directory(tmp_path / "d").docker.base_dockerfile == env.docker.base_dockerfile


def test_load_from_missing_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="azureml_environment.json"):
        Environment.load_from_directory(tmp_path)


def test_serialize_is_json_safe_and_round_trips() -> None:
    env = Environment("ser")
    env.python.conda_dependencies.add_pip_package("six==1.16.0")
    data = json.loads(json.dumps(env.serialize()))
    assert data["python"]["condaDependencies"]["dependencies"][-1]["pip"][-1] == "six==1.16.0"
    assert Environment.deserialize(data) == env


def test_clone_is_independent_and_unregistered() -> None:
    env = Environment("orig")
    env.version = "4"
    copy = env.clone("copy")
    copy.python.conda_dependencies.add_pip_package("six")
    assert copy.name == "copy" and copy.version is None
    assert "six" not in env.python.conda_dependencies.pip_packages


def test_repr_and_html() -> None:
    env = Environment("<b>x</b>")
    env.python.conda_dependencies.add_pip_package("six==1.16.0")
    assert "six==1.16.0" in repr(env)
    html = env._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "six==1.16.0" in html


# -- constructors ------------------------------------------------------------------------------------------


def test_from_pip_requirements_reads_includes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    (tmp_path / "requirements.txt").write_text("# comment\n-r base.txt\n\nrequests>=2  # inline\n")
    env = Environment.from_pip_requirements("pipenv", tmp_path / "requirements.txt")
    assert env.python.conda_dependencies.pip_packages == ["six==1.16.0", "requests>=2"]
    assert "pip" in env.python.conda_dependencies.conda_packages
    with pytest.raises(NotFound):
        Environment.from_pip_requirements("x", tmp_path / "missing.txt")


def test_from_conda_specification_defaults_python(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = tmp_path / "env.yml"
    spec.write_text("name: x\ndependencies:\n  - numpy\n  - pip:\n    - six\n")
    with caplog.at_level(logging.WARNING):
        env = Environment.from_conda_specification("fromconda", spec)
    assert env.python.conda_dependencies.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "No Python version" in caplog.text
    with pytest.raises(NotFound):
        Environment.from_conda_specification("x", tmp_path / "nope.yml")


@pytest.mark.skipif(any(shutil.which(t) for t in ("conda", "mamba", "micromamba")), reason="conda is installed")
def test_from_existing_conda_environment_without_conda() -> None:
    with pytest.raises(EnvironmentBuildError, match="conda, mamba or micromamba"):
        Environment.from_existing_conda_environment("x", "base")


def test_from_current_records_the_interpreter(workspace: Workspace) -> None:
    env = Environment.from_current("here")
    assert env.python.user_managed_dependencies is True
    assert env.python.interpreter_path == sys.executable
    assert f"PyYAML=={dist_version('pyyaml')}" in env.pip_freeze
    registered = env.register(workspace)
    folder = workspace.environments_dir / "here" / registered.version
    assert f"PyYAML=={dist_version('pyyaml')}" in (folder / "pip_freeze.txt").read_text()
    assert "pipFreeze" not in json.loads((folder / "azureml_environment.json").read_text())
    assert Environment.get(workspace, "here").pip_freeze == env.pip_freeze


# -- curated -----------------------------------------------------------------------------------------------


def test_curated_environments_need_no_registration(workspace: Workspace) -> None:
    minimal = Environment.get(workspace, "mldeploy-minimal")
    assert minimal.version == "1"
    assert minimal.python.conda_dependencies.pip_packages == []
    sklearn = Environment.get(workspace, "mldeploy-sklearn")
    pip = sklearn.python.conda_dependencies.pip_packages
    assert f"scikit-learn=={dist_version('scikit-learn')}" in pip
    assert {p.split("==")[0] for p in pip} == {"numpy", "pandas", "scikit-learn", "joblib"}
    listed = Environment.list(workspace)
    assert list(listed)[:2] == ["mldeploy-minimal", "mldeploy-sklearn"]


def test_azureml_alias_logged_once(workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    from jupyter_mldeploy.environment import curated

    curated._aliases_logged.discard("AzureML-Minimal")
    with caplog.at_level(logging.WARNING, logger="jupyter_mldeploy.environment.curated"):
        first = Environment.get(workspace, "AzureML-Minimal")
        second = Environment.get(workspace, "AzureML-Minimal")
    assert first.name == second.name == "mldeploy-minimal"
    assert caplog.text.count("AzureML-Minimal") == 1
    assert Environment.get(workspace, "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu").name == "mldeploy-sklearn"
    with pytest.raises(NotFound, match="not registered"):
        Environment.get(workspace, "AzureML-TensorFlow-2.3-GPU")


def test_curated_and_reserved_names_cannot_be_registered(workspace: Workspace) -> None:
    with pytest.raises(InvalidArgument, match="reserved"):
        Environment("mldeploy-minimal").register(workspace)
    with pytest.raises(InvalidArgument, match="reserved"):
        Environment("AzureML-Custom").register(workspace)


# -- registry ----------------------------------------------------------------------------------------------


def test_register_versions_and_identical_spec(workspace: Workspace) -> None:
    env = Environment("reg")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    first = env.register(workspace)
    assert first.version == "1" and env.version is None
    assert env.register(workspace).version == "1"  # identical to the latest: no new version (v1 behaviour)
    env.python.conda_dependencies.add_pip_package("six==1.17.0")
    assert env.register(workspace).version == "2"
    assert Environment.get(workspace, "reg").version == "2"
    old = Environment.get(workspace, "reg", 1)
    assert old.python.conda_dependencies.pip_packages == ["six==1.16.0"]
    assert Environment.get(workspace, "reg", "2").python.conda_dependencies.pip_packages == ["six==1.17.0"]
    folder = workspace.environments_dir / "reg" / "2"
    assert json.loads((folder / "azureml_environment.json").read_text())["version"] == "2"
    assert "six==1.17.0" in (folder / "conda_dependencies.yml").read_text()
    assert [e.version for e in Environment.list_versions(workspace, "reg")] == ["1", "2"]
    assert Environment.list(workspace)["reg"].version == "2"
    assert not [p for p in (workspace.environments_dir / "reg").iterdir() if p.name.startswith(".tmp")]


def test_register_is_safe_across_processes(workspace: Workspace) -> None:
    script = (
        "import sys\n"
        "from jupyter_mldeploy import Environment, Workspace\n"
        "env = Environment('multi')\n"
        "env.environment_variables = {'N': sys.argv[2]}\n"
        "print(env.register(Workspace(sys.argv[1])).version)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(workspace.path), str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    versions = sorted(int(p.communicate(timeout=120)[0].strip()) for p in procs)
    assert versions == [1, 2, 3, 4]


def test_get_errors(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match="not registered"):
        Environment.get(workspace, "nothing")
    with pytest.raises(InvalidArgument):
        Environment.get(workspace, "../etc")
    with pytest.raises(InvalidArgument):
        Environment("../evil").register(workspace)
    Environment("one").register(workspace)
    with pytest.raises(NotFound):
        Environment.get(workspace, "one", 7)


# -- build planning (no build) -----------------------------------------------------------------------------


def test_conda_map() -> None:
    assert map_conda_package("numpy=1.21").requirement == "numpy==1.21.*"
    assert map_conda_package("pytorch").requirement == "torch"
    assert map_conda_package("py-xgboost=1.5.0").requirement == "xgboost==1.5.0.*"
    assert map_conda_package("conda-forge::scikit-learn>=1.0").requirement == "scikit-learn>=1.0"
    assert map_conda_package("scipy==1.10.1=py311h").requirement == "scipy==1.10.1"
    assert map_conda_package("mkl").requirement is None
    with pytest.raises(EnvironmentBuildError, match="cudnn.*pip.*micromamba"):
        map_conda_package("cudnn=8.2")


def test_serving_stack_is_substituted(v1_folder: Path) -> None:
    env = Environment.load_from_directory(v1_folder)
    plan = plan_build(env)
    assert not any("azureml-defaults" in r for r in plan.requirements)
    assert "scikit-learn==1.0.2" in plan.requirements
    assert "numpy==1.21.*" in plan.requirements
    assert any("azureml-defaults" in n and "scoring server" in n for n in plan.notes)
    assert any(r.startswith("starlette") for r in plan.runtime_requirements)


def test_spec_hash_sensitivity(monkeypatch: pytest.MonkeyPatch) -> None:
    def make(pips: list[str]) -> Environment:
        env = Environment("h")
        env.python.conda_dependencies = CondaDependencies.create(pip_packages=pips)
        return env

    base = plan_build(make(["six==1.16.0", "requests"])).spec_hash
    assert plan_build(make(["requests", "six==1.16.0"])).spec_hash == base  # order does not matter
    assert plan_build(make(["six==1.17.0", "requests"])).spec_hash != base
    other_vars = make(["six==1.16.0", "requests"])
    other_vars.environment_variables = {"X": "1"}
    assert plan_build(other_vars).spec_hash == base  # runtime settings are not build inputs
    with_index = make(["six==1.16.0", "requests"])
    with_index.python.conda_dependencies.set_pip_option("--extra-index-url https://extra.invalid/simple")
    plan = plan_build(with_index)
    assert plan.spec_hash != base and "https://extra.invalid/simple" in plan.index.extra_index_urls
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.invalid/simple")
    mirrored = plan_build(make(["six==1.16.0", "requests"]))
    assert mirrored.index.index_url == "https://mirror.invalid/simple"
    assert mirrored.spec_hash != base


def test_pip_settings_of_this_machine_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nextra-index-url = file:///a/simple file:///b/simple\nfind-links = ./wheels\n"
                    "[install]\ntrusted-host = example.invalid\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = pip_index_settings()
    assert settings.extra_index_urls == ("file:///a/simple", "file:///b/simple")
    assert settings.find_links == (str(tmp_path / "wheels"),)
    assert settings.trusted_hosts == ("example.invalid",)
    args = settings.uv_args()
    assert args[args.index("--index-strategy") + 1] == "unsafe-best-match"


def test_interpreter_choice() -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    chosen, note = find_interpreter(here)
    assert chosen.path == Path(sys.executable) and note is None
    chosen, note = find_interpreter(f"{here}.99")
    assert chosen.version.startswith(here + ".") and "same minor" in note
    with pytest.raises(EnvironmentBuildError, match=r"python=2\.5.*Install Python 2\.5"):
        find_interpreter("2.5")


def test_use_docker_without_engine_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The Docker build itself is tested in tests/docker/; here: no engine -> a quick, clear error.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(EnvironmentBuildError, match="start Docker or use runtime='process'"):
        Environment("d").build_local(useDocker=True)
    with pytest.raises(EnvironmentBuildError, match="No Docker engine answers"):
        Environment("d").build_local(use_docker=True)
