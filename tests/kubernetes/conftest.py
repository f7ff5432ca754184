"""Fixtures of the Kubernetes target tests: a registered model, a Docker engine, the API server MOCK.

The cluster-path tests run against :mod:`kube_api_mock`, a mock of the Kubernetes API server on 127.0.0.1
(no real API server can run on these machines); the image tests build and run the real image with Docker.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
for folder in (FIXTURES, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from deploy_support import source_dir, train_ridge  # noqa: E402
from kube_api_mock import KubeApiMock  # noqa: E402

from jupyter_mldeploy.errors import MLDeployError  # noqa: E402
from jupyter_mldeploy.inference_config import InferenceConfig  # noqa: E402
from jupyter_mldeploy.workspace import Workspace  # noqa: E402


@dataclass
class Diabetes:
    """A workspace with a registered Ridge model and its score.py folder."""

    workspace: Workspace
    model_id: str
    samples: list[list[float]]
    expected: list[float]
    source: Path

    def inference_config(self) -> InferenceConfig:
        return InferenceConfig("score.py", source_directory=self.source)

    def deploy(self, name: str, compute: object, **config: object) -> object:
        """Deploy the model as ``name`` on ``compute`` with ``AksWebservice.deploy_configuration(**config)``."""
        from jupyter_mldeploy.kubernetes import AksWebservice
        from jupyter_mldeploy.registry import Model

        return Model.deploy(self.workspace, name, [self.model_id], self.inference_config(),
                            AksWebservice.deploy_configuration(**config), deployment_target=compute)


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Diabetes:
    from jupyter_mldeploy.registry import Model

    root = tmp_path_factory.mktemp("k8s")
    workspace = Workspace.create(root / "ws")
    path, model, samples = train_ridge(root / "model")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    source = source_dir(root, "score_ridge.py")
    return Diabetes(workspace, registered.id, samples, model.predict(samples).tolist(), source)


@pytest.fixture(scope="session")
def engine() -> Iterator[object]:
    """A Docker client (skips without an engine or base image); removes the images the session built."""
    from jupyter_mldeploy.docker.build import local_tags
    from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE
    from jupyter_mldeploy.docker.engine import docker_client

    try:
        client = docker_client()
    except MLDeployError as exc:
        pytest.skip(f"Kubernetes image tests need a Docker engine: {exc.message}")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    tags = local_tags(client)
    if LOCAL_BASE_IMAGE not in tags and f"python:{version}-slim" not in tags:
        pytest.skip(f"Kubernetes image tests need a local base image: run scripts/docker-setup ({LOCAL_BASE_IMAGE}).")
    before = {image.id for image in client.images.list()}
    yield client
    for image in client.images.list(name="mldeploy-package"):
        if image.id not in before:
            for tag in image.tags:
                try:
                    client.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001 - best-effort cleanup of our own images
                    pass
    client.close()


@pytest.fixture
def kube_api() -> Iterator[KubeApiMock]:
    """A MOCK Kubernetes API server on 127.0.0.1 (see kube_api_mock.py), stopped after the test."""
    mock = KubeApiMock().start()
    yield mock
    mock.stop()


@pytest.fixture
def compute(kube_api: KubeApiMock, tmp_path: Path) -> object:
    """A ``KubernetesCompute`` (namespace ``ml``) whose kubeconfig points at the MOCK API server."""
    from jupyter_mldeploy.kubernetes import KubernetesCompute

    return KubernetesCompute(kubeconfig=str(kube_api.kubeconfig(tmp_path / "kubeconfig")), namespace="ml")
