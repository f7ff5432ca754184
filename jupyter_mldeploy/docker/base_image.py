"""A local base image for machines that reach no image registry: a Debian rootfs made by debootstrap.

The recipe (also in ``scripts/docker-setup``)::

    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm DIR
    tar -C DIR -c . | docker import - mldeploy/base-python:bookworm

debootstrap fetches Debian packages from a Debian mirror (reachable where a package mirror is, even when
no image registry is), so the image holds Debian's Python (3.11 for bookworm) with ``venv`` and ``pip``.
It needs root (debootstrap creates device nodes and chroots) and the ``debootstrap`` program
(``apt-get install debootstrap``). Building takes about a minute and a half; the image is about 250 MB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE
from jupyter_mldeploy.docker.engine import docker_client, image_exists
from jupyter_mldeploy.errors import EnvironmentBuildError

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
#: ``docker import --change`` instructions: a rootfs tarball carries no image configuration.
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)


@dataclass(frozen=True)
class BaseImageResult:
    """What :func:`build_base_image` did.

    Attributes:
        name: The image name.
        image_id: The engine's id of it.
        built: False when the image existed and ``force`` was not asked.
        seconds: Wall time, in seconds.
    """

    name: str
    image_id: str
    built: bool
    seconds: float


def build_base_image(
    name: str = LOCAL_BASE_IMAGE,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    force: bool = False,
    show_output: bool = True,
) -> BaseImageResult:
    """Build a Debian base image with Python from a debootstrap rootfs (no image registry needed).

    Args:
        name: ``repo:tag`` to give the image.
        suite: Debian suite (``bookworm``: Python 3.11).
        mirror: Debian mirror URL (default ``http://deb.debian.org/debian``, or debootstrap's own default).
        force: Rebuild even when ``name`` exists.
        show_output: Print progress lines.

    Returns:
        BaseImageResult: The image and whether it was built.

    Raises:
        EnvironmentBuildError: When no Docker engine answers, debootstrap is missing, not run as root, or
            fails (with the tail of its output).
    """
    started = time.monotonic()
    client = docker_client(EnvironmentBuildError)
    if not force and image_exists(client, name):
        return BaseImageResult(name, str(client.images.get(name).id), built=False, seconds=time.monotonic() - started)
    tool = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if Path(p).exists()), None
    )
    if tool is None:
        raise EnvironmentBuildError(
            "debootstrap is not installed: `sudo apt-get install debootstrap` (Debian/Ubuntu), then run again."
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise EnvironmentBuildError("debootstrap needs root: run `sudo mldeploy docker base-image`.")

    def say(text: str) -> None:
        if show_output:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="mldeploy-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        command = [tool, "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(rootfs)]
        if mirror:
            command.append(mirror)
        say(f"$ {' '.join(command)}")
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            raise EnvironmentBuildError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        say(f"Packing the rootfs into {tarball}")
        packed = subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], capture_output=True,
                                text=True, check=False)
        if packed.returncode != 0:
            raise EnvironmentBuildError(f"tar of the rootfs failed: {packed.stderr.strip()}")
        repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
        say(f"Importing it as {name}")
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=list(IMPORT_CHANGES)
        )
    image = client.images.get(name)
    say(f"Built base image {name} ({str(image.id)[:19]})")
    return BaseImageResult(name, str(image.id), built=True, seconds=time.monotonic() - started)
