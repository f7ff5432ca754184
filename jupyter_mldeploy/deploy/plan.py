"""``DeploymentPlan``: everything a deployment needs, checked once, before any target starts anything.

A plan is runtime-neutral: the same plan deploys to the process target, to Docker, or to a plug-in target.
It holds the resolved model versions, the checked inference and deployment configurations and the target's
name, and it is the one place the scoring variables are built (:meth:`DeploymentPlan.scoring_variables`)
and the app folder is laid out (:meth:`DeploymentPlan.layout`), so every target gives a script the same
environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.app_folder import AppFolder, ModelSource, VerifiedFiles, build_app_folder
from jupyter_mldeploy.deploy.config import DeploymentConfiguration, local_deploy_configuration
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.deploy.no_code import (
    inference_config_from_record,
    is_no_code,
    no_code_inference_config,
    record_inference_config,
    with_model_resources,
)
from jupyter_mldeploy.deploy.state import ModelRef, ServiceRecord, utc_now
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument, NotFound
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.monitoring.store import model_data_folder
from jupyter_mldeploy.names import validate_name
from jupyter_mldeploy.server import data_collector
from jupyter_mldeploy.server.config import (
    ENV_BATCH_MAX_LATENCY_MS,
    ENV_BATCH_MAX_SIZE,
    ENV_MAX_CONCURRENT_REQUESTS,
    ENV_MAX_QUEUE_WAIT_MS,
)
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.environment import Environment

#: The checked-model-files cache of a workspace, in its ``deployments/`` folder.
VERIFIED_FILENAME = ".verified-models.json"


#: What model data collection writes Parquet with; the collector falls back to CSV without it.
COLLECTION_PACKAGE = "pyarrow"


def with_collection_packages(env: Environment) -> Environment:
    """Return ``env`` with ``pyarrow`` added, for a service that collects model data.

    The collector (``jupyter_mldeploy.server.data_collector``) writes Parquet when pyarrow is importable and
    CSV otherwise; CSV costs about twice the CPU per collected row (formatting floats as text), which is the
    difference between collection costing under and over 5% of a 1-row request. So a built environment
    gets pyarrow, pinned to the deploying interpreter's version when it has one (the build cache then
    reuses its wheel). v1 asked users to list ``azureml-monitoring`` in the environment for the same reason.

    Args:
        env: The declared environment.

    Returns:
        ``env`` itself when it is user-managed (nothing is installed into it) or already lists pyarrow;
        otherwise an unregistered copy named ``<name>+pyarrow`` (the service record shows that name).
    """
    from importlib.metadata import PackageNotFoundError, version

    from jupyter_mldeploy.environment.conda_dependencies import pip_package_name

    if env.python.user_managed_dependencies:
        return env
    if any(pip_package_name(p) == COLLECTION_PACKAGE for p in env.python.conda_dependencies.pip_packages):
        return env
    extended = env.clone(f"{env.name}+{COLLECTION_PACKAGE}")
    try:
        requirement = f"{COLLECTION_PACKAGE}=={version(COLLECTION_PACKAGE)}"
    except PackageNotFoundError:
        requirement = COLLECTION_PACKAGE
    extended.python.conda_dependencies.add_pip_package(requirement)
    return extended


def check_inputs(inference_config: Any, deployment_config: Any) -> DeploymentConfiguration:
    """Check an inference and a deployment configuration; return the deployment configuration to use.

    Args:
        inference_config: An :class:`InferenceConfig`.
        deployment_config: A :class:`DeploymentConfiguration`, or None for the default local one.

    Raises:
        InvalidArgument: For a missing or wrongly typed configuration, or an entry script that cannot be
            served (parsed, not imported).
        DeploymentError: When the configuration's target cannot run here (names what to install or start).
    """
    if not isinstance(inference_config, InferenceConfig):
        raise InvalidArgument(
            "inference_config is required: pass InferenceConfig(entry_script='score.py', "
            f"source_directory=..., environment=...), not {type(inference_config).__name__}."
        )
    config = deployment_config if deployment_config is not None else local_deploy_configuration()
    if not isinstance(config, DeploymentConfiguration):
        raise InvalidArgument(
            "deployment_config must come from LocalWebservice.deploy_configuration() or "
            f"DeploymentConfiguration.from_file(), not {type(config).__name__}."
        )
    config.check_runnable()
    inference_config.validate()
    return config


def served_folder(inference_config: InferenceConfig) -> Path:
    """The folder a deployment copies: the source directory, else the entry script's own folder."""
    return inference_config.source_directory or inference_config.entry_script.parent


