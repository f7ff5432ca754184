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

Three more v1 behaviours live here:

- the swagger schema: the model's ``sample_input``/``sample_output`` (else an MLflow model's signature) travel
  to the scoring server in the environment's ``MLDEPLOY_SWAGGER_SAMPLES`` variable
  (:func:`swagger_samples`), from which ``server/swagger.py`` builds ``/swagger.json``;
- resources: a deployment configuration without cpu or memory takes them from the model's
  ``resource_configuration`` (:func:`with_model_resources`);
- the service record names a built-in script by name (``mldeploy-builtin:sklearn_score.py``), not by its path
  in this installation, so a service survives reinstalling the package elsewhere
  (:func:`record_inference_config`, :func:`inference_config_from_record`).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.model_sources import as_model_list, resolve_model_sources
from jupyter_mldeploy.environment.conda_dependencies import pip_package_name
from jupyter_mldeploy.environment.curated import MINIMAL, SKLEARN, curated_environment
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.registry.samples import SampleData, json_type_of_dtype
from jupyter_mldeploy.server.builtin import BUILTIN_DIR, MLFLOW_SCRIPT, ONNX_SCRIPT, SKLEARN_SCRIPT
from jupyter_mldeploy.server.builtin.model_file import (
    MLFLOW_MARKER,
    ONNX_SUFFIXES,
    SKLEARN_SUFFIXES,
    ModelFileError,
    find_model_file,
)
from jupyter_mldeploy.server.swagger import SAMPLES_VARIABLE

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.environment import Environment
    from jupyter_mldeploy.registry import Model
    from jupyter_mldeploy.workspace import Workspace

#: The environment a no-code ONNX deployment runs in.
ONNX_ENVIRONMENT = "mldeploy-onnx"
#: The environment a no-code MLflow deployment runs in (its packages come from the model).
MLFLOW_ENVIRONMENT = "mldeploy-mlflow"

#: How a service record names a built-in entry script: this prefix and the script's file name.
BUILTIN_REFERENCE = "mldeploy-builtin:"
#: Rows of a sample kept as the swagger example (the whole sample stays in the registry).
EXAMPLE_ROWS = 3
#: Largest ``MLDEPLOY_SWAGGER_SAMPLES`` value (bytes); a larger one drops its examples, then the schema.
MAX_SAMPLES_VARIABLE = 64_000
#: MLflow column types -> (numpy dtype, JSON schema type, format).
_MLFLOW_TYPES: dict[str, tuple[str, str, str | None]] = {
    "double": ("float64", "number", None), "float": ("float32", "number", None), "long": ("int64", "integer", None),
    "integer": ("int32", "integer", None), "boolean": ("bool", "boolean", None), "string": ("object", "string", None),
    "binary": ("object", "string", "byte"), "datetime": ("datetime64[ns]", "string", "date-time"),
}

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
    environment = served.environment(model_file, model.model_framework_version)
    described = swagger_samples(model, model_file)
    if described is not None:
        environment.environment_variables[SAMPLES_VARIABLE] = described
    return InferenceConfig(
        entry_script=served.script,
        environment=environment,
        description=f"No-code {served.label} deployment of {model.id} (built-in entry script {served.script.name})",
    )


def _example(sample: SampleData | None) -> dict[str, Any] | None:
    """A sample's file content with only its first rows (the swagger example)."""
    if sample is None:
        return None
    data = sample.to_json()
    if sample.kind in ("table", "tensor") and isinstance(data["data"], list):
        data["data"] = data["data"][:EXAMPLE_ROWS]
    return data


