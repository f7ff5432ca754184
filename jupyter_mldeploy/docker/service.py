"""The Docker runtime: a service as a container of the environment's image, behind the ``Webservice`` API.

A Docker service uses the same ``deployments/<service>/`` folder as the process runtime, plus::

    docker.json                  the container in use: name, id, image, container generation
    container-spec-<k>.json      what container k's supervisor runs (re-read on SIGHUP), container paths
    run/status-<k>.json          written by container k's supervisor (the only folder it may write)

The container runs the image ``mldeploy-env:<hash>`` built from the environment (dependencies only, see
:mod:`jupyter_mldeploy.docker.dockerfile`); the service folder is mounted read-only at
``/var/mldeploy/service`` (so ``app-<n>/`` with its models is visible inside, never writable) and ``run/``
read-write at ``/var/mldeploy/run``. The port is published on the configured host address (``127.0.0.1``
unless told otherwise) only. ``tini`` (``docker run --init``) is PID 1 and forwards signals to the supervisor.
The container's labels hold the service's JSON record as deployed (``mldeploy.record``) with the workspace
and service names, so ``docker ps --filter label=mldeploy.service`` finds every service and
``Webservice(ws, name)`` re-attaches from any process.

Reload and update without rebuilding: a change of code or models lays out ``app-<n+1>/`` in the service
folder, which the running container already sees through its mount, rewrites ``container-spec-<k>.json``
and sends SIGHUP: the supervisor starts a new worker generation, waits for its ``init()``, then retires the
old workers, on the same listening socket, so no request fails. A new environment (image), port, host or
resource limits needs a new container: on a new port it is started and must be healthy before the old one
is removed; on the same port the old one is stopped first (a short gap, said in the docs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy import process
from jupyter_mldeploy.deploy import webservice as ws_module
from jupyter_mldeploy.deploy.app_folder import AppFolder, ModelSource, remove_app_folder
from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.ports import ensure_port_free, free_port
from jupyter_mldeploy.deploy.state import (
    ServiceRecord,
    ServiceState,
    read_json,
    utc_now,
    write_json_atomic,
)
from jupyter_mldeploy.docker.build import BuiltImage, build_image
from jupyter_mldeploy.docker.dockerfile import CONTAINER_PORT, VENV_DIR, read_extra_steps
from jupyter_mldeploy.docker.engine import docker_client
from jupyter_mldeploy.errors import Conflict, DeploymentError, InvalidArgument, MLDeployError, NotFound

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from jupyter_mldeploy.inference_config import InferenceConfig
    from jupyter_mldeploy.registry import Model
    from jupyter_mldeploy.workspace import Workspace

RUNTIME = "docker"
SERVICE_MOUNT = "/var/mldeploy/service"
RUN_MOUNT = "/var/mldeploy/run"
CONTAINER_PYTHON = f"{VENV_DIR}/bin/python"
#: Container labels (``docker ps --filter label=mldeploy.service=NAME``).
LABEL_SERVICE = "mldeploy.service"
LABEL_WORKSPACE = "mldeploy.workspace"
LABEL_RECORD = "mldeploy.record"
LABEL_KIND = "mldeploy.kind"
SIDECAR = "docker.json"
#: Seconds a container gets to finish in-flight requests on stop before it is killed.
STOP_TIMEOUT_SEC = 10


@dataclass
class ContainerRef:
    """The container a Docker service runs in (``docker.json``).

    Attributes:
        name: Container name (``mldeploy-<service>-<workspace hash>-<k>``).
        id: Container id.
        image: Image tag (``mldeploy-env:<hash>``).
        image_id: Image id (``sha256:...``).
        generation: Container generation ``k``: numbers its spec and status files.
        nano_cpus: CPU limit in billionths of a CPU, or None.
        mem_limit: Memory limit in bytes, or None.
    """

    name: str
    id: str
    image: str
    image_id: str
    generation: int
    nano_cpus: int | None = None
    mem_limit: int | None = None


def container_limits(config: DeploymentConfiguration) -> tuple[int | None, int | None]:
    """Return ``(nano_cpus, mem_limit bytes)`` from ``containerResourceRequirements``.

    The limits (``cpuLimit``, ``memoryInGBLimit``) win over the requests (``cpu``, ``memoryInGB``), since a
    single container has no separate request; 0 or absent means no limit.
    """
    requirements = config.container_resource_requirements or {}
    cpu = requirements.get("cpuLimit") or requirements.get("cpu")
    memory = requirements.get("memoryInGBLimit") or requirements.get("memoryInGB")
    nano_cpus = int(round(float(cpu) * 1e9)) if cpu else None
    mem_limit = int(round(float(memory) * 1024**3)) if memory else None
    return nano_cpus, mem_limit


def _workspace_key(workspace: Workspace) -> str:
    import hashlib

    return hashlib.sha256(str(workspace.path.resolve()).encode()).hexdigest()[:8]


def _container_path(folder: Path, host_path: Path) -> str:
    return f"{SERVICE_MOUNT}/{host_path.relative_to(folder).as_posix()}"


def _container_env(
    folder: Path, app: AppFolder, config: DeploymentConfiguration, inference_config: InferenceConfig
) -> dict[str, str]:
    """The scoring variables of the process runtime, with the app paths as the container sees them."""
    env = ws_module._server_env(app, config, inference_config)
    env.update(
        {
            "AZUREML_MODEL_DIR": _container_path(folder, app.model_dir),
            "AZUREML_ENTRY_SCRIPT": _container_path(folder, app.entry_script),
            "AZUREML_SOURCE_DIRECTORY": _container_path(folder, app.root),
            "AML_APP_ROOT": _container_path(folder, app.root),
            "HOME": "/tmp",
        }
    )
    return env


def _write_container_spec(folder: Path, generation: int, app: AppFolder, env: dict[str, str], workers: int) -> Path:
    path = folder / f"container-spec-{generation}.json"
    write_json_atomic(
        path,
        {"python": CONTAINER_PYTHON, "cwd": _container_path(folder, app.root), "env": env, "worker_count": workers},
    )
    return path


def _image_for(
    client: docker.DockerClient, workspace: Workspace, inference_config: InferenceConfig, show_output: bool
) -> tuple[BuiltImage, dict[str, Any]]:
    """Build (or reuse) the image of the inference config's environment; return it and its description."""
    from jupyter_mldeploy.docker.notebook_env import notebook_requirements

    environment = inference_config.resolve_environment(workspace)
    extra: list[str] = []
    if environment is None or environment.python.user_managed_dependencies:
        # "This interpreter" cannot run in a container: ship the notebook's versions of what the app needs.
        extra = notebook_requirements(inference_config)
    image = build_image(
        environment if environment is not None and not environment.python.user_managed_dependencies else None,
        show_output=show_output,
        base_image=inference_config.base_image,
        extra_requirements=extra,
        extra_steps=read_extra_steps(inference_config.extra_docker_file_steps),
        client=client,
    )
    description = {
        "name": environment.name if environment is not None else None,
        "version": environment.version if environment is not None else None,
        "image": image.tag,
        "image_id": image.image_id,
        "base_image": image.base_image,
        "reused": image.reused,
    }
    return image, description


