"""Building images from generated contexts with the Docker engine, streaming the output when asked.

An image is built once per context content (its tag is the content hash) and then reused: a second
``build_image`` of an equal environment only asks the engine whether the tag exists. Builds run with the
host's network (``network_mode="host"``), so pip inside the build reaches the package indexes exactly as pip
on the host does (proxies, private mirrors on localhost). The base image is never pulled when it is present
locally; when it is absent the engine pulls it, and a failed pull names the offline way out.
"""

from __future__ import annotations

import collections
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.docker.dockerfile import (
    LOCAL_BASE_IMAGE,
    AppSection,
    BuildContext,
    choose_base_image,
    generate_context,
)
from jupyter_mldeploy.docker.engine import docker_client, image_exists
from jupyter_mldeploy.errors import EnvironmentBuildError

if TYPE_CHECKING:
    import docker

    from jupyter_mldeploy.environment import Environment

#: Labels put on every image built here (``docker image ls --filter label=mldeploy.kind``).
IMAGE_LABEL_KIND = "mldeploy.kind"

_TAIL_LINES = 60
_STEP = re.compile(r"^Step \d+/\d+ : ")


@dataclass(frozen=True)
class BuiltImage:
    """The result of an image build (or reuse).

    Attributes:
        tag: ``mldeploy-env:<hash>`` (or the package's image name).
        image_id: The engine's image id (``sha256:...``).
        base_image: The ``FROM`` image.
        reused: True when the tag existed and nothing was built.
        build_seconds: Wall time of the call, in seconds.
        notes: What the generator changed or left out.
    """

    tag: str
    image_id: str
    base_image: str
    reused: bool
    build_seconds: float
    notes: tuple[str, ...] = ()


def local_tags(client: docker.DockerClient) -> set[str]:
    """Return every ``repo:tag`` present in the engine."""
    tags: set[str] = set()
    for image in client.images.list():
        tags.update(image.tags)
    return tags


def environment_context(
    client: docker.DockerClient,
    env: Environment | None,
    *,
    base_image: str | None = None,
    extra_requirements: list[str] | None = None,
    extra_steps: str | None = None,
    app: AppSection | None = None,
    image_tag: str | None = None,
) -> BuildContext:
    """Generate the build context of ``env``, choosing the base image with what the engine holds."""
    chosen = choose_base_image(env, base_image, local_tags(client))
    return generate_context(
        env, base_image=chosen, extra_requirements=extra_requirements, extra_steps=extra_steps, app=app,
        image_tag=image_tag,
    )


def build_image(
    env: Environment | None,
    show_output: bool = True,
    *,
    base_image: str | None = None,
    extra_requirements: list[str] | None = None,
    extra_steps: str | None = None,
    client: docker.DockerClient | None = None,
) -> BuiltImage:
    """Build the image of an environment, or reuse the one built from an equal context.

    Args:
        env: The environment (None: only the scoring server plus ``extra_requirements``).
        show_output: Stream the build output to stdout line by line.
        base_image: The ``FROM`` image; default chosen by :func:`~jupyter_mldeploy.docker.dockerfile.choose_base_image`.
        extra_requirements: More pip requirement lines.
        extra_steps: ``extraDockerfileSteps`` text.
        client: A connected client (default: :func:`~jupyter_mldeploy.docker.engine.docker_client`).

    Returns:
        BuiltImage: ``reused`` says whether anything was built.

    Raises:
        EnvironmentBuildError: When no Docker engine answers, or a build step fails (the message names the
            step and holds its output).
    """
    started = time.monotonic()
    client = client or docker_client(EnvironmentBuildError)
    context = environment_context(
        client, env, base_image=base_image, extra_requirements=extra_requirements, extra_steps=extra_steps
    )
    return build_context(client, context, show_output=show_output, started=started, kind="environment")