def no_model_note(inference_config: InferenceConfig) -> str:
    """The sentence every face shows when a deployment serves no registered model (v1's "local model")."""
    return (
        f"No registered model is served: the files come from the source directory {served_folder(inference_config)}, "
        "so nothing is versioned or checksummed."
    )


def scoring_variables(
    inference_config: InferenceConfig,
    deployment_config: DeploymentConfiguration | None,
    app: AppFolder,
    place: Callable[[Path], str] | None = None,
    service_name: str | None = None,
    model_data_dir: str | None = None,
) -> dict[str, str]:
    """Return the variables the scoring server gets, with the names azureml-inference-server-http 1.5 reads.

    The one builder of a scoring environment, used by every target, ``Model.package`` and the trial run. In
    order of precedence (later wins): the environment's declared variables, the deployment configuration's
    ``environment_variables``, then the layout (``AML_APP_ROOT``, ``AZUREML_MODEL_DIR``,
    ``AZUREML_ENTRY_SCRIPT``, ``AZUREML_SOURCE_DIRECTORY``) and the server settings (``WORKER_COUNT``,
    ``SCORING_TIMEOUT_MS``, ``AML_CORS_ORIGINS``, and the ``MLDEPLOY_BATCH_*`` / queue-limit variables of
    ``batching``, ``maxQueueWaitMs`` and ``maxConcurrentRequestsPerContainer``).

    Args:
        inference_config: The inference configuration (its environment's variables are used).
        deployment_config: The deployment configuration, or None (a package: the image's user sets them).
        app: The laid-out app folder.
        place: Maps a host path of the app folder to where the server sees it (a container's mount or
            ``/var/azureml-app`` in an image); default: the path itself.
        service_name: The service (written on collected model data rows).
        model_data_dir: Where the server writes collected model data (as it sees the folder); with the
            configuration's ``collect_model_data`` it turns collection on (``AML_MODEL_DC_STORAGE_ENABLED``,
            ``MLDEPLOY_MODEL_DATA_DIR``, ``MLDEPLOY_SERVICE_NAME``; see :mod:`jupyter_mldeploy.monitoring`).

    Returns:
        dict[str, str]: Variable name -> value.
    """
    env: dict[str, str] = {}
    declared = getattr(inference_config.environment, "environment_variables", None)
    if isinstance(declared, dict):
        env.update({str(k): str(v) for k, v in declared.items()})
    if deployment_config is not None:
        env.update(deployment_config.environment_variables)
    env.update(app.scoring_environment(place))
    if deployment_config is not None:
        env["WORKER_COUNT"] = str(deployment_config.worker_count)
        if deployment_config.scoring_timeout_ms is not None:
            env["SCORING_TIMEOUT_MS"] = str(deployment_config.scoring_timeout_ms)
        if deployment_config.cors_origins:
            env["AML_CORS_ORIGINS"] = ",".join(deployment_config.cors_origins)
        env.update(_throughput_variables(deployment_config))
        if deployment_config.collect_model_data and model_data_dir is not None:
            env[data_collector.ENABLED_VARIABLE] = "true"
            env[data_collector.FOLDER_VARIABLE] = model_data_dir
            env[data_collector.SERVICE_VARIABLE] = service_name or ""
    return env


def _throughput_variables(config: DeploymentConfiguration) -> dict[str, str]:
    """The server's batching and queue-limit variables (docs/throughput.md) for what ``config`` sets."""
    env: dict[str, str] = {}
    if config.batching is not None:
        env[ENV_BATCH_MAX_SIZE] = str(config.batching["maxBatchSize"])
        env[ENV_BATCH_MAX_LATENCY_MS] = str(config.batching["maxLatencyMs"])
    if config.max_queue_wait_ms is not None:
        env[ENV_MAX_QUEUE_WAIT_MS] = str(config.max_queue_wait_ms)
    if config.max_concurrent_requests_per_container is not None:
        env[ENV_MAX_CONCURRENT_REQUESTS] = str(config.max_concurrent_requests_per_container)
    return env


