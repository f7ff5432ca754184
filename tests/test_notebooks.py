"""Every example notebook runs top to bottom under papermill, and is stored without outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.workspace import Workspace

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no example notebook"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(notebook: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", str(notebook)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{notebook.name} holds outputs: run `nbstripout {notebook}`"
    cells = nbformat.read(notebook, as_version=4).cells
    parameters = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert parameters, "no cell tagged `parameters`"
    # Every notebook takes its workspace as a parameter, so a run never touches the user's workspace.
    assert "workspace_dir" in parameters[0].source


def test_magics_notebooks_load_the_extension() -> None:
    """The rewritten quickstart and the two newer notebooks use the magics; 01b keeps the Python API."""
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "01b_quickstart_api.ipynb", "02_existing_model.ipynb",
            "03_iterate_and_debug.ipynb", "04_batch_scoring.ipynb"} <= names
    for notebook in NOTEBOOKS:
        source = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
        uses_magics = "%load_ext jupyter_mldeploy" in source
        # 05_pipeline shows the v1 Experiment/Run API that `mldeploy pipeline run` records; no magics either.
        assert uses_magics == (notebook.name not in {"01b_quickstart_api.ipynb", "05_pipeline.ipynb"}), notebook.name


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_papermill(notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch job's driver would stay warm for 300 s after the notebook (the kernel inherits this variable);
    # warm drivers have their own tests in tests/batch/test_batch_warm.py.
    monkeypatch.setenv("MLDEPLOY_BATCH_KEEP_WARM", "0")
    workspace_dir = tmp_path / "ws"
    output = tmp_path / notebook.name
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters={"workspace_dir": str(workspace_dir)},
            cwd=str(tmp_path),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=300,
        )
    except papermill.PapermillExecutionError:
        # A notebook that stopped half-way never reached its clean-up cell: stop what it deployed.
        if workspace_dir.exists():
            for service in Webservice.list(Workspace(workspace_dir)):
                service.delete()
        raise
    executed = nbformat.read(output, as_version=4)
    def shown_errors(cell: nbformat.NotebookNode) -> list[str]:
        """Error outputs, and IPython's UsageError (printed to stderr as one line, no error output)."""
        return [
            o.get("evalue", "") if o.get("output_type") == "error" else o.get("text", "")
            for o in cell.get("outputs", [])
            if o.get("output_type") == "error"
            or (o.get("output_type") == "stream" and o.get("name") == "stderr" and "UsageError" in o.get("text", ""))
        ]

    expected = [c for c in executed.cells if "raises-exception" in c.metadata.get("tags", [])]
    errors = [e for c in executed.cells if c not in expected for e in shown_errors(c)]
    assert not errors
    # A cell tagged `raises-exception` shows an expected error: it must really raise (and papermill go on).
    for cell in expected:
        assert shown_errors(cell), cell.source
    # Each notebook cleans up what it deployed.
    assert [s.name for s in Webservice.list(Workspace(workspace_dir))] == []
