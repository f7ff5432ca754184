"""A Secret volume laid out and updated the way kubelet does it (its ``AtomicWriter``), for the keys tests.

No kubelet runs here. kubelet publishes a Secret's items into the pod's volume folder as::

    VOLUME/..2026_11_27_20_43_47.123456789/keys.json   the content, in a timestamped folder
    VOLUME/..data -> ..2026_11_27_20_43_47.123456789   a symbolic link to the current folder
    VOLUME/keys.json -> ..data/keys.json               what the container opens

and publishes a changed Secret by writing a new timestamped folder, pointing a new link ``..data_tmp`` at
it, renaming that link over ``..data`` (atomic), and only then deleting the old folder. The file the
container opens is never rewritten in place: the path leads to another file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

DATA_LINK = "..data"


def publish(volume: Path, files: dict[str, bytes], mode: int = 0o440, group: int | None = None) -> Path:
    """Publish ``files`` into ``volume`` as kubelet does (first publication or update); return the new folder.

    Args:
        volume: The volume folder (created when missing).
        files: Item name -> content.
        mode: Each file's mode (the Secret volume's ``defaultMode``; with ``fsGroup`` kubelet adds group read).
        group: The files' group (the pod's ``fsGroup``), or None to leave it.
    """
    volume.mkdir(parents=True, exist_ok=True)
    link = volume / DATA_LINK
    old = os.readlink(link) if link.is_symlink() else None
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    folder = Path(tempfile.mkdtemp(prefix=stamp, dir=volume))
    os.chmod(folder, 0o755)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content)
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, 0, group)
    tmp_link = volume / "..data_tmp"
    os.symlink(folder.name, tmp_link)
    os.rename(tmp_link, link)  # the switch: atomic
    for name in files:
        visible = volume / name
        if not visible.is_symlink():
            os.symlink(f"{DATA_LINK}/{name}", visible)
    if old is not None:
        shutil.rmtree(volume / old)
    return folder
