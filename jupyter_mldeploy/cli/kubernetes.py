"""``mldeploy kubernetes manifests``: a service's Kubernetes manifests, with no cluster needed.

Thin: options are parsed here; everything else is :mod:`jupyter_mldeploy.kubernetes`. ``-o`` names the
output folder here (as ``kubectl kustomize -o``), not a format: ``--json`` prints the summary as JSON.
"""

from __future__ import annotations

import json

import click

from jupyter_mldeploy.cli._common import existing_workspace_option, group
from jupyter_mldeploy.deploy.config import DeploymentConfiguration
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.kubernetes.compute import SERVICE_TYPES
from jupyter_mldeploy.kubernetes.export import export_manifests
from jupyter_mldeploy.workspace import Workspace

kubernetes_group = group("kubernetes", "Kubernetes: export a service's manifests (kubectl apply -k).")


@kubernetes_group.command("manifests")
@click.argument("name")
@click.option("-m", "--model", "models", multiple=True, help="NAME:VERSION to serve (repeat).")
@click.option("--ic", "--inference-config", "inference_config", type=click.Path(exists=True, dir_okay=False),
              required=True, help="inferenceconfig.json")
@click.option("--dc", "--deployment-config", "deployment_config", type=click.Path(exists=True, dir_okay=False),
              required=True, help="deploymentconfig.json with \"computeType\": \"aks\" (v1's AKS keys).")
@click.option("--image", default=None,
              help="Image the Deployment runs (already pushed); default: the Model.package image, whose build "
                   "context is written to DIR/image.")
@click.option("--service-type", type=click.Choice(SERVICE_TYPES), default="ClusterIP", show_default=True)
@click.option("-o", "--output-dir", "output_dir", type=click.Path(file_okay=False), required=True,
              help="New or empty folder for the YAML files and kustomization.yaml.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@existing_workspace_option
def manifests_command(
    workspace: Workspace, name: str, models: tuple[str, ...], inference_config: str, deployment_config: str,
    image: str | None, service_type: str, output_dir: str, as_json: bool,
) -> None:
    """Write NAME's Deployment, Service, HPA, PDB and Secret as YAML plus a kustomization.yaml."""
    result = export_manifests(
        workspace, name, list(models), InferenceConfig.from_file(inference_config, workspace),
        DeploymentConfiguration.from_file(deployment_config), output_dir, image=image, service_type=service_type,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"Wrote {', '.join(p.name for p in result.files)} to {result.directory}")
    if result.build_context is not None:
        click.echo(f"Build and push the image:  docker build -t {result.image} {result.build_context} && "
                   f"docker push {result.image}")
    click.echo(f"Apply:  kubectl apply -k {result.directory}")
