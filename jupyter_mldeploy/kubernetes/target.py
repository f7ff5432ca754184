"""The ``kubernetes`` target: a service as a Deployment of its ``Model.package`` image on a cluster.

``Model.deploy(ws, name, models, inference_config, AksWebservice.deploy_configuration(...),
deployment_target=KubernetesCompute(...))`` reaches :meth:`KubernetesTarget.create`, which

1. connects to the cluster first (bounded timeouts; no cluster: a ``DeploymentError`` naming the kubeconfig
   or context and pointing to the manifest export), before anything is built;
2. builds the package image (the Docker target's builder, through ``Model.package``) and pushes it when the
   compute names a registry;
3. with key auth (on by default, as v1 AKS) writes the keys owner-only to ``deployments/<name>/keys/keys.json``
   (:mod:`~jupyter_mldeploy.deploy.service_keys`, as the other targets);
4. renders the manifests (:mod:`~jupyter_mldeploy.kubernetes.manifests`), keeps them in
   ``deployments/<name>/manifests-<generation>/`` (``kubectl apply -k`` works on them too), saves the record,
   and server-side applies the keys Secret (built from the keys file) and them.

The keys Secret is never written into ``manifests-<generation>/``, ``service.json`` or a log: the keys file is
the only copy in the workspace. ``regen_key`` applies the Secret with the new key, then replaces the keys
file; kubelet publishes the changed Secret into every pod's volume and the server follows it with no restart.

``observe`` reads the Deployment and the pods of the current generation and maps them to v1's states
(:mod:`~jupyter_mldeploy.kubernetes.status`); ``follow_logs`` streams the pods' events and log lines (what
``wait_for_deployment(show_output=True)`` prints); ``update`` is a rolling update (a new generation: the old
pods serve until the new ones are Ready, ``maxUnavailable: 0``), and a refused one re-applies the previous
generation's manifests; ``delete`` removes every object of the service.

The target keeps in the record's ``target_state``: the compute (kubeconfig, context, registry, service
type), the namespace, the image, the generation and a pending update. Records written before the pods enforced
keys also held the keys there (``target_state.keys``); :meth:`KubernetesTarget.adopt_legacy_keys` moves them
to the keys file the first time such a record is used.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.ports import free_port
from jupyter_mldeploy.deploy.service_keys import KEYS_DIRNAME, ensure_keys, read_keys, write_keys
from jupyter_mldeploy.deploy.service_store import ServiceStore
from jupyter_mldeploy.deploy.state import ServiceRecord, ServiceState
from jupyter_mldeploy.deploy.targets.base import Observation, ServiceTarget
from jupyter_mldeploy.docker.engine import docker_client
from jupyter_mldeploy.errors import Conflict, DeploymentError, InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.kubernetes.cluster import KINDS, Cluster
from jupyter_mldeploy.kubernetes.compute import (
    KubernetesCompute,
    connect,
    context_namespace,
    load_client_package,
)
from jupyter_mldeploy.kubernetes.config import (
    KubernetesSettings,
    check_aks_configuration,
    check_dns1123_label,
    collection_note,
)
from jupyter_mldeploy.kubernetes.export import manifest_spec, package_image
from jupyter_mldeploy.kubernetes.manifests import (
    LABEL_GENERATION,
    SERVICE_PORT,
    ManifestSpec,
    keys_secret,
    read_manifests,
    remove_secret,
    render_manifests,
    secret_name,
    selector,
    write_manifests,
)
from jupyter_mldeploy.kubernetes.status import rollout_status

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from jupyter_mldeploy.deploy.plan import DeploymentPlan

#: Seconds an update with ``wait`` (or ``settle``) waits for the rollout before it is refused.
ROLLOUT_TIMEOUT_SEC = 600.0
#: Seconds between two looks at the cluster while an update waits for its rollout.
POLL_SEC = 1.0
#: Log lines of each pod attached to a failure.
ERROR_LOG_LINES = 200
#: The ``target_state`` field where records written before the pods enforced keys held them (``[primary,
#: secondary]``, or None with key auth off); see :meth:`KubernetesTarget.adopt_legacy_keys`.
LEGACY_KEYS_FIELD = "keys"

logger = logging.getLogger(__name__)


@dataclass
class KubeState:
    """The target's part of a service record (``target_state``).

    Attributes:
        compute: :meth:`KubernetesCompute.to_json`.
        namespace: The namespace the objects live in.
        image: The image the Deployment runs.
        generation: The rollout generation (``manifests-<generation>/``, the pods' label).
        pending: ``{"generation", "previous"}`` while an ``update(wait=False)`` rolls out (``previous``: the
            record to restore when it is refused), else None.
    """

    compute: dict[str, Any] = field(default_factory=dict)
    namespace: str = "default"
    image: str = ""
    generation: int = 1
    pending: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: ServiceRecord) -> KubeState:
        """Read a record's ``target_state`` (missing keys take the defaults)."""
        data = record.target_state or {}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        """The ``target_state`` JSON."""
        return asdict(self)

    @property
    def manifests_dir(self) -> str:
        """The folder of this generation's manifests, relative to the service folder."""
        return f"manifests-{self.generation}"


class KubernetesTarget(ServiceTarget):
    """Services as Kubernetes Deployments (see the module docstring)."""

    name = "kubernetes"
    compute_type = "AKS"
    webservice_class = "jupyter_mldeploy.kubernetes.webservice:KubernetesWebservice"
    #: Each look reads pods, events and logs from the API server: once a second is enough for a rollout.
    poll_interval_sec = 1.0

    def __init__(self) -> None:
        # API clients by (kubeconfig, context): a connection is checked once, then reused by every service.
        self._clients: dict[tuple[str, str | None], ApiClient] = {}

    # -- configuration and availability --------------------------------------------------------------

    def check_configuration(self, config: DeploymentConfiguration) -> None:
        """v1's AKS rules (:func:`~jupyter_mldeploy.kubernetes.config.check_aks_configuration`)."""
        check_aks_configuration(config)

    def check_available(self) -> None:
        """The ``kubernetes`` client is installed (the cluster itself is checked by ``create``, which knows it)."""
        load_client_package()

    def cluster(self, compute: KubernetesCompute, namespace: str) -> Cluster:
        """A :class:`Cluster` for ``compute``'s cluster and ``namespace`` (connects on first use).

        Raises:
            DeploymentError: When no cluster is configured or it does not answer (see :func:`connect`).
        """
        key = (compute.kubeconfig_path(), compute.context)
        if key not in self._clients:
            self._clients[key] = connect(compute)
        return Cluster(self._clients[key], namespace)

    def _cluster_of(self, record: ServiceRecord) -> Cluster:
        state = KubeState.of(record)
        return self.cluster(KubernetesCompute.from_json(state.compute), state.namespace)

    # -- image -----------------------------------------------------------------------------------------

    def _image(self, plan: DeploymentPlan, compute: KubernetesCompute, show_output: bool) -> str:
        """Build the plan's package image; push it to the compute's registry when one is named."""
        package = package_image(plan, build=True, show_output=show_output)
        if not compute.image_registry:
            return package.location
        repository, _, tag = package.location.rpartition(":")
        remote = f"{compute.image_registry}/{repository}"
        client = docker_client(DeploymentError)
        try:
            client.images.get(package.location).tag(remote, tag=tag)
            for line in client.api.push(remote, tag=tag, stream=True, decode=True):
                if isinstance(line, dict) and line.get("error"):
                    raise DeploymentError(f"Pushing {remote}:{tag} failed: {line['error']}")
        except DeploymentError:
            raise
        except Exception as exc:  # docker.errors.APIError, connection errors
            raise DeploymentError(f"Pushing {remote}:{tag} to {compute.image_registry} failed: {exc}") from None
        return f"{remote}:{tag}"

    # -- create ----------------------------------------------------------------------------------------

    def create(self, store: ServiceStore, plan: DeploymentPlan, show_output: bool) -> ServiceRecord:
        """Connect, build (and push) the image, save the record, apply the manifests."""
        check_dns1123_label(plan.name, "service name")
        compute = plan.deployment_target if plan.deployment_target is not None else KubernetesCompute()
        namespace = plan.deployment_config.namespace or compute.namespace or context_namespace(compute) or "default"
        cluster = self.cluster(compute, namespace)  # connects: fails fast, before the image is built
        if cluster.get("Deployment", plan.name) is not None:
            raise Conflict(
                f"A Deployment {namespace}/{plan.name} already exists in the cluster and no service of this workspace "
                f"owns it; delete it (kubectl delete deployment -n {namespace} {plan.name}) or choose another name."
            )
        _note_collection(plan, show_output)
        image = self._image(plan, compute, show_output)
        state = KubeState(compute=compute.to_json(), namespace=namespace, image=image)
        plan = _with_auth(plan)
        folder = store.folder(plan.name)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        try:
            ensure_keys(folder, plan.deployment_config)
            objects = self._render(folder, plan, manifest_spec(plan, image, compute.service_type, state.generation,
                                                               namespace))
            write_manifests(_workload(objects), folder / state.manifests_dir, namespace)
            # ClusterIP: the local port `kubectl port-forward` uses (scoring_uri names it).
            port = plan.port if plan.port is not None else free_port("127.0.0.1")
            record = _record(plan, port, {"image": image, "namespace": namespace}, state.to_json())
            store.save(record)  # before the apply: a crash from here on leaves a record naming the objects
            for obj in objects:
                _apply(cluster, obj)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete(store, plan.name)
            raise
        if show_output:
            sys.stdout.write(f"Applied {', '.join(o['kind'] for o in objects)} to namespace {namespace!r} "
                             f"(image {image}).\n")
        return record

    # -- update ----------------------------------------------------------------------------------------

    def update(
        self, store: ServiceStore, record: ServiceRecord, plan: DeploymentPlan, wait: bool, show_output: bool
    ) -> None:
        """A rolling update to a new generation (see the module docstring)."""
        record = self.adopt_legacy_keys(store, record)  # an older record's keys are kept, not regenerated
        state = KubeState.of(record)
        if plan.deployment_config.namespace and plan.deployment_config.namespace != state.namespace:
            raise InvalidArgument(
                f"Service {record.name!r} runs in namespace {state.namespace!r}; to move it to "
                f"{plan.deployment_config.namespace!r}, delete it and deploy it again."
            )
        compute = KubernetesCompute.from_json(state.compute)
        cluster = self.cluster(compute, state.namespace)
        _note_collection(plan, show_output)
        image = self._image(plan, compute, show_output)
        plan = _with_auth(plan)
        new_state = KubeState(state.compute, state.namespace, image, state.generation + 1)
        folder = store.folder(record.name)
        kept = _stored_keys(folder, record.name)
        ensure_keys(folder, plan.deployment_config)  # the given keys, else the service's, else new ones
        objects = self._render(folder, plan, manifest_spec(plan, image, compute.service_type, new_state.generation,
                                                           state.namespace))
        new_dir = folder / new_state.manifests_dir
        if new_dir.exists():
            shutil.rmtree(new_dir)
        write_manifests(_workload(objects), new_dir, state.namespace)
        previous_objects = read_manifests(folder / state.manifests_dir)
        try:
            self._apply_switch(cluster, objects, previous_objects)
        except DeploymentError:
            # Half applied: put the previous generation and its keys back (best effort; the error says what failed).
            with contextlib.suppress(DeploymentError):
                self._apply_switch(cluster, previous_objects, objects)
            with contextlib.suppress(DeploymentError):
                if kept is not None and kept != _stored_keys(folder, record.name):
                    self.publish_keys(store, record, kept)
                self._drop_keys_without_auth(store, cluster, record)
            shutil.rmtree(new_dir, ignore_errors=True)
            raise
        new_record = _record(plan, record.port, {"image": image, "namespace": state.namespace}, new_state.to_json(),
                             previous=record)
        if not wait:
            new_state.pending = {"generation": new_state.generation, "previous": record.to_dict()}
            new_record.target_state = new_state.to_json()
            store.save(new_record)
            return
        self._finish(store, cluster, new_record, record, ROLLOUT_TIMEOUT_SEC)

    @staticmethod
    def _render(folder: Path, plan: DeploymentPlan, spec: ManifestSpec) -> list[dict[str, Any]]:
        """Every object of the service, the keys Secret (from the keys file) first when key auth is on."""
        keys = read_keys(folder, plan.name) if plan.deployment_config.auth_enabled else None
        return render_manifests(replace(spec, keys=keys))

    @staticmethod
    def _apply_switch(cluster: Cluster, objects: list[dict[str, Any]], previous: list[dict[str, Any]]) -> None:
        """Apply ``objects``; delete what ``previous`` had and they lack (an HPA, when autoscaling stops).

        The keys Secret is never deleted here: the saved manifests leave it out, and it goes only once a version
        without key auth serves (:meth:`_drop_keys_without_auth`) or with the service.
        """
        for obj in objects:
            _apply(cluster, obj)
        kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
        for obj in previous:
            if (obj["kind"], obj["metadata"]["name"]) not in kinds and obj["kind"] != "Secret":
                cluster.delete(obj["kind"], obj["metadata"]["name"])

    def _finish(
        self, store: ServiceStore, cluster: Cluster, new_record: ServiceRecord, previous: ServiceRecord,
        timeout: float,
    ) -> None:
        """Wait for the new generation; adopt it, or re-apply ``previous``'s manifests and raise."""
        state = KubeState.of(new_record)
        deadline = time.monotonic() + timeout
        while True:
            observed = self._observe_in(cluster, new_record, settling=True)
            if observed.state == ServiceState.HEALTHY:
                state.pending = None
                new_record.target_state = state.to_json()
                store.save(new_record)
                old_dir = store.folder(new_record.name) / KubeState.of(previous).manifests_dir
                shutil.rmtree(old_dir, ignore_errors=True)
                self._drop_keys_without_auth(store, cluster, new_record)
                return
            failed = observed.state.is_(ServiceState.FAILED, ServiceState.UNSCHEDULABLE, ServiceState.UNHEALTHY)
            if failed or time.monotonic() > deadline:
                logs = self.logs(store, new_record, ERROR_LOG_LINES)
                folder = store.folder(new_record.name)
                self._apply_switch(cluster, read_manifests(folder / KubeState.of(previous).manifests_dir),
                                   read_manifests(folder / state.manifests_dir))
                shutil.rmtree(folder / state.manifests_dir, ignore_errors=True)
                previous.last_error = observed.error or f"the new version was not ready after {timeout:g} s"
                store.save(previous)
                self._drop_keys_without_auth(store, cluster, previous)
                raise DeploymentError(
                    f"The update of service {new_record.name!r} was refused ({previous.last_error}); the previous "
                    "version was re-applied and keeps serving.", logs=logs,
                )
            time.sleep(POLL_SEC)

    @staticmethod
    def _drop_keys_without_auth(store: ServiceStore, cluster: Cluster, record: ServiceRecord) -> None:
        """Once a version without key auth serves, its keys Secret and keys file go (a rollback needed them)."""
        if record.deployment_config.get("authEnabled"):
            return
        with contextlib.suppress(DeploymentError):  # best effort: delete() removes the Secret anyway
            cluster.delete("Secret", secret_name(record.name))
        shutil.rmtree(store.folder(record.name) / KEYS_DIRNAME, ignore_errors=True)

    def settle(self, store: ServiceStore, record: ServiceRecord, timeout: float) -> None:
        """Finish an ``update(wait=False)``: adopt the new generation or roll back to the previous one."""
        record = self.adopt_legacy_keys(store, record)
        pending = KubeState.of(record).pending
        if not pending:
            return
        previous = ServiceRecord.from_dict(pending["previous"], store.record_path(record.name))
        self._finish(store, self._cluster_of(record), record, previous, timeout)

    # -- observe and logs ------------------------------------------------------------------------------

    def observe(self, store: ServiceStore, record: ServiceRecord) -> Observation:
        """The Deployment and the current generation's pods as a v1 state."""
        try:
            cluster = self._cluster_of(record)
        except DeploymentError as exc:
            return Observation(ServiceState(ServiceState.UNHEALTHY), exc.message, None, self._details(record))
        return self._observe_in(cluster, record)

    def _observe_in(self, cluster: Cluster, record: ServiceRecord, settling: bool = False) -> Observation:
        details = self._details(record)
        try:
            deployment = cluster.get("Deployment", record.name)
            pods = cluster.pods(_generation_selector(record)) if deployment is not None else []
        except Exception as exc:  # the client's ApiException and connection errors: the cluster is unreachable
            return Observation(ServiceState(ServiceState.UNHEALTHY),
                               f"The cluster did not answer: {type(exc).__name__}: {exc}", None, details)
        if deployment is None:
            return Observation(ServiceState(ServiceState.FAILED), record.last_error or (
                f"The Deployment {cluster.namespace}/{record.name} no longer exists; deploy the service again."
            ), None, details)
        status = rollout_status(deployment, pods)
        details.update({"replicas": f"{status.ready}/{status.desired}",
                        "pods": [p.get("metadata", {}).get("name") for p in pods]})
        if KubeState.of(record).pending and status.state == ServiceState.HEALTHY and not settling:
            # An update(wait=False) is adopted only by settle(): until then the switch is under way.
            return Observation(ServiceState(ServiceState.TRANSITIONING), None, status.started_time, details)
        return Observation(status.state, status.error, status.started_time, details)

    @staticmethod
    def _details(record: ServiceRecord) -> dict[str, Any]:
        state = KubeState.of(record)
        compute = KubernetesCompute.from_json(state.compute)
        return {
            "namespace": state.namespace,
            "deployment": record.name,
            "image": state.image,
            "generation": state.generation,
            "context": compute.context or "(current)",
            "serviceType": compute.service_type,
            "portForward": f"kubectl port-forward -n {state.namespace} service/{record.name} "
                           f"{record.port}:{SERVICE_PORT}",
        }

    def _pods(self, record: ServiceRecord) -> tuple[Cluster, list[dict[str, Any]]]:
        cluster = self._cluster_of(record)
        return cluster, cluster.pods(_generation_selector(record))

    def logs(self, store: ServiceStore, record: ServiceRecord, num_lines: int | None) -> str:
        """The scoring container's log of each pod of the current generation (headed by the pod's name)."""
        try:
            cluster, pods = self._pods(record)
            parts = []
            for pod in pods:
                name = pod["metadata"]["name"]
                text = cluster.pod_log(name, num_lines)
                parts.append(text if len(pods) == 1 else f"==> pod {name} <==\n{text}")
        except Exception as exc:  # no cluster: say so in place of the log
            return f"(the pods' logs cannot be read: {exc})\n"
        return "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)

    def follow_logs(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> tuple[str, Any]:
        """New pod events and log lines since ``cursor`` (None: everything of the current generation)."""
        old: dict[str, Any] = cursor if isinstance(cursor, dict) else {"lines": {}, "events": []}
        seen = {"lines": dict(old["lines"]), "events": list(old["events"])}
        out: list[str] = []
        try:
            cluster, pods = self._pods(record)
            for pod in pods:
                name = pod["metadata"]["name"]
                for event in cluster.events(name):
                    uid = event.get("metadata", {}).get("uid") or event.get("metadata", {}).get("name")
                    if uid in seen["events"]:
                        continue
                    seen["events"].append(uid)
                    out.append(f"[{name}] {event.get('type', 'Normal')} {event.get('reason', '')}: "
                               f"{event.get('message', '')}")
                lines = cluster.pod_log(name).splitlines()
                start = seen["lines"].get(name, 0)
                out += [f"[{name}] {line}" for line in lines[start:]]
                seen["lines"][name] = len(lines)
        except Exception as exc:  # the cluster went away while waiting: print it, wait_for_deployment decides
            out.append(f"(cannot read the pods: {exc})")
        return "".join(line + "\n" for line in out), seen

    # -- delete ----------------------------------------------------------------------------------------

    def delete(self, store: ServiceStore, name: str) -> None:
        """Delete the service's objects from the cluster, then its folder and rows.

        Raises:
            DeploymentError: When the record names a cluster that cannot be reached (the record is kept, so
                ``delete`` can be called again; ``kubectl delete -k deployments/<name>/manifests-<n>`` works
                too). Without a readable record, only the local folder and rows are removed when no cluster
                answers.
        """
        try:
            record: ServiceRecord | None = store.read(name)
        except (NotFound, MLDeployError):
            record = None
        state = KubeState.of(record) if record is not None else KubeState()
        try:
            cluster = self.cluster(KubernetesCompute.from_json(state.compute), state.namespace)
            with contextlib.suppress(InvalidArgument):
                check_dns1123_label(name, "service name")  # a name no manifest can have owns no object
                for kind in KINDS:
                    cluster.delete(kind, secret_name(name) if kind == "Secret" else name)
        except DeploymentError as exc:
            if record is not None:
                raise DeploymentError(
                    f"Service {name!r} was not deleted: {exc.message} Its objects are listed in "
                    f"{store.folder(name) / state.manifests_dir} (kubectl delete -k that folder, and kubectl delete "
                    f"secret -n {state.namespace} {secret_name(name)}), and delete() can be called again."
                ) from None
        store.remove(name)

    # -- scoring URI -----------------------------------------------------------------------------------

    def scoring_uri(self, record: ServiceRecord) -> str:
        """A LoadBalancer's address once it has one; else ``http://127.0.0.1:<port>/score`` behind
        ``kubectl port-forward -n NAMESPACE service/NAME <port>:80`` (the ``portForward`` detail)."""
        if KubernetesCompute.from_json(KubeState.of(record).compute).service_type == "LoadBalancer":
            with contextlib.suppress(Exception):
                service = self._cluster_of(record).get("Service", record.name) or {}
                ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                if ingress:
                    host = ingress[0].get("ip") or ingress[0].get("hostname")
                    return f"http://{host}:{SERVICE_PORT}/score"
        return super().scoring_uri(record)

    # -- keys ------------------------------------------------------------------------------------------

    def publish_keys(self, store: ServiceStore, record: ServiceRecord, keys: tuple[str, str]) -> None:
        """Apply the keys Secret holding ``keys``, then store them in the keys file (v1 ``regen_key``).

        The Secret comes first: when the cluster refuses it, nothing changed anywhere. kubelet then publishes
        the changed Secret into each pod's volume (within its sync period, about a minute by default) and the
        server follows it with no restart; until then the pods take the replaced key, and the other key works
        throughout.

        Args:
            store: The service store.
            record: The service's record.
            keys: ``(primary, secondary)``.

        Raises:
            DeploymentError: When the cluster refuses the Secret or does not answer (no key in the message).
        """
        state = KubeState.of(record)
        _apply(self._cluster_of(record), keys_secret(record.name, state.namespace, *keys))
        write_keys(store.folder(record.name), *keys)


    def adopt_legacy_keys(self, store: ServiceStore, record: ServiceRecord) -> ServiceRecord:
        """Move the keys a record written before the pods enforced keys holds into the owner-only keys file.

        Such a record kept ``target_state.keys = [primary, secondary]`` (also in a pending update's previous
        record), user-given keys in the configuration's ``keys``, and no ``authEnabled`` when key auth was on
        by default; its ``manifests-<generation>/`` held the keys Secret in clear. Now the keys file is the only
        copy in the workspace (:func:`~jupyter_mldeploy.deploy.service_keys.write_keys`, as :meth:`create`),
        ``authEnabled`` is stated, and the Secret leaves the saved manifests. Each step can be repeated, in this
        order, so a crash half way is finished by the next call: keys file, manifests, then the record, replaced
        atomically (its models are unchanged, so the registry rows are too). The caller holds the service's
        lock (``update`` and ``settle`` do, by the target contract; the façade takes it).

        Args:
            store: The service store.
            record: The service's record, as read.

        Returns:
            The record without keys (``record`` itself when it held none).
        """
        if not has_legacy_keys(record):
            return record
        keys = record.target_state.get(LEGACY_KEYS_FIELD)
        folder = store.folder(record.name)
        if keys:
            write_keys(folder, str(keys[0]), str(keys[1]))
        for manifests in sorted(folder.glob("manifests-*")):
            if (manifests / "kustomization.yaml").is_file():
                remove_secret(manifests)
        migrated = ServiceRecord.from_dict(_without_legacy_keys(record.to_dict()), store.record_path(record.name))
        store.save_file_only(migrated)
        if keys:
            # Those pods mount no Secret: they answer without a key until an update rolls out ones that check.
            logger.warning(
                "Service %r was deployed before Kubernetes pods checked keys: its keys moved to the owner-only keys "
                "file, and its pods take calls without a key until service.update() rolls out pods that require "
                "them (the same keys).", record.name,
            )
        return migrated


def has_legacy_keys(record: ServiceRecord) -> bool:
    """True when ``record`` (or the previous record of its pending update) holds keys, as before pods enforced them."""
    return _holds_keys(record.to_dict())


def _holds_keys(data: dict[str, Any]) -> bool:
    state = data.get("target_state") or {}
    previous = (state.get("pending") or {}).get("previous")
    return (LEGACY_KEYS_FIELD in state or "keys" in (data.get("deployment_config") or {})
            or (isinstance(previous, dict) and _holds_keys(previous)))


def _without_legacy_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A record's JSON without keys; ``authEnabled`` stated as the keys say (present: key auth was on)."""
    state = dict(data.get("target_state") or {})
    config = {k: v for k, v in (data.get("deployment_config") or {}).items() if k != "keys"}
    if LEGACY_KEYS_FIELD in state:
        config["authEnabled"] = bool(state.pop(LEGACY_KEYS_FIELD))
    pending = state.get("pending")
    if isinstance(pending, dict) and isinstance(pending.get("previous"), dict):
        state["pending"] = {**pending, "previous": _without_legacy_keys(pending["previous"])}
    return {**data, "target_state": state, "deployment_config": config}


def _generation_selector(record: ServiceRecord) -> str:
    labels = {**selector(record.name), LABEL_GENERATION: str(KubeState.of(record).generation)}
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _note_collection(plan: DeploymentPlan, show_output: bool) -> None:
    """Warn that ``collect_model_data=True`` is not honoured in pods: logged, and printed with the deploy output."""
    note = collection_note(plan.deployment_config)
    if note is None:
        return
    logger.warning("Service %r: %s", plan.name, note)
    if show_output:
        sys.stdout.write(f"Service {plan.name!r}: {note}\n")


def _stored_keys(folder: Path, name: str) -> tuple[str, str] | None:
    """The keys in the service's keys file, or None when it has none."""
    try:
        return read_keys(folder, name)
    except DeploymentError:
        return None


def _with_auth(plan: DeploymentPlan) -> DeploymentPlan:
    """``plan`` with key auth stated (on unless turned off, as v1 AKS) and no keys in its configuration.

    The keys go to the keys file (:func:`~jupyter_mldeploy.deploy.service_keys.ensure_keys` reads them from the
    configuration first) and from there to the Secret; the record's configuration says only ``authEnabled``.
    """
    auth = KubernetesSettings.of(plan.deployment_config).auth_enabled
    return replace(plan, deployment_config=replace(plan.deployment_config, auth_enabled=auth))


def _record(plan: DeploymentPlan, port: int, environment: dict[str, Any], target_state: dict[str, Any],
            previous: ServiceRecord | None = None) -> ServiceRecord:
    """The plan's record, its configuration without keys (they live in the keys file and the Secret only)."""
    clean = replace(plan, deployment_config=replace(plan.deployment_config, keys=None))
    return clean.record(port, environment, target_state, previous=previous)


def _workload(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects kept in ``manifests-<generation>/``: all but the keys Secret."""
    return [obj for obj in objects if obj["kind"] != "Secret"]


def _apply(cluster: Cluster, obj: dict[str, Any]) -> None:
    """Server-side apply one object; a refused Secret's error never carries its content (the keys)."""
    try:
        cluster.apply(obj)
    except DeploymentError as exc:
        if obj["kind"] != "Secret":
            raise
        raise DeploymentError(
            f"The cluster refused or did not answer for Secret {cluster.namespace}/{obj['metadata']['name']} (the "
            "service keys); the keys were not changed. Check that the cluster answers (kubectl get secrets -n "
            f"{cluster.namespace}) and that you may write Secrets there, then try again."
        ) from exc
