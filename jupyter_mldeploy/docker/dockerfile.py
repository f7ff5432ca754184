"""Docker build contexts generated from an environment (and, for ``Model.package``, an app folder).

A context is a folder holding a ``Dockerfile`` and the files it copies::

    Dockerfile
    ca-certificates.crt     the host's CA bundle (pip inside the build trusts what pip on the host trusts)
    requirements.txt        index options + the scoring server's requirements + the environment's packages
    runtime/jupyter_mldeploy/   the scoring server (from :func:`jupyter_mldeploy.server.install_runtime`)
    app/                    only in a package: the entry script's folder and azureml-models/<name>/<version>/

Layer order puts what changes least first, so a changed ``score.py`` or model never reinstalls packages:
base image -> CA bundle -> virtual environment -> ``pip install -r requirements.txt`` -> scoring server ->
``extraDockerfileSteps`` -> (package only) app folder. The image tag is a hash of the context's content
(``mldeploy-env:<24 hex>``), so an equal environment reuses its image and any change gets a new one.

Index settings follow pip on the host (:func:`jupyter_mldeploy.environment.build.pip_index_settings` plus the
environment's own pip options): http(s) index URLs, extra indexes and find-links are written into
``requirements.txt``; local paths and ``file://`` URLs are left out (they are not visible inside a build),
with a note in the build output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_mldeploy import settings
from jupyter_mldeploy.errors import EnvironmentBuildError, InvalidArgument

if TYPE_CHECKING:
    from jupyter_mldeploy.environment import Environment

#: Where things live inside images (the paths Azure ML v1 images use for the app).
VENV_DIR = "/opt/mldeploy/venv"
RUNTIME_DIR = "/opt/mldeploy/runtime"
CERT_PATH = "/etc/mldeploy/ca-certificates.crt"
APP_ROOT = "/var/azureml-app"
#: Port the scoring server listens on inside a container (azmlinfsrv's default).
CONTAINER_PORT = 5001
#: Repository of environment images; the tag is the context hash.
IMAGE_REPOSITORY = "mldeploy-env"
#: The image ``scripts/docker-setup`` and ``mldeploy docker base-image`` build (Debian bookworm, Python 3.11).
LOCAL_BASE_IMAGE = "mldeploy/base-python:bookworm"
#: Bumped when the generated Dockerfile changes meaning, so old images are not reused.
DOCKERFILE_VERSION = 1

_HOST_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


@dataclass
class BuildContext:
    """A generated build context.

    Attributes:
        dockerfile: The Dockerfile text.
        files: Context files: relative path -> bytes (the scoring server is added by :meth:`write`).
        base_image: The ``FROM`` image.
        image_tag: ``mldeploy-env:<hash>`` (or the package's name), unique for this content.
        notes: What the generator changed or left out, for the build output.
        app_source: For a package: the app folder copied to ``app/``.
    """

    dockerfile: str
    files: dict[str, bytes]
    base_image: str
    image_tag: str
    notes: list[str] = field(default_factory=list)
    app_source: Path | None = None

    def write(self, folder: Path) -> Path:
        """Write the context into ``folder`` (created; must be empty or absent) and return it.

        Raises:
            InvalidArgument: When ``folder`` exists and is not empty.
        """
        from jupyter_mldeploy.server import install_runtime

        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise InvalidArgument(f"{folder} is not empty: give a new or empty folder for the build context.")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Dockerfile").write_text(self.dockerfile, encoding="utf-8")
        for name, content in self.files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        install_runtime(folder / "runtime")
        for cache in (folder / "runtime").rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        if self.app_source is not None:
            # Copies, not links: the context must be complete when moved to another machine.
            shutil.copytree(self.app_source, folder / "app", symlinks=False,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (folder / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n", encoding="utf-8")
        return folder


def host_ca_bundle() -> Path | None:
    """Return the CA bundle pip uses on this machine (pip ``cert``, ``SSL_CERT_FILE``, or the system one)."""
    from jupyter_mldeploy.environment.build import pip_index_settings

    candidates = [pip_index_settings().cert, os.environ.get("SSL_CERT_FILE"), *_HOST_CA_BUNDLES]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _reachable_from_build(location: str) -> bool:
    """Return True for index locations a build can reach (http/https URLs); local paths are not."""
    return location.startswith(("http://", "https://"))


def choose_base_image(env: Environment | None, override: str | None, available: set[str] | None = None) -> str:
    """Pick the ``FROM`` image.

    Order: ``override`` (the inference config's ``baseImage``); the environment's ``docker.base_image`` unless
    it is Azure ML v1's default (an image of Microsoft's registry, not what a local build wants);
    ``$MLDEPLOY_DOCKER_BASE_IMAGE``; ``python:X.Y-slim`` for the environment's Python when that image is
    present locally; :data:`LOCAL_BASE_IMAGE` when present locally (built offline by ``scripts/docker-setup``);
    else ``python:X.Y-slim`` (pulled by the engine when it can reach a registry).

    Args:
        env: The environment, or None.
        override: An explicit image, or None.
        available: ``repo:tag`` names present in the engine (None: unknown, treated as none present).

    Returns:
        The image name.
    """
    from jupyter_mldeploy.environment.conda_dependencies import default_python_version
    from jupyter_mldeploy.environment.environment import DEFAULT_CPU_IMAGE

    if override:
        return override
    if env is not None and env.docker.base_image and env.docker.base_image != DEFAULT_CPU_IMAGE:
        return env.docker.base_image
    configured = settings.MLDEPLOY_DOCKER_BASE_IMAGE.get()
    if configured:
        return str(configured)
    version = None
    if env is not None and env.python.conda_dependencies is not None:
        version = env.python.conda_dependencies.python_version
    version = ".".join((version or default_python_version()).lstrip(">=~").split(".")[:2])
    slim = f"python:{version}-slim"
    present = available or set()
    if slim in present:
        return slim
    if LOCAL_BASE_IMAGE in present:
        return LOCAL_BASE_IMAGE
    return slim


def _requirements_text(env: Environment | None, extra: list[str], notes: list[str]) -> str:
    from jupyter_mldeploy.environment.build import pip_index_settings, plan_build
    from jupyter_mldeploy.server import RUNTIME_REQUIREMENTS

    if env is None or env.python.user_managed_dependencies:
        requirements: list[str] = []
        index = pip_index_settings()
        prerelease = False
    else:
        plan = plan_build(env)
        requirements = list(plan.requirements)
        index = plan.index
        prerelease = plan.prerelease
        notes.extend(plan.notes)
    lines = ["# Generated by jupyter_mldeploy: package index options, then requirements."]
    if index.index_url:
        if _reachable_from_build(index.index_url):
            lines.append(f"--index-url {index.index_url}")
        else:
            notes.append(f"index {index.index_url} is a local path, not visible inside the build: using PyPI")
    for url in index.extra_index_urls:
        if _reachable_from_build(url):
            lines.append(f"--extra-index-url {url}")
        else:
            notes.append(f"extra index {url} is a local path, not visible inside the build: left out")
    for link in index.find_links:
        if _reachable_from_build(link):
            lines.append(f"--find-links {link}")
        else:
            notes.append(f"find-links {link} is a local path, not visible inside the build: left out")
    for host in index.trusted_hosts:
        lines.append(f"--trusted-host {host}")
    if prerelease:
        lines.append("--pre")
    seen: set[str] = set()
    for requirement in [*RUNTIME_REQUIREMENTS, *requirements, *extra]:
        if requirement not in seen:
            seen.add(requirement)
            lines.append(requirement)
    return "\n".join(lines) + "\n"


def _quoted_env(values: dict[str, str]) -> str:
    return " ".join(f"{key}={json.dumps(value)}" for key, value in sorted(values.items()))


def generate_context(
    env: Environment | None,
    *,
    base_image: str,
    extra_requirements: list[str] | None = None,
    extra_steps: str | None = None,
    app: AppSection | None = None,
    image_tag: str | None = None,
) -> BuildContext:
    """Generate the Dockerfile and files of an environment image (or of a package, with ``app``).

    Args:
        env: The environment (None or user-managed: only the scoring server's requirements plus
            ``extra_requirements``).
        base_image: The ``FROM`` image (see :func:`choose_base_image`).
        extra_requirements: More pip requirement lines (e.g. the notebook's packages for ``environment=None``).
        extra_steps: Dockerfile lines added after the dependency layers (``extraDockerfileSteps``).
        app: For ``Model.package``: the app folder and its variables, copied into the image.
        image_tag: The tag to give; default ``mldeploy-env:<content hash>``.

    Returns:
        BuildContext: Not written yet (see :meth:`BuildContext.write`).

    Raises:
        EnvironmentBuildError: When the environment cannot be planned (a conda package without a PyPI
            equivalent, an unsupported pip option).
    """
    from jupyter_mldeploy import __version__
    from jupyter_mldeploy.server import runtime_digest

    if not base_image or any(c.isspace() for c in base_image):
        raise InvalidArgument(f"Invalid base image {base_image!r}: give a name such as 'python:3.11-slim'.")
    notes: list[str] = []
    requirements = _requirements_text(env, list(extra_requirements or []), notes)
    files: dict[str, bytes] = {"requirements.txt": requirements.encode("utf-8")}
    bundle = host_ca_bundle()
    what = f"environment {env.name}:{env.version or 'unregistered'}" if env is not None else "the notebook's packages"
    lines = [
        f"# Generated by jupyter_mldeploy {__version__} for {what}.",
        "# Build anywhere with: docker build -t NAME .",
        f"FROM {base_image}",
        "ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "
        "PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180",
    ]
    if bundle is not None:
        files["ca-certificates.crt"] = bundle.read_bytes()
        lines += [
            "# The CA bundle of the machine that generated this file: pip trusts what pip trusted there.",
            f"COPY ca-certificates.crt {CERT_PATH}",
            f"ENV PIP_CERT={CERT_PATH} SSL_CERT_FILE={CERT_PATH} REQUESTS_CA_BUNDLE={CERT_PATH}",
        ]
    else:
        notes.append("no CA bundle found on this machine: pip in the build uses the base image's certificates")
    lines += [
        f"RUN python3 -m venv {VENV_DIR}",
        f"COPY requirements.txt {VENV_DIR}/mldeploy-requirements.txt",
        f"RUN {VENV_DIR}/bin/python -m pip install -r {VENV_DIR}/mldeploy-requirements.txt",
        f"COPY runtime/ {RUNTIME_DIR}/",
        # A .pth file puts the scoring server on the venv's path without touching PYTHONPATH (left to users).
        f"RUN {VENV_DIR}/bin/python -c \"import pathlib, sysconfig; "
        f"pathlib.Path(sysconfig.get_paths()['purelib'], 'mldeploy-runtime.pth').write_text('{RUNTIME_DIR}\\\\n')\"",
        f"ENV VIRTUAL_ENV={VENV_DIR} PATH={VENV_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    if extra_steps:
        lines += ["# extraDockerfileSteps", *extra_steps.rstrip().splitlines()]
    lines += [f"WORKDIR {APP_ROOT}", f"EXPOSE {CONTAINER_PORT}"]
    if app is not None:
        lines += [
            "# The app: entry script folder and models (copied, so the image is self-contained).",
            f"COPY app/ {APP_ROOT}/",
            f"ENV {_quoted_env(app.environment)}" if app.environment else "",
            # No --entry_script: azmlinfsrv would export it as an absolute path, while a v1 image's
            # AZUREML_ENTRY_SCRIPT (set above) is relative to AML_APP_ROOT, as every target gives it.
            "CMD " + json.dumps(["python", "-m", "jupyter_mldeploy.server", "--port", str(CONTAINER_PORT), "--host", "0.0.0.0"]),
        ]
    else:
        lines.append("CMD " + json.dumps(["python", "-m", "jupyter_mldeploy.server", "--help"]))
    dockerfile = "\n".join(line for line in lines if line) + "\n"
    digest = hashlib.sha256()
    digest.update(f"dockerfile-v{DOCKERFILE_VERSION}\n".encode())
    digest.update(dockerfile.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    digest.update(runtime_digest().encode())
    tag = image_tag or f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:24]}"
    if app is not None:
        notes.append(f"app folder {app.source} copied into the image at {APP_ROOT}")
    return BuildContext(
        dockerfile=dockerfile, files=files, base_image=base_image, image_tag=tag, notes=notes,
        app_source=app.source if app is not None else None,
    )


@dataclass(frozen=True)
class AppSection:
    """The app part of a package image.

    Attributes:
        source: The laid-out app folder (entry script folder + ``azureml-models/``) on this machine.
        entry_script: The entry script's path inside the image (under :data:`APP_ROOT`).
        environment: Variables baked into the image (``AZUREML_MODEL_DIR`` ... and the environment's own).
    """

    source: Path
    entry_script: str
    environment: dict[str, str]


def read_extra_steps(path: Path | None) -> str | None:
    """Return the text of an ``extraDockerfileSteps`` file, or None.

    Raises:
        EnvironmentBuildError: When the file cannot be read.
    """
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentBuildError(f"Cannot read extraDockerfileSteps file {path}: {exc}") from exc