@dataclass(frozen=True)
class DeploymentPlan:
    """What to deploy and where, checked.

    Attributes:
        workspace: The workspace holding the models; the service lives in its ``deployments/``.
        name: Service name.
        target: Name of the deployment target (``deployment_config.runtime``).
        models: The model versions to serve (empty: files come from the source directory only).
        inference_config: The checked inference configuration.
        deployment_config: The checked deployment configuration.
        port: The port asked for, or None for a free one (chosen by the target).
        new_environment: True when the environment must be resolved again (a create, or an update with a new
            inference configuration); False when the running environment is kept.
        deployment_target: v1's ``deployment_target`` of a create (e.g. a ``KubernetesCompute`` naming the
            cluster), read by the target only; None for the target's default (always None for an update:
            the target keeps what it used in the record).
    """

    workspace: Workspace
    name: str
    target: str
    models: tuple[ModelSource, ...]
    inference_config: InferenceConfig
    deployment_config: DeploymentConfiguration
    port: int | None
    new_environment: bool = True
    deployment_target: Any = None

    @property
    def model_ids(self) -> list[str]:
        """The served versions as ``"name:version"``."""
        return [m.id for m in self.models]

    def environment(self) -> Environment | None:
        """The declared environment (registered or inline), or None for the deploying interpreter.

        With ``collect_model_data`` on, a built environment gains ``pyarrow`` (see
        :func:`with_collection_packages`), so collected records are Parquet, the cheaper format to write.

        Raises:
            NotFound: For a registered environment that does not exist.
        """
        env = self.inference_config.resolve_environment(self.workspace)
        if env is None or not getattr(self.deployment_config, "collect_model_data", False):
            return env
        return with_collection_packages(env)

    def layout(self, root: Path, model_placement: str = "copy", previous: Path | None = None) -> AppFolder:
        """Lay out the app folder at ``root`` (replaced when it exists), as every target serves it.

        Args:
            root: The folder.
            model_placement: ``"copy"`` where the server may write to its folder, ``"link"`` where it sees it
                read-only (see :mod:`~jupyter_mldeploy.deploy.app_folder`).
            previous: The app root being replaced, whose unchanged model copies are reused.

        Raises:
            InvalidArgument, IntegrityError, DeploymentError: See
                :func:`~jupyter_mldeploy.deploy.app_folder.build_app_folder`.
        """
        return build_app_folder(
            root,
            entry_script=self.inference_config.entry_script,
            source_directory=self.inference_config.source_directory,
            models=list(self.models),
            exclude=[self.workspace.path],
            model_placement=model_placement,
            verified=VerifiedFiles(self.workspace.deployments_dir / VERIFIED_FILENAME),
            previous=previous,
        )

    @property
    def model_data_dir(self) -> Path:
        """Where this service's collected model data goes on this machine: ``<workspace>/modeldata/<name>``."""
        return model_data_folder(self.workspace, self.name)

    def scoring_variables(
        self, app: AppFolder, place: Callable[[Path], str] | None = None, model_data_at: str | None = None
    ) -> dict[str, str]:
        """Return the scoring server's variables for this plan (see :func:`scoring_variables`).

        Args:
            app: The laid-out app folder.
            place: Maps a host path of the app folder to where the server sees it (a container's mount).
            model_data_at: Where the server sees :attr:`model_data_dir` (a container's mount); default: there.
        """
        return scoring_variables(self.inference_config, self.deployment_config, app, place, self.name,
                                 model_data_at or str(self.model_data_dir))

    def record(
        self,
        port: int,
        environment: dict[str, Any] | None,
        target_state: dict[str, Any],
        previous: ServiceRecord | None = None,
    ) -> ServiceRecord:
        """Return the service record of this plan served on ``port``.

        Sets ``deployment_config.port`` to ``port`` in the stored configuration, so it names the port in use.

        Args:
            port: The port in use.
            environment: A description of the environment (shown, never interpreted), or None.
            target_state: The target's own JSON.
            previous: The record this one replaces (keeps its creation time), or None for a new service.
        """
        config = replace(self.deployment_config)
        config.port = port
        return ServiceRecord(
            name=self.name,
            target=self.target,
            host=config.host,
            port=port,
            models=[ModelRef(m.name, m.version) for m in self.models],
            inference_config=record_inference_config(self.inference_config),
            deployment_config=config.serialize(),
            environment=environment,
            created_time=previous.created_time if previous is not None else utc_now(),
            updated_time=utc_now(),
            target_state=target_state,
        )


