"""``KubernetesWebservice`` (v1 ``AksWebservice``): the façade of a service on the Kubernetes target.

Same API as every :class:`~jupyter_mldeploy.deploy.webservice.Webservice`, plus v1's AKS members::

    aks_config = AksWebservice.deploy_configuration(num_replicas=2, cpu_cores=0.5, memory_gb=1)
    service = Model.deploy(ws, "diabetes", [model], inference_config, aks_config,
                           deployment_target=KubernetesCompute(context="kind-ml"))
    service.wait_for_deployment(show_output=True)
    primary, secondary = service.get_keys()   # from the owner-only keys file, as every target
    service.regen_key("Secondary")            # applies the keys Secret; the pods follow it, no restart
    service.export_manifests("k8s/")          # what runs, with the keys Secret, for kubectl apply -k
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.deploy.service_keys import regenerated
from jupyter_mldeploy.deploy.targets.registry import get_target
from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument, NotFound
from jupyter_mldeploy.kubernetes.compute import KubernetesCompute
from jupyter_mldeploy.kubernetes.config import aks_deploy_configuration
from jupyter_mldeploy.kubernetes.manifests import keys_secret, read_manifests, write_manifests
from jupyter_mldeploy.kubernetes.target import KubernetesTarget, KubeState, has_legacy_keys


class KubernetesWebservice(Webservice):
    """A service on a Kubernetes cluster (v1 ``azureml.core.webservice.AksWebservice``).

    ``KubernetesWebservice.deploy_configuration(...)`` (also ``AksWebservice.deploy_configuration``) takes
    v1's arguments (:func:`~jupyter_mldeploy.kubernetes.config.aks_deploy_configuration`).
    """

    #: v1 ``AksWebservice.deploy_configuration``: one function, so the arguments and rules are defined once.
    deploy_configuration = staticmethod(aks_deploy_configuration)

    @property
    def namespace(self) -> str:
        """The Kubernetes namespace of the service's objects."""
        return KubeState.of(self._record()).namespace

    @property
    def image(self) -> str:
        """The image the Deployment runs (``Model.package``'s, with the registry when pushed)."""
        return KubeState.of(self._record()).image

    def _kube_target(self) -> KubernetesTarget:
        return cast(KubernetesTarget, get_target(self._record().target))

    def _adopt_legacy_keys(self) -> None:
        """Move the keys of a record written before the pods enforced keys into the keys file, before any use.

        Only the members that use or show the keys or ``authEnabled`` call this, outside the service's lock
        (which it takes; ``update`` and ``wait_for_deployment`` reach the same migration under the lock through
        the target): see :meth:`KubernetesTarget.adopt_legacy_keys`.
        """
        try:
            if not has_legacy_keys(self._record()):
                return
            with self._store.lock(self.name):
                self._kube_target().adopt_legacy_keys(self._store, self._record())
        except NotFound:  # deleted meanwhile: the member called next says so its own way
            return

    def get_keys(self) -> tuple[str, str]:
        """Return ``(primary_key, secondary_key)`` from the owner-only keys file (v1 ``get_keys``).

        Raises:
            DeploymentError: When key auth is off for this service.
        """
        self._adopt_legacy_keys()
        return super().get_keys()

    def auth_headers(self, headers: dict[str, str] | None = None) -> dict[str, str] | None:
        """``headers`` plus ``Authorization: Bearer <primary key>`` when the service has key auth."""
        self._adopt_legacy_keys()
        return super().auth_headers(headers)

    @property
    def deployment_config(self) -> DeploymentConfiguration:
        """The deployment configuration the service was deployed with (never its keys)."""
        self._adopt_legacy_keys()
        return super().deployment_config

    def serialize(self) -> dict[str, Any]:
        """Return a JSON-safe description (v1 ``serialize``), with ``authEnabled`` and never the keys."""
        self._adopt_legacy_keys()
        return super().serialize()

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """Replace one key (v1 ``regen_key``): the keys Secret is applied, then the keys file replaced.

        No pod restarts: kubelet publishes the changed Secret into each pod's volume within its sync period
        (about a minute by default) and the server follows it. Until then the pods take the replaced key; the
        other key works throughout, so callers on it never see a failed request. Rotate as with v1: move
        callers to the other key, regenerate this one, wait for the sync, move them back.

        Args:
            key: ``"Primary"`` or ``"Secondary"``.
            set_key: The new value (16+ URL-safe characters); None generates one (32 random bytes).

        Raises:
            InvalidArgument: For another ``key`` name or a bad ``set_key``.
            DeploymentError: When key auth is off, or the cluster refuses the Secret or does not answer (then
                nothing changed).
        """
        self._adopt_legacy_keys()
        folder = self._store.folder(self.name)
        with self._store.lock(self.name):
            keys = regenerated(folder, self.name, key, set_key)
            self._kube_target().publish_keys(self._store, self._record(), keys)

    def run(self, input_data: Any, headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """Call ``/score`` (v1 ``run``); a ``ClusterIP`` service is reached through ``kubectl port-forward``.

        Raises:
            ScoringError: When the service answers an error status.
            DeploymentError: When nothing answers; for ``ClusterIP`` the message gives the port-forward command.
        """
        try:
            return super().run(input_data, headers=headers, timeout=timeout)
        except DeploymentError as exc:
            state = KubeState.of(self._record())
            if KubernetesCompute.from_json(state.compute).service_type != "ClusterIP":
                raise
            forward = self.target_details.get("portForward")
            raise DeploymentError(
                f"{exc.message} The service is a ClusterIP Service: forward its port first, in a terminal: {forward}"
            ) from exc

    def export_manifests(self, output_directory: str | Path) -> Path:
        """Write the manifests the service runs, with ``kustomization.yaml``, into a new or empty folder.

        With key auth the keys Secret is written too (``secret.yaml``, owner-only: it holds the keys), so
        ``kubectl apply -k`` on the folder gives pods that require the same keys.

        Returns:
            The folder (``kubectl apply -k`` it).

        Raises:
            InvalidArgument: When the folder exists and is not empty.
        """
        target = Path(output_directory).expanduser().resolve()
        if target.exists() and any(target.iterdir()):
            raise InvalidArgument(f"Output directory {target} is not empty: give a new or empty folder.")
        self._adopt_legacy_keys()  # an older service's manifests folder held its Secret: it goes first
        record = self._record()
        state = KubeState.of(record)
        objects = read_manifests(self._store.folder(self.name) / state.manifests_dir)
        if record.deployment_config.get("authEnabled"):
            objects.insert(0, keys_secret(self.name, state.namespace, *self.get_keys()))
        write_manifests(objects, target, state.namespace)
        return target


class AksWebservice(KubernetesWebservice):
    """v1's name of :class:`KubernetesWebservice` (``from azureml.core.webservice import AksWebservice``)."""
