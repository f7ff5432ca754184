"""``Run``: one recorded training run (Azure ML SDK v1 ``azureml.core.Run``) in a local workspace.

A v1 training notebook ports by changing its imports::

    from jupyter_mldeploy import Experiment, Run, Workspace

    ws = Workspace.from_config()
    run = Experiment(ws, "sklearn-mnist").start_logging()
    run.log("accuracy", 0.93)
    joblib.dump(clf, "outputs/sklearn_mnist_model.pkl")
    model = run.register_model(model_name="sklearn_mnist", model_path="outputs/sklearn_mnist_model.pkl")
    run.complete()

Inside a notebook run by ``mldeploy pipeline run``, ``Run.get_context()`` is that pipeline's run; anywhere
else it is an :class:`OfflineRun` whose ``log`` prints instead of failing, as v1's offline run does.
"""

from __future__ import annotations

import html
import io
import os
import traceback
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy import settings
from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.registry import Model, ResourceConfiguration
from jupyter_mldeploy.runs import metrics
from jupyter_mldeploy.runs.store import (
    CANCELED,
    COMPLETED,
    FAILED,
    INTERACTIVE,
    MetricRow,
    RunRecord,
    RunStore,
    artifact_name,
    validate_run_id,
)
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.runs.experiment import Experiment

#: Run file folder that a run's tracked outputs folder is uploaded into (v1: ``./outputs`` -> ``outputs/``).
OUTPUTS = "outputs"