def swagger_samples(model: Model, model_file: str) -> str | None:
    """Return the ``MLDEPLOY_SWAGGER_SAMPLES`` value for a no-code deployment of ``model``, or None.

    From the model's ``sample_input`` and ``sample_output`` (their first :data:`EXAMPLE_ROWS` rows as examples);
    for an MLflow model without samples, from the ``signature`` in its ``MLmodel`` file (and its
    ``input_example.json`` when saved with one). ``server/swagger.py`` builds the schemas from it.

    Args:
        model: The registered model.
        model_file: The model file the built-in script serves (an MLflow model's ``MLmodel``).

    Returns:
        The JSON text, or None when there is nothing to describe (or it exceeds :data:`MAX_SAMPLES_VARIABLE`
        even without examples).
    """
    source = None
    if model.sample_input_dataset is not None:
        described: dict[str, Any] = {"input": _example(model.sample_input_dataset),
                                     "output": _example(model.sample_output_dataset)}
        source = "sample_input and sample_output" if described["output"] is not None else "sample_input"
    elif Path(model_file).name == "MLmodel":
        described = mlflow_signature_samples(Path(model_file).parent) or {}
        source = "MLmodel signature" if described else None
    if source is None:
        return None
    text = json.dumps({"source": source, "inputKey": "data", **described}, separators=(",", ":"))
    if len(text) > MAX_SAMPLES_VARIABLE:
        for sample in described.values():
            if isinstance(sample, dict) and "data" in sample:
                sample["data"] = []
        text = json.dumps({"source": source, "inputKey": "data", **described}, separators=(",", ":"))
    return text if len(text) <= MAX_SAMPLES_VARIABLE else None


def mlflow_signature_samples(folder: Path) -> dict[str, Any] | None:
    """Describe an MLflow model's signature as samples without rows (``{"input": ..., "output": ...}``).

    Column specs (``[{"name": "x", "type": "double"}, ...]``) become a table's columns; one tensor spec
    (``{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}``) a tensor. The example
    rows come from ``input_example.json`` (``{"columns", "data"}`` or ``{"inputs"}``) when there is one.

    Returns:
        None when the ``MLmodel`` file has no signature, or one this does not read (several tensors).
    """
    import yaml

    try:
        signature = (yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}).get("signature") or {}
        inputs = _mlflow_spec(json.loads(signature["inputs"])) if signature.get("inputs") else None
        outputs = _mlflow_spec(json.loads(signature["outputs"])) if signature.get("outputs") else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return None  # no signature, or one of a newer MLflow: the swagger stays generic
    if inputs is None:
        return None
    example_path = folder / "input_example.json"
    if example_path.is_file():
        try:
            example = json.loads(example_path.read_text(encoding="utf-8"))
        except ValueError:
            example = None
        rows = example.get("inputs", example.get("data")) if isinstance(example, dict) else None
        if isinstance(rows, list):
            inputs["data"] = rows[:EXAMPLE_ROWS]
    return {"input": inputs, "output": outputs}


def _mlflow_spec(specs: Any) -> dict[str, Any] | None:
    if not isinstance(specs, list) or not specs:
        return None
    if all(spec.get("type") == "tensor" for spec in specs):
        if len(specs) != 1:
            return None
        tensor = specs[0]["tensor-spec"]
        return {"kind": "tensor", "dtype": tensor["dtype"], "type": json_type_of_dtype(tensor["dtype"]),
                "shape": tensor["shape"], "data": []}
    columns = []
    for spec in specs:
        dtype, json_type, fmt = _MLFLOW_TYPES.get(str(spec.get("type")), ("object", None, None))
        column = {"name": spec.get("name"), "dtype": dtype, "type": json_type}
        if fmt is not None:
            column["format"] = fmt
        columns.append(column)
    ndim = 1 if len(columns) == 1 and columns[0]["name"] is None else 2
    return {"kind": "table", "ndim": ndim, "columns": columns, "data": []}


def with_model_resources(workspace: Workspace, models: Any, config: DeploymentConfiguration) -> DeploymentConfiguration:
    """Give a no-code deployment the model's ``resource_configuration`` when ``config`` sets no resources (v1).

    v1 deployed a no-code model without a deployment configuration with the cpu and memory registered with
    it. Here a configuration whose ``containerResourceRequirements`` has no ``cpu``, ``memoryInGB``,
    ``cpuLimit`` or ``memoryInGBLimit`` gets the model's (``gpu`` too when registered): Docker and Kubernetes
    apply them as on any deployment; the process target does not limit resources.

    Args:
        workspace: The workspace holding the model.
        models: The one served model (``Model`` or ``"name[:version]"``).
        config: The checked deployment configuration.

    Returns:
        ``config`` itself when it sets resources or the model has none; else a copy with the model's.
    """
    requirements = dict(config.container_resource_requirements or {})
    if any(requirements.get(key) is not None for key in ("cpu", "memoryInGB", "cpuLimit", "memoryInGBLimit")):
        return config
    from jupyter_mldeploy.registry import Model  # the registry forwards Model.deploy here (see model_sources)

    sources = resolve_model_sources(workspace, models)
    if len(sources) != 1:
        return config
    resources = Model(workspace, sources[0].name, version=sources[0].version).resource_configuration
    if resources is None:
        return config
    requirements.update(resources.container_resource_requirements())
    return replace(config, container_resource_requirements=requirements)


