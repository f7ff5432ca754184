"""``RunsPanel``: experiment runs with status badges, their parameters, metrics and models; one run in detail.

The rows and the details come from :func:`jupyter_mldeploy.actions.list_runs` and
:func:`~jupyter_mldeploy.actions.show_run`, as the sidebar's Runs section and ``mldeploy run list/show`` read
them; both only read, so refreshing while a run logs (in this kernel or another process) is safe.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy import actions
from jupyter_mldeploy.actions import format_duration, format_time
from jupyter_mldeploy.errors import MLDeployError
from jupyter_mldeploy.notebook.summaries import STATUS_STATES, status_badge_html
from jupyter_mldeploy.notebook.widgets._common import MessageLine, button, reported, resolve_workspace
from jupyter_mldeploy.workspace import Workspace

#: The service state whose badge color a run status takes: in progress, fine, broken, stopped by hand.
#: Runs listed at most (the newest); the experiment filter reaches older ones.
DEFAULT_LIMIT = 100
#: Characters of a metric value (a list, a table) shown before it is cut with an ellipsis.
VALUE_CHARS = 200

_ALL = ""


def value_text(value: Any) -> str:
    """A parameter or metric value as one short line: floats to 6 significant digits, text as is, anything
    else compact JSON cut at :data:`VALUE_CHARS` characters."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{html.escape(name)}={html.escape(value_text(value))}" for name, value in values.items())


def _table(title: str, rows: list[tuple[str, str]], empty: str) -> str:
    """A two-column HTML table (cells already escaped) under a bold title; ``empty`` in italics for no row."""
    if not rows:
        return f"<div><b>{title}</b>: <i>{empty}</i></div>"
    body = "".join(f"<tr><td style='text-align:left;padding-right:1em'>{a}</td><td style='text-align:left'>{b}</td>"
                   "</tr>" for a, b in rows)
    return f"<div><b>{title}</b><table class='mldeploy-run-{title.lower()}'>{body}</table></div>"


class RunRow(widgets.HBox):
    """One run in the :class:`RunsPanel`: status badge, a summary line, and its "Details" button.

    Attributes:
        run_id (str): The run.
        status (str): Its status at the last refresh.
        badge (HTML): The status badge.
        info (HTML): Experiment and number, kind, start, duration, parameters, last metrics, models, error.
        details_button (Button): Shows the run in the panel's detail view.
    """

    def __init__(self, panel: RunsPanel, row: dict[str, Any]) -> None:
        self.run_id: str = row["id"]
        self.status: str = row["status"]
        # One width for every badge, so the summaries start in one column.
        self.badge = widgets.HTML(layout=widgets.Layout(width="7em", flex="0 0 auto"))
        # flex-basis 0 and min-width 0: the summary wraps inside the row instead of pushing the button out.
        self.info = widgets.HTML(layout=widgets.Layout(flex="1 1 0%", min_width="0"))
        self.details_button = button("Details", lambda _: panel.show(self.run_id), icon="search",
                                     tooltip="Parameters, every metric, files and models of this run")
        self.update(row)
        super().__init__(children=[self.badge, self.info, self.details_button],
                         layout=widgets.Layout(align_items="center"))

    def update(self, row: dict[str, Any]) -> None:
        """Show a new reading of the run."""
        self.status = row["status"]
        badge = status_badge_html(row["status"])
        if self.badge.value != badge:
            self.badge.value = badge
        parts = [
            f"<b>{html.escape(row['experiment'])} #{row['number']}</b>",
            html.escape(row["kind"]),
            f"started {format_time(row['startTime'])}",
        ]
        if row["durationSeconds"] is not None:
            parts.append(format_duration(row["durationSeconds"]))
        if row["parameters"]:
            parts.append(_pairs(row["parameters"]))
        if row["metrics"]:
            parts.append(_pairs(row["metrics"]))
        if row["models"]:
            parts.append("models " + html.escape(", ".join(row["models"])))
        error = (f"<br><small style='color:#cf222e'>{html.escape(row['error'][:300])}</small>"
                 if row["error"] else "")
        info = " &nbsp;·&nbsp; ".join(parts) + error
        if self.info.value != info:
            self.info.value = info