class Run:
    """A run of an experiment (v1 ``azureml.core.Run``).

    ``Run(experiment, run_id)`` loads an existing run; ``Experiment.start_logging()`` starts one;
    ``Run.get(workspace, run_id)`` finds one by id alone; ``Run.get_context()`` is the current one.

    Args:
        experiment: The experiment holding the run.
        run_id: The run's id.

    Attributes:
        experiment (Experiment): The experiment.
        id (str): ``<experiment>_<unix seconds>_<8 hex>``.
        offline (bool): False (True for :class:`OfflineRun`).

    Raises:
        InvalidArgument: For a malformed run id.
        NotFound: When the run does not exist in that experiment.
    """

    offline = False

    def __init__(self, experiment: Experiment, run_id: str) -> None:
        record = RunStore(experiment.workspace).get(validate_run_id(run_id))
        if record.experiment != experiment.name:
            raise NotFound(
                f"Run {run_id!r} belongs to experiment {record.experiment!r}, not {experiment.name!r}; "
                f"use Run(Experiment(ws, {record.experiment!r}), {run_id!r}) or Run.get(ws, {run_id!r})."
            )
        self._init(experiment, record, outputs=None)

    def _init(self, experiment: Experiment, record: RunRecord, outputs: Path | None) -> None:
        self.experiment = experiment
        self.id = record.id
        self._record = record
        self._store = RunStore(experiment.workspace)
        self._outputs = outputs

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        experiment: Experiment,
        kind: str = INTERACTIVE,
        outputs: str | os.PathLike[str] | bool | None = None,
        snapshot_directory: str | os.PathLike[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> Run:
        """Start a new ``Running`` run owned by this process (what ``start_logging`` and pipelines call).

        Args:
            experiment: Its experiment (created in the workspace when missing).
            kind: ``"interactive"`` or ``"pipeline"``.
            outputs: The folder tracked as the run's outputs: its files are uploaded under ``outputs/``
                when the run ends and before ``register_model``. None: ``./outputs`` (v1's default);
                False: none.
            snapshot_directory: A folder copied into the run's files under ``snapshot/`` now (hidden
                entries, the workspace and ``__pycache__`` left out).
            parameters: JSON-safe parameters recorded with the run.
            source: The notebook a pipeline runs.

        Returns:
            The run.
        """
        params = metrics.json_value(dict(parameters or {}), "run parameters")
        tracked: Path | None = None
        if outputs is not False:
            tracked = Path(OUTPUTS if outputs is None or outputs is True else outputs).expanduser().resolve()
        if snapshot_directory is not None and not Path(snapshot_directory).is_dir():
            raise NotFound(f"snapshot_directory {os.fspath(snapshot_directory)!r} is not a folder.")
        record = RunStore(experiment.workspace).create_run(experiment.name, kind, params, source)
        run = cls.__new__(cls)
        run._init(experiment, record, tracked)
        if snapshot_directory is not None:
            run._snapshot(Path(snapshot_directory))
        return run

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> Run:
        """Return a run by its id alone (v1 ``Run.get(workspace, run_id)``).

        Raises:
            InvalidArgument: For a malformed run id.
            NotFound: When the workspace holds no such run.
        """
        from jupyter_mldeploy.runs.experiment import Experiment

        record = RunStore(workspace).get(validate_run_id(run_id))
        run = Run.__new__(Run)
        run._init(Experiment(workspace, record.experiment), record, outputs=None)
        return run

    @staticmethod
    def get_context(allow_offline: bool = True) -> Run:
        """Return the run this code runs in (v1 ``Run.get_context``).

        Inside a notebook executed by ``mldeploy pipeline run`` (or ``run_notebook``), the pipeline's run
        (named by ``$MLDEPLOY_RUN_ID`` and ``$MLDEPLOY_RUN_WORKSPACE``); its tracked outputs folder is
        ``./outputs`` of the notebook's working folder. Anywhere else an :class:`OfflineRun`.

        Args:
            allow_offline: When False, being outside a run is an error instead of an offline run.

        Raises:
            InvalidArgument: When not inside a run and ``allow_offline`` is False.
            NotFound: When the variables name a run that does not exist.
        """
        run_id = settings.MLDEPLOY_RUN_ID.get()
        folder = settings.MLDEPLOY_RUN_WORKSPACE.get()
        if run_id and folder:
            run = Run.get(Workspace.get(folder), run_id)
            run._outputs = Path(OUTPUTS).resolve()
            return run
        if not allow_offline:
            raise InvalidArgument(
                "Not inside a run: start one with Experiment(ws, name).start_logging(), run the notebook with "
                "'mldeploy pipeline run', or pass allow_offline=True."
            )
        return OfflineRun()

    # -- state ----------------------------------------------------------------------------------------

    def _refresh(self) -> RunRecord:
        self._record = self._store.get(self.id)
        return self._record

    @property
    def workspace(self) -> Workspace:
        """The workspace holding the run."""
        return self.experiment.workspace

    @property
    def number(self) -> int:
        """1, 2, 3 ... within the experiment (v1 ``run.number``)."""
        return self._record.number

    @property
    def status(self) -> str:
        """``Running``, ``Completed``, ``Failed`` or ``Canceled``, read now (a run whose process died reads
        ``Failed``)."""
        return self._refresh().status

    def get_status(self) -> str:
        """The status (v1 ``get_status``)."""
        return self.status

    @property
    def kind(self) -> str:
        """``interactive`` or ``pipeline``."""
        return self._record.kind

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters the run was started with (a pipeline's papermill parameters)."""
        return dict(self._record.parameters)

    @property
    def tags(self) -> dict[str, str]:
        """The run's tags, read now."""
        return dict(self._refresh().tags)

    def get_tags(self) -> dict[str, str]:
        """The run's tags (v1 ``get_tags``)."""
        return self.tags

    def get_details(self) -> dict[str, Any]:
        """Return the run's record as JSON-safe data (v1 ``get_details``).

        Returns:
            ``runId, experimentName, number, kind, status, startTimeUtc, endTimeUtc`` (ISO 8601 or None),
            ``durationSeconds, parameters, tags, error, source`` (a pipeline's notebook), ``host, pid``.
        """
        record = self._refresh()
        return {
            "runId": record.id,
            "experimentName": record.experiment,
            "number": record.number,
            "kind": record.kind,
            "status": record.status,
            "startTimeUtc": record.start_time.isoformat(),
            "endTimeUtc": record.end_time.isoformat() if record.end_time else None,
            "durationSeconds": record.duration_s,
            "parameters": dict(record.parameters),
            "tags": dict(record.tags),
            "error": record.error,
            "source": record.source,
            "host": record.host,
            "pid": record.pid,
        }

    # -- logging --------------------------------------------------------------------------------------

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a scalar; logging a name again makes it a series (v1 ``log``).

        Raises:
            InvalidArgument: For an empty name or a value that is not a number, string or boolean.
        """
        value = metrics.json_value(value, f"metric {name!r}")
        if isinstance(value, (list, dict)):
            raise InvalidArgument(f"run.log({name!r}, ...) takes one value; use log_list for a list, log_table for a dict.")
        self._store.append_metric(self.id, metrics.metric_name(name), metrics.SCALAR, value)

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        """Log a list of values under one name (v1 ``log_list``)."""
        value = metrics.json_value(value, f"list metric {name!r}")
        if not isinstance(value, list):
            raise InvalidArgument(f"log_list({name!r}, ...) takes a list, got {type(value).__name__}.")
        self._store.append_metric(self.id, metrics.metric_name(name), metrics.LIST, value)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Add one row to a table metric: ``run.log_row("roc", fpr=0.1, tpr=0.8)`` (v1 ``log_row``)."""
        if not kwargs:
            raise InvalidArgument(f"log_row({name!r}) needs columns as keyword arguments, e.g. log_row({name!r}, x=1, y=2).")
        self._store.append_metric(self.id, metrics.metric_name(name), metrics.ROW, metrics.json_value(kwargs, f"row {name!r}"))

    def log_table(self, name: str, value: Mapping[str, list[Any]], description: str = "") -> None:
        """Log a table as ``{"column": [values...]}`` (v1 ``log_table``)."""
        table = metrics.json_value(value, f"table metric {name!r}")
        if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
            raise InvalidArgument(f"log_table({name!r}, ...) takes a dict of lists, e.g. {{'x': [1, 2], 'y': [3, 4]}}.")
        self._store.append_metric(self.id, metrics.metric_name(name), metrics.TABLE, table)

    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Log an image from a file or a matplotlib figure (or ``pyplot``) (v1 ``log_image``).

        The image is stored as the run file ``images/<name><suffix>`` (``.png`` for a plot) and the metric's
        value is that file name.

        Raises:
            InvalidArgument: Unless exactly one of ``path`` and ``plot`` is given.
            NotFound: When ``path`` is not a file.
        """
        metrics.metric_name(name)
        if (path is None) == (plot is None):
            raise InvalidArgument(f"log_image({name!r}, ...) takes either path= (an image file) or plot= (a matplotlib figure).")
        if plot is not None:
            if not callable(getattr(plot, "savefig", None)):
                raise InvalidArgument(f"log_image plot= must be a matplotlib figure or pyplot, got {type(plot).__name__}.")
            buffer = io.BytesIO()
            plot.savefig(buffer, format="png")
            buffer.seek(0)
            stored = self._store.put_file(self.id, f"images/{artifact_name(name)}.png", buffer)
        else:
            assert path is not None
            stored = self._store.put_file(self.id, f"images/{artifact_name(name)}{Path(path).suffix}", path)
        self._store.append_metric(self.id, name, metrics.IMAGE, stored)

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """Return the logged metrics folded as v1 does (see :mod:`jupyter_mldeploy.runs.metrics`).

        Args:
            name: Only this metric.
        """
        return metrics.fold(self._store.metrics([self.id], name)[self.id])

    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag (v1 ``tag``); None stores an empty string."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add or change tags (v1 ``set_tags``); values are stored as strings.

        Raises:
            InvalidArgument: For a key that is not a non-empty string.
        """
        if not isinstance(tags, Mapping):
            raise InvalidArgument(f"set_tags takes a dict such as {{'stage': 'dev'}}, got {type(tags).__name__}.")
        clean: dict[str, str] = {}
        for key, value in tags.items():
            if not isinstance(key, str) or not key:
                raise InvalidArgument(f"Run tag keys must be non-empty strings, got {key!r}.")
            clean[key] = "" if value is None else str(value)
        self._store.update_tags(self.id, clean)

    # -- files ----------------------------------------------------------------------------------------

    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | Any) -> str:
        """Store a file (a path, or a binary or text stream) as the run file ``name`` (v1 ``upload_file``).

        Returns:
            The stored name.

        Raises:
            InvalidArgument: For an absolute or escaping name.
            NotFound: When the path is not a file.
        """
        return self._store.put_file(self.id, name, path_or_stream)

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> list[str]:
        """Store every file under folder ``path`` as ``name/<relative path>`` (v1 ``upload_folder``).

        Returns:
            The stored names.

        Raises:
            NotFound: When ``path`` is not a folder.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise NotFound(f"Cannot upload folder {os.fspath(path)!r}: it is not a folder.")
        prefix = artifact_name(name)
        return [
            self._store.put_file(self.id, f"{prefix}/{file.relative_to(folder).as_posix()}", file)
            for file in sorted(p for p in folder.rglob("*") if p.is_file())
        ]

    def get_file_names(self) -> list[str]:
        """The names of the run's files, sorted (v1 ``get_file_names``)."""
        return self._store.file_names(self.id)

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None) -> str:
        """Copy one run file out (v1 ``download_file``).

        Args:
            name: The run file (``"outputs/model.pkl"``).
            output_file_path: A file path, or an existing folder to copy into; default: the file's base
                name in the current folder.

        Returns:
            The path written.

        Raises:
            NotFound: When the run has no such file; the message lists the files it has.
        """
        source = self._existing_file(name)
        target = Path(output_file_path) if output_file_path is not None else Path(source.name)
        if target.is_dir():
            target = target / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as src:
            self._copy_stream(src, target)
        return str(target)

    def download_files(self, prefix: str | None = None, output_directory: str | os.PathLike[str] = ".") -> list[str]:
        """Copy the run files (under ``prefix``) into a folder, keeping their paths (v1 ``download_files``).

        Returns:
            The paths written.
        """
        folder = Path(output_directory)
        return [self.download_file(name, folder / name) for name in self._store.file_names(self.id, prefix)]

    @staticmethod
    def _copy_stream(source: Any, target: Path) -> None:
        with open(target, "wb") as out:
            while block := source.read(1024 * 1024):
                out.write(block)

    def _existing_file(self, name: str) -> Path:
        path = self._store.file_path(self.id, name)
        if not path.is_file():
            names = self._store.file_names(self.id)
            listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
            raise NotFound(f"Run {self.id!r} has no file {artifact_name(name)!r} (its files: {listed}).")
        return path

    def upload_outputs(self) -> list[str]:
        """Upload the tracked outputs folder (``./outputs`` by default) under ``outputs/`` now.

        Called when the run ends and before ``register_model``; a missing folder uploads nothing.

        Returns:
            The stored names.
        """
        if self._outputs is None or not self._outputs.is_dir():
            return []
        return self.upload_folder(OUTPUTS, self._outputs)

    def _snapshot(self, folder: Path) -> None:
        skip = {self.workspace.path}
        for current, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__"
                             and (Path(current) / d).resolve() not in skip)
            for file_name in sorted(n for n in names if not n.startswith(".")):
                file = Path(current) / file_name
                self._store.put_file(self.id, f"snapshot/{file.relative_to(folder).as_posix()}", file)

    # -- ending ---------------------------------------------------------------------------------------

    def complete(self) -> None:
        """Mark the run ``Completed`` after uploading its outputs folder (v1 ``complete``).

        A run that already ended keeps its status.
        """
        self.upload_outputs()
        self._record = self._store.end(self.id, COMPLETED)

    def fail(self, error_details: Any = None, error_code: str | None = None) -> None:
        """Mark the run ``Failed`` (v1 ``fail``), recording ``error_details`` (text or an exception).

        A failure replaces ``Completed``; a ``Canceled`` run stays canceled.
        """
        if isinstance(error_details, BaseException):
            error_details = "".join(traceback.format_exception(error_details)).rstrip()
        message = None if error_details is None else str(error_details)
        if error_code:
            message = f"[{error_code}] {message or ''}".rstrip()
        self.upload_outputs()
        self._record = self._store.end(self.id, FAILED, message)

    def cancel(self) -> None:
        """Mark a running run ``Canceled`` (v1 ``cancel``)."""
        self._record = self._store.end(self.id, CANCELED)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # As v1: leaving the block completes the run, an exception fails it with its traceback (and goes on).
        if exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self.cancel()
        else:
            self.fail("".join(traceback.format_exception(exc_type, exc, tb)).rstrip())

    # -- models ---------------------------------------------------------------------------------------

    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        sample_input: Any = None,
        sample_output: Any = None,
        resource_configuration: ResourceConfiguration | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        **kwargs: Any,
    ) -> Model:
        """Register a model from the run's files, linked to this run (v1 ``Run.register_model``).

        The tracked outputs folder is uploaded first, so ``model_path="outputs/model.pkl"`` works before
        the run ends. The new version's ``run_id`` and ``experiment_name`` name this run, and
        ``Model.list(ws, run_id=run.id)`` finds it back.

        Args:
            model_name: The model name.
            model_path: A run file or folder, e.g. ``"outputs/sklearn_mnist_model.pkl"``; default
                ``model_name`` (as v1).
            tags: Model tags.
            properties: Model properties.
            model_framework: v1 framework name.
            model_framework_version: Its version.
            description: Free text.
            sample_input: A sample request (rows, a DataFrame, an array, or ``{"data": ...}``), as for
                :meth:`Model.register`.
            sample_output: A sample response for those rows (needs ``sample_input``).
            resource_configuration: The CPU/memory a no-code deployment asks for by default.
            sample_input_dataset: v1's spelling of ``sample_input`` (give one of the two).
            sample_output_dataset: v1's spelling of ``sample_output``.
            **kwargs: v1 arguments this local registry has no use for (``datasets`` ...), accepted and
                ignored.

        Returns:
            The registered :class:`~jupyter_mldeploy.registry.Model`.

        Raises:
            NotFound: When the run has no such file or folder; the message lists the files it has.
            InvalidArgument: When a sample or the resource configuration is malformed (as
                :meth:`Model.register`).
        """
        self.upload_outputs()
        name = artifact_name(model_name if model_path is None else model_path)
        path = self._store.file_path(self.id, name)
        if not path.exists():
            names = self._store.file_names(self.id)
            listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
            raise NotFound(
                f"Run {self.id!r} has no file or folder {name!r} to register (its files: {listed}); upload it "
                "with run.upload_file, or save it under ./outputs before registering."
            )
        return Model.register(
            self.workspace,
            model_path=path,
            model_name=model_name,
            tags=tags,
            properties=properties,
            description=description,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
            sample_input=sample_input,
            sample_output=sample_output,
            resource_configuration=resource_configuration,
            sample_input_dataset=sample_input_dataset,
            sample_output_dataset=sample_output_dataset,
            run_id=self.id,
            experiment_name=self.experiment.name,
        )

    def get_registered_models(self) -> list[Model]:
        """The model versions registered from this run (the lineage run -> models), newest first."""
        return Model.list(self.workspace, run_id=self.id)

    # -- display --------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Number: {self.number}, "
            f"Status: {self._record.status})"
        )

    def _repr_html_(self) -> str:
        details = self.get_details()
        rows = [
            ("Experiment", details["experimentName"]),
            ("Id", details["runId"]),
            ("Number", str(details["number"])),
            ("Status", details["status"]),
            ("Started", details["startTimeUtc"][:19].replace("T", " ") + " UTC"),
            ("Parameters", ", ".join(f"{k}={v}" for k, v in details["parameters"].items())),
            ("Metrics", ", ".join(f"{k}={v}" for k, v in metrics.last_scalars(
                self._store.metrics([self.id])[self.id]).items())),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table class='mldeploy-run'>{body}</table>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and not other.offline and (other.workspace, other.id) == (self.workspace, self.id)

    def __hash__(self) -> int:
        return hash(self.id)


class OfflineRun(Run):
    """The run ``Run.get_context()`` returns outside any run (v1 ``_OfflineRun``).

    Logging prints what would have been logged (as v1: ``Attempted to log scalar metric accuracy:``) and
    keeps it in memory for ``get_metrics()``; files are not stored; ending it does nothing. There is no
    experiment or workspace, so ``register_model`` is an error naming the alternatives.

    Attributes:
        id (str): ``OfflineRun_<uuid>``.
        offline (bool): True.
    """

    offline = True

    def __init__(self) -> None:  # noqa: D107 - documented on the class
        self.id = f"OfflineRun_{uuid.uuid4()}"
        self._logged: list[MetricRow] = []
        self._tags: dict[str, str] = {}

    def _keep(self, name: str, kind: str, value: Any, label: str) -> None:
        print(f"Attempted to log {label} metric {name}:\n{value}")
        self._logged.append(MetricRow(self.id, name, kind, value, datetime.now()))

    @property
    def experiment(self) -> Experiment:  # type: ignore[override]
        raise InvalidArgument(
            "An offline run has no experiment: start one with Experiment(ws, name).start_logging(), or run the "
            "notebook with 'mldeploy pipeline run'."
        )

    @property
    def number(self) -> int:
        return 0

    @property
    def status(self) -> str:
        return "Running"

    @property
    def kind(self) -> str:
        return "offline"

    @property
    def parameters(self) -> dict[str, Any]:
        return {}

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._tags)

    def get_details(self) -> dict[str, Any]:
        return {"runId": self.id, "status": self.status, "kind": self.kind, "tags": dict(self._tags)}

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        self._keep(metrics.metric_name(name), metrics.SCALAR, metrics.json_value(value, f"metric {name!r}"), "scalar")

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        self._keep(metrics.metric_name(name), metrics.LIST, metrics.json_value(value, f"list {name!r}"), "list")

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._keep(metrics.metric_name(name), metrics.ROW, metrics.json_value(kwargs, f"row {name!r}"), "row")

    def log_table(self, name: str, value: Mapping[str, list[Any]], description: str = "") -> None:
        self._keep(metrics.metric_name(name), metrics.TABLE, metrics.json_value(value, f"table {name!r}"), "table")

    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        print(f"Attempted to log image metric {name}")

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        return metrics.fold(row for row in self._logged if name is None or row.name == name)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        print(f"Attempted to set tags {dict(tags)}")
        self._tags.update({str(k): "" if v is None else str(v) for k, v in tags.items()})

    def upload_file(self, name: str, path_or_stream: Any) -> str:
        print(f"Attempted to upload file {name}")
        return artifact_name(name)

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> list[str]:
        print(f"Attempted to upload folder {name}")
        return []

    def upload_outputs(self) -> list[str]:
        return []

    def get_file_names(self) -> list[str]:
        return []

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None) -> str:
        raise NotFound(f"An offline run stores no files, so it has no {name!r}.")

    def download_files(self, prefix: str | None = None, output_directory: str | os.PathLike[str] = ".") -> list[str]:
        return []

    def complete(self) -> None:
        return None

    def fail(self, error_details: Any = None, error_code: str | None = None) -> None:
        return None

    def cancel(self) -> None:
        return None

    def register_model(self, model_name: str, model_path: str | None = None, *args: Any, **kwargs: Any) -> Model:
        raise InvalidArgument(
            "An offline run cannot register models: use Model.register(ws, model_path, model_name), or start a "
            "run with Experiment(ws, name).start_logging() and register from it."
        )

    def get_registered_models(self) -> list[Model]:
        return []

    def __repr__(self) -> str:
        return f"OfflineRun(Id: {self.id})"

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(repr(self))}</code>"

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return hash(self.id)


def register_model_from_run(
    workspace: Workspace,
    run_id: str,
    model_name: str,
    asset_path: str | None = None,
    experiment_name: str | None = None,
    **kwargs: Any,
) -> Model:
    """Register a model from a run named by id (``az ml model register --run-id R --asset-path P``).

    Args:
        workspace: The workspace.
        run_id: The run.
        model_name: The model name.
        asset_path: The run file or folder (default: ``model_name``, as v1).
        experiment_name: The run's experiment, when given checked against the run's.
        **kwargs: Passed to :meth:`Run.register_model` (tags, properties, description, framework ...).

    Raises:
        NotFound: When the run, or the file in it, does not exist.
        InvalidArgument: When the run belongs to another experiment than ``experiment_name``.
    """
    run = Run.get(workspace, run_id)
    if experiment_name is not None and experiment_name != run.experiment.name:
        raise InvalidArgument(
            f"Run {run_id!r} belongs to experiment {run.experiment.name!r}, not {experiment_name!r}; fix the "
            "experiment name or leave it out."
        )
    return run.register_model(model_name, asset_path, **kwargs)
