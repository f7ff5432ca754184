"""Deploying models as local services (the process runtime): ``Model.deploy`` -> ``LocalWebservice``.

Public names follow Azure ML SDK v1::

    from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model

    config = LocalWebservice.deploy_configuration(port=None)
    service = Model.deploy(ws, "diabetes", [model], InferenceConfig("score.py"), config)
    service.wait_for_deployment(show_output=True)
    service.run({"data": [[0.1, 0.2, ...]]})
"""

from __future__ import annotations

from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.deploy.state import ServiceState
from jupyter_mldeploy.deploy.webservice import LocalWebservice, Webservice, deploy_model

__all__ = [
    "DeploymentConfiguration",
    "LocalWebservice",
    "ServiceState",
    "Webservice",
    "deploy_model",
    "local_deploy_configuration",
]