class DockerWebservice(ws_module.LocalWebservice):
    """A service running in a Docker container; same API and states as the process runtime.

    Obtained from ``Model.deploy`` with ``LocalWebservice.deploy_configuration(runtime="docker")``, or from
    ``Webservice(ws, name)`` for a service deployed that way.
    """

    # -- engine and container -------------------------------------------------------------------------

    @property
    def _client(self) -> docker.DockerClient:
        client = self.__dict__.get("_docker_client")
        if client is None:
            client = docker_client(DeploymentError)
            self.__dict__["_docker_client"] = client
        return client

    @property
    def _sidecar_path(self) -> Path:
        return self._folder / SIDECAR

    def _container_ref(self) -> ContainerRef | None:
        data = read_json(self._sidecar_path)
        if not isinstance(data, dict):
            return None
        try:
            return ContainerRef(**data)
        except TypeError:
            return None

    def _container(self, ref: ContainerRef | None = None) -> Container | None:
        from docker.errors import NotFound as DockerNotFound

        ref = ref or self._container_ref()
        if ref is None:
            return None
        try:
            return self._client.containers.get(ref.id or ref.name)
        except DockerNotFound:
            return None

    @property
    def container_id(self) -> str | None:
        """The id of the container serving the service, or None."""
        ref = self._container_ref()
        return ref.id if ref is not None else None

    @property
    def image(self) -> str | None:
        """The image tag the service runs (``mldeploy-env:<hash>``)."""
        ref = self._container_ref()
        return ref.image if ref is not None else None

    # -- state ----------------------------------------------------------------------------------------

    def _observe(self) -> tuple[ServiceState, str | None]:
        try:
            record = self._record()
        except NotFound:
            return ServiceState(ServiceState.DELETED), None
        container = self._container()
        if container is None:
            return ServiceState(ServiceState.FAILED), record.last_error or (
                f"The container of service {self.name!r} no longer exists; deploy the service again."
            )
        status = process.read_status(self._files(record)) or {}
        reported = str(status.get("state") or "Transitioning")
        error = status.get("error") or record.last_error
        container.reload()
        if container.status in ("created", "restarting"):
            return ServiceState(ServiceState.TRANSITIONING), None
        if container.status != "running":
            code = container.attrs.get("State", {}).get("ExitCode")
            if reported == "Healthy":
                return ServiceState(ServiceState.UNHEALTHY), error or (
                    f"The container {container.name} stopped (exit code {code}); see get_logs(), then reload()."
                )
            return ServiceState(ServiceState.FAILED), error or self._last_log_error(container, code)
        return ws_module._running_state(record, reported, error)

    @staticmethod
    def _last_log_error(container: Container, code: object) -> str:
        lines = container.logs(tail=1).decode("utf-8", errors="replace").strip().splitlines()
        last = lines[-1].strip() if lines else "its log is empty"
        return f"The container exited (code {code}) before the service was healthy: {last}"

    # -- logs and waiting -----------------------------------------------------------------------------

    def get_logs(self, num_lines: int = 5000) -> str:
        """Return the last ``num_lines`` lines of the container's output (v1 ``get_logs``).

        Raises:
            NotFound: When the service was deleted.
        """
        self._record()
        container = self._container()
        if container is None:
            return ""
        return container.logs(tail=max(0, int(num_lines))).decode("utf-8", errors="replace")

    def _failure(self, message: str, record: ServiceRecord) -> DeploymentError:
        return DeploymentError(message, logs=self.get_logs(ws_module.ERROR_LOG_LINES))

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float = 300) -> None:
        """Wait until the service is ``Healthy`` (v1 ``wait_for_deployment``).

        Args:
            show_output: Print the container's output as it comes while waiting.
            timeout_sec: Seconds to wait.

        Raises:
            DeploymentError: When the service is ``Failed``/``Unhealthy`` (with the container's log) or not
                healthy after ``timeout_sec``.
        """
        deadline = time.monotonic() + timeout_sec
        shown = 0
        while True:
            if show_output:
                shown = self._stream_container_log(shown)
            state, error = self._observe()
            if state == ServiceState.HEALTHY:
                if show_output:
                    self._stream_container_log(shown)
                    sys.stdout.write(f"Service {self.name!r} is Healthy at {self.scoring_uri}\n")
                return
            if state.is_(ServiceState.FAILED, ServiceState.UNHEALTHY, ServiceState.DELETED):
                raise self._failure(f"Service {self.name!r} is {state}: {error}", self._record())
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"Service {self.name!r} is still {state} after {timeout_sec:g} s; it may still be starting: "
                    "call wait_for_deployment() again, or read get_logs().",
                    self._record(),
                )
            time.sleep(0.1)

    def _stream_container_log(self, shown: int) -> int:
        container = self._container()
        if container is None:
            return shown
        lines = container.logs().decode("utf-8", errors="replace").splitlines()
        for line in lines[shown:]:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return len(lines)

    # -- changes --------------------------------------------------------------------------------------

    def update(
        self,
        models: Sequence[Model | str] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfiguration | None = None,
        wait: bool = True,
    ) -> None:
        """Change what the service serves (v1 ``update``); what is not given is kept.

        Code or model changes switch the running container to a new app folder with SIGHUP (zero downtime,
        no image build). A new environment image, port, host or resource limits start a new container (see
        the module docstring). The Docker runtime always waits for the switch (``wait`` is accepted for API
        compatibility).

        Raises:
            InvalidArgument: For bad input (nothing changes).
            EnvironmentBuildError: When a new environment image cannot be built (nothing changes).
            DeploymentError: When the new version fails to start; the running one keeps serving.
            Conflict: When a new port is taken.
        """
        del wait
        with ws_module._service_lock(self.workspace, self.name):
            self._update_locked(models, inference_config, deployment_config, wait=True, show_output=False)

    def _update_locked(
        self,
        models: Sequence[Model | str] | None,
        inference_config: InferenceConfig | None,
        deployment_config: DeploymentConfiguration | None,
        wait: bool,
        show_output: bool,
    ) -> None:
        del wait  # the Docker runtime always waits for the switch to finish
        record = self._record()
        inputs = self._update_inputs(record, models, inference_config, deployment_config)
        ic, config, new_port = inputs.inference_config, inputs.config, inputs.port
        ref = self._container_ref()
        if inference_config is not None or ref is None:
            image, environment = _image_for(self._client, self.workspace, ic, show_output)
            image_tag, image_id = image.tag, image.image_id
        else:
            image_tag, image_id, environment = ref.image, ref.image_id, record.environment
        limits = container_limits(config)
        container = self._container(ref)
        running = container is not None and container.status == "running"
        in_place = (
            ref is not None and running and image_id == ref.image_id and new_port == record.port
            and config.host == record.host and limits == (ref.nano_cpus, ref.mem_limit)
            and self._observe()[0] == ServiceState.HEALTHY
        )
        if not in_place and new_port != record.port:
            ensure_port_free(new_port, config.host)
        generation = record.app_generation + 1
        app = ws_module._layout(self.workspace, self._folder, generation, ic, inputs.sources)
        new_record = ws_module._service_record(
            record.name, RUNTIME, CONTAINER_PYTHON, new_port, inputs.sources, ic, config, environment,
            app_generation=generation, created_time=record.created_time, updated_time=utc_now(),
            status_file=record.status_file,
        )
        env = _container_env(self._folder, app, config, ic)
        try:
            if in_place:
                assert ref is not None and container is not None
                self._switch_in_place(record, new_record, ref, container, app, env, config)
            else:
                self._switch_container(record, new_record, ref, image_tag, image_id, app, env, config)
        except BaseException:
            remove_app_folder(app.root)
            raise
        remove_app_folder(self._folder / f"app-{record.app_generation}")

    def _check_update_config(self, config: DeploymentConfiguration) -> None:
        if config.runtime != RUNTIME:
            raise InvalidArgument(
                f"Service {self.name!r} runs in Docker; to move it to runtime {config.runtime!r}, delete it and "
                "deploy it again."
            )

    def _switch_in_place(  # type: ignore[override]
        self,
        record: ServiceRecord,
        new_record: ServiceRecord,
        ref: ContainerRef,
        container: Container,
        app: AppFolder,
        env: dict[str, str],
        config: DeploymentConfiguration,
    ) -> None:
        files = self._files(record)
        base = ws_module._reload_base(process.read_status(files) or {})
        spec_path = self._folder / f"container-spec-{ref.generation}.json"
        previous_spec = read_json(spec_path)
        _write_container_spec(self._folder, ref.generation, app, env, config.worker_count)
        container.kill(signal="SIGHUP")
        outcome: bool | None = None

        def decided() -> bool:
            nonlocal outcome
            outcome = ws_module._switch_outcome(process.read_status(files) or {}, base)
            return outcome is not None

        if not process.wait_until(decided, ws_module.SWITCH_TIMEOUT_SEC) or not outcome:
            write_json_atomic(spec_path, previous_spec)
            detail = str(((process.read_status(files) or {}).get("last_reload") or {}).get("error") or "")
            reason = ws_module._one_line(detail) or f"no answer within {ws_module.SWITCH_TIMEOUT_SEC:g} s"
            message = f"Update of service {self.name!r} failed ({reason}); the previous version keeps serving."
            record.last_error = message
            self._save(record)
            raise DeploymentError(message, logs=self.get_logs(ws_module.ERROR_LOG_LINES))
        new_record.server_generation = (process.read_status(files) or {}).get("generation")
        self._save(new_record)
        ws_module._write_db(self.workspace, new_record)

    def _switch_container(
        self,
        record: ServiceRecord,
        new_record: ServiceRecord,
        ref: ContainerRef | None,
        image_tag: str,
        image_id: str,
        app: AppFolder,
        env: dict[str, str],
        config: DeploymentConfiguration,
    ) -> None:
        """Serve the new version from a new container (see the module docstring for the order)."""
        old = self._container(ref) if ref is not None else None
        same_address = new_record.port == record.port and new_record.host == record.host
        if old is not None and same_address:
            _remove_container(old)
        if same_address:
            ensure_port_free(new_record.port, new_record.host)
        generation = (ref.generation if ref is not None else 0) + 1
        new_ref = _start_container(
            self._client, self.workspace, self._folder, new_record, generation, image_tag, image_id, app, env, config
        )
        try:
            _wait_container_healthy(self, new_record, new_ref)
        except BaseException:
            with contextlib.suppress(Exception):
                _remove_container(self._client.containers.get(new_ref.id))
            if not same_address:
                raise
            record.last_error = "the new container failed to start"
            self._save(record)
            raise
        if old is not None and not same_address:
            _remove_container(old)
        write_json_atomic(self._sidecar_path, asdict(new_ref))
        self._save(new_record)
        ws_module._write_db(self.workspace, new_record)
        if ref is not None:
            (self._folder / f"container-spec-{ref.generation}.json").unlink(missing_ok=True)
            (self._folder / "run" / f"status-{ref.generation}.json").unlink(missing_ok=True)

    def delete(self, delete_image: bool = False) -> None:
        """Remove the container, the service's folder and registry rows (v1 ``delete``); idempotent.

        Args:
            delete_image: Also remove the service's image when no other container uses it (images are shared
                by every service of the same environment, so the default keeps it for the next deploy).
        """
        with ws_module._service_lock(self.workspace, self.name):
            ref = self._container_ref()
            _delete_docker_service(self.workspace, self.name, self._client)
            if delete_image and ref is not None:
                from docker.errors import APIError

                with contextlib.suppress(APIError):
                    self._client.images.remove(ref.image, noprune=False)
        self._deleted = True

    def serialize(self) -> dict[str, Any]:
        """Return a JSON-safe description: the process runtime's fields plus ``container`` and ``image``."""
        data = super().serialize()
        ref = self._container_ref()
        if ref is not None and data.get("state") != "Deleted":
            data.pop("pid", None)
            data["container"] = ref.name
            data["containerId"] = ref.id[:12]
            data["image"] = ref.image
            data["nanoCpus"] = ref.nano_cpus
            data["memLimit"] = ref.mem_limit
        return data