def build_context(
    client: docker.DockerClient,
    context: BuildContext,
    show_output: bool,
    started: float | None = None,
    kind: str = "environment",
    reuse: bool = True,
    nocache: bool = False,
) -> BuiltImage:
    """Build ``context`` into ``context.image_tag`` (or reuse that tag when present and ``reuse``).

    Args:
        client: A connected client.
        context: The generated context.
        show_output: Stream the build output to stdout.
        started: ``time.monotonic()`` at the start of the caller's work (default: now).
        kind: Value of the image's ``mldeploy.kind`` label (``environment`` or ``package``).
        reuse: Return an existing image of the same tag instead of building.
        nocache: Build every layer anew (the engine's layer cache is not used; for cold-build measurements).

    Returns:
        BuiltImage: The image.

    Raises:
        EnvironmentBuildError: When a step fails or the base image is missing and cannot be pulled.
    """
    started = time.monotonic() if started is None else started
    if reuse and image_exists(client, context.image_tag):
        image = client.images.get(context.image_tag)
        return BuiltImage(
            tag=context.image_tag, image_id=str(image.id), base_image=context.base_image, reused=True,
            build_seconds=time.monotonic() - started, notes=tuple(context.notes),
        )
    out = _Output(show_output)
    out.line(f"Building image {context.image_tag} FROM {context.base_image}")
    for note in context.notes:
        out.line(f"note: {note}")
    with tempfile.TemporaryDirectory(prefix="mldeploy-build-") as tmp:
        folder = context.write(Path(tmp) / "context")
        image_id = _run_build(client, folder, context, out, kind, nocache)
    return BuiltImage(
        tag=context.image_tag, image_id=image_id, base_image=context.base_image, reused=False,
        build_seconds=time.monotonic() - started, notes=tuple(context.notes),
    )


class _Output:
    """Build output: streamed to stdout when asked; the current step's lines kept for error messages."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.step = ""
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)

    def line(self, text: str) -> None:
        text = text.rstrip("\n")
        if _STEP.match(text):
            self.step = text
            self.tail.clear()
        self.tail.append(text)
        if self.show:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def _run_build(
    client: docker.DockerClient, folder: Path, context: BuildContext, out: _Output, kind: str, nocache: bool
) -> str:
    from docker.errors import APIError, DockerException

    image_id = ""
    pending = ""
    try:
        stream = client.api.build(
            path=str(folder), tag=context.image_tag, rm=True, forcerm=True, decode=True, network_mode="host", nocache=nocache,
            labels={IMAGE_LABEL_KIND: kind, "mldeploy.base-image": context.base_image},
        )
        for chunk in stream:
            if "error" in chunk:
                _fail(context, out, str(chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")))
            text = chunk.get("stream")
            if text:
                pending += text
                *complete, pending = pending.split("\n")
                for line in complete:
                    out.line(line)
            elif chunk.get("status") and not chunk.get("progressDetail"):
                out.line(f"{chunk['status']} {chunk.get('id', '')}".strip())
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
    except (APIError, DockerException) as exc:
        _fail(context, out, str(exc))
    if pending:
        out.line(pending)
    if not image_id:
        image_id = str(client.images.get(context.image_tag).id)
    out.line(f"Built image {context.image_tag} ({image_id[:19]})")
    return image_id


def _fail(context: BuildContext, out: _Output, error: str) -> Any:
    step = out.step or "preparing the build"
    output = "\n".join(out.tail).rstrip()
    hint = ""
    missing_base = "not found" in error.lower() and "FROM" in step
    if "pull access denied" in error or "manifest unknown" in error or missing_base:
        hint = (
            f"\nThe base image {context.base_image} is not present locally and cannot be pulled. Build a local one "
            f"offline with `mldeploy docker base-image` (tag {LOCAL_BASE_IMAGE}), or name an image you have with "
            "MLDEPLOY_DOCKER_BASE_IMAGE or env.docker.base_image."
        )
    elif "dial tcp" in error or "TLS handshake" in error or "registry" in error:
        hint = (
            f"\nThe engine could not reach an image registry for {context.base_image}. Build a local base image "
            f"with `mldeploy docker base-image` ({LOCAL_BASE_IMAGE}) or set MLDEPLOY_DOCKER_BASE_IMAGE."
        )
    raise EnvironmentBuildError(
        f"Image build of {context.image_tag} failed at '{step}': {error.strip()}\n{output}{hint}"
    )
