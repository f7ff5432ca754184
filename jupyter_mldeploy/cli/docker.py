"""``mldeploy docker ...`` (the offline base image) and ``mldeploy model package`` (CLI v1: ``az ml model package``).

Thin: options are parsed here; everything else is :mod:`jupyter_mldeploy.docker`.
"""

from __future__ import annotations

import click

from jupyter_mldeploy.cli._common import emit, existing_workspace_option, group, output_option
from jupyter_mldeploy.cli.model import model_group
from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE
from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.workspace import Workspace

docker_group = group("docker", "Docker helpers: build the offline base image.")


@docker_group.command("base-image")
@click.option("--name", default=LOCAL_BASE_IMAGE, show_default=True, help="repo:tag of the image to build.")
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite (bookworm: Python 3.11).")
@click.option("--mirror", default=None, help="Debian mirror URL (default: debootstrap's).")
@click.option("--force", is_flag=True, help="Rebuild even when the image exists.")
def base_image_command(name: str, suite: str, mirror: str | None, force: bool) -> None:
    """Build a Python base image from a Debian rootfs (debootstrap + docker import); no registry needed."""
    # The docker modules load the Docker SDK: only the commands that use Docker import them.
    from jupyter_mldeploy.docker.base_image import build_base_image

    result = build_base_image(name=name, suite=suite, mirror=mirror, force=force, show_output=True)
    verb = "Built" if result.built else "Present"
    click.echo(f"{verb}: {result.name} ({result.image_id[:19]}) in {result.seconds:.1f} s. "
               f"Use it with MLDEPLOY_DOCKER_BASE_IMAGE={result.name} (picked automatically when no "
               "python:X.Y-slim image is present).")


@model_group.command("package")
@click.option("-m", "--model", "models", multiple=True, required=True, help="NAME:VERSION to package (repeat).")
@click.option("--ic", "--inference-config", "inference_config", type=click.Path(exists=True, dir_okay=False),
              required=True, help="inferenceconfig.json")
@click.option("--image-name", default=None, help="repo:tag of the image (default: mldeploy-package:<hash>).")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Also write the build context (Dockerfile + files) into this new folder.")
@click.option("--generate-dockerfile", is_flag=True, help="Only write the build context (needs --output-dir).")
@click.option("--show-output", is_flag=True, help="Stream the image build.")
@existing_workspace_option
@output_option
def package_command(
    workspace: Workspace, models: tuple[str, ...], inference_config: str, image_name: str | None,
    output_dir: str | None, generate_dockerfile: bool, show_output: bool, output: str,
) -> None:
    """Package models, entry script and environment as a Docker image (or its build context)."""
    from jupyter_mldeploy.docker.package import package_models  # the Docker SDK, as above

    if generate_dockerfile and not output_dir:
        raise InvalidArgument("--generate-dockerfile writes a build context: give --output-dir DIR.")
    package = package_models(
        workspace, list(models), InferenceConfig.from_file(inference_config, workspace),
        generate_dockerfile=generate_dockerfile, image_name=image_name,
    )
    package.wait_for_creation(show_output=show_output)
    data = package.serialize()
    if output_dir:
        data["outputDirectory"] = str(package.save(output_dir))
    emit(data, output)
