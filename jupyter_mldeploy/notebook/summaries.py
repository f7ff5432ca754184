"""Tables of a workspace's models and services, for display: plain text and HTML.

The ``%models`` and ``%deployments`` magics return these tables, and the panels show the same rows and
state badges, so a service looks the same wherever it is listed. Uptime is measured from the scoring
server process's start time (``psutil``), so it survives a kernel restart and covers zero-downtime updates.
"""

from __future__ import annotations

import contextlib
import html
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil

from jupyter_mldeploy.errors import MLDeployError
from jupyter_mldeploy.workspace import Workspace

#: Badge colors per service state (GitHub's palette: readable on light and dark themes).
STATE_COLORS = {
    "Healthy": "#1a7f37",
    "Transitioning": "#9a6700",
    "Unhealthy": "#bc4c00",
    "Failed": "#cf222e",
    "Deleted": "#6e7781",
}


def state_badge_html(state: str) -> str:
    """Return an HTML badge (a colored pill) for a service state."""
    color = STATE_COLORS.get(state, "#6e7781")
    return (
        f"<span class='mldeploy-badge' style='background:{color};color:white;border-radius:8px;"
        f"padding:1px 8px;font-size:0.85em'>{html.escape(state)}</span>"
    )


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``5 min 03 s``, ``2 h 07 min``, ``3 d 04 h``; ``-`` for None."""
    if seconds is None:
        return "-"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _html_table(headers: list[str], rows: list[list[str]], css_class: str) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{cell}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


# -- services -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSummary:
    """One service as listed.

    Attributes:
        name: Service name.
        state: ``Healthy``, ``Transitioning``, ``Unhealthy``, ``Failed`` or ``Deleted``, observed now.
        runtime: ``process`` or ``docker``.
        port: TCP port on 127.0.0.1.
        models: Served model versions, ``"name:version"``.
        scoring_uri: ``http://127.0.0.1:<port>/score``.
        uptime_s: Seconds since the scoring server process started, or None when it is not running.
        error: Why the service is ``Failed``/``Unhealthy``, or None.
    """

    name: str
    state: str
    runtime: str
    port: int | None
    models: tuple[str, ...]
    scoring_uri: str | None
    uptime_s: float | None
    error: str | None = None


def _uptime(pid: Any) -> float | None:
    if not isinstance(pid, int) or pid <= 0:
        return None
    with contextlib.suppress(psutil.Error):
        return time.time() - psutil.Process(pid).create_time()
    return None


def summarize_service(service: Any) -> ServiceSummary:
    """Describe one service (reads its state once).

    Args:
        service: A ``Webservice``.

    Returns:
        ServiceSummary
    """
    data = service.serialize()
    state = str(data.get("state") or "Deleted")
    running = state in ("Healthy", "Transitioning", "Unhealthy")
    return ServiceSummary(
        name=service.name,
        state=state,
        runtime=str(data.get("runtime") or "process"),
        port=data.get("port"),
        models=tuple(data.get("models") or ()),
        scoring_uri=data.get("scoringUri"),
        uptime_s=_uptime(data.get("pid")) if running else None,
        error=data.get("error"),
    )


def service_summaries(workspace: Workspace) -> list[ServiceSummary]:
    """Describe every service of a workspace, sorted by name (services deleted meanwhile are left out)."""
    from jupyter_mldeploy.deploy import Webservice

    found = []
    for service in Webservice.list(workspace):
        with contextlib.suppress(MLDeployError):
            summary = summarize_service(service)
            if summary.state != "Deleted":
                found.append(summary)
    return found


class ServiceTable:
    """The services of a workspace: state, port, models, uptime and scoring URI (``%deployments``).

    Args:
        workspace: The workspace listed.
        rows: The services.
    """

    headers = ["name", "state", "port", "models", "uptime", "scoring URI"]

    def __init__(self, workspace: Workspace, rows: list[ServiceSummary]) -> None:
        self.workspace = workspace
        self.rows = rows

    @classmethod
    def of(cls, workspace: Workspace) -> ServiceTable:
        """List a workspace's services now."""
        return cls(workspace, service_summaries(workspace))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ServiceSummary]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> ServiceSummary:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """The service names, sorted."""
        return [row.name for row in self.rows]

    def _cells(self, row: ServiceSummary) -> list[str]:
        return [row.name, row.state, str(row.port or "-"), ", ".join(row.models), format_duration(row.uptime_s),
                row.scoring_uri or "-"]

    def __repr__(self) -> str:
        if not self.rows:
            return f"No services in workspace {self.workspace.path}."
        return _text_table(self.headers, [self._cells(r) for r in self.rows])

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<i>No services in workspace {html.escape(str(self.workspace.path))}.</i>"
        rows = []
        for row in self.rows:
            cells = [html.escape(c) for c in self._cells(row)]
            cells[1] = state_badge_html(row.state) + (
                f"<br><small>{html.escape(row.error[:200])}</small>" if row.error else ""
            )
            if row.scoring_uri:
                uri = html.escape(row.scoring_uri)
                cells[5] = f"<a href='{uri}' target='_blank'>{uri}</a>"
            rows.append(cells)
        return _html_table(self.headers, rows, "mldeploy-services")


