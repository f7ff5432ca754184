"""The Docker target: images from environments, services in containers, and ``Model.package``.

- :mod:`~jupyter_mldeploy.docker.engine`: connecting to the engine (fails fast when none answers).
- :mod:`~jupyter_mldeploy.docker.dockerfile`: build contexts generated from an environment.
- :mod:`~jupyter_mldeploy.docker.build`: building (or reusing) ``mldeploy-env:<hash>`` images.
- :mod:`~jupyter_mldeploy.docker.target`: the ``docker`` deployment target and ``DockerWebservice``.
- :mod:`~jupyter_mldeploy.docker.package`: ``Model.package`` and ``ModelPackage``.
- :mod:`~jupyter_mldeploy.docker.base_image`: the offline base image (debootstrap + ``docker import``).

Nothing here is imported by ``import jupyter_mldeploy``: the ``docker`` SDK loads only when Docker is used.
"""

from __future__ import annotations

from jupyter_mldeploy.docker.build import BuiltImage, build_image
from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE
from jupyter_mldeploy.docker.package import ModelPackage, package_models
from jupyter_mldeploy.docker.target import DockerTarget, DockerWebservice

__all__ = [
    "LOCAL_BASE_IMAGE", "BuiltImage", "DockerTarget", "DockerWebservice", "ModelPackage", "build_image",
    "package_models",
]