def _labels(workspace: Workspace, record: ServiceRecord) -> dict[str, str]:
    return {
        LABEL_KIND: "service",
        LABEL_WORKSPACE: str(workspace.path.resolve()),
        LABEL_SERVICE: record.name,
        LABEL_RECORD: json.dumps(record.to_dict(), sort_keys=True),
    }


def _start_container(
    client: docker.DockerClient,
    workspace: Workspace,
    folder: Path,
    record: ServiceRecord,
    generation: int,
    image_tag: str,
    image_id: str,
    app: AppFolder,
    env: dict[str, str],
    config: DeploymentConfiguration,
) -> ContainerRef:
    """Write container ``generation``'s spec and start it (detached); return its reference."""
    from docker.errors import APIError

    run_dir = folder / "run"
    run_dir.mkdir(exist_ok=True)
    spec = _write_container_spec(folder, generation, app, env, config.worker_count)
    status_name = f"status-{generation}.json"
    (run_dir / status_name).unlink(missing_ok=True)
    record.status_file = f"run/{status_name}"
    nano_cpus, mem_limit = container_limits(config)
    name = f"mldeploy-{record.name}-{_workspace_key(workspace)}-{generation}"
    with contextlib.suppress(APIError):
        client.containers.get(name).remove(force=True)  # a leftover of a crash between start and record
    command = [
        CONTAINER_PYTHON, "-m", "jupyter_mldeploy.server",
        "--entry_script", env["AZUREML_ENTRY_SCRIPT"],
        "--port", str(CONTAINER_PORT), "--host", "0.0.0.0",
        "--status-file", f"{RUN_MOUNT}/{status_name}",
        "--spec-file", f"{SERVICE_MOUNT}/{spec.name}",
    ]
    kwargs: dict[str, Any] = {}
    if nano_cpus:
        kwargs["nano_cpus"] = nano_cpus
    if mem_limit:
        kwargs["mem_limit"] = mem_limit
    if hasattr(os, "getuid"):
        # Files the server writes into run/ then belong to the user, who can delete the service folder.
        kwargs["user"] = f"{os.getuid()}:{os.getgid()}"
    try:
        container = client.containers.run(
            image_tag,
            command=command,
            name=name,
            detach=True,
            init=True,
            labels=_labels(workspace, record),
            environment=env,
            working_dir=env["AML_APP_ROOT"],
            ports={f"{CONTAINER_PORT}/tcp": (record.host, record.port)},
            volumes={
                str(folder): {"bind": SERVICE_MOUNT, "mode": "ro"},
                str(run_dir): {"bind": RUN_MOUNT, "mode": "rw"},
            },
            **kwargs,
        )
    except APIError as exc:
        text = str(exc)
        if "port is already allocated" in text or "address already in use" in text:
            raise Conflict(f"Port {record.port} on {record.host} is in use; choose another port, or port=None.") from None
        raise DeploymentError(f"Docker could not start the container of service {record.name!r}: {text}") from None
    return ContainerRef(
        name=name, id=str(container.id), image=image_tag, image_id=image_id, generation=generation,
        nano_cpus=nano_cpus, mem_limit=mem_limit,
    )


