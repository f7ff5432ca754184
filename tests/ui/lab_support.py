"""What the browser tests share: a real JupyterLab to start and stop, where screenshots go.

``conftest.start_lab(workspace)`` runs ``jupyter lab`` (a subprocess on 127.0.0.1, a free port, a known token,
its own config/runtime/settings folders) with the server extension pointed at ``workspace``; ``browser`` is
a headless Chromium driven by Playwright. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
EXTENSION_NAME = "jupyter-mldeploy"
# One minute is ample on a loaded 2-core machine; JupyterLab itself starts in 3-10 s.
START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 30_000


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab.

    Attributes:
        url: Its base URL, ending in ``/``.
        token: The token that opens it (``?token=``).
        root: The folder it serves (notebooks go here).
        process: The ``jupyter lab`` process.
        log: Its combined stdout and stderr.
    """

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def open(self, path: str = "lab") -> str:
        """The URL of ``path`` below the base URL, with the token."""
        return f"{self.url}{path}?token={self.token}"


def stop_process(proc: psutil.Process | None) -> None:
    """Terminate ``proc`` and its children if still running (SIGTERM, then SIGKILL after 10 s)."""
    if proc is None or not proc.is_running():
        return
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=10)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


def stopped(proc: psutil.Process) -> bool:
    """True when ``proc`` is gone, or a zombie its parent has not reaped yet."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stale_extension() -> str | None:
    """Why the JupyterLab extension ``jupyter lab`` would serve is older than its source, or None.

    ``pip install -e .`` builds ``labextension/`` only when no build exists yet, so after an edit of the
    TypeScript or CSS the browser tests would otherwise check the previous build.
    """
    from jupyter_core.paths import jupyter_path

    sources = [*REPO.glob("labextension/src/*.ts"), *REPO.glob("labextension/style/*.css")]
    for base in jupyter_path("labextensions"):
        entries = list((Path(base) / EXTENSION_NAME / "static").glob("remoteEntry.*.js"))
        if entries:
            built = max(entry.stat().st_mtime for entry in entries)
            newer = sorted(str(src.relative_to(REPO)) for src in sources if src.stat().st_mtime > built)
            if not newer:
                return None
            return (
                f"the JupyterLab extension in {Path(base) / EXTENSION_NAME} is older than {', '.join(newer)}: "
                "rebuild it (cd labextension && jlpm build) and install the build (from the repository root: pip install -e ., or "
                "once: jupyter labextension develop --overwrite .)"
            )
    return f"no {EXTENSION_NAME} JupyterLab extension is installed: pip install -e ."


def open_sidebar(browser: object, url: str, width: int = 1400) -> tuple[object, object]:
    """Open JupyterLab at ``url`` in a new page and show the ML Deploy sidebar.

    Args:
        browser: The Playwright browser (the ``browser`` fixture).
        url: ``Lab.open()``: the lab's URL with its token.
        width: The viewport width in pixels (the height is 900).

    Returns:
        ``(page, sidebar)``: the page and the sidebar's locator.
    """
    page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(url)
    page.locator("#jp-main-dock-panel").wait_for()
    page.locator('.jp-SideBar.jp-mod-left [data-id="jp-mldeploy-sidebar"]').click()
    return page, page.locator("#jp-mldeploy-sidebar")
