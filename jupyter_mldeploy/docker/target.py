"""The ``docker`` target: a service as a container of the environment's image.

A Docker service uses the same ``deployments/<service>/`` folder as the process target, plus::

    container-spec-<k>.json      what container k's supervisor runs (re-read on SIGHUP), container paths
    run/status-<k>.json          written by container k's supervisor (the only folder it may write)

The container runs the image ``mldeploy-env:<hash>`` built from the environment (dependencies only, see
:mod:`jupyter_mldeploy.docker.dockerfile`); the service folder is mounted read-only at
``/var/mldeploy/service`` (so ``app-<n>/`` with its models is visible inside, never writable) and ``run/``
read-write at ``/var/mldeploy/run``. The port is published on the configured host address (``127.0.0.1``
unless told otherwise) only. ``tini`` (``docker run --init``) is PID 1 and forwards signals to the supervisor.
The container's labels name the workspace and the service and hold the record as deployed, so ``docker ps --filter label=mldeploy.service``
finds every service and :meth:`DockerTarget.delete` finds containers no record names.

Reload and update without rebuilding: a change of code or models lays out ``app-<n+1>/`` in the service
folder, which the running container already sees through its mount, rewrites ``container-spec-<k>.json``
and sends SIGHUP (the switch of :mod:`~jupyter_mldeploy.deploy.targets.supervised`, shared with the process
target). A new environment (image), port, host or resource limits needs a new container: on a new port it
is started and must be healthy before the old one is removed; on the same port the old one is stopped first
(a short gap, said in the docs). That container switch always completes before ``update`` returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.app_folder import AppFolder, remove_app_folder
from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.plan import DeploymentPlan
from jupyter_mldeploy.deploy.ports import ensure_port_free, free_port
from jupyter_mldeploy.deploy.service_keys import ensure_keys, keys_variables
from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.state import ServiceRecord, ServiceState, read_json
from jupyter_mldeploy.deploy.targets.base import Observation
from jupyter_mldeploy.deploy.targets.supervised import (
    ERROR_LOG_LINES,
    SWITCH_TIMEOUT_SEC,
    SupervisedState,
    SupervisedTarget,
    probe_health,
    read_status,
    running_state,
    write_spec,
)
from jupyter_mldeploy.deploy.webservice import LocalWebservice
from jupyter_mldeploy.docker.build import BuiltImage, build_image
from jupyter_mldeploy.docker.dockerfile import CONTAINER_PORT, VENV_DIR, read_extra_steps
from jupyter_mldeploy.docker.engine import docker_client
from jupyter_mldeploy.docker.notebook_env import notebook_requirements
from jupyter_mldeploy.errors import Conflict, DeploymentError, MLDeployError, NotFound
from jupyter_mldeploy.monitoring.store import model_data_folder
from jupyter_mldeploy.server.protocol import SpecFile

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

SERVICE_MOUNT = "/var/mldeploy/service"
RUN_MOUNT = "/var/mldeploy/run"
#: Where the container writes collected model data: the workspace's ``modeldata/<service>`` (read-write).
MODELDATA_MOUNT = "/var/mldeploy/modeldata"
CONTAINER_PYTHON = f"{VENV_DIR}/bin/python"
#: Container labels (``docker ps --filter label=mldeploy.service=NAME``).
LABEL_SERVICE = "mldeploy.service"
LABEL_WORKSPACE = "mldeploy.workspace"
LABEL_KIND = "mldeploy.kind"
#: The service record as deployed (JSON), so a lost ``service.json`` can be read back from the engine.
LABEL_RECORD = "mldeploy.record"
#: The container reference of records written by release 0.1 (format 1).
LEGACY_SIDECAR = "docker.json"
#: Seconds a container gets to finish in-flight requests on stop before it is killed.
STOP_TIMEOUT_SEC = 10


@dataclass
class ContainerRef:
    """The container a Docker service runs in (kept in ``target_state["extra"]["container"]``).

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