def _wait_container_healthy(service: DockerWebservice, record: ServiceRecord, ref: ContainerRef) -> None:
    """Wait until container ``ref`` serves ``record``'s port healthy; raise DeploymentError with its log."""
    client = service._client
    files = process.ServerFiles(service._folder, record.status_file)
    deadline = time.monotonic() + ws_module.SWITCH_TIMEOUT_SEC
    container = client.containers.get(ref.id)
    while True:
        container.reload()
        status = process.read_status(files) or {}
        if (container.status == "running" and status.get("state") == "Healthy"
                and process.probe_health(record.host, record.port)):
            return
        if container.status in ("exited", "dead") or status.get("state") == "Failed" or time.monotonic() > deadline:
            reason = status.get("error") or (
                f"the container exited with code {container.attrs.get('State', {}).get('ExitCode')}"
                if container.status in ("exited", "dead") else "not healthy in time"
            )
            logs = container.logs(tail=ws_module.ERROR_LOG_LINES).decode("utf-8", errors="replace")
            raise DeploymentError(f"The new container of service {record.name!r} failed to start ({reason}).", logs=logs)
        time.sleep(0.1)


def _remove_container(container: Container) -> None:
    """Stop gracefully (SIGTERM, in-flight requests finish), then remove."""
    from docker.errors import APIError

    with contextlib.suppress(APIError):
        container.stop(timeout=STOP_TIMEOUT_SEC)
    with contextlib.suppress(APIError):
        container.remove(force=True)


