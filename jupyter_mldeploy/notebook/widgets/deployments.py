"""``DeploymentsPanel``: every service with a live state badge, its URI, port and models; logs, reload, delete;
and the workspace's batch jobs with their progress.

States are refreshed by a background thread (every ``interval`` seconds) that only reads the services'
files and asks ``GET /``, then sets widget values; the kernel stays free for other cells. ``stop()`` (or
``close()``) ends the thread.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy import actions
from jupyter_mldeploy.actions import format_duration
from jupyter_mldeploy.errors import MLDeployError
from jupyter_mldeploy.notebook.summaries import state_badge_html, status_badge_html
from jupyter_mldeploy.notebook.widgets._common import MessageLine, button, reported, resolve_workspace
from jupyter_mldeploy.workspace import Workspace

#: Seconds between two live refreshes.
DEFAULT_INTERVAL_S = 2.0
#: Log lines shown by the log viewer.
LOG_LINES = 200


def log_html(text: str) -> str:
    """A log as a scrolling block that stays at its end: ``column-reverse`` pins the scroll to the bottom,
    so the newest lines are in view without any script in the page."""
    return (
        "<div class='mldeploy-log' style='max-height:20em;overflow:auto;display:flex;"
        "flex-direction:column-reverse;border:1px solid #d0d7de;padding:4px'>"
        f"<pre style='margin:0;font-size:0.8em;white-space:pre-wrap'>{html.escape(text)}</pre></div>"
    )


class ServiceRow(widgets.VBox):
    """One service in the :class:`DeploymentsPanel`: badge, details and its buttons.

    Attributes:
        name (str): The service.
        badge (HTML): The state badge.
        info (HTML): Port, models, uptime, scoring URI, error.
        logs_button, reload_button, delete_button (Button): Actions.
        confirm_box (HBox): Shown by ``delete_button``: ``confirm_button`` deletes, ``cancel_button`` hides it.
    """

    def __init__(self, panel: DeploymentsPanel, summary: actions.ServiceRow) -> None:
        self.name = summary.name
        self.state = summary.state
        self.badge = widgets.HTML()
        self.info = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.logs_button = button("Logs", lambda _: panel.show_logs(self.name), icon="file-text")
        self.reload_button = button("Reload", lambda _: panel.reload(self.name), icon="refresh",
                                    tooltip="Serve the current score.py and source folder (zero downtime)")
        self.delete_button = button("Delete…", self._ask, style="danger", icon="trash")
        self.confirm_button = button(f"Yes, delete {self.name}", lambda _: panel.delete(self.name), style="danger")
        self.cancel_button = button("Cancel", self._cancel)
        self.confirm_box = widgets.HBox([self.confirm_button, self.cancel_button],
                                        layout=widgets.Layout(display="none"))
        self.update(summary)
        super().__init__(children=[
            widgets.HBox([self.badge, self.info, self.logs_button, self.reload_button, self.delete_button],
                         layout=widgets.Layout(align_items="center")),
            self.confirm_box,
        ])

    def update(self, summary: actions.ServiceRow) -> None:
        """Show a new reading of the service."""
        self.state = summary.state
        badge = state_badge_html(summary.state)
        if self.badge.value != badge:
            self.badge.value = badge
        uri = html.escape(summary.scoring_uri or "-")
        error = f"<br><small style='color:#cf222e'>{html.escape(summary.error[:300])}</small>" if summary.error else ""
        info = (
            f"<b>{html.escape(summary.name)}</b> &nbsp; port {summary.port or '-'} &nbsp; "
            f"models {html.escape(', '.join(summary.models))} &nbsp; up {format_duration(summary.uptime_s)} &nbsp; "
            f"<a href='{uri}' target='_blank'>{uri}</a>{error}"
        )
        if self.info.value != info:
            self.info.value = info

    def _ask(self, _button: Any = None) -> None:
        self.confirm_box.layout.display = "flex"

    def _cancel(self, _button: Any = None) -> None:
        self.confirm_box.layout.display = "none"


def jobs_html(jobs: list[dict[str, Any]]) -> str:
    """Batch jobs as a table: status badge, name and id, a progress bar, items, failures, rows/s, error."""
    if not jobs:
        return ""
    rows = []
    for job in jobs:
        percent = round(100 * float(job.get("progress") or 0.0))
        rate = job.get("rowsPerSecond")
        error = f"<br><small style='color:#cf222e'>{html.escape(str(job['error'])[:300])}</small>" if job.get("error") else ""
        rows.append(
            f"<tr><td>{status_badge_html(str(job['state']))}</td>"
            f"<td><b>{html.escape(str(job['name']))}</b> <small>{html.escape(str(job['id']))}</small>{error}</td>"
            f"<td><progress max='100' value='{percent}'></progress> {html.escape(str(job['miniBatches']))}</td>"
            f"<td>{job.get('items') or 0} items, {job.get('failed') or 0} failed</td>"
            f"<td>{f'{rate:,.0f} rows/s' if isinstance(rate, (int, float)) else '-'}</td></tr>"
        )
    return "<b>Batch jobs</b><table class='mldeploy-jobs'>" + "".join(rows) + "</table>"


class DeploymentsPanel(widgets.VBox):
    """The services of a workspace, refreshed live, with a log viewer that follows the tail.

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.
        interval: Seconds between live refreshes.
        auto_refresh: Start the background refresh at once (``start()`` / ``stop()`` control it later).

    Attributes:
        rows (dict[str, ServiceRow]): One row per service, by name.
        jobs_view (HTML): The workspace's batch jobs with their progress (empty when there are none).
        log_view (HTML): The log of the service whose "Logs" button was pressed last, scrolled to its end.
        follow (Checkbox): Keep the log viewer at the log's tail on every refresh.
        message (MessageLine): What the last action did, or its error.
    """

    def __init__(
        self,
        workspace: Workspace | str | Path | None = None,
        interval: float = DEFAULT_INTERVAL_S,
        auto_refresh: bool = True,
    ) -> None:
        self.interval = interval
        self.rows: dict[str, ServiceRow] = {}
        self.log_service: str | None = None
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_count = 0
        # After the fields close() reads: ipywidgets' __del__ calls it even when this raises.
        self.workspace = resolve_workspace(workspace)

        self.rows_box = widgets.VBox()
        self.empty = widgets.HTML("<i>No services yet: deploy one with %deploy_local or the Registry tab.</i>")
        self.refresh_button = button("Refresh", lambda _: self.refresh(), icon="refresh")
        self.follow = widgets.Checkbox(value=True, description="Follow the log tail", indent=False)
        self.log_title = widgets.HTML()
        self.log_view = widgets.HTML(value="", layout=widgets.Layout(width="100%"))
        self.jobs_view = widgets.HTML()
        self.message = MessageLine()
        super().__init__(children=[
            widgets.HBox([self.refresh_button, self.follow]),
            self.empty,
            self.rows_box,
            self.jobs_view,
            self.message,
            self.log_title,
            self.log_view,
        ])
        self.refresh()
        if auto_refresh:
            self.start()

    # -- live refresh ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every service's state now and update the rows (and the followed log)."""
        with self._lock:
            try:
                summaries = actions.list_services(self.workspace)
            except MLDeployError as exc:
                self.message.error(exc.summary)
                return
            names = [s.name for s in summaries]
            for summary in summaries:
                row = self.rows.get(summary.name)
                if row is None:
                    self.rows[summary.name] = ServiceRow(self, summary)
                else:
                    row.update(summary)
            for gone in set(self.rows) - set(names):
                self.rows.pop(gone).close()
                if self.log_service == gone:
                    self.log_service = None
                    self.log_title.value = f"<i>{html.escape(gone)} was deleted.</i>"
            children = tuple(self.rows[n] for n in names)
            if self.rows_box.children != children:
                self.rows_box.children = children
            self.empty.layout.display = "none" if names else "block"
            jobs = jobs_html(actions.list_jobs(self.workspace))
            if self.jobs_view.value != jobs:
                self.jobs_view.value = jobs
            if self.follow.value and self.log_service is not None:
                self._load_logs(self.log_service)
            self.refresh_count += 1

    def _loop(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - a refresh error is shown; the loop must live on
                self.message.error(f"Refresh failed: {type(exc).__name__}: {exc}")

    def start(self) -> None:
        """Start refreshing in a background thread (no-op when running)."""
        if self.running:
            return
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._loop, name="mldeploy-deployments-panel", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background refresh and wait for the thread to end."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        """True while the background refresh runs."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the refresh thread and close the widgets."""
        self.stop()
        for row in self.rows.values():
            row.close()
        super().close()

    # -- actions --------------------------------------------------------------------------------------

    def _load_logs(self, name: str) -> None:
        try:
            text = actions.service_logs(self.workspace, name, LOG_LINES)
        except MLDeployError:
            return
        shown = log_html(text)
        if self.log_view.value != shown:
            self.log_view.value = shown

    def show_logs(self, name: str) -> None:
        """Show a service's log in the viewer (followed on each refresh while "Follow" is on)."""
        with self._lock, reported(self.message):
            self.log_service = name
            self.log_title.value = f"<b>Log of {html.escape(name)}</b> (last {LOG_LINES} lines)"
            self._load_logs(name)

    def reload(self, name: str) -> None:
        """Reload a service: serve its current score.py and source folder with zero downtime."""
        self.message.info(f"Reloading {name}…")
        with reported(self.message):
            actions.reload_service(self.workspace, name)
            self.message.ok(f"Reloaded {name}.")
        self.refresh()

    def delete(self, name: str) -> None:
        """Delete a service (stop its server, remove its folder)."""
        with reported(self.message):
            actions.delete_service(self.workspace, name)
            self.message.ok(f"Deleted {name}.")
        self.refresh()
