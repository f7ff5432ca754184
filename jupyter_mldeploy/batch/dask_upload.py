"""Uploading a job's app folder to Dask workers that cannot see the driver's path.

The driver loads the entry script and models from ``jobs/<name>/<id>/app/``. Workers on this machine or on
a shared file system see it at that path; others get a copy: the driver zips the folder once and registers
an :class:`AppFolderUpload` worker plugin, which distributed runs on every worker of the cluster, those
that join later included. A worker that sees the path keeps using it; another unpacks the copy into its
``local_directory`` and maps the job's paths (``AML_APP_ROOT``, ``AZUREML_MODEL_DIR``...) onto it
(:func:`~jupyter_mldeploy.batch.worker.use_app_copy`). The plugin is removed when the job ends, which
deletes the copies. Imported only with ``backend="dask"`` (distributed is an extra).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from jupyter_mldeploy.batch.worker import use_app_copy

log = logging.getLogger("jupyter_mldeploy.batch")


def zip_folder(folder: Path) -> bytes:
    """The folder's files as a zip archive (paths relative to the folder), in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


class AppFolderUpload(WorkerPlugin):
    """A Dask worker plugin carrying a job's app folder to workers that cannot see it.

    Args:
        app_root: The app folder's path on the driver's machine.
        archive: The folder as a zip archive (:func:`zip_folder`).
    """

    def __init__(self, app_root: str, archive: bytes) -> None:
        self.app_root = app_root
        self.archive = archive
        self.digest = hashlib.sha256(archive).hexdigest()[:16]
        self.name = f"jupyter-mldeploy-app-{self.digest}"
        self.copy: Path | None = None

    def setup(self, worker: Any) -> None:
        """Unpack the folder on a worker that does not see ``app_root`` (``WorkerPlugin.setup``)."""
        if os.path.isdir(self.app_root):
            return
        target = Path(worker.local_directory) / "mldeploy-apps" / self.digest
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.digest}.", dir=target.parent))
            with zipfile.ZipFile(io.BytesIO(self.archive)) as archive:
                archive.extractall(staging)
            os.replace(staging, target)
        self.copy = target
        use_app_copy(self.app_root, str(target))
        log.info("App folder %s unpacked to %s on worker %s.", self.app_root, target, worker.address)

    def teardown(self, worker: Any) -> None:
        """Forget and delete the copy (the job ended)."""
        if self.copy is not None:
            use_app_copy(self.app_root, None)
            shutil.rmtree(self.copy, ignore_errors=True)


def upload_if_unseen(client: Any, app_root: str) -> str | None:
    """Register an :class:`AppFolderUpload` when some worker does not see ``app_root``.

    Args:
        client: The job's ``distributed.Client``.
        app_root: The job's app folder.

    Returns:
        str | None: The plugin's name (to unregister at the end), or None when every worker sees the path.
    """
    seen = client.run(os.path.isdir, app_root)
    if seen and all(seen.values()):
        return None
    plugin = AppFolderUpload(app_root, zip_folder(Path(app_root)))
    client.register_plugin(plugin, name=plugin.name)
    log.info("Uploaded the app folder (%d bytes zipped) to the workers that do not see %s: %s.",
             len(plugin.archive), app_root, ", ".join(sorted(a for a, ok in seen.items() if not ok)))
    return plugin.name
