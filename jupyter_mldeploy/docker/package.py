"""``Model.package``: a self-contained image (environment + code + models), or its portable build context.

The app (the source directory and ``azureml-models/<name>/<version>/``) is laid out once, when the package
is created, into ``<workspace>/packages/.staging-<id>/``, so later edits to the notebook's files or the
registry do not change the package. The image's Dockerfile is the environment image's Dockerfile (same
layers, so the engine's build cache reuses a built environment) followed by ``COPY app/ /var/azureml-app/``,
the scoring variables and a ``CMD`` that starts the scoring server on port 5001::

    package = Model.package(ws, [model], inference_config, image_name="diabetes:1")
    package.wait_for_creation(show_output=True)
    # docker run --rm -p 127.0.0.1:8080:5001 diabetes:1   ->  POST http://127.0.0.1:8080/score
    package.save("diabetes-context")   # Dockerfile + files; `docker build -t diabetes:1 diabetes-context`
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.deploy.app_folder import build_app_folder, remove_app_folder
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.deploy.plan import check_inputs, scoring_variables
from jupyter_mldeploy.docker.build import BuiltImage, build_context, local_tags
from jupyter_mldeploy.docker.dockerfile import (
    APP_ROOT,
    AppSection,
    BuildContext,
    choose_base_image,
    generate_context,
    read_extra_steps,
)
from jupyter_mldeploy.docker.engine import docker_client
from jupyter_mldeploy.docker.notebook_env import notebook_requirements
from jupyter_mldeploy.errors import EnvironmentBuildError, InvalidArgument

if TYPE_CHECKING:
    from jupyter_mldeploy.inference_config import InferenceConfig
    from jupyter_mldeploy.registry import Model
    from jupyter_mldeploy.workspace import Workspace

PACKAGE_REPOSITORY = "mldeploy-package"


class ModelPackage:
    """A packaged model (v1 ``azureml.core.model.ModelPackage``).

    Attributes:
        workspace: The workspace.
        image_name: The image's ``repo:tag`` (:attr:`location`).
        generate_dockerfile: True when only the build context is wanted (no image is built).
        state: ``"NotStarted"``, ``"Succeeded"`` or ``"Failed"``.
        image: The built image after :meth:`wait_for_creation`, or None.
        error: Why creation failed, or None.
    """

    def __init__(
        self,
        workspace: Workspace,
        context: BuildContext,
        staging: Path,
        generate_dockerfile: bool,
    ) -> None:
        self.workspace = workspace
        self._context = context
        self._staging = staging
        self.image_name = context.image_tag
        self.generate_dockerfile = generate_dockerfile
        self.state = "NotStarted"
        self.image: BuiltImage | None = None
        self.error: str | None = None
        self._finalizer = weakref.finalize(self, remove_app_folder, staging)

    @property
    def location(self) -> str:
        """The image's name (v1: the registry location); ``docker run`` it once created."""
        return self.image_name

    @property
    def dockerfile(self) -> str:
        """The generated Dockerfile text."""
        return self._context.dockerfile

    def wait_for_creation(self, show_output: bool = False) -> None:
        """Build the image (v1 ``wait_for_creation``); with ``generate_dockerfile`` there is nothing to build.

        The build reuses the engine's cache: the environment layers come from an earlier build of the same
        environment, only the app layers are new.

        Args:
            show_output: Stream the build output.

        Raises:
            EnvironmentBuildError: When no Docker engine answers or the build fails (names the step).
        """
        if self.generate_dockerfile or self.state == "Succeeded":
            self.state = "Succeeded"
            return
        try:
            client = docker_client(EnvironmentBuildError)
            self.image = build_context(client, self._context, show_output=show_output, kind="package", reuse=False)
        except EnvironmentBuildError as exc:
            self.state, self.error = "Failed", exc.message
            raise
        self.state = "Succeeded"

    def save(self, output_directory: str | Path) -> Path:
        """Write the build context (``Dockerfile``, ``requirements.txt``, CA bundle, scoring server, ``app/``).

        ``docker build -t NAME OUTPUT_DIRECTORY`` then builds the same image on any machine with a Docker
        engine that can reach the base image and the package index.

        Args:
            output_directory: A new or empty folder.

        Returns:
            The folder.

        Raises:
            InvalidArgument: When the folder exists and is not empty.
        """
        return self._context.write(Path(output_directory))

    def get_logs(self) -> str:
        """Return the failure message of the build, or "" (v1 ``get_logs``)."""
        return self.error or ""

    def serialize(self) -> dict[str, Any]:
        """Return ``{"location", "state", "generateDockerfile", "baseImage", "imageId", "error"}``."""
        return {
            "location": self.location,
            "state": self.state,
            "generateDockerfile": self.generate_dockerfile,
            "baseImage": self._context.base_image,
            "imageId": self.image.image_id if self.image is not None else None,
            "error": self.error,
        }

    def __repr__(self) -> str:
        return f"ModelPackage(location={self.location!r}, state={self.state!r})"


