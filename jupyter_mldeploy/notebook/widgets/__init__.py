"""Notebook panels (ipywidgets 8): the registry, the deployments with live states, an endpoint tester, runs,
collected model data (drift).

``jupyter_mldeploy.panel()`` (or ``%mldeploy``) shows the five as tabs::

    import jupyter_mldeploy
    jupyter_mldeploy.panel()          # Workspace.from_config(), or panel("path/to/workspace")

Each panel is also usable alone (``RegistryPanel(ws)``, ``DeploymentsPanel(ws)``, ``EndpointTester(ws)``,
``RunsPanel(ws)``, ``DriftPanel(ws)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy.notebook.widgets._common import resolve_workspace
from jupyter_mldeploy.notebook.widgets.deployments import DeploymentsPanel, ServiceRow
from jupyter_mldeploy.notebook.widgets.drift import DriftPanel
from jupyter_mldeploy.notebook.widgets.registry import RegistryPanel
from jupyter_mldeploy.notebook.widgets.runs import RunsPanel
from jupyter_mldeploy.notebook.widgets.tester import EndpointTester
from jupyter_mldeploy.workspace import Workspace


class MLDeployPanel(widgets.Tab):
    """The five panels as tabs: Registry, Deployments, Test endpoint, Runs, Data drift.

    Deploying from the Registry tab refreshes the other two. ``close()`` stops the live refresh.

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.
        interval: Seconds between live refreshes of the Deployments tab.

    Attributes:
        registry (RegistryPanel), deployments (DeploymentsPanel), tester (EndpointTester), runs (RunsPanel),
            drift (DriftPanel): The tabs.
    """

    def __init__(self, workspace: Workspace | str | Path | None = None, interval: float = 2.0) -> None:
        # Set first: ipywidgets' __del__ calls close() even when a missing workspace stopped __init__ early.
        self._tabs: list[widgets.Widget] = []
        self.workspace = resolve_workspace(workspace)
        self.registry = RegistryPanel(self.workspace)
        self.deployments = DeploymentsPanel(self.workspace, interval=interval)
        self.tester = EndpointTester(self.workspace)
        self.runs = RunsPanel(self.workspace)
        self.drift = DriftPanel(self.workspace)
        self._tabs = [self.registry, self.deployments, self.tester, self.runs, self.drift]
        self.registry.on_deploy(self._deployed)
        super().__init__(children=list(self._tabs), titles=("Registry", "Deployments", "Test endpoint", "Runs",
                                                                  "Data drift"))

    def _deployed(self, service: Any) -> None:
        self.deployments.refresh()
        self.tester.refresh()
        self.tester.service_select.value = service.name

    def close(self) -> None:
        """Stop the live refresh and close every widget."""
        for tab in self._tabs:
            tab.close()
        super().close()


def panel(workspace: Workspace | str | Path | None = None, interval: float = 2.0) -> MLDeployPanel:
    """Build the panel (show it by leaving it as a cell's last expression, or with ``display()``).

    Args:
        workspace: A ``Workspace``, a folder, or None for ``Workspace.from_config()``.
        interval: Seconds between live refreshes of the Deployments tab.

    Returns:
        MLDeployPanel: A ``Tab`` widget.
    """
    return MLDeployPanel(workspace, interval=interval)


__all__ = ["DeploymentsPanel", "DriftPanel", "EndpointTester", "MLDeployPanel", "RegistryPanel", "RunsPanel", "ServiceRow", "panel"]
