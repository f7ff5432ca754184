"""Papermill pipelines recorded as runs: any parameterised notebook becomes a comparable run.

``run_notebook("train.ipynb", {"alpha": 0.5}, experiment="diabetes")`` (CLI: ``mldeploy pipeline run
train.ipynb -p alpha 0.5 --experiment diabetes``):

1. starts a ``pipeline`` run of the experiment, owned by this process, with the parameters recorded;
2. executes the notebook with papermill (parameters injected after the cell tagged ``parameters``), its
   kernel started with ``$MLDEPLOY_RUN_ID``/``$MLDEPLOY_RUN_WORKSPACE`` so that ``Run.get_context()`` in the
   notebook is this run: what the notebook logs and registers lands in it;
3. writes the executed notebook into the run's files as ``outputs/<notebook name>`` while it runs (papermill
   saves it after every cell), so even a killed pipeline leaves what it got through;
4. ends the run ``Completed``, or ``Failed`` naming the failing cell. If this process is killed, the run
   reads ``Failed`` the next time anyone looks at it (its owner process is gone), never ``Running``.

Papermill is imported only here; it ships with the ``notebook`` extra (``pip install 'jupyter-mldeploy[notebook]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jupyter_mldeploy import settings
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.runs import Experiment, Run
from jupyter_mldeploy.runs.metrics import json_value
from jupyter_mldeploy.runs.store import PIPELINE
from jupyter_mldeploy.workspace import Workspace

#: The run file folder the executed notebook is written to.
OUTPUT_FOLDER = "outputs"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PipelineError(MLDeployError):
    """A pipeline run ended ``Failed``; :attr:`run` is the recorded run (its files hold the executed notebook).

    Args:
        message: What failed: the cell and its exception.
        run: The failed run.
    """

    def __init__(self, message: str, run: Run) -> None:
        super().__init__(message)
        self.run = run


def default_experiment_name(notebook: str | os.PathLike[str]) -> str:
    """The experiment a notebook's runs go to when none is named: its file name without ``.ipynb``, with
    characters a name cannot hold replaced by ``-`` (``"05 Pipeline.ipynb"`` -> ``"05-Pipeline"``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(notebook).stem).strip("-.") or "pipeline"
    return re.sub(r"\.{2,}", ".", stem)[:200]


