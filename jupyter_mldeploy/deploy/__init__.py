"""Deploying models as services: ``Model.deploy`` -> ``Webservice`` on a deployment target.

Public names follow Azure ML SDK v1::

    from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model

    config = LocalWebservice.deploy_configuration(port=None)          # runtime="process" (default) or "docker"
    service = Model.deploy(ws, "diabetes", [model], InferenceConfig("score.py"), config)
    service.wait_for_deployment(show_output=True)
    service.run({"data": [[0.1, 0.2, ...]]})

Layout: :mod:`~jupyter_mldeploy.deploy.plan` checks inputs once; :mod:`~jupyter_mldeploy.deploy.targets` runs
them; :mod:`~jupyter_mldeploy.deploy.webservice` is the façade written once on top of any target.
"""

from __future__ import annotations

from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.deploy.deployer import deploy_model
from jupyter_mldeploy.deploy.state import ServiceState
from jupyter_mldeploy.deploy.webservice import LocalWebservice, Webservice

__all__ = [
    "DeploymentConfiguration",
    "LocalWebservice",
    "ServiceState",
    "Webservice",
    "deploy_model",
    "local_deploy_configuration",
]
