"""From a deployment plan to manifests: the image, the scoring environment, and the export with no cluster.

The image is ``Model.package``'s (:func:`~jupyter_mldeploy.docker.package.package_models`): environment,
entry script folder and models in one self-contained image named by a content hash, so the same inputs name
the same image whether it is built now or later from the exported build context. The scoring server's
environment comes from the plan's one builder (:func:`~jupyter_mldeploy.deploy.plan.scoring_variables`),
placed where the package image has the app (``/var/azureml-app``).

``export_manifests`` writes everything ``kubectl apply -k DIR`` needs, without a cluster or the
``kubernetes`` client::

    export_manifests(ws, "diabetes", ["diabetes:1"], inference_config, aks_config, "k8s/")
    # k8s/: deployment.yaml service.yaml horizontalpodautoscaler.yaml poddisruptionbudget.yaml
    #       secret.yaml kustomization.yaml, and image/ (docker build -t IMAGE k8s/image)
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.app_folder import remove_app_folder
from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.deploy.plan import DeploymentPlan, scoring_variables
from jupyter_mldeploy.docker.dockerfile import APP_ROOT
from jupyter_mldeploy.docker.package import ModelPackage, package_models
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.kubernetes.compute import SERVICE_TYPES
from jupyter_mldeploy.kubernetes.config import KubernetesSettings, check_dns1123_label, collection_note
from jupyter_mldeploy.kubernetes.manifests import ManifestSpec, render_manifests, write_manifests
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:
    from jupyter_mldeploy.registry import Model

#: The most workers the server takes (``WORKER_COUNT``), whatever ``replica_max_concurrent_requests`` says.
MAX_WORKERS = 64
#: The build context's folder inside an export.
IMAGE_CONTEXT_DIR = "image"

logger = logging.getLogger(__name__)


def scoring_environment(plan: DeploymentPlan) -> dict[str, str]:
    """The scoring server's variables in a pod of ``plan``'s package image.

    v1's AKS settings reach the server as its own settings: ``scoring_timeout_ms`` (default 60000) as
    ``SCORING_TIMEOUT_MS`` and ``replica_max_concurrent_requests`` as ``WORKER_COUNT`` (each worker runs one
    ``run()`` at a time), with v1's queue wait (``max_request_wait_time``, default 500 ms) so a request over the
    concurrency limit waits as behind v1's front end instead of being refused at once. The app folder is laid
    out (hard links, in the workspace) only to name its paths.

    Raises:
        InvalidArgument, IntegrityError, DeploymentError: As :meth:`DeploymentPlan.layout`.
    """
    config = plan.deployment_config
    settings = KubernetesSettings.of(config)
    server_config = replace(
        config,
        scoring_timeout_ms=settings.scoring_timeout_ms,
        max_queue_wait_ms=settings.max_queue_wait_ms if config.max_concurrent_requests_per_container is not None
        else config.max_queue_wait_ms,
        worker_count=min(MAX_WORKERS, config.worker_count if config.max_concurrent_requests_per_container is None
                         else settings.max_concurrent_requests),
    )
    with tempfile.TemporaryDirectory(prefix=".k8s-layout-", dir=plan.workspace.path) as tmp:
        root = Path(tmp) / "app"
        app = plan.layout(root, model_placement="link")
        try:
            def place(path: Path) -> str:
                relative = path.relative_to(root).as_posix()
                return APP_ROOT if relative == "." else f"{APP_ROOT}/{relative}"

            return scoring_variables(plan.inference_config, server_config, app, place)
        finally:
            remove_app_folder(root)


def package_image(plan: DeploymentPlan, build: bool, show_output: bool = False) -> ModelPackage:
    """``Model.package`` of the plan: built when ``build`` (Docker needed), else only its context named."""
    package = package_models(
        plan.workspace, plan.model_ids, plan.inference_config, generate_dockerfile=not build
    )
    package.wait_for_creation(show_output=show_output)
    return package


def manifest_spec(
    plan: DeploymentPlan,
    image: str,
    service_type: str = "ClusterIP",
    generation: int = 1,
    namespace: str | None = None,
    keys: tuple[str, str] | None = None,
) -> ManifestSpec:
    """The manifests' inputs for ``plan`` serving ``image``.

    Args:
        plan: The plan (a Kubernetes configuration).
        image: The image reference.
        service_type: The Service's type.
        generation: The rollout generation.
        namespace: The namespace; default: the configuration's.
        keys: The service keys; default: the configuration's, else generated.
    """
    settings = KubernetesSettings.of(plan.deployment_config)
    return ManifestSpec(
        name=plan.name,
        image=image,
        environment=scoring_environment(plan),
        settings=settings,
        models=tuple(plan.model_ids),
        service_type=service_type,
        generation=generation,
        namespace=namespace if namespace is not None else settings.namespace,
        keys=keys,
    )


def export_plan(
    workspace: Workspace,
    name: str,
    models: Sequence[Model | str] | None,
    inference_config: Any,
    deployment_config: Any,
) -> DeploymentPlan:
    """Check the inputs of an export and return its plan (no cluster, no ``kubernetes`` client needed).

    Raises:
        InvalidArgument: For a name that is not a DNS-1123 label, a configuration that is not a Kubernetes
            one, or a bad inference configuration.
        NotFound: For a model version that is not registered.
    """
    if not isinstance(workspace, Workspace):
        raise InvalidArgument(f"workspace must be a Workspace, not {type(workspace).__name__}.")
    check_dns1123_label(name, "service name")
    if not isinstance(inference_config, InferenceConfig):
        raise InvalidArgument(
            "inference_config is required: pass InferenceConfig(entry_script='score.py', source_directory=..., "
            f"environment=...), not {type(inference_config).__name__}."
        )
    if not isinstance(deployment_config, DeploymentConfiguration) or deployment_config.compute_type != "aks":
        raise InvalidArgument(
            "deployment_config must be a Kubernetes configuration: AksWebservice.deploy_configuration(...) or a "
            "deploymentconfig.json with \"computeType\": \"aks\"."
        )
    inference_config.validate()
    return DeploymentPlan(
        workspace=workspace, name=name, target="kubernetes", models=tuple(resolve_model_sources(workspace, models)),
        inference_config=inference_config, deployment_config=deployment_config, port=None,
    )


@dataclass(frozen=True)
class ExportedManifests:
    """What :func:`export_manifests` wrote.

    Attributes:
        directory: The folder (``kubectl apply -k DIRECTORY``).
        files: The YAML files, ``kustomization.yaml`` last.
        image: The image the Deployment runs.
        build_context: The image's build context (``docker build -t IMAGE BUILD_CONTEXT``), or None when an
            image was given.
    """

    directory: Path
    files: list[Path]
    image: str
    build_context: Path | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description."""
        return {
            "directory": str(self.directory),
            "files": [p.name for p in self.files],
            "image": self.image,
            "buildContext": str(self.build_context) if self.build_context else None,
            "apply": f"kubectl apply -k {self.directory}",
        }


