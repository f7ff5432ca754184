"""Where the entry script of a scoring process is, read from azmlinfsrv's variables, and its ``sys.path``.

A v1 image runs from ``AML_APP_ROOT`` with ``AZUREML_ENTRY_SCRIPT`` and ``AZUREML_SOURCE_DIRECTORY``
relative to it (``source_directory`` copied to ``<app root>/<its name>``); azmlinfsrv joins them with the
app root and appends both the app root and the source folder to ``sys.path``. Absolute values (what
``mldeploy serve --entry_script /path/score.py`` passes on) are kept as they are. Workers and the
``--check`` trial run both start from :meth:`ScriptLocation.from_environ`, so a script finds its files and
modules the same way in both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

#: azmlinfsrv's default entry script name when ``AZUREML_ENTRY_SCRIPT`` is unset.
DEFAULT_ENTRY_SCRIPT = "main.py"


@dataclass(frozen=True)
class ScriptLocation:
    """The app root, the entry script and the source folder of one scoring process.

    Attributes:
        app_root: ``AML_APP_ROOT`` (absolute): the working folder.
        entry_script: The entry script (absolute).
        source_dir: The source folder (absolute), or None when ``AZUREML_SOURCE_DIRECTORY`` is unset.
    """

    app_root: str
    entry_script: str
    source_dir: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], cwd: str | None = None) -> ScriptLocation:
        """Read the location from ``AML_APP_ROOT``, ``AZUREML_ENTRY_SCRIPT`` and ``AZUREML_SOURCE_DIRECTORY``.

        Args:
            environ: The process environment.
            cwd: The app root when ``AML_APP_ROOT`` is unset (default: the working folder).

        Returns:
            ScriptLocation: Relative paths joined with the app root.
        """
        app_root = os.path.abspath(environ.get("AML_APP_ROOT") or cwd or os.getcwd())
        entry = environ.get("AZUREML_ENTRY_SCRIPT") or DEFAULT_ENTRY_SCRIPT
        source = environ.get("AZUREML_SOURCE_DIRECTORY")
        return cls(
            app_root=app_root,
            entry_script=os.path.join(app_root, entry),
            source_dir=os.path.join(app_root, source) if source else None,
        )

    def sys_path_entries(self) -> list[str]:
        """Folders a scoring process appends to ``sys.path``: the app root, the source folder (as
        azmlinfsrv) and the script's own folder (ours: a ``score.py`` in a subfolder imports its neighbours)."""
        folders = [self.app_root, self.source_dir, os.path.dirname(self.entry_script)]
        return [folder for index, folder in enumerate(folders) if folder and folder not in folders[:index]]

    def prepare_sys_path(self) -> None:
        """Append :meth:`sys_path_entries` to ``sys.path`` (those not on it yet)."""
        for folder in self.sys_path_entries():
            if folder not in sys.path:
                sys.path.append(folder)
