"""The Jupyter Server extension behind the JupyterLab sidebar: REST handlers under ``<base_url>/mldeploy/api/``.

This is a Jupyter layer (see ARCHITECTURE.md): it imports tornado and jupyter_server, the core never imports it.
:class:`MLDeployExtension` is the ``ExtensionApp``; :mod:`.handlers` holds one ``APIHandler`` per resource.
The extension is enabled on install by ``jupyter-config/server-config/jupyter_mldeploy.json`` (shipped into
``etc/jupyter/jupyter_server_config.d``).
"""

from __future__ import annotations

from jupyter_mldeploy.jupyter_server.app import MLDeployExtension

__all__ = ["MLDeployExtension"]
