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
    "Environment": "jupyter_mldeploy.environment",
    "CondaDependencies": "jupyter_mldeploy.environment",
    "BuiltEnvironment": "jupyter_mldeploy.environment",
    "InferenceConfig": "jupyter_mldeploy.inference_config",
    "DeploymentConfiguration": "jupyter_mldeploy.deploy",
    "LocalWebservice": "jupyter_mldeploy.deploy",
    "Webservice": "jupyter_mldeploy.deploy",
    "MLDeployError": "jupyter_mldeploy.errors",
    "InvalidArgument": "jupyter_mldeploy.errors",
    "NotFound": "jupyter_mldeploy.errors",
    "Conflict": "jupyter_mldeploy.errors",
    "EnvironmentBuildError": "jupyter_mldeploy.errors",
    "DeploymentError": "jupyter_mldeploy.errors",
    "ScoringError": "jupyter_mldeploy.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
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
    from jupyter_mldeploy.registry import Model
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