def _delete_docker_service(workspace: Workspace, name: str, client: docker.DockerClient) -> None:
    folder = workspace.deployments_dir / name
    filters = {"label": [f"{LABEL_SERVICE}={name}", f"{LABEL_WORKSPACE}={workspace.path.resolve()}"]}
    for container in client.containers.list(all=True, filters=filters):
        _remove_container(container)
    ws_module._delete_db(workspace, name)
    if folder.exists():
        remove_app_folder(folder)


def deploy_docker(
    workspace: Workspace,
    name: str,
    models: Sequence[Model | str],
    inference_config: InferenceConfig,
    config: DeploymentConfiguration,
    overwrite: bool = False,
    show_output: bool = False,
) -> DockerWebservice:
    """Deploy model versions as a container (``Model.deploy`` with ``runtime="docker"``).

    Checks everything first (engine, name, models, entry script, port), builds or reuses the environment's
    image, lays out the app folder, then starts the container. A failure removes what was created.

    Args:
        workspace: The workspace holding the models.
        name: Service name.
        models: Registered ``Model`` objects or ``"name:version"`` strings.
        inference_config: Entry script, source directory and environment.
        config: A configuration with ``runtime="docker"``.
        overwrite: Update an existing service of that name instead of raising ``Conflict``.
        show_output: Stream the image build and the container's output, and wait until healthy.

    Returns:
        DockerWebservice: ``Transitioning`` until ``init()`` returned (``Healthy`` when ``show_output`` waited).

    Raises:
        DeploymentError: When no Docker engine answers, or (with ``show_output``) the service fails to start.
        EnvironmentBuildError: When the image cannot be built.
        InvalidArgument, NotFound, Conflict: As for the process runtime.
    """
    client = docker_client(DeploymentError)
    sources = ws_module._resolve_models(workspace, models)
    with ws_module._service_lock(workspace, name):
        existing = ws_module._service_to_overwrite(workspace, name, overwrite)
        if existing is not None:
            if not isinstance(existing, DockerWebservice):
                raise Conflict(
                    f"Service {name!r} runs on the {existing.runtime!r} runtime; delete it first to deploy it in "
                    "Docker, or choose another name."
                )
            existing._update_locked(ws_module.sources_to_ids(sources), inference_config, config, wait=True,
                                    show_output=show_output)
            service = existing
        else:
            service = _create(client, workspace, name, sources, inference_config, config, show_output)
    if show_output:
        service.wait_for_deployment(show_output=True)
    return service