class RunsPanel(widgets.VBox):
    """The workspace's runs, newest first, filtered by experiment; "Details" shows one run whole.

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.
        limit: Runs listed at most (the newest).

    Attributes:
        experiment_select (Dropdown): ``""`` (every experiment) or one experiment's name; changing it refreshes.
        refresh_button (Button): Reads the runs again (statuses, metrics, models) and the shown run.
        rows (dict[str, RunRow]): One row per listed run, by id, newest first.
        selected (str | None): The run in the detail view.
        detail (HTML): That run: status, times, error, parameters, metrics, files, models, folder.
        message (MessageLine): The last error, or how many runs are listed.
    """

    def __init__(self, workspace: Workspace | str | Path | None = None, limit: int = DEFAULT_LIMIT) -> None:
        self.rows: dict[str, RunRow] = {}
        self.selected: str | None = None
        self._choosing = False
        self.limit = limit
        self.workspace = resolve_workspace(workspace)
        self.experiment_select = widgets.Dropdown(description="Experiment", options=[("All experiments", _ALL)],
                                                  value=_ALL)
        self.refresh_button = button("Refresh", lambda _: self.refresh(), icon="refresh")
        self.empty = widgets.HTML()
        self.rows_box = widgets.VBox()
        self.detail = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.message = MessageLine()
        self.experiment_select.observe(lambda _change: None if self._choosing else self.refresh(), names="value")
        super().__init__(children=[
            widgets.HBox([self.experiment_select, self.refresh_button], layout=widgets.Layout(flex_flow="row wrap")),
            self.message,
            self.empty,
            self.rows_box,
            self.detail,
        ])
        self.refresh()

    def refresh(self) -> None:
        """Read the experiments and runs now; update the rows, and the detail view of the shown run."""
        try:
            names = actions.experiment_names(self.workspace)
            self._set_experiments(names)
            found = actions.list_runs(self.workspace, self.experiment_select.value or None, self.limit)
        except MLDeployError as exc:
            self.message.error(exc.summary)
            return
        for row in found:
            existing = self.rows.get(row["id"])
            if existing is None:
                self.rows[row["id"]] = RunRow(self, row)
            else:
                existing.update(row)
        listed = [row["id"] for row in found]
        for gone in set(self.rows) - set(listed):
            self.rows.pop(gone).close()
        self.rows = {run_id: self.rows[run_id] for run_id in listed}  # newest first, as listed
        children = tuple(self.rows.values())
        if self.rows_box.children != children:
            self.rows_box.children = children
        if found:
            self.empty.value = ""
        elif self.experiment_select.value:
            self.empty.value = f"<i>No runs in {html.escape(self.experiment_select.value)} yet.</i>"
        else:
            self.empty.value = ("<i>No runs yet: start one with <code>Experiment(ws, name).start_logging()</code> "
                                "or <code>mldeploy pipeline run NOTEBOOK.ipynb</code>.</i>")
        more = " (the newest; pick an experiment for older ones)" if len(found) == self.limit else ""
        self.message.info(f"{len(found)} run{'s' if len(found) != 1 else ''}{more}." if found else "")
        if self.selected is not None:
            self.show(self.selected)

    def _set_experiments(self, names: list[str]) -> None:
        options = [("All experiments", _ALL)] + [(name, name) for name in names]
        if list(self.experiment_select.options) == options:
            return
        current = self.experiment_select.value
        # Setting options resets the value in ipywidgets: restore it without a refresh per change.
        self._choosing = True
        try:
            self.experiment_select.options = options
            self.experiment_select.value = current if current in names else _ALL
        finally:
            self._choosing = False

    def show(self, run_id: str) -> None:
        """Show one run in the detail view: status, times, error, parameters, every metric, files, models.

        An unknown or malformed id is reported in the message line (red) and clears the view.
        """
        with reported(self.message):
            self.selected = None
            self.detail.value = ""
            run = actions.show_run(self.workspace, run_id)
            self.selected = run_id
            self.detail.value = self._detail_html(run)

    @staticmethod
    def _detail_html(run: dict[str, Any]) -> str:
        head = (
            f"<div class='mldeploy-run-detail'><hr><b>{html.escape(run['experiment'])} #{run['number']}</b> "
            f"{status_badge_html(run['status'])} &nbsp;<code>{html.escape(run['id'])}</code><br>"
            f"{html.escape(run['kind'])} run, started {format_time(run['startTime'])}, ended "
            f"{format_time(run['endTime'])}, took {format_duration(run['durationSeconds'])}"
        )
        if run["source"]:
            head += f"<br>notebook {html.escape(run['source'])}"
        if run["error"]:
            head += f"<pre style='color:#cf222e;white-space:pre-wrap;margin:0.3em 0'>{html.escape(run['error'])}</pre>"
        if run["tags"]:
            head += f"<br>tags {_pairs(run['tags'])}"
        sections = [
            _table("Parameters", [(html.escape(k), html.escape(value_text(v))) for k, v in run["parameters"].items()],
                   "none"),
            _table("Metrics", [(html.escape(k), html.escape(value_text(v))) for k, v in run["metrics"].items()],
                   "none logged"),
            _table("Files", [(html.escape(name), "") for name in run["files"]], "none"),
            _table("Models", [(html.escape(m["id"]), f"registered {format_time(m['createdTime'])}")
                              for m in run["models"]], "none registered from this run"),
            f"<div><small>Folder: <code>{html.escape(run['folder'])}</code></small></div></div>",
        ]
        return head + "".join(sections)

    def close(self) -> None:
        """Close the rows and the panel."""
        for row in self.rows.values():
            row.close()
        super().close()


__all__ = ["STATUS_STATES", "RunRow", "RunsPanel", "status_badge_html", "value_text"]
