"""No-code deployment: the inference configuration of a model deployed without one.

v1 deployed a model registered with a supported ``model_framework`` with no entry script and no inference
configuration. Here :func:`no_code_inference_config` builds that configuration once, for every target: one of
the built-in entry scripts shipped in the scoring server (:mod:`jupyter_mldeploy.server.builtin`) and an
environment chosen from the model's framework:

- ``ScikitLearn``: the curated ``mldeploy-sklearn`` environment, scikit-learn pinned to the registered
  ``model_framework_version`` when there is one (else to the kernel's version, as the curated environment is);
- ``Onnx``: ``mldeploy-onnx``, the minimal environment plus numpy and onnxruntime (pinned to the kernel's);
- ``MLflow`` (a folder with an ``MLmodel`` file): the model's own ``requirements.txt`` (what
  ``mlflow.<flavor>.save_model`` wrote), ``mlflow`` replaced by ``mlflow-skinny`` of the same version (loading a
  pyfunc model needs no tracking server), on this machine's Python.

Anything else (no framework, TensorFlow, an unknown name, several models, a folder with two candidate files)
is an :class:`~jupyter_mldeploy.errors.InvalidArgument` naming the way out: an entry script, or the file.
To change the environment, build the same configuration yourself and set ``environment``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.model_sources import as_model_list, resolve_model_sources
from jupyter_mldeploy.environment.conda_dependencies import pip_package_name
from jupyter_mldeploy.environment.curated import MINIMAL, SKLEARN, curated_environment
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.server.builtin import BUILTIN_DIR, MLFLOW_SCRIPT, ONNX_SCRIPT, SKLEARN_SCRIPT
from jupyter_mldeploy.server.builtin.model_file import (
    MLFLOW_MARKER,
    ONNX_SUFFIXES,
    SKLEARN_SUFFIXES,
    ModelFileError,
    find_model_file,
)

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.environment import Environment
    from jupyter_mldeploy.workspace import Workspace

#: The environment a no-code ONNX deployment runs in.
ONNX_ENVIRONMENT = "mldeploy-onnx"
#: The environment a no-code MLflow deployment runs in (its packages come from the model).
MLFLOW_ENVIRONMENT = "mldeploy-mlflow"

#: v1 framework names a built-in script cannot serve here, with the reason.
_UNSERVED = {"tensorflow": "TensorFlow", "tfkeras": "TensorFlow (Keras)", "pytorch": "PyTorch"}


def _pinned(package: str, wanted: str | None = None) -> str:
    if wanted:
        return f"{package}=={wanted}"
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return package


def _sklearn_environment(model_file: str, framework_version: str | None) -> Environment:
    env = curated_environment(SKLEARN)
    assert env is not None
    if framework_version:
        env.python.conda_dependencies.add_pip_package(_pinned("scikit-learn", framework_version))
    return env


def _onnx_environment(model_file: str, framework_version: str | None) -> Environment:
    env = curated_environment(MINIMAL)
    assert env is not None
    env.name = ONNX_ENVIRONMENT
    for package in ("numpy", "onnxruntime"):
        env.python.conda_dependencies.add_pip_package(_pinned(package))
    return env


def _mlflow_environment(model_file: str, framework_version: str | None) -> Environment:
    folder = Path(model_file).parent
    requirements = folder / "requirements.txt"
    if not requirements.is_file():
        raise InvalidArgument(
            f"MLflow model {folder} has no requirements.txt to build its environment from: save it again with "
            "mlflow.<flavor>.save_model (which writes one), or deploy with an entry script and an environment."
        )
    env = curated_environment(MINIMAL)
    assert env is not None
    env.name = MLFLOW_ENVIRONMENT
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        if pip_package_name(line) == "mlflow":  # the full package brings a tracking server; loading needs skinny
            line = "mlflow-skinny" + line[len("mlflow"):]
        env.python.conda_dependencies.add_pip_package(line)
    return env


@dataclass(frozen=True)
class BuiltinFramework:
    """A framework a built-in entry script serves.

    Attributes:
        label: Its name in messages (``"scikit-learn"``).
        script: The built-in entry script.
        suffixes: The file name endings of a candidate model file.
        environment: Builds the environment from the model file found and the registered
            ``model_framework_version`` (or None).
    """

    label: str
    script: Path
    suffixes: tuple[str, ...]
    environment: Callable[[str, str | None], Environment]


#: Lower-cased v1 framework name -> how it is served.
BUILTIN_FRAMEWORKS: dict[str, BuiltinFramework] = {
    "scikitlearn": BuiltinFramework("scikit-learn", SKLEARN_SCRIPT, SKLEARN_SUFFIXES, _sklearn_environment),
    "onnx": BuiltinFramework("ONNX", ONNX_SCRIPT, ONNX_SUFFIXES, _onnx_environment),
    "mlflow": BuiltinFramework("MLflow", MLFLOW_SCRIPT, MLFLOW_MARKER, _mlflow_environment),
}

_WAY_OUT = "pass inference_config=InferenceConfig(entry_script='score.py', source_directory=..., environment=...)"


def builtin_script(framework: str) -> Path:
    """Return the built-in entry script of a framework (to read or copy it and customise it).

    Args:
        framework: A v1 framework name, case-insensitive: ``ScikitLearn``, ``Onnx`` or ``MLflow``.

    Raises:
        InvalidArgument: For a framework no built-in script serves.
    """
    served = BUILTIN_FRAMEWORKS.get(str(framework).lower())
    if served is None:
        raise InvalidArgument(f"No built-in entry script for {framework!r}: use ScikitLearn, Onnx or MLflow.")
    return served.script


def no_code_inference_config(workspace: Workspace, models: Any) -> InferenceConfig:
    """Return the inference configuration that serves ``models`` with no entry script (v1 no-code deployment).

    Args:
        workspace: The workspace holding the model.
        models: Exactly one registered ``Model`` or ``"name[:version]"``, registered with a supported
            ``model_framework`` (``Model.Framework.SCIKITLEARN``, ``ONNX`` or ``MLFLOW``).

    Returns:
        InferenceConfig: The built-in entry script and the chosen environment (not yet built).

    Raises:
        InvalidArgument: No model or several, a model without a framework or of a framework no built-in script
            serves, or a model folder holding no or several candidate files; each message names the way out.
        NotFound: For a model version that is not registered.
    """
    items = as_model_list(models)
    if len(items) != 1:
        raise InvalidArgument(
            f"inference_config is required to deploy {len(items)} models: no-code deployment serves exactly one "
            f"model registered with model_framework=Model.Framework.SCIKITLEARN, ONNX or MLFLOW; {_WAY_OUT}."
        )
    from jupyter_mldeploy.registry import Model  # the registry forwards Model.deploy here (see model_sources)

    source = resolve_model_sources(workspace, items)[0]
    model = Model(workspace, source.name, version=source.version)
    framework = model.model_framework
    if not framework:
        raise InvalidArgument(
            f"inference_config is required: model {model.id} was registered without model_framework. Either "
            f"{_WAY_OUT}, or register it with model_framework=Model.Framework.SCIKITLEARN (or ONNX, MLFLOW) to deploy it "
            "with no code."
        )
    served = BUILTIN_FRAMEWORKS.get(framework.lower())
    if served is None:
        raise InvalidArgument(_unserved_message(model.id, framework))
    try:
        model_file = find_model_file(model.path, served.suffixes, served.label)
    except ModelFileError as exc:
        raise InvalidArgument(f"Cannot deploy model {model.id} with no code: {exc}") from exc
    return InferenceConfig(
        entry_script=served.script,
        environment=served.environment(model_file, model.model_framework_version),
        description=f"No-code {served.label} deployment of {model.id} (built-in entry script {served.script.name})",
    )


def _unserved_message(model_id: str, framework: str) -> str:
    known = "MLflow, Onnx, ScikitLearn"
    unserved = _UNSERVED.get(framework.lower())
    if unserved is None:
        return (
            f"Model {model_id} has model_framework {framework!r}, which no built-in entry script serves (no-code "
            f"deployment knows {known}): {_WAY_OUT}, or register the model with one of those frameworks."
        )
    module = "tensorflow" if "TensorFlow" in unserved else "torch"
    installed = importlib.util.find_spec(module) is not None
    reason = "no built-in entry script serves it" if installed else f"{unserved} is not installable here"
    return (
        f"Model {model_id} is a {unserved} model and {reason} (no-code deployment serves {known}): {_WAY_OUT} "
        f"that loads the model, with an environment that installs {unserved}; or convert the model to ONNX and "
        "register it with model_framework=Model.Framework.ONNX."
    )


def is_no_code(inference_config: InferenceConfig) -> bool:
    """Return True when the configuration runs one of the built-in entry scripts."""
    return inference_config.entry_script.parent == BUILTIN_DIR


def no_code_note(inference_config: InferenceConfig) -> str | None:
    """The sentence the faces show for a no-code deployment (which script, which environment), else None."""
    if not is_no_code(inference_config):
        return None
    env = inference_config.environment
    packages = ", ".join(env.python.conda_dependencies.pip_packages) if env is not None and not isinstance(
        env, str) and hasattr(env, "python") else ""
    name = getattr(env, "name", "this interpreter")
    return (
        f"No-code deployment: the built-in entry script {inference_config.entry_script.name} serves the model in "
        f"environment {name}" + (f" ({packages})" if packages else "") + "."
    )