def export_manifests(
    workspace: Workspace,
    name: str,
    models: Sequence[Model | str] | None,
    inference_config: InferenceConfig,
    deployment_config: DeploymentConfiguration,
    output_directory: str | Path,
    image: str | None = None,
    service_type: str = "ClusterIP",
) -> ExportedManifests:
    """Write a service's manifests and ``kustomization.yaml`` for ``kubectl apply -k``; no cluster needed.

    Args:
        workspace: The workspace holding the models.
        name: Service name (a DNS-1123 label).
        models: Registered ``Model`` objects or ``"name:version"`` strings.
        inference_config: Entry script, source directory and environment.
        deployment_config: From ``AksWebservice.deploy_configuration(...)`` or an ``"aks"`` file.
        output_directory: A new or empty folder.
        image: The image the Deployment runs (pushed by you); default: the ``Model.package`` image of these
            inputs, whose build context is written to ``OUTPUT/image`` (``docker build -t IMAGE OUTPUT/image``).
        service_type: ``ClusterIP`` (default), ``LoadBalancer`` or ``NodePort``.

    Raises:
        InvalidArgument: For bad inputs (see :func:`export_plan`), an unknown service type, or a non-empty
            output folder.
        NotFound: For a model version that is not registered.
    """
    if service_type not in SERVICE_TYPES:
        raise InvalidArgument(f"Invalid service type {service_type!r}: use one of {', '.join(SERVICE_TYPES)}.")
    plan = export_plan(workspace, name, models, inference_config, deployment_config)
    directory = Path(output_directory).expanduser().resolve()
    if directory.exists() and any(directory.iterdir()):
        raise InvalidArgument(f"Output directory {directory} is not empty: give a new or empty folder.")
    note = collection_note(deployment_config)
    if note is not None:
        logger.warning("Service %r: %s", name, note)
    package = package_image(plan, build=False) if image is None else None
    image_ref = package.location if package is not None else str(image)
    spec = manifest_spec(plan, image_ref, service_type=service_type)
    files = write_manifests(render_manifests(spec), directory, namespace=spec.namespace)
    context = package.save(directory / IMAGE_CONTEXT_DIR) if package is not None else None
    return ExportedManifests(directory, files, image_ref, context)
