"""The ``ExtensionApp`` that registers the sidebar's REST handlers and owns the configured workspace."""

from __future__ import annotations

import threading
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Unicode

from jupyter_mldeploy.errors import NotFound
from jupyter_mldeploy.jupyter_server.deploys import DeployJobs
from jupyter_mldeploy.jupyter_server.handlers import API_PREFIX, route_table
from jupyter_mldeploy.jupyter_server.runs_handlers import runs_route_table
from jupyter_mldeploy.workspace import Workspace, WorkspaceLocation, locate_workspace


class MLDeployExtension(ExtensionApp):
    """Jupyter Server extension serving the ML Deploy REST API at ``<base_url>/mldeploy/api/``.

    Configure it as any Jupyter app, e.g. ``jupyter lab --MLDeployExtension.workspace=/path/to/ws`` or in
    ``jupyter_server_config.py``: ``c.MLDeployExtension.workspace = "/path/to/ws"``.
    """

    name = "jupyter_mldeploy"

    workspace = Unicode(
        "",
        config=True,
        help=(
            "Workspace folder the sidebar shows (relative to the server's root_dir). Empty (default): "
            "$MLDEPLOY_WORKSPACE when set, else the nearest '.mldeploy' folder in root_dir or its parents, as "
            "Workspace.from_config() finds it from a notebook there. The sidebar never creates a workspace: "
            "until one exists, every route answers 404 naming the folders searched."
        ),
    )
    score_timeout = Float(
        300.0,
        config=True,
        help="Seconds the 'score' route waits for a service to answer a test request before giving up.",
    )

    deploy_timeout = Float(
        600.0,
        config=True,
        help=(
            "Seconds a deployment started from the sidebar may take (environment build, then the service's "
            "init()) before it is listed as failed; the service may still become healthy later."
        ),
    )

    def initialize_settings(self) -> None:
        """Share this app with the handlers through the web app's settings (key ``mldeploy``)."""
        self._workspace: Workspace | None = None
        self._workspace_lock = threading.Lock()
        #: The sidebar's background deployments (``POST models/{name}/{version}/deploy``).
        self.deploys = DeployJobs(self.log)
        self.settings["mldeploy"] = self
        self.log.info("jupyter_mldeploy: REST API at %s, workspace %s", API_PREFIX, self.workspace_path())

    def locate(self) -> WorkspaceLocation:
        """Find the workspace by the package's one rule (:func:`locate_workspace`), from ``root_dir``."""
        return locate_workspace(self.workspace or None, start=self.serverapp.root_dir)

    def initialize_handlers(self) -> None:
        """Register the REST routes (see :func:`~jupyter_mldeploy.jupyter_server.handlers.route_table` and
        :func:`~jupyter_mldeploy.jupyter_server.runs_handlers.runs_route_table`)."""
        self.handlers.extend(route_table())
        self.handlers.extend(runs_route_table())

    def workspace_path(self) -> Path:
        """Return the folder of the workspace this server shows (or would, once it is created)."""
        return self.locate().path

    def get_workspace(self) -> Workspace:
        """Open the workspace on first use and return it; blocking (call it off the event loop).

        Raises:
            NotFound: While no workspace exists: the message names the folders searched and how to create one.
            WorkspaceError: When the folder holds a workspace of another layout version or an unreadable
                database.
        """
        with self._workspace_lock:
            if self._workspace is None:
                location = self.locate()
                if not location.exists:
                    raise NotFound(location.missing_message())
                self._workspace = Workspace(location.path)
            return self._workspace