def _create(
    client: docker.DockerClient,
    workspace: Workspace,
    name: str,
    sources: list[ModelSource],
    inference_config: InferenceConfig,
    config: DeploymentConfiguration,
    show_output: bool,
) -> DockerWebservice:
    image, environment = _image_for(client, workspace, inference_config, show_output)
    port = config.port if config.port is not None else free_port(config.host)
    ensure_port_free(port, config.host)
    folder = workspace.deployments_dir / name
    if folder.exists():
        remove_app_folder(folder)
    folder.mkdir(parents=True)
    ref: ContainerRef | None = None
    try:
        app = ws_module._layout(workspace, folder, 1, inference_config, sources)
        record = ws_module._service_record(
            name, RUNTIME, CONTAINER_PYTHON, port, sources, inference_config, config, environment
        )
        env = _container_env(folder, app, config, inference_config)
        ws_module._write_db(workspace, record)
        ref = _start_container(client, workspace, folder, record, 1, image.tag, image.image_id, app, env, config)
        write_json_atomic(folder / SIDECAR, asdict(ref))
        write_json_atomic(folder / "service.json", record.to_dict())
    except BaseException:
        with contextlib.suppress(Exception):
            _delete_docker_service(workspace, name, client)
        with contextlib.suppress(MLDeployError):
            ws_module._delete_db(workspace, name)
        remove_app_folder(folder)
        raise
    service = DockerWebservice(workspace, name)
    service.__dict__["_docker_client"] = client
    return service
