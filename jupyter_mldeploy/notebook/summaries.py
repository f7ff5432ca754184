"""Tables of a workspace's models and services for a notebook: plain text and HTML, with state badges.

The ``%models`` and ``%deployments`` magics return these tables and the panels show the same rows and
badges, so a service looks the same wherever it is listed. The rows come from the service layer
(:func:`jupyter_mldeploy.actions.list_services`, :func:`~jupyter_mldeploy.actions.model_rows`): uptime is
measured from when the service's scoring server started, whatever its runtime, and times are local, to the
second, as in every listing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

from jupyter_mldeploy.actions import (
    ModelRow,
    ServiceRow,
    format_duration,
    format_size,
    format_time,
    list_services,
    model_rows,
)
from jupyter_mldeploy.workspace import Workspace

#: Badge colors per service state (GitHub's palette: readable on light and dark themes).
STATE_COLORS = {
    "Healthy": "#1a7f37",
    "Transitioning": "#9a6700",
    "Unhealthy": "#bc4c00",
    "Failed": "#cf222e",
    "Deleted": "#6e7781",
}


#: The service state whose color a run's or a batch job's status takes (the panel's Runs tab and job list).
STATUS_STATES = {"Running": "Transitioning", "Completed": "Healthy", "Failed": "Failed", "Canceled": "Deleted"}


def state_badge_html(state: str, label: str | None = None) -> str:
    """Return an HTML badge (a colored pill) in a service state's color, reading ``label`` (default: the
    state); a run's status takes the color of the state it corresponds to (the panel's Runs tab)."""
    color = STATE_COLORS.get(state, "#6e7781")
    return (
        f"<span class='mldeploy-badge' style='background:{color};color:white;border-radius:8px;"
        f"padding:1px 8px;font-size:0.85em'>{html.escape(label if label is not None else state)}</span>"
    )


def status_badge_html(status: str) -> str:
    """A run's or a batch job's status as a badge in the color of the matching service state
    (:data:`STATUS_STATES`); an unknown status is escaped and shown in the neutral color."""
    return state_badge_html(STATUS_STATES.get(status, status), label=status)


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


class ServiceTable:
    """The services of a workspace: state, port, models, uptime and scoring URI (``%deployments``).

    Args:
        workspace: The workspace listed.
        rows: The services.
    """

    headers = ["name", "state", "port", "models", "uptime", "scoring URI"]

    def __init__(self, workspace: Workspace, rows: list[ServiceRow]) -> None:
        self.workspace = workspace
        self.rows = rows

    @classmethod
    def of(cls, workspace: Workspace) -> ServiceTable:
        """List a workspace's services now."""
        return cls(workspace, list_services(workspace))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ServiceRow]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> ServiceRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """The service names, sorted."""
        return [row.name for row in self.rows]

    def _cells(self, row: ServiceRow) -> list[str]:
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


class ModelTable:
    """Registered model versions: version, tags, description, files, size, registration time (``%models``).

    Args:
        workspace: The workspace listed.
        rows: The versions.
        name: The model the listing is limited to, or None.
    """

    headers = ["name", "version", "tags", "description", "files", "size", "registered"]

    def __init__(self, workspace: Workspace, rows: list[ModelRow], name: str | None = None) -> None:
        self.workspace = workspace
        self.rows = rows
        self.name = name

    @classmethod
    def of(cls, workspace: Workspace, name: str | None = None) -> ModelTable:
        """List a workspace's models now."""
        return cls(workspace, model_rows(workspace, name), name)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ModelRow]:
        return iter(self.rows)

    @property
    def ids(self) -> list[str]:
        """``"name:version"`` of each row."""
        return [row.id for row in self.rows]

    def _cells(self, row: ModelRow) -> list[str]:
        files = ", ".join(row.files[:4]) + (f" (+{len(row.files) - 4})" if len(row.files) > 4 else "")
        return [
            row.name,
            str(row.version),
            json.dumps(row.tags)[1:-1] if row.tags else "",
            row.description or "",
            files,
            format_size(row.size_bytes),
            format_time(row.created_time),
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


__all__ = ["STATE_COLORS", "ModelTable", "ServiceTable", "state_badge_html"]