def plan_deployment(
    workspace: Workspace,
    name: str,
    models: Any,
    inference_config: Any,
    deployment_config: Any,
    deployment_target: Any = None,
) -> DeploymentPlan:
    """Check a new deployment's inputs and return its plan (nothing is started or written).

    Args:
        workspace: The workspace holding the models.
        name: Service name (letters, digits, ``_.-``).
        models: Registered ``Model`` objects or ``"name[:version]"`` strings; None or ``[]`` deploys the
            source directory alone (v1's "deploy using a local model").
        inference_config: The entry script, source directory and environment; None deploys one model
            registered with a supported ``model_framework`` with a built-in entry script (see
            :func:`~jupyter_mldeploy.deploy.no_code.no_code_inference_config`).
        deployment_config: From ``LocalWebservice.deploy_configuration()``, or None for the default.
        deployment_target: Where the target deploys (v1 ``deployment_target``, e.g. a ``KubernetesCompute``);
            its ``runtime`` attribute must name the configuration's target.

    Raises:
        InvalidArgument: For a bad name, models, configuration or entry script, or a deployment target of
            another runtime than the configuration's.
        NotFound: For a model version or environment that is not registered.
        DeploymentError: When the target cannot run here.
    """
    if not isinstance(workspace, Workspace):
        raise InvalidArgument(f"workspace must be a Workspace, not {type(workspace).__name__}.")
    validate_name(name, "service name")
    if inference_config is None:
        inference_config = no_code_inference_config(workspace, models)
    config = check_inputs(inference_config, deployment_config)
    if is_no_code(inference_config):  # v1: resources from the model's resource_configuration when none are set
        config = with_model_resources(workspace, models, config)
    target_runtime = getattr(deployment_target, "runtime", None)
    if deployment_target is not None and target_runtime != config.runtime:
        raise InvalidArgument(
            f"deployment_target {deployment_target!r} deploys to the {target_runtime!r} runtime, but the deployment "
            f"configuration's runtime is {config.runtime!r}: pass a configuration of that runtime (for Kubernetes: "
            "AksWebservice.deploy_configuration()), or leave deployment_target out."
        )
    sources = resolve_model_sources(workspace, models)
    return DeploymentPlan(
        workspace=workspace,
        name=name,
        target=config.runtime,
        models=tuple(sources),
        inference_config=inference_config,
        deployment_config=config,
        port=config.port,
        deployment_target=deployment_target,
    )


def plan_update(
    workspace: Workspace,
    record: ServiceRecord,
    models: Any = None,
    inference_config: InferenceConfig | None = None,
    deployment_config: DeploymentConfiguration | None = None,
) -> DeploymentPlan:
    """Check an update's inputs against the running service's record; what is not given is kept.

    Args:
        workspace: The workspace.
        record: The service's current record.
        models: New model versions (replacing the served ones), or None to keep them.
        inference_config: A new inference configuration, or None to keep it (its files are copied again).
        deployment_config: A new deployment configuration, or None to keep it.

    Raises:
        InvalidArgument: For a bad configuration, or a change of target (delete and deploy again).
        DeploymentError: When a served model version no longer exists.
    """
    ic = inference_config if inference_config is not None else inference_config_from_record(
        record.inference_config, workspace
    )
    if deployment_config is not None:
        config = deployment_config
    else:
        config = DeploymentConfiguration.from_dict(record.deployment_config)
        config.port = record.port
    config = check_inputs(ic, config)
    if config.runtime != record.target:
        raise InvalidArgument(
            f"Service {record.name!r} runs on the {record.target!r} target; to move it to {config.runtime!r}, "
            "delete it and deploy it again."
        )
    try:
        sources = resolve_model_sources(workspace, models if models is not None else record.model_ids)
    except NotFound as exc:
        raise DeploymentError(
            f"Cannot update service {record.name!r}: {exc} Update it with models=[...] naming existing versions."
        ) from exc
    port = config.port if deployment_config is not None and config.port is not None else record.port
    return DeploymentPlan(
        workspace=workspace,
        name=record.name,
        target=record.target,
        models=tuple(sources),
        inference_config=ic,
        deployment_config=config,
        port=port,
        new_environment=inference_config is not None,
    )
