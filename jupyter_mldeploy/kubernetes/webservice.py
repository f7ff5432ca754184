"""``KubernetesWebservice`` (v1 ``AksWebservice``): the façade of a service on the Kubernetes target.

Same API as every :class:`~jupyter_mldeploy.deploy.webservice.Webservice`, plus v1's AKS members::

    aks_config = AksWebservice.deploy_configuration(num_replicas=2, cpu_cores=0.5, memory_gb=1)
    service = Model.deploy(ws, "diabetes", [model], inference_config, aks_config,
                           deployment_target=KubernetesCompute(context="kind-ml"))
    service.wait_for_deployment(show_output=True)
    primary, secondary = service.get_keys()
    service.export_manifests("k8s/")      # what runs, for kubectl apply -k
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument
from jupyter_mldeploy.kubernetes.compute import KubernetesCompute
from jupyter_mldeploy.kubernetes.config import aks_deploy_configuration
from jupyter_mldeploy.kubernetes.target import KubernetesTarget, KubeState


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

    def get_keys(self) -> tuple[str, str]:
        """Return ``(primary_key, secondary_key)`` (v1 ``get_keys``).

        Raises:
            DeploymentError: When key auth is off.
        """
        return KubernetesTarget.keys(self._record())

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
        """Copy the manifests the service runs (with ``kustomization.yaml``) into a new or empty folder.

        Returns:
            The folder (``kubectl apply -k`` it).

        Raises:
            InvalidArgument: When the folder exists and is not empty.
        """
        target = Path(output_directory).expanduser().resolve()
        if target.exists() and any(target.iterdir()):
            raise InvalidArgument(f"Output directory {target} is not empty: give a new or empty folder.")
        source = self._store.folder(self.name) / KubeState.of(self._record()).manifests_dir
        if target.exists():
            target.rmdir()
        shutil.copytree(source, target)
        return target


class AksWebservice(KubernetesWebservice):
    """v1's name of :class:`KubernetesWebservice` (``from azureml.core.webservice import AksWebservice``)."""