def record_inference_config(inference_config: InferenceConfig) -> dict[str, Any]:
    """Return the inference configuration as a service record stores it.

    As :meth:`InferenceConfig.serialize`, except that a built-in entry script is named
    ``mldeploy-builtin:<file name>`` instead of its absolute path in this installation, so the record stays
    valid when the package is installed elsewhere (:func:`inference_config_from_record` resolves it).
    """
    data = inference_config.serialize()
    if is_no_code(inference_config):
        data["entryScript"] = BUILTIN_REFERENCE + inference_config.entry_script.name
    return data


def inference_config_from_record(data: dict[str, Any], workspace: Workspace) -> InferenceConfig:
    """Read a service record's inference configuration, resolving a built-in entry script in this installation.

    Takes ``mldeploy-builtin:<name>`` and, from records written before it existed, an absolute path ending in
    ``jupyter_mldeploy/server/builtin/<name>`` (wherever the package was installed then): both become this
    installation's built-in script of that name.

    Raises:
        DeploymentError: When the record names a built-in script this version does not ship.
        InvalidArgument, NotFound: As :meth:`InferenceConfig.from_dict`.
    """
    entry = str(data.get("entryScript") or "")
    name = None
    if entry.startswith(BUILTIN_REFERENCE):
        name = entry[len(BUILTIN_REFERENCE):]
    elif not data.get("sourceDirectory"):
        path = Path(entry)
        if path.is_absolute() and path.parent.name == BUILTIN_DIR.name and path.parent.parent.name == "server" \
                and path.parent.parent.parent.name == "jupyter_mldeploy":
            name = path.name
    if name is not None:
        script = BUILTIN_DIR / name
        if not script.is_file() or script.suffix != ".py":
            raise DeploymentError(
                f"The service was deployed with the built-in entry script {name!r}, which this jupyter-mldeploy does "
                "not ship: deploy it again (Model.deploy with overwrite=True), or install the version that deployed it."
            )
        data = {**data, "entryScript": str(script)}
    return InferenceConfig.from_dict(data, workspace=workspace)


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


def no_code_note(inference_config: InferenceConfig, deployment_config: DeploymentConfiguration | None = None,
                 ) -> str | None:
    """The sentence the faces show for a no-code deployment, else None.

    Names the built-in script and the environment; where the swagger schema comes from (when the model has
    samples or an MLflow signature); with ``deployment_config``, the cpu and memory it runs with.
    """
    if not is_no_code(inference_config):
        return None
    env = inference_config.environment
    packages = ", ".join(env.python.conda_dependencies.pip_packages) if env is not None and not isinstance(
        env, str) and hasattr(env, "python") else ""
    name = getattr(env, "name", "this interpreter")
    note = (
        f"No-code deployment: the built-in entry script {inference_config.entry_script.name} serves the model in "
        f"environment {name}" + (f" ({packages})" if packages else "") + "."
    )
    described = getattr(env, "environment_variables", {}).get(SAMPLES_VARIABLE)
    if described:
        note += f" /swagger.json describes the input and output from the model's {json.loads(described)['source']}."
    requirements = (deployment_config.container_resource_requirements or {}) if deployment_config else {}
    if requirements.get("cpu") is not None or requirements.get("memoryInGB") is not None:
        parts = [f"{label} {requirements[key]:g}{unit}" for key, label, unit in
                 (("cpu", "cpu", ""), ("memoryInGB", "memory", " GB"), ("gpu", "gpu", "")) if requirements.get(key)]
        process = deployment_config is not None and deployment_config.runtime == "process"
        enforced = " (not limited by the process target)" if process else ""
        note += f" Resources: {', '.join(parts)}{enforced}."
    return note
