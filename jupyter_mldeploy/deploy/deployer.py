"""``deploy_model`` (v1 ``Model.deploy``): plan, then create on the plan's target or update in place."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.no_code import no_code_note
from jupyter_mldeploy.deploy.plan import no_model_note, plan_deployment
from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.targets.registry import get_target
from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.errors import Conflict

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.inference_config import InferenceConfig
    from jupyter_mldeploy.registry import Model
    from jupyter_mldeploy.workspace import Workspace


def deploy_model(
    workspace: Workspace,
    name: str,
    models: Sequence[Model | str] | None,
    inference_config: InferenceConfig | None = None,
    deployment_config: DeploymentConfiguration | None = None,
    overwrite: bool = False,
    show_output: bool = False,
    deployment_target: Any = None,
) -> Webservice:
    """Deploy model versions as a service on the deployment configuration's target (v1 ``Model.deploy``).

    Everything that can be checked is checked before anything starts (:func:`plan_deployment`): the name,
    the models, the entry script (parsed, not imported), the target's availability. A declared environment
    is built (or reused) first; the port is checked by the target.

    Args:
        workspace: The workspace holding the models; the service lives in its ``deployments/``.
        name: Service name (letters, digits, ``_.-``).
        models: Registered ``Model`` objects or ``"name[:version]"`` strings. None or ``[]`` serves the
            source directory alone (v1's "deploy using a local model": ``AZUREML_MODEL_DIR`` is the empty
            ``azureml-models`` root, and nothing is versioned or checksummed).
        inference_config: The entry script, source directory and environment; None for a model registered
            with a supported ``model_framework`` (no-code deployment, :mod:`~jupyter_mldeploy.deploy.no_code`).
        deployment_config: From ``LocalWebservice.deploy_configuration()`` (``runtime="process"`` or
            ``"docker"``); default: the process target on a free port.
        overwrite: When a service of that name exists, update it in place (zero downtime) instead of raising
            ``Conflict``.
        show_output: Print the environment build and the server log, and wait until the service is healthy.
        deployment_target: v1's compute target: a ``KubernetesCompute`` naming the cluster (kubeconfig,
            context, namespace, image registry) for an ``AksWebservice.deploy_configuration()``; None for the
            target's default.

    Returns:
        Webservice: ``Transitioning`` until ``init()`` returned (``Healthy`` when ``show_output`` waited);
        a ``LocalWebservice`` or a ``DockerWebservice`` as v1.

    Raises:
        InvalidArgument: For a bad name, models, configuration or entry script (nothing started).
        NotFound: For a model version or environment that is not registered.
        Conflict: When the name is taken and ``overwrite`` is False, the name runs on another target, or the
            port is in use (names the holder).
        EnvironmentBuildError: When the environment cannot be built.
        DeploymentError: When the target is not available here, or (with ``show_output``) the service fails
            to start.
    """
    plan = plan_deployment(workspace, name, models, inference_config, deployment_config, deployment_target)
    target = get_target(plan.target)
    store = ServiceStore(workspace)
    if show_output and not plan.models:
        sys.stdout.write(f"Service {name!r}: {no_model_note(plan.inference_config)}\n")
    note = no_code_note(plan.inference_config, plan.deployment_config)
    if show_output and note:
        sys.stdout.write(f"Service {name!r}: {note}\n")
    with store.lock(name):
        if store.exists(name):
            if not overwrite:
                raise Conflict(
                    f"Service {name!r} already exists; pass overwrite=True to update it, or choose another name."
                )
            existing = Webservice(workspace, name)
            if existing.runtime != plan.target:
                raise Conflict(
                    f"Service {name!r} runs on the {existing.runtime!r} target; delete it first to deploy it on "
                    f"{plan.target!r}, or choose another name."
                )
            existing._update_locked(plan.model_ids, plan.inference_config, plan.deployment_config,
                                    wait=show_output, show_output=show_output)
        else:
            target.create(store, plan, show_output)
    service = Webservice(workspace, name)
    if show_output:
        service.wait_for_deployment(show_output=True)
    return service


