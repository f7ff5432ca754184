"""The Kubernetes target (v1's AKS deployment, on any cluster): configuration, manifests, export, cluster.

::

    from jupyter_mldeploy.kubernetes import AksWebservice, KubernetesCompute, export_manifests

    aks_config = AksWebservice.deploy_configuration(cpu_cores=0.5, memory_gb=1, autoscale_max_replicas=4)
    export_manifests(ws, "diabetes", ["diabetes:1"], inference_config, aks_config, "k8s/")  # no cluster needed
    service = Model.deploy(ws, "diabetes", ["diabetes:1"], inference_config, aks_config,
                           deployment_target=KubernetesCompute(context="kind-ml"))

Rendering and exporting need PyYAML only; a cluster needs the official client
(``pip install 'jupyter-mldeploy[kubernetes]'``), imported only then. See docs/kubernetes.md.
"""

from __future__ import annotations

from jupyter_mldeploy.kubernetes.compute import KubernetesCompute
from jupyter_mldeploy.kubernetes.config import KubernetesSettings, aks_deploy_configuration
from jupyter_mldeploy.kubernetes.export import ExportedManifests, export_manifests
from jupyter_mldeploy.kubernetes.manifests import ManifestSpec, render_manifests, write_manifests
from jupyter_mldeploy.kubernetes.webservice import AksWebservice, KubernetesWebservice

__all__ = [
    "AksWebservice",
    "ExportedManifests",
    "KubernetesCompute",
    "KubernetesSettings",
    "KubernetesWebservice",
    "ManifestSpec",
    "aks_deploy_configuration",
    "export_manifests",
    "render_manifests",
    "write_manifests",
]
