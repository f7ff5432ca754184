"""Small pieces the panels share: message lines, error capture, the workspace argument."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_mldeploy.errors import MLDeployError
from jupyter_mldeploy.workspace import Workspace

ERROR_COLOR = "#cf222e"
OK_COLOR = "#1a7f37"


def resolve_workspace(workspace: Workspace | str | Path | None) -> Workspace:
    """A ``Workspace``, or a folder path (None: the one ``Workspace.from_config()`` finds) that must exist.

    The panel reads first: it never creates a workspace.

    Raises:
        NotFound: When no workspace exists there, naming the folders searched and how to create one.
    """
    if isinstance(workspace, Workspace):
        return workspace
    return Workspace.from_config(workspace, create=False)


class MessageLine(widgets.HTML):
    """One line of feedback under a panel's buttons: ``ok`` in green, ``error`` in red.

    The plain text of the last message is kept in ``text`` (tests and scripts read it).
    """

    def __init__(self) -> None:
        super().__init__(value="")
        self.text = ""
        self.is_error = False

    def ok(self, message: str) -> None:
        """Show a success message."""
        self._show(message, OK_COLOR, error=False)

    def info(self, message: str) -> None:
        """Show a neutral message."""
        self._show(message, "inherit", error=False)

    def error(self, message: str) -> None:
        """Show an error message."""
        self._show(message, ERROR_COLOR, error=True)

    def clear(self) -> None:
        """Remove the message."""
        self._show("", "inherit", error=False)

    def _show(self, message: str, color: str, error: bool) -> None:
        self.text = message
        self.is_error = error
        self.value = f"<span style='color:{color}'>{html.escape(message)}</span>" if message else ""


@contextmanager
def reported(message: MessageLine) -> Iterator[None]:
    """Show an ``MLDeployError`` raised in the block as a red message instead of a traceback in the log."""
    try:
        yield
    except MLDeployError as exc:
        message.error(exc.summary)


def button(description: str, handler: Callable[[Any], None], style: str = "", icon: str = "",
           tooltip: str = "") -> widgets.Button:
    """A button wired to ``handler``."""
    made = widgets.Button(description=description, button_style=style, icon=icon, tooltip=tooltip or description,
                          layout=widgets.Layout(width="auto", flex="0 0 auto"))
    made.on_click(handler)
    return made


def pre(text: str) -> str:
    """HTML for a block of monospace text."""
    return f"<pre style='margin:0;max-height:24em;overflow:auto;font-size:0.85em'>{html.escape(text)}</pre>"