# -- models ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSummary:
    """One registered model version as listed.

    Attributes:
        name: Model name.
        version: Version number.
        tags: Tags.
        description: Description, or None.
        files: Stored file paths relative to the version folder.
        size_bytes: Total size of the files.
        created_time: Registration time (UTC).
    """

    name: str
    version: int
    tags: dict[str, str]
    description: str | None
    files: tuple[str, ...]
    size_bytes: int
    created_time: datetime

    @property
    def id(self) -> str:
        """``"name:version"``."""
        return f"{self.name}:{self.version}"


def format_size(size: int) -> str:
    """``512 B``, ``1.5 KB``, ``12.3 MB`` (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def model_summaries(workspace: Workspace, name: str | None = None) -> list[ModelSummary]:
    """Describe the registered versions (of one model when ``name`` is given), newest version first.

    Raises:
        InvalidArgument: For a malformed name.
    """
    from jupyter_mldeploy.registry import Model

    found = []
    for model in Model.list(workspace, name=name):
        data = model.serialize()
        found.append(
            ModelSummary(
                name=model.name,
                version=int(model.version),
                tags=dict(model.tags),
                description=model.description,
                files=tuple(f["path"] for f in data["files"]),
                size_bytes=sum(int(f["size"]) for f in data["files"]),
                created_time=model.created_time,
            )
        )
    return found


class ModelTable:
    """Registered model versions: version, tags, description, files, size, registration time (``%models``).

    Args:
        workspace: The workspace listed.
        rows: The versions.
        name: The model the listing is limited to, or None.
    """

    headers = ["name", "version", "tags", "description", "files", "size", "registered"]

    def __init__(self, workspace: Workspace, rows: list[ModelSummary], name: str | None = None) -> None:
        self.workspace = workspace
        self.rows = rows
        self.name = name

    @classmethod
    def of(cls, workspace: Workspace, name: str | None = None) -> ModelTable:
        """List a workspace's models now."""
        return cls(workspace, model_summaries(workspace, name), name)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ModelSummary]:
        return iter(self.rows)

    @property
    def ids(self) -> list[str]:
        """``"name:version"`` of each row."""
        return [row.id for row in self.rows]

    def _cells(self, row: ModelSummary) -> list[str]:
        files = ", ".join(row.files[:4]) + (f" (+{len(row.files) - 4})" if len(row.files) > 4 else "")
        return [
            row.name,
            str(row.version),
            json.dumps(row.tags)[1:-1] if row.tags else "",
            row.description or "",
            files,
            format_size(row.size_bytes),
            row.created_time.strftime("%Y-%m-%d %H:%M:%S UTC"),
        ]

    def _empty(self) -> str:
        what = f"No versions of model {self.name!r}" if self.name else "No registered models"
        return f"{what} in workspace {self.workspace.path}."

    def __repr__(self) -> str:
        if not self.rows:
            return self._empty()
        return _text_table(self.headers, [self._cells(r) for r in self.rows])

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<i>{html.escape(self._empty())}</i>"
        return _html_table(self.headers, [[html.escape(c) for c in self._cells(r)] for r in self.rows],
                           "mldeploy-models")


__all__ = [
    "ModelSummary",
    "ModelTable",
    "ServiceSummary",
    "ServiceTable",
    "format_duration",
    "format_size",
    "model_summaries",
    "service_summaries",
    "state_badge_html",
    "summarize_service",
]
