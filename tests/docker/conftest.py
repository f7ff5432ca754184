"""Fixtures of the Docker runtime tests: one engine check, one image build and one model for the session.

Every test here needs a Docker engine (``scripts/docker-setup`` starts one and builds the offline base image);
without one they are skipped with the reason. Containers and images created by the session are removed at
its end (found by label, so a failed test leaves nothing behind either).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

from deploy_support import source_dir, train_ridge  # noqa: E402

from jupyter_mldeploy.errors import MLDeployError  # noqa: E402
from jupyter_mldeploy.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory):
    """A connected Docker client; skips the Docker tests when no engine answers or no base image exists."""
    from jupyter_mldeploy.docker.build import local_tags
    from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE
    from jupyter_mldeploy.docker.engine import docker_client

    try:
        client = docker_client()
    except MLDeployError as exc:
        pytest.skip(f"Docker tests need a Docker engine: {exc.message}")
    tags = local_tags(client)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if LOCAL_BASE_IMAGE not in tags and f"python:{version}-slim" not in tags:
        pytest.skip(f"Docker tests need a local base image: run scripts/docker-setup (builds {LOCAL_BASE_IMAGE}).")
    before = {image.id for image in client.images.list()}
    basetemp = str(tmp_path_factory.getbasetemp().resolve())
    yield client
    for container in client.containers.list(all=True, filters={"label": "mldeploy.kind"}):
        if container.labels.get("mldeploy.workspace", "").startswith(basetemp):
            container.remove(force=True)
    for image in client.images.list(filters={"label": "mldeploy.kind"}):
        if image.id not in before:
            for tag in image.tags or [image.id]:
                try:
                    client.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001 - best-effort cleanup of our own images
                    pass
    client.close()


@dataclass
class DiabetesSetup:
    """A session workspace with a registered Ridge model and its score.py source folder."""

    workspace: Workspace
    model_id: str
    samples: list[list[float]]
    expected: list[float]
    source: Path
    root: Path


@pytest.fixture(scope="session")
def diabetes(engine, tmp_path_factory: pytest.TempPathFactory) -> DiabetesSetup:
    from jupyter_mldeploy.registry import Model

    root = tmp_path_factory.mktemp("docker")
    workspace = Workspace.create(root / "ws")
    path, model, samples = train_ridge(root / "model")
    registered = Model.register(workspace, model_path=str(path), model_name="diabetes")
    source = source_dir(root, "score_ridge.py")
    return DiabetesSetup(workspace, registered.id, samples, model.predict(samples).tolist(), source, root)


@pytest.fixture(scope="session")
def env_image(engine, diabetes: DiabetesSetup) -> str:
    """The environment image of the diabetes app (environment=None), built once; prints the cold build time."""
    from jupyter_mldeploy.docker.build import build_image
    from jupyter_mldeploy.docker.notebook_env import notebook_requirements
    from jupyter_mldeploy.inference_config import InferenceConfig

    config = InferenceConfig("score.py", source_directory=diabetes.source)
    started = time.monotonic()
    built = build_image(None, show_output=False, extra_requirements=notebook_requirements(config), client=engine)
    print(f"\n[docker] environment image {built.tag}: {'reused' if built.reused else 'built'} in "
          f"{time.monotonic() - started:.1f} s")
    return built.tag


@pytest.fixture
def cleanup_services(diabetes: DiabetesSetup) -> Iterator[list]:
    """Services appended to the list are deleted after the test, whatever happened."""
    services: list = []
    yield services
    for service in services:
        try:
            service.delete()
        except MLDeployError:
            pass
