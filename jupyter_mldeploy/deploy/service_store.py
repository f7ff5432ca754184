"""Where services are kept: ``deployments/<service>/service.json`` plus their rows in the registry database.

One module owns the service folder, its lock, the record file and the ``services``/``service_models`` rows,
so the façade, the deployer and every target read and write them the same way. The rows exist so the
registry can refuse to delete a model version a service serves.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from jupyter_mldeploy.deploy.app_folder import remove_app_folder
from jupyter_mldeploy.deploy.state import ServiceRecord, read_json, write_json_atomic
from jupyter_mldeploy.errors import NotFound
from jupyter_mldeploy.workspace import SERVICE_RECORD_FILENAME, Workspace

RECORD_FILENAME = SERVICE_RECORD_FILENAME
#: Longest lock-file stem used as is; longer service names (up to 255 characters) get a digest, so the
#: ``.lock`` suffix never pushes a file name over the file system's 255-byte limit.
_LOCK_STEM_MAX = 200
#: Seconds a change waits for another change of the same service (a deploy, reload, update or delete).
LOCK_TIMEOUT_SEC = 600.0


@dataclass(frozen=True)
class ServiceStore:
    """The services of one workspace.

    Attributes:
        workspace: The workspace.
    """

    workspace: Workspace

    def folder(self, name: str) -> Path:
        """``deployments/<name>/``."""
        return self.workspace.deployments_dir / name

    def record_path(self, name: str) -> Path:
        """``deployments/<name>/service.json``."""
        return self.folder(name) / RECORD_FILENAME

    def exists(self, name: str) -> bool:
        """True when a record of ``name`` is stored."""
        return self.record_path(name).is_file()

    def names(self) -> list[str]:
        """The names of the stored services, sorted (rows of services without a record are dropped)."""
        if self.workspace.registry_path.exists():
            with self.workspace.transaction() as conn:
                self.workspace.drop_stale_service_rows(conn)
        folder = self.workspace.deployments_dir
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / RECORD_FILENAME).is_file())

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialize changes to one service across processes (deploy, reload, update and delete)."""
        locks = self.workspace.deployments_dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        stem = name if len(name) <= _LOCK_STEM_MAX else hashlib.sha256(name.encode()).hexdigest()
        with FileLock(str(locks / f"{stem}.lock"), timeout=LOCK_TIMEOUT_SEC):
            yield

    def read(self, name: str) -> ServiceRecord:
        """Return the record of ``name``.

        Raises:
            NotFound: When no record is stored (the service was deleted, or never existed).
            DeploymentError: When the record is damaged or of an unknown format.
        """
        path = self.record_path(name)
        data = read_json(path)
        if not isinstance(data, dict):
            raise NotFound(f"Service {name!r} was deleted.")
        return ServiceRecord.from_dict(data, path)

    def save(self, record: ServiceRecord) -> None:
        """Write the record atomically and mirror it in the registry rows."""
        write_json_atomic(self.record_path(record.name), record.to_dict())
        self._write_rows(record)

    def save_file_only(self, record: ServiceRecord) -> None:
        """Write the record atomically without touching the rows (a state change that serves the same models)."""
        write_json_atomic(self.record_path(record.name), record.to_dict())

    def remove(self, name: str) -> None:
        """Remove the rows and the folder of ``name`` (whatever is left of them)."""
        with self.workspace.transaction() as conn:
            conn.execute("DELETE FROM service_models WHERE service = ?", (name,))
            conn.execute("DELETE FROM services WHERE name = ?", (name,))
        remove_app_folder(self.folder(name))

    def _write_rows(self, record: ServiceRecord) -> None:
        with self.workspace.transaction() as conn:
            conn.execute(
                "INSERT INTO services (name, runtime, created_time, updated_time) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET runtime = excluded.runtime, updated_time = excluded.updated_time",
                (record.name, record.target, record.created_time, record.updated_time),
            )
            conn.execute("DELETE FROM service_models WHERE service = ?", (record.name,))
            conn.executemany(
                "INSERT INTO service_models (service, model_name, model_version) VALUES (?, ?, ?)",
                [(record.name, m.name, m.version) for m in record.models],
            )
