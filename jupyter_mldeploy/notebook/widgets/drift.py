"""``DriftPanel``: what a service with ``collect_model_data=True`` recorded, and a simple drift picture.

For the chosen service: the rows collected per day, the drift table (PSI per feature and day against the
served model's ``sample_input`` or a reference DataFrame given with :meth:`DriftPanel.set_reference`), and one
histogram per feature, each day's distribution against the reference. The numbers come from
:func:`jupyter_mldeploy.actions.model_data.collected_data`, as ``mldeploy data show`` reads them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy.actions.model_data import CollectedData, collected_data, services_with_data
from jupyter_mldeploy.monitoring.drift import reference_frame
from jupyter_mldeploy.monitoring.store import TIMESTAMP_COLUMN
from jupyter_mldeploy.notebook.widgets._common import MessageLine, button, reported, resolve_workspace
from jupyter_mldeploy.workspace import Workspace

#: Features plotted at most (the first ones of the drift table).
MAX_PLOTS = 8
#: Histogram bins.
PLOT_BINS = 20


def _histograms(found: CollectedData) -> bytes | None:
    """A PNG with one histogram per feature: each day (step lines) against the reference (filled); None
    without matplotlib, a reference or numeric features."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if found.drift is None or found.drift.empty:
        return None
    import pandas as pd

    features = list(dict.fromkeys(found.drift["feature"]))[:MAX_PLOTS]
    reference = reference_frame(found.reference, features)
    days = found.data[TIMESTAMP_COLUMN].dt.strftime("%Y-%m-%d")
    figure, axes = plt.subplots(1, len(features), figsize=(3.2 * len(features), 2.6), squeeze=False)
    for axis, feature in zip(axes[0], features, strict=True):
        expected = pd.to_numeric(reference[feature], errors="coerce").dropna()
        axis.hist(expected, bins=PLOT_BINS, density=True, alpha=0.35, label="reference")
        for day, values in pd.to_numeric(found.data[feature], errors="coerce").groupby(days):
            axis.hist(values.dropna(), bins=PLOT_BINS, density=True, histtype="step", label=day)
        axis.set_title(str(feature), fontsize=9)
        axis.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


class DriftPanel(widgets.VBox):
    """Collected model data of a service: rows per day, drift table, histograms (the panel's Data drift tab).

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.

    Attributes:
        service_select (ipywidgets.Dropdown): Services that have a ``modeldata`` folder.
        summary (ipywidgets.HTML): Rows per day and the drift table.
        plot (ipywidgets.Image): The histograms (empty without a reference or matplotlib).
        message (MessageLine): Feedback.
        last (CollectedData | None): What the last refresh read.
    """

    def __init__(self, workspace: Workspace | str | Path | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        self._reference: Any = None
        self.last: CollectedData | None = None
        self.service_select = widgets.Dropdown(description="Service", options=[])
        self.service_select.observe(lambda _change: self.show(), names="value")
        self.summary = widgets.HTML()
        self.plot = widgets.Image(format="png", value=b"", layout=widgets.Layout(max_width="100%"))
        self.message = MessageLine()
        controls = widgets.HBox([self.service_select, button("Refresh", lambda _b: self.refresh(), icon="refresh")])
        super().__init__(children=[controls, self.message, self.summary, self.plot])
        self.refresh()

    def set_reference(self, reference: Any) -> None:
        """Compare against ``reference`` (a DataFrame, rows or ``{"data": rows}``) instead of the model's
        ``sample_input``; None goes back to it."""
        self._reference = reference
        self.show()

    def refresh(self) -> None:
        """List the services with collected data again and show the chosen one."""
        current = self.service_select.value
        names = services_with_data(self.workspace)
        self.service_select.options = names
        if current in names:
            self.show()
        elif names:
            self.service_select.value = names[0]  # shows it, through the observer
        else:
            self.message.info("No service has collected data yet: deploy with collect_model_data=True.")

    def show(self) -> None:
        """Read and draw the chosen service's inputs."""
        service = self.service_select.value
        if not service:
            return
        self.message.clear()
        with reported(self.message):
            found = collected_data(self.workspace, service, "inputs", reference=self._reference)
            self.last = found
            counts = "".join(f"<tr><td>{r['day']}</td><td>{r['rows']}</td></tr>" for r in found.rows_per_day)
            parts = [f"<b>{service}</b>: inputs rows per day<table><tr><th>day</th><th>rows</th></tr>{counts}</table>"]
            if found.drift is None:
                parts.append("<i>No drift table: register the model with sample_input=..., or call "
                             "set_reference(dataframe).</i>")
            else:
                parts.append("<b>Drift (PSI per feature and day; > 0.25 large, 0.1–0.25 moderate)</b>"
                             + found.drift.to_html(index=False, classes="mldeploy-drift", border=0))
            self.summary.value = "".join(parts)
            self.plot.value = _histograms(found) or b""
