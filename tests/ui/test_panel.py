"""The ``%mldeploy`` panel rendered by a real kernel in a real JupyterLab notebook, seen in Chromium.

A notebook (``%load_ext jupyter_mldeploy``, ``%mldeploy_workspace``, ``%mldeploy``) over a workspace holding
one registered model is opened and run in the browser at the widths people use (1000 and 1400 px); the
Registry tab must hold its deploy and register rows: "Deploy this version" and "Register" inside the tab, no
row scrolling sideways.
Screenshots: ``tests/artifacts/panel-<width>.png``; ``docs/images/panel.png`` is a copy of the 1400 px one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fixtures.deploy_support import train_ridge
from fixtures.run_support import record_runs
from lab_support import ARTIFACTS, UI_TIMEOUT_MS, Lab

from jupyter_mldeploy import Model
from jupyter_mldeploy.workspace import Workspace

# Sub-pixel rounding of the layout: a box may end a fraction of a pixel past its container.
EDGE_PX = 1.0

# Measured in the page: a button's and the Registry tab's boxes, the button's row's content width against its
# own (wider means a cut-off button and a row that scrolls sideways), and which of the tab, the cell's output
# area and the notebook's scroller would scroll sideways.
MEASURE = """target => {
  const tab = target.closest('.widget-tab-contents');
  const box = node => {
    const r = node.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  };
  const row = target.parentElement;
  const scrolling = [tab, target.closest('.jp-OutputArea-output'), target.closest('.jp-WindowedPanel-outer')]
    .filter(node => node.scrollWidth > node.clientWidth + 1)
    .map(node => `${node.className}: ${node.scrollWidth} px in ${node.clientWidth} px`);
  return {button: box(target), tab: box(tab), rowScroll: row.scrollWidth, rowWidth: row.clientWidth, scrolling};
}"""


@pytest.fixture
def notebook_lab(tmp_path: Path, start_lab: Callable[[Path], Lab]) -> Lab:
    """JupyterLab serving ``panel.ipynb``, which shows the panel over a workspace holding ``diabetes:1`` and
    the runs of ``fixtures.run_support.record_runs``."""
    ws = Workspace.create(tmp_path / "ws")
    path, _, samples = train_ridge(tmp_path / "train")
    Model.register(
        ws,
        model_path=str(path),
        model_name="diabetes",
        tags={"algo": "ridge"},
        sample_input={"data": samples[:1]},
    )
    record_runs(ws, tmp_path / "run-models")
    lab = start_lab(ws.path)
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                f"%load_ext jupyter_mldeploy\n%mldeploy_workspace {ws.path}\n%mldeploy"
            ),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab.root / "panel.ipynb")
    return lab


@pytest.mark.parametrize("width", [1000, 1400])
def test_registry_tab_deploy_and_register_rows_fit(notebook_lab: Lab, browser: Any, width: int) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(notebook_lab.open("lab/tree/panel.ipynb"))
    cell = page.locator(".jp-Notebook .jp-CodeCell").first
    # The kernel must be connected before the cell runs (the status bar names it once it is).
    expect(page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle")).to_have_count(1)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    deploy = cell.get_by_role("button", name="Deploy this version")
    expect(deploy).to_be_visible()
    expect(cell.get_by_role("combobox", name="Model")).to_have_value("diabetes")

    page.screenshot(path=str(ARTIFACTS / f"panel-{width}.png"))
    for name in ("Deploy this version", "Register"):
        # The name ends with the label (an icon may come first); "Register" alone, not another button's word.
        measured = cell.get_by_role("button", name=re.compile(rf"(^|\s){name}$")).evaluate(MEASURE)
        button, tab = measured["button"], measured["tab"]
        assert tab["left"] - EDGE_PX <= button["left"] and button["right"] <= tab["right"] + EDGE_PX, (
            f"{name!r} spans x {button['left']:.0f}-{button['right']:.0f} px, outside the Registry "
            f"tab's {tab['left']:.0f}-{tab['right']:.0f} px at a {width} px wide window"
        )
        # The row itself must not scroll sideways (what a click on a cut-off button did).
        assert measured["rowScroll"] <= measured["rowWidth"] + EDGE_PX, (
            f"the row of {name!r} is {measured['rowScroll']} px wide in a {measured['rowWidth']} px box at {width} px"
        )
        assert measured["scrolling"] == [], f"horizontal scroll at {width} px: {measured['scrolling']}"

    # the Runs tab: the runs with their badges; "Details" shows one whole, inside the tab
    cell.get_by_role("tab", name="Runs").click()
    details = cell.get_by_role("button", name=re.compile(r"(^|\s)Details$"))
    expect(details).to_have_count(3)
    expect(cell.locator(".mldeploy-badge", has_text="Completed")).to_be_visible()
    details.last.click()  # the oldest run: diabetes #1, the completed pipeline run
    expect(cell.locator(".mldeploy-run-detail")).to_contain_text("[61.2, 55.25]")
    expect(cell.locator(".mldeploy-run-detail")).to_contain_text("ridge:1")
    page.screenshot(path=str(ARTIFACTS / f"panel-runs-{width}.png"))
    measured = details.last.evaluate(MEASURE)
    assert measured["button"]["right"] <= measured["tab"]["right"] + EDGE_PX, measured
    assert measured["scrolling"] == [], f"horizontal scroll in the Runs tab at {width} px: {measured['scrolling']}"