def _workspace_key(store: ServiceStore) -> str:
    return hashlib.sha256(str(store.workspace.path.resolve()).encode()).hexdigest()[:8]


def _container_ref(store: ServiceStore, record: ServiceRecord) -> ContainerRef | None:
    data = SupervisedState.of(record).extra.get("container")
    if not isinstance(data, dict):
        data = read_json(store.folder(record.name) / LEGACY_SIDECAR)
    if not isinstance(data, dict):
        return None
    try:
        return ContainerRef(**data)
    except TypeError:
        return None


def _image_for(
    client: docker.DockerClient, plan: DeploymentPlan, show_output: bool
) -> tuple[BuiltImage, dict[str, Any]]:
    """Build (or reuse) the image of the plan's environment; return it and its description."""
    environment = plan.environment()
    managed = environment is not None and not environment.python.user_managed_dependencies
    # "This interpreter" cannot run in a container: ship the notebook's versions of what the app needs.
    extra = [] if managed else notebook_requirements(plan.inference_config)
    image = build_image(
        environment if managed else None,
        show_output=show_output,
        base_image=plan.inference_config.base_image,
        extra_requirements=extra,
        extra_steps=read_extra_steps(plan.inference_config.extra_docker_file_steps),
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


def _remove_container(container: Container) -> None:
    """Stop gracefully (SIGTERM, in-flight requests finish), then remove."""
    from docker.errors import APIError

    with contextlib.suppress(APIError):
        container.stop(timeout=STOP_TIMEOUT_SEC)
    with contextlib.suppress(APIError):
        container.remove(force=True)


class DockerTarget(SupervisedTarget):
    """Services in Docker containers (see the module docstring)."""

    name = "docker"
    compute_type = "Local"
    webservice_class = "jupyter_mldeploy.docker.target:DockerWebservice"

    def __init__(self) -> None:
        self._docker: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        """A connected client (made on first use)."""
        if self._docker is None:
            self._docker = docker_client(DeploymentError)
        return self._docker

    def check_available(self) -> None:
        """Fails fast (seconds) when no engine answers, saying "start Docker or use runtime='process'"."""
        docker_client(DeploymentError).close()

    def container(self, store: ServiceStore, record: ServiceRecord) -> Container | None:
        """The service's container, or None when it no longer exists."""
        from docker.errors import NotFound as DockerNotFound

        ref = _container_ref(store, record)
        if ref is None:
            return None
        try:
            return self.client.containers.get(ref.id or ref.name)
        except DockerNotFound:
            return None

    @staticmethod
    def container_ref(store: ServiceStore, record: ServiceRecord) -> ContainerRef | None:
        """The recorded container reference, or None."""
        return _container_ref(store, record)

    # -- paths -----------------------------------------------------------------------------------------

    @staticmethod
    def _place(folder: Path) -> Any:
        def place(host_path: Path) -> str:
            return f"{SERVICE_MOUNT}/{host_path.relative_to(folder).as_posix()}"

        return place

    def _spec(self, plan: DeploymentPlan, folder: Path, app: AppFolder) -> SpecFile:
        place = self._place(folder)
        env = plan.scoring_variables(app, place, MODELDATA_MOUNT)
        env["HOME"] = "/tmp"
        # The keys file sits in the service folder, which the container sees through its read-only mount.
        ensure_keys(folder, plan.deployment_config)
        env.update(keys_variables(plan.deployment_config, folder, place))
        return SpecFile(CONTAINER_PYTHON, place(app.root), env, plan.deployment_config.worker_count)

    # -- create ----------------------------------------------------------------------------------------

    def create(self, store: ServiceStore, plan: DeploymentPlan, show_output: bool) -> ServiceRecord:
        """Build or reuse the image, lay out ``app-1``, record the service, start the container."""
        image, environment = _image_for(self.client, plan, show_output)
        host = plan.deployment_config.host
        port = plan.port if plan.port is not None else free_port(host)
        ensure_port_free(port, host)
        folder = store.folder(plan.name)
        self._remove_containers(store, plan.name)
        remove_app_folder(folder)
        folder.mkdir(parents=True)
        try:
            app = plan.layout(folder / "app-1", model_placement="link")  # mounted read-only: links are safe
            state = SupervisedState(python=CONTAINER_PYTHON)
            record = plan.record(port, environment, state.to_json())
            store.save(record)  # before the start: a crash from here on leaves a record naming the service
            ref = self._start_container(store, record, 1, image.tag, image.image_id, self._spec(plan, folder, app),
                                        plan.deployment_config)
            self._set_container(record, ref)
            store.save_file_only(record)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete(store, plan.name)
            raise
        return record

    @staticmethod
    def _set_container(record: ServiceRecord, ref: ContainerRef) -> None:
        state = SupervisedState.of(record)
        state.status_file = f"run/status-{ref.generation}.json"
        state.spec_file = f"container-spec-{ref.generation}.json"
        state.extra = {"container": asdict(ref)}
        record.target_state = state.to_json()

    def _start_container(
        self,
        store: ServiceStore,
        record: ServiceRecord,
        generation: int,
        image_tag: str,
        image_id: str,
        spec: SpecFile,
        config: DeploymentConfiguration,
    ) -> ContainerRef:
        """Write container ``generation``'s spec and start it (detached); return its reference."""
        from docker.errors import APIError

        folder = store.folder(record.name)
        run_dir = folder / "run"
        run_dir.mkdir(exist_ok=True)
        spec_name = f"container-spec-{generation}.json"
        write_spec(folder / spec_name, spec)
        status_name = f"status-{generation}.json"
        (run_dir / status_name).unlink(missing_ok=True)
        nano_cpus, mem_limit = container_limits(config)
        name = f"mldeploy-{record.name}-{_workspace_key(store)}-{generation}"
        with contextlib.suppress(APIError):
            self.client.containers.get(name).remove(force=True)  # a leftover of a crash between start and record
        command = [
            CONTAINER_PYTHON, "-m", "jupyter_mldeploy.server",
            "--port", str(CONTAINER_PORT), "--host", "0.0.0.0",
            "--status-file", f"{RUN_MOUNT}/{status_name}",
            "--spec-file", f"{SERVICE_MOUNT}/{spec_name}",
        ]
        kwargs: dict[str, Any] = {}
        if nano_cpus:
            kwargs["nano_cpus"] = nano_cpus
        if mem_limit:
            kwargs["mem_limit"] = mem_limit
        if hasattr(os, "getuid"):
            # Files the server writes into run/ then belong to the user, who can delete the service folder.
            kwargs["user"] = f"{os.getuid()}:{os.getgid()}"
        volumes = {str(folder): {"bind": SERVICE_MOUNT, "mode": "ro"}, str(run_dir): {"bind": RUN_MOUNT, "mode": "rw"}}
        if config.collect_model_data:
            data_dir = model_data_folder(store.workspace, record.name)
            data_dir.mkdir(parents=True, exist_ok=True)
            volumes[str(data_dir)] = {"bind": MODELDATA_MOUNT, "mode": "rw"}
        try:
            container = self.client.containers.run(
                image_tag,
                command=command,
                name=name,
                detach=True,
                init=True,
                labels={
                    LABEL_KIND: "service",
                    LABEL_WORKSPACE: str(store.workspace.path.resolve()),
                    LABEL_SERVICE: record.name,
                    LABEL_RECORD: json.dumps(record.to_dict(), sort_keys=True),
                },
                environment=spec.env,
                working_dir=spec.cwd,
                ports={f"{CONTAINER_PORT}/tcp": (record.host, record.port)},
                volumes=volumes,
                **kwargs,
            )
        except APIError as exc:
            text = str(exc)
            if "port is already allocated" in text or "address already in use" in text:
                raise Conflict(
                    f"Port {record.port} on {record.host} is in use; choose another port, or port=None."
                ) from None
            raise DeploymentError(f"Docker could not start the container of service {record.name!r}: {text}") from None
        return ContainerRef(
            name=name, id=str(container.id), image=image_tag, image_id=image_id, generation=generation,
            nano_cpus=nano_cpus, mem_limit=mem_limit,
        )

    # -- update ----------------------------------------------------------------------------------------

    def update(
        self, store: ServiceStore, record: ServiceRecord, plan: DeploymentPlan, wait: bool, show_output: bool
    ) -> None:
        """SIGHUP switch in the running container, or a new container for a new image, address or limits."""
        ref = _container_ref(store, record)
        if plan.new_environment or ref is None:
            image, environment = _image_for(self.client, plan, show_output)
            image_tag, image_id = image.tag, image.image_id
        else:
            image_tag, image_id, environment = ref.image, ref.image_id, record.environment
        config = plan.deployment_config
        new_port = plan.port if plan.port is not None else record.port
        container = self.container(store, record)
        in_place = (
            ref is not None and container is not None and container.status == "running" and image_id == ref.image_id
            and new_port == record.port and config.host == record.host
            and container_limits(config) == (ref.nano_cpus, ref.mem_limit)
            # collection on or off changes the container's mounts
            and config.collect_model_data == DeploymentConfiguration.from_dict(record.deployment_config).collect_model_data
            and self.observe(store, record).state == ServiceState.HEALTHY
        )
        if not in_place and new_port != record.port:
            ensure_port_free(new_port, config.host)
        state = SupervisedState.of(record)
        generation = state.app_generation + 1
        folder = store.folder(record.name)
        app = plan.layout(self.app_root(store, record, generation), model_placement="link")
        new_state = SupervisedState(
            app_generation=generation, server_generation=state.server_generation, status_file=state.status_file,
            spec_file=state.spec_file, python=CONTAINER_PYTHON, extra=dict(state.extra),
        )
        new_record = plan.record(new_port, environment, new_state.to_json(), previous=record)
        spec = self._spec(plan, folder, app)
        try:
            if in_place:
                self.switch_in_place(store, record, new_record, spec, wait)
            else:
                self._switch_container(store, record, new_record, ref, image_tag, image_id, spec, config)
        except BaseException:
            remove_app_folder(app.root)
            raise

    def _switch_container(
        self,
        store: ServiceStore,
        record: ServiceRecord,
        new_record: ServiceRecord,
        ref: ContainerRef | None,
        image_tag: str,
        image_id: str,
        spec: SpecFile,
        config: DeploymentConfiguration,
    ) -> None:
        """Serve the new version from a new container (see the module docstring for the order)."""
        old = self.container(store, record)
        same_address = new_record.port == record.port and new_record.host == record.host
        if old is not None and same_address:
            _remove_container(old)
        if same_address:
            ensure_port_free(new_record.port, new_record.host)
        generation = (ref.generation if ref is not None else 0) + 1
        new_ref = self._start_container(store, new_record, generation, image_tag, image_id, spec, config)
        self._set_container(new_record, new_ref)
        try:
            self._wait_container_healthy(store, new_record, new_ref)
        except BaseException:
            with contextlib.suppress(Exception):
                _remove_container(self.client.containers.get(new_ref.id))
            if same_address:
                record.last_error = "the new container failed to start"
                store.save_file_only(record)
            raise
        if old is not None and not same_address:
            _remove_container(old)
        store.save(new_record)
        folder = store.folder(record.name)
        (folder / LEGACY_SIDECAR).unlink(missing_ok=True)
        if ref is not None:
            (folder / f"container-spec-{ref.generation}.json").unlink(missing_ok=True)
            (folder / "run" / f"status-{ref.generation}.json").unlink(missing_ok=True)
        remove_app_folder(self.app_root(store, record))

    def _wait_container_healthy(self, store: ServiceStore, record: ServiceRecord, ref: ContainerRef) -> None:
        """Wait until container ``ref`` serves ``record``'s port healthy; raise DeploymentError with its log."""
        status_path = self.status_path(store, record)
        deadline = time.monotonic() + SWITCH_TIMEOUT_SEC
        container = self.client.containers.get(ref.id)
        while True:
            container.reload()
            status = read_status(status_path)
            reported = status.state if status is not None else None
            if container.status == "running" and reported == "Healthy" and probe_health(record.host, record.port):
                return
            exited = container.status in ("exited", "dead")
            if exited or reported == "Failed" or time.monotonic() > deadline:
                reason = (status.error if status else None) or (
                    f"the container exited with code {container.attrs.get('State', {}).get('ExitCode')}"
                    if exited else "not healthy in time"
                )
                logs = container.logs(tail=ERROR_LOG_LINES).decode("utf-8", errors="replace")
                raise DeploymentError(
                    f"The new container of service {record.name!r} failed to start ({reason}).", logs=logs
                )
            time.sleep(0.1)

    # -- SupervisedTarget hooks ------------------------------------------------------------------------

    def send_reload(self, store: ServiceStore, record: ServiceRecord) -> None:
        """``docker kill --signal SIGHUP`` (tini forwards it to the supervisor)."""
        from docker.errors import APIError

        container = self.container(store, record)
        if container is None:
            raise ProcessLookupError("the container is gone")
        try:
            container.kill(signal="SIGHUP")
        except APIError as exc:
            raise ProcessLookupError(str(exc)) from None

    def supervisor_alive(self, store: ServiceStore, record: ServiceRecord) -> bool:
        """The container runs."""
        container = self.container(store, record)
        if container is None:
            return False
        container.reload()
        return container.status == "running"

    def log_cursor(self, store: ServiceStore, record: ServiceRecord) -> int:
        """The number of lines the container has logged."""
        return len(self._lines(store, record))

    def log_since(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> str:
        """The container's log lines from line ``cursor`` on."""
        return "\n".join(self._lines(store, record)[int(cursor or 0):])

    def _lines(self, store: ServiceStore, record: ServiceRecord) -> list[str]:
        container = self.container(store, record)
        if container is None:
            return []
        return container.logs().decode("utf-8", errors="replace").splitlines()

    # -- observe and logs ------------------------------------------------------------------------------

    def observe(self, store: ServiceStore, record: ServiceRecord) -> Observation:
        """Read the container's status, the supervisor's status file and ``GET /``."""
        ref = _container_ref(store, record)
        details: dict[str, Any] = {"appFolder": str(self.app_root(store, record))}
        if ref is not None:
            details.update({
                "container": ref.name, "containerId": ref.id[:12], "image": ref.image,
                "nanoCpus": ref.nano_cpus, "memLimit": ref.mem_limit,
            })
        container = self.container(store, record)
        if container is None:
            if ref is None:
                return Observation(ServiceState(ServiceState.TRANSITIONING), None, None, details)
            return Observation(ServiceState(ServiceState.FAILED), record.last_error or (
                f"The container of service {record.name!r} no longer exists; deploy the service again."
            ), None, details)
        status = read_status(self.status_path(store, record))
        reported = status.state if status is not None else "Transitioning"
        error = (status.error if status is not None else None) or record.last_error
        container.reload()
        started_raw = str(container.attrs.get("State", {}).get("StartedAt") or "")
        started = _parse_docker_time(started_raw) if container.status == "running" else None
        if container.status in ("created", "restarting"):
            return Observation(ServiceState(ServiceState.TRANSITIONING), None, None, details)
        if container.status != "running":
            code = container.attrs.get("State", {}).get("ExitCode")
            if reported == "Healthy":
                return Observation(ServiceState(ServiceState.UNHEALTHY), error or (
                    f"The container {container.name} stopped (exit code {code}); see get_logs(), then reload()."
                ), None, details)
            lines = container.logs(tail=1).decode("utf-8", errors="replace").strip().splitlines()
            last = lines[-1].strip() if lines else "its log is empty"
            return Observation(ServiceState(ServiceState.FAILED), error or (
                f"The container exited (code {code}) before the service was healthy: {last}"
            ), None, details)
        if SupervisedState.of(record).pending is not None and self.pending_outcome(store, record) is None:
            return Observation(ServiceState(ServiceState.TRANSITIONING), None, started, details)
        live_state, live_error = running_state(record, reported, error)
        return Observation(live_state, live_error, started, details)

    def logs(self, store: ServiceStore, record: ServiceRecord, num_lines: int | None) -> str:
        """The container's output, its last ``num_lines`` lines."""
        container = self.container(store, record)
        if container is None:
            return ""
        tail: Any = "all" if num_lines is None else max(0, int(num_lines))
        return container.logs(tail=tail).decode("utf-8", errors="replace")

    def follow_logs(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> tuple[str, Any]:
        """Lines of the container's output from line ``cursor`` (None: all of this container's)."""
        lines = self._lines(store, record)
        start = int(cursor or 0)
        text = "".join(line + "\n" for line in lines[start:])
        return text, len(lines)

    # -- delete ----------------------------------------------------------------------------------------

    def delete(self, store: ServiceStore, name: str) -> None:
        """Remove every container labelled with the workspace and service, then the folder and rows."""
        self._remove_containers(store, name)
        store.remove(name)

    def _remove_containers(self, store: ServiceStore, name: str) -> None:
        filters = {"label": [f"{LABEL_SERVICE}={name}", f"{LABEL_WORKSPACE}={store.workspace.path.resolve()}"]}
        for container in self.client.containers.list(all=True, filters=filters):
            _remove_container(container)

    def remove_image(self, image: str) -> None:
        """Remove an image when no container uses it (errors ignored: another service may hold it)."""
        from docker.errors import APIError

        with contextlib.suppress(APIError):
            self.client.images.remove(image, noprune=False)


def _parse_docker_time(value: str) -> datetime | None:
    """Docker's ``2026-11-27T18:02:03.123456789Z`` as a timezone-aware datetime (nanoseconds cut)."""
    if not value or value.startswith("0001-"):
        return None
    main, _, fraction = value.rstrip("Z").partition(".")
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(f"{main}.{(fraction + '000000')[:6]}+00:00")
    return None


class DockerWebservice(LocalWebservice):
    """A service running in a Docker container (v1 ``LocalWebservice`` in Docker); same API and states.

    Obtained from ``Model.deploy`` with ``LocalWebservice.deploy_configuration(runtime="docker")``, or from
    ``Webservice(ws, name)`` for a service deployed that way.
    """

    def _ref(self) -> ContainerRef | None:
        return DockerTarget.container_ref(self._store, self._record())

    @property
    def container_id(self) -> str | None:
        """The id of the container serving the service, or None."""
        ref = self._ref()
        return ref.id if ref is not None else None

    @property
    def image(self) -> str | None:
        """The image tag the service runs (``mldeploy-env:<hash>``)."""
        ref = self._ref()
        return ref.image if ref is not None else None

    def delete(self, delete_image: bool = False) -> None:
        """Remove the container, the service's folder and registry rows (v1 ``delete``); idempotent.

        Args:
            delete_image: Also remove the service's image when no other container uses it (images are shared
                by every service of the same environment, so the default keeps it for the next deploy).
        """
        try:
            image = self.image
        except (NotFound, MLDeployError):
            image = None
        super().delete()
        if delete_image and image is not None:
            target = DockerTarget()
            target.remove_image(image)