def check_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check pipeline parameters: Python identifiers mapped to JSON values (papermill writes them as code).

    Raises:
        InvalidArgument: For a name that is not an identifier or a value that is not JSON data.
    """
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise InvalidArgument(f"parameters must be a dict such as {{'alpha': 0.5}}, got {type(parameters).__name__}.")
    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise InvalidArgument(
                f"Parameter name {name!r} is not a Python identifier: the notebook receives it as a variable "
                "(use letters, digits and '_', not starting with a digit)."
            )
        checked[name] = json_value(value, f"parameter {name!r}")
    return checked


def run_notebook(
    path: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    experiment: str | Experiment | None = None,
    workspace: Workspace | None = None,
    kernel_name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    execution_timeout: float | None = None,
    log_output: bool = False,
    raise_on_error: bool = True,
) -> Run:
    """Execute a notebook with papermill as a recorded run (see the module docstring).

    Args:
        path: The notebook (``.ipynb``).
        parameters: Values for the notebook's ``parameters`` cell, ``{name: JSON value}``.
        experiment: An :class:`~jupyter_mldeploy.runs.Experiment` or its name; default: named after the
            notebook (:func:`default_experiment_name`). Created when missing.
        workspace: Where the run is recorded (default: ``Workspace.from_config()``); ignored when
            ``experiment`` is an Experiment.
        kernel_name: The Jupyter kernel (default: the notebook's own kernelspec).
        cwd: The folder the notebook runs in (default: the notebook's folder, as Jupyter does).
        execution_timeout: Seconds one cell may run (default: no limit).
        log_output: Echo the notebook's output to this process's logging (papermill ``log_output``).
        raise_on_error: Raise :class:`PipelineError` when the run fails; when False return the failed run.

    Returns:
        The run, ``Completed`` (or ``Failed`` when ``raise_on_error`` is False). Its ``parameters`` are
        the parameters given; its files hold ``outputs/<notebook name>``, the executed notebook.

    Raises:
        NotFound: When the notebook does not exist.
        InvalidArgument: For a file that is not a notebook, bad parameters or a bad experiment name.
        MLDeployError: When papermill is not installed.
        PipelineError: When the notebook failed (a cell raised, the kernel died) and ``raise_on_error``.
        KeyboardInterrupt: When interrupted; the run is then ``Canceled``.
    """
    notebook = Path(path).expanduser().resolve()
    if not notebook.is_file():
        raise NotFound(f"Notebook {os.fspath(path)!r} not found (looked at {notebook}).")
    if notebook.suffix != ".ipynb":
        raise InvalidArgument(f"{notebook.name} is not a notebook: pass an .ipynb file.")
    params = check_parameters(parameters)
    try:
        import papermill
    except ImportError as exc:
        raise MLDeployError(
            "Running a notebook as a pipeline needs papermill: pip install 'jupyter-mldeploy[notebook]'."
        ) from exc
    if not isinstance(experiment, Experiment):
        ws = workspace if workspace is not None else Workspace.from_config()
        experiment = Experiment(ws, experiment if experiment is not None else default_experiment_name(notebook))
    run = Run.start(experiment, kind=PIPELINE, outputs=False, parameters=params, source=str(notebook))
    executed = run.upload_file(f"{OUTPUT_FOLDER}/{notebook.name}", notebook)
    output_path = os.path.join(run.workspace.runs_dir, run.id, executed)
    try:
        with _run_environment(run):
            papermill.execute_notebook(
                str(notebook),
                output_path,
                parameters=params,
                kernel_name=kernel_name,
                cwd=str(Path(cwd).resolve()) if cwd is not None else str(notebook.parent),
                progress_bar=False,
                log_output=log_output,
                execution_timeout=execution_timeout,
            )
    except KeyboardInterrupt:
        run.cancel()
        raise
    except Exception as exc:  # a cell raised, the kernel died, the kernel could not start ...
        message = _failure_message(Path(output_path), exc)
        run.fail(message)
        if raise_on_error:
            raise PipelineError(f"Pipeline run {run.id} failed: {message}", run) from exc
        return run
    run.complete()
    return run


@contextlib.contextmanager
def _run_environment(run: Run) -> Iterator[None]:
    """Set the variables that make ``Run.get_context()`` in the kernel return ``run``, then restore them.

    papermill starts the kernel with this process's environment and offers no per-kernel one.
    """
    names = {
        settings.MLDEPLOY_RUN_ID.name: run.id,
        settings.MLDEPLOY_RUN_WORKSPACE.name: str(run.workspace.path),
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _failure_message(executed: Path, exc: BaseException) -> str:
    """Name the failing cell (from papermill's per-cell status in the executed notebook) and the error."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{ename}: {evalue}" if evalue else ename
    cell = _failed_cell(executed)
    if cell is None:
        return reason
    position, execution_count, source = cell
    first_line = next((line for line in source.splitlines() if line.strip()), "")
    counted = f"In [{execution_count}], " if execution_count else ""
    return f"cell {position} ({counted}{first_line[:80]!r}) raised {reason}"


#: Cells papermill adds to the executed notebook (error banners, injected parameters): not the user's cells.
_PAPERMILL_TAGS = {"papermill-error-cell-tag", "injected-parameters"}


def _failed_cell(executed: Path) -> tuple[int, int | None, str] | None:
    """``(position among the notebook's own cells, 1-based; execution count; source)`` of the failing cell.

    That is the cell papermill marked ``failed`` (it raised), else the last cell papermill started: when the
    kernel dies papermill still marks the cell it was running as completed, and nothing after it starts.
    """
    try:
        cells = json.loads(executed.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    own = [c for c in cells if not _PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))]
    marks = [c.get("metadata", {}).get("papermill", {}) for c in own]
    failed = [i for i, mark in enumerate(marks) if mark.get("status") == "failed"]
    started = [i for i, mark in enumerate(marks) if mark.get("start_time")]
    chosen = failed[0] if failed else started[-1] if started else None
    if chosen is None:
        return None
    cell = own[chosen]
    source = cell.get("source", "")
    return chosen + 1, cell.get("execution_count"), "".join(source) if isinstance(source, list) else source
    own = [c for c in cells if not _PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))]
    for wanted in ("failed", "running"):
        for position, cell in enumerate(own, start=1):
            if cell.get("metadata", {}).get("papermill", {}).get("status") == wanted:
                source = cell.get("source", "")
                return position, cell.get("execution_count"), "".join(source) if isinstance(source, list) else source
    return None
    for wanted in ("failed", "running"):
        for index, cell in enumerate(cells):
            status = cell.get("metadata", {}).get("papermill", {}).get("status")
            if status == wanted:
                source = cell.get("source", "")
                return index, "".join(source) if isinstance(source, list) else source
    return None