def package_models(
    workspace: Workspace,
    models: Sequence[Model | str],
    inference_config: InferenceConfig,
    generate_dockerfile: bool = False,
    image_name: str | None = None,
) -> ModelPackage:
    """Create a package of model versions with their entry script and environment (v1 ``Model.package``).

    Args:
        workspace: The workspace holding the models.
        models: Registered ``Model`` objects or ``"name:version"`` strings.
        inference_config: Entry script, source directory and environment (None: the notebook's packages,
            see :mod:`jupyter_mldeploy.docker.notebook_env`).
        generate_dockerfile: Only generate the build context (``save`` it), build no image.
        image_name: ``repo:tag`` of the image; default ``mldeploy-package:<content hash>``.

    Returns:
        ModelPackage: Call ``wait_for_creation()`` to build.

    Raises:
        InvalidArgument: For bad models, entry script or image name.
        NotFound: For a model version or environment that is not registered.
        EnvironmentBuildError: When the environment cannot be planned, or (to pick the base image) no Docker
            engine answers while an image is wanted.
    """
    check_inputs(inference_config, None)
    if image_name is not None and (not image_name or any(c.isspace() or c.isupper() for c in image_name)):
        raise InvalidArgument(f"Invalid image_name {image_name!r}: use a lower-case 'repo:tag' such as 'diabetes:1'.")
    sources = resolve_model_sources(workspace, models)
    environment = inference_config.resolve_environment(workspace)
    available: set[str] = set()
    if not generate_dockerfile:
        available = local_tags(docker_client(EnvironmentBuildError))
    else:
        with contextlib.suppress(EnvironmentBuildError):
            available = local_tags(docker_client(EnvironmentBuildError))
    managed = environment is not None and not environment.python.user_managed_dependencies
    extra = [] if managed else notebook_requirements(inference_config)
    base_image = choose_base_image(environment if managed else None, inference_config.base_image, available)
    packages = workspace.path / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    staging = packages / f".staging-{uuid.uuid4().hex[:12]}"
    try:
        app = build_app_folder(
            staging, entry_script=inference_config.entry_script, source_directory=inference_config.source_directory,
            models=sources, exclude=[workspace.path], model_placement="link",
        )
        variables = scoring_variables(inference_config, None, app, lambda path: _image_path(staging, path))
        section = AppSection(source=staging, entry_script=variables["AZUREML_ENTRY_SCRIPT"], environment=variables)
        context = generate_context(
            environment if managed else None, base_image=base_image, extra_requirements=extra,
            extra_steps=read_extra_steps(inference_config.extra_docker_file_steps), app=section,
        )
        context.image_tag = image_name or f"{PACKAGE_REPOSITORY}:{_content_hash(context, staging)}"
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        remove_app_folder(staging)
        raise
    return ModelPackage(workspace, context, staging, generate_dockerfile)


def _image_path(staging: Path, path: Path) -> str:
    """Where ``path`` of the staged app folder lands in the image (under :data:`APP_ROOT`)."""
    relative = path.relative_to(staging).as_posix()
    return APP_ROOT if relative == "." else f"{APP_ROOT}/{relative}"


def _content_hash(context: BuildContext, app: Path) -> str:
    """24 hex digits over the context's Dockerfile and files and every file of the app folder."""
    digest = hashlib.sha256(context.image_tag.encode())
    for path in sorted(p for p in app.rglob("*") if p.is_file()):
        digest.update(path.relative_to(app).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:24]
