"""jupyter_mldeploy: train, register, deploy and call a model from a notebook, on your own machine.

Public names follow Azure Machine Learning SDK v1 so a v1 notebook ports by changing its imports::

    from jupyter_mldeploy import Workspace, Model, Environment, CondaDependencies

Imports are lazy (PEP 562): ``import jupyter_mldeploy.server`` inside a scoring environment loads only
the scoring server, never the registry or the Jupyter layers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy._version import __version__

_EXPORTS = {
    "Workspace": "jupyter_mldeploy.workspace",
    "Model": "jupyter_mldeploy.registry",
    "ResourceConfiguration": "jupyter_mldeploy.registry",
    "Experiment": "jupyter_mldeploy.runs",
    "Run": "jupyter_mldeploy.runs",
    "Environment": "jupyter_mldeploy.environment",
    "CondaDependencies": "jupyter_mldeploy.environment",
    "BuiltEnvironment": "jupyter_mldeploy.environment",
    "InferenceConfig": "jupyter_mldeploy.inference_config",
    "DeploymentConfiguration": "jupyter_mldeploy.deploy",
    "LocalWebservice": "jupyter_mldeploy.deploy",
    "Webservice": "jupyter_mldeploy.deploy",
    "AksWebservice": "jupyter_mldeploy.kubernetes",
    "ParallelRunConfig": "jupyter_mldeploy.batch",
    "BatchJob": "jupyter_mldeploy.batch",
    "KubernetesCompute": "jupyter_mldeploy.kubernetes",
    "MLDeployError": "jupyter_mldeploy.errors",
    "InvalidArgument": "jupyter_mldeploy.errors",
    "NotFound": "jupyter_mldeploy.errors",
    "Conflict": "jupyter_mldeploy.errors",
    "EnvironmentBuildError": "jupyter_mldeploy.errors",
    "DeploymentError": "jupyter_mldeploy.errors",
    "ScoringError": "jupyter_mldeploy.errors",
}

__all__ = [  # spelled out (not built from _EXPORTS) so linters and IDEs see the public names
    "AksWebservice",
    "BatchJob",
    "BuiltEnvironment",
    "CondaDependencies",
    "Conflict",
    "DeploymentConfiguration",
    "DeploymentError",
    "Environment",
    "EnvironmentBuildError",
    "Experiment",
    "InferenceConfig",
    "InvalidArgument",
    "KubernetesCompute",
    "LocalWebservice",
    "MLDeployError",
    "Model",
    "NotFound",
    "ParallelRunConfig",
    "ResourceConfiguration",
    "Run",
    "ScoringError",
    "Webservice",
    "Workspace",
    "__version__",
    "load_ipython_extension",
    "panel",
]
assert set(__all__) >= set(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.batch import BatchJob, ParallelRunConfig
    from jupyter_mldeploy.deploy import DeploymentConfiguration, LocalWebservice, Webservice
    from jupyter_mldeploy.environment import BuiltEnvironment, CondaDependencies, Environment
    from jupyter_mldeploy.errors import (
        Conflict,
        DeploymentError,
        EnvironmentBuildError,
        InvalidArgument,
        MLDeployError,
        NotFound,
        ScoringError,
    )
    from jupyter_mldeploy.inference_config import InferenceConfig
    from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesCompute
    from jupyter_mldeploy.registry import Model, ResourceConfiguration
    from jupyter_mldeploy.runs import Experiment, Run
    from jupyter_mldeploy.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_mldeploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """Register the notebook magics: ``%load_ext jupyter_mldeploy`` (see ``notebook/magics.py``)."""
    from jupyter_mldeploy.notebook.magics import load_ipython_extension as load

    load(ipython)


def panel(workspace: Any = None) -> Any:
    """Return the notebook panel (registry, deployments, endpoint tester as tabs); see ``notebook/widgets``."""
    from jupyter_mldeploy.notebook.widgets import panel as build_panel

    return build_panel(workspace)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt sidebar (the build output of ``labextension/``)."""
    return [{"src": "labextension", "dest": "jupyter-mldeploy"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The Jupyter Server extension serving the sidebar's REST API (imported only by Jupyter Server)."""
    from jupyter_mldeploy.jupyter_server import MLDeployExtension

    return [{"module": "jupyter_mldeploy.jupyter_server", "app": MLDeployExtension}]
