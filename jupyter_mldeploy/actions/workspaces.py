"""The workspaces this user has used, most recent first (``mldeploy workspace list``, as ``az ml workspace list``).

v1 lists the workspaces of a subscription; here a workspace is a folder, and no folder knows of the others, so
the faces that open a workspace (the CLI, the magics) note it in one small JSON file per user:
:data:`jupyter_mldeploy.settings.MLDEPLOY_RECENT_WORKSPACES` (``~/.config/jupyter_mldeploy/recent_workspaces.json``
unless that variable says otherwise). The file is a convenience, never a source of truth: it is bounded to
:data:`MAX_RECENT_WORKSPACES` entries, folders that no longer hold a workspace are dropped when it is read,
and a file that cannot be read or written (a read-only home, a corrupt file) never fails a command.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_mldeploy import settings
from jupyter_mldeploy.workspace import Workspace, is_workspace

#: The most workspaces remembered; the least recently used one is forgotten first.
MAX_RECENT_WORKSPACES = 50


@dataclass(frozen=True)
class RecentWorkspace:
    """A workspace this user opened.

    Attributes:
        name: The workspace's name (``Workspace.name``: its folder's, or the project's for ``.mldeploy``).
        path: The workspace folder (absolute).
        last_used: When a command last opened it (timezone-aware, UTC).
    """

    name: str
    path: Path
    last_used: datetime

    def to_dict(self) -> dict[str, str]:
        """The JSON form (``-o json`` and the file): ``{"name", "path", "lastUsed"}`` (ISO 8601, UTC)."""
        return {"name": self.name, "path": str(self.path), "lastUsed": self.last_used.isoformat()}


def _read(file: Path) -> list[RecentWorkspace]:
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = []
    for entry in entries if isinstance(entries, list) else []:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            found.append(RecentWorkspace(str(entry["name"]), Path(entry["path"]),
                                         datetime.fromisoformat(entry["lastUsed"])))
    return found


def _write(file: Path, entries: list[RecentWorkspace]) -> None:
    # Written whole to a temporary file and renamed over the old one, so a reader never sees half a file; two
    # commands finishing at once may lose one's entry, which the next use of that workspace puts back.
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump([entry.to_dict() for entry in entries], stream, indent=1)
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _live(entries: list[RecentWorkspace]) -> list[RecentWorkspace]:
    """Most recent first, one entry per folder, only folders that still hold a workspace, bounded."""
    seen: set[Path] = set()
    kept = []
    for entry in sorted(entries, key=lambda e: e.last_used, reverse=True):
        if entry.path not in seen and is_workspace(entry.path):
            seen.add(entry.path)
            kept.append(entry)
    return kept[:MAX_RECENT_WORKSPACES]


def remember_workspace(workspace: Workspace, when: datetime | None = None) -> None:
    """Note that ``workspace`` was just opened or created (faces call it after opening one).

    Never raises for the file: a command must not fail because its history could not be written.

    Args:
        workspace: The workspace opened.
        when: The time of use (default: now).
    """
    file = settings.MLDEPLOY_RECENT_WORKSPACES.get()
    if file is None:
        return
    entry = RecentWorkspace(workspace.name, workspace.path, when or datetime.now(timezone.utc))
    with contextlib.suppress(OSError):
        _write(file, _live([entry, *_read(file)]))


def recent_workspaces() -> list[RecentWorkspace]:
    """The workspaces this user has used, most recent first; folders that no longer hold one are left out."""
    file = settings.MLDEPLOY_RECENT_WORKSPACES.get()
    return _live(_read(file)) if file is not None else []


def recent_workspace_dicts() -> list[dict[str, Any]]:
    """:func:`recent_workspaces` as JSON-safe dicts (the stable form of ``mldeploy workspace list -o json``)."""
    return [entry.to_dict() for entry in recent_workspaces()]


__all__ = ["MAX_RECENT_WORKSPACES", "RecentWorkspace", "recent_workspace_dicts", "recent_workspaces",
           "remember_workspace"]
