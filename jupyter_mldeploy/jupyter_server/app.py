"""The ``ExtensionApp`` that registers the sidebar's REST handlers and owns the configured workspace."""

from __future__ import annotations

import threading
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Unicode

from jupyter_mldeploy import settings
from jupyter_mldeploy.jupyter_server.handlers import API_PREFIX, route_table
from jupyter_mldeploy.workspace import DEFAULT_DIRNAME, Workspace


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
            "Workspace folder the sidebar shows. Empty (default): $MLDEPLOY_WORKSPACE when set, else the "
            "nearest '.mldeploy' folder in the server's root_dir or its parents, else <root_dir>/.mldeploy "
            "(created on first use), as Workspace.from_config() finds it from the notebook's folder."
        ),
    )
    score_timeout = Float(
        300.0,
        config=True,
        help="Seconds the 'score' route waits for a service to answer a test request before giving up.",
    )

    def initialize_settings(self) -> None:
        """Share this app with the handlers through the web app's settings (key ``mldeploy``)."""
        self._workspace: Workspace | None = None
        self._workspace_lock = threading.Lock()
        self.settings["mldeploy"] = self
        self.log.info("jupyter_mldeploy: REST API at %s, workspace %s", API_PREFIX, self.workspace_path())

    def initialize_handlers(self) -> None:
        """Register the REST routes (see :func:`~jupyter_mldeploy.jupyter_server.handlers.route_table`)."""
        self.handlers.extend(route_table())

    def workspace_path(self) -> Path:
        """Return the folder of the workspace this server shows (see the ``workspace`` trait)."""
        if self.workspace:
            candidate = Path(self.workspace).expanduser()
            if not candidate.is_absolute():
                candidate = Path(self.serverapp.root_dir) / candidate
            nested = candidate / DEFAULT_DIRNAME
            # Same rule as Workspace.from_config(path): a project folder holding .mldeploy/ means that.
            return nested if nested.is_dir() else candidate
        from_env = settings.MLDEPLOY_WORKSPACE.get()
        if from_env is not None:
            return Path(from_env).expanduser()
        root = Path(self.serverapp.root_dir).expanduser().resolve()
        for folder in (root, *root.parents):
            if (folder / DEFAULT_DIRNAME).is_dir():
                return folder / DEFAULT_DIRNAME
        return root / DEFAULT_DIRNAME

    def get_workspace(self) -> Workspace:
        """Open the workspace on first use and return it; blocking (call it off the event loop).

        Raises:
            WorkspaceError: When the folder holds a workspace of another layout version or an unreadable
                database.
        """
        with self._workspace_lock:
            if self._workspace is None:
                self._workspace = Workspace(self.workspace_path())
            return self._workspace
