"""``Experiment``: a named group of runs (Azure ML SDK v1 ``azureml.core.Experiment``) in a local workspace.

::

    exp = Experiment(ws, "diabetes")
    with exp.start_logging() as run:       # Completed on leaving the block, Failed on an exception
        run.log("alpha", 0.5)
    exp.compare("r2")                      # one row per run: its parameters and the metric
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jupyter_mldeploy.errors import InvalidArgument, NotFound
from jupyter_mldeploy.runs import metrics
from jupyter_mldeploy.runs.run import Run
from jupyter_mldeploy.runs.store import STATUSES, RunStore, validate_experiment_name
from jupyter_mldeploy.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from matplotlib.axes import Axes


class Experiment:
    """An experiment of a workspace (v1 ``azureml.core.Experiment``); created in the workspace when missing.

    Args:
        workspace: The workspace.
        name: Letters, digits, ``_``, ``.``, ``-``; starting with a letter or digit; at most 200 characters.

    Attributes:
        workspace (Workspace): The workspace.
        name (str): The name.
        created_time (datetime): When it was first used (UTC).

    Raises:
        InvalidArgument: For a bad name, or a workspace that is not a jupyter_mldeploy ``Workspace``.
    """

    def __init__(self, workspace: Workspace, name: str, **kwargs: Any) -> None:
        if not isinstance(workspace, Workspace):
            raise InvalidArgument(
                f"Experiment(workspace, name) needs a jupyter_mldeploy Workspace, got {type(workspace).__name__}; "
                "use Workspace.from_config()."
            )
        self.workspace = workspace
        self.name = validate_experiment_name(name)
        self.created_time: datetime = RunStore(workspace).ensure_experiment(name)

    @property
    def id(self) -> str:
        """The experiment's id: its name (v1 has a GUID; a local workspace needs none)."""
        return self.name

    def start_logging(
        self,
        *args: Any,
        outputs: str | os.PathLike[str] | bool | None = None,
        snapshot_directory: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Run:
        """Start an interactive run owned by this process (v1 ``start_logging``).

        Args:
            *args: Ignored (v1 passes none in practice).
            outputs: The folder tracked as outputs (default ``./outputs``; False for none): its files are
                uploaded under ``outputs/`` when the run ends and before ``register_model``.
            snapshot_directory: A folder copied into the run's files under ``snapshot/`` now.
            **kwargs: v1 options with no local meaning (``display_name`` ...), accepted and ignored.

        Returns:
            The ``Running`` run; end it with ``complete()``/``fail()``, or use it as a context manager.
        """
        return Run.start(self, outputs=outputs, snapshot_directory=snapshot_directory)

    @staticmethod
    def list(workspace: Workspace, experiment_name: str | None = None, **kwargs: Any) -> list[Experiment]:
        """Return the workspace's experiments, sorted by name (v1 ``Experiment.list``).

        Args:
            workspace: The workspace.
            experiment_name: Only this one (an empty list when it does not exist).
            **kwargs: v1 filters with no local meaning (``view_type``, ``tags``), ignored.
        """
        names = [name for name, _ in RunStore(workspace).experiments()]
        if experiment_name is not None:
            names = [n for n in names if n == experiment_name]
        return [Experiment(workspace, name) for name in names]

    def get_runs(
        self,
        type: str | None = None,
        tags: str | Mapping[str, str] | None = None,
        properties: Any = None,
        include_children: bool = False,
        status: str | None = None,
    ) -> Iterator[Run]:
        """Yield the experiment's runs, newest first (v1 ``get_runs``).

        Args:
            type: ``"interactive"`` or ``"pipeline"`` to keep one kind.
            tags: A tag key the run must have, or ``{key: value}`` tags it must have.
            properties: Ignored (runs have no properties here).
            include_children: Ignored (runs have no children here).
            status: Keep runs in this status (``Running``, ``Completed``, ``Failed``, ``Canceled``).

        Raises:
            InvalidArgument: For an unknown status.
        """
        if status is not None and status not in STATUSES:
            raise InvalidArgument(f"Unknown run status {status!r}: use one of {', '.join(STATUSES)}.")
        store = RunStore(self.workspace)
        for record in store.list(self.name):
            if type is not None and record.kind != type:
                continue
            if status is not None and record.status != status:
                continue
            if isinstance(tags, str) and tags not in record.tags:
                continue
            if isinstance(tags, Mapping) and any(record.tags.get(k) != v for k, v in tags.items()):
                continue
            yield Run(self, record.id)

    def compare(self, metric: str, plot: bool = False) -> pandas.DataFrame:
        """Compare one metric across the experiment's runs.

        Args:
            metric: A metric name; a scalar's last logged value is compared.
            plot: Also draw it (:meth:`plot`; needs matplotlib).

        Returns:
            One row per run, oldest first: ``run_id, number, status``, one column per parameter any run
            has (prefixed ``param.`` when it shares the metric's name), and ``metric`` (NaN for a run that
            did not log it).

        Raises:
            NotFound: When no run of the experiment logged ``metric``; the message lists the metrics logged.
        """
        import pandas

        store = RunStore(self.workspace)
        records = list(reversed(store.list(self.name)))
        logged = store.metrics([r.id for r in records])
        values = {run_id: metrics.last_scalars(rows) for run_id, rows in logged.items()}
        if not any(metric in v for v in values.values()):
            known = sorted({name for v in values.values() for name in v})
            listed = ", ".join(known) if known else "none"
            raise NotFound(
                f"No run of experiment {self.name!r} logged a metric {metric!r} (scalar metrics logged: {listed})."
            )
        parameter_names: list[str] = []
        for record in records:
            parameter_names.extend(k for k in record.parameters if k not in parameter_names)
        rows = []
        for record in records:
            row: dict[str, Any] = {"run_id": record.id, "number": record.number, "status": record.status}
            for key in parameter_names:
                row[f"param.{key}" if key in (metric, "run_id", "number", "status") else key] = record.parameters.get(key)
            row[metric] = values[record.id].get(metric, float("nan"))
            rows.append(row)
        frame = pandas.DataFrame(rows)
        if plot:
            self.plot(metric, frame=frame)
        return frame

    def plot(self, metric: str, ax: Axes | None = None, frame: pandas.DataFrame | None = None) -> Axes:
        """Plot a metric across runs: one point per run, by run number (matplotlib, imported only here).

        Args:
            metric: The metric.
            ax: Axes to draw on (default: a new figure).
            frame: A :meth:`compare` result to draw, instead of reading the runs again.

        Returns:
            The matplotlib Axes.

        Raises:
            InvalidArgument: When matplotlib is not installed.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise InvalidArgument("Plotting needs matplotlib: pip install matplotlib.") from exc
        data = frame if frame is not None else self.compare(metric)
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(data["number"], data[metric], marker="o")
        ax.set_xlabel("run number")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} across runs of {self.name}")
        return ax

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and (other.workspace, other.name) == (self.workspace, self.name)

    def __hash__(self) -> int:
        return hash((self.workspace, self.name))


def experiment_exists(workspace: Workspace, name: str) -> bool:
    """True when the workspace has an experiment ``name`` (without creating it)."""
    return any(existing == name for existing, _ in RunStore(workspace).experiments())


def existing_experiment(workspace: Workspace, name: str) -> Experiment:
    """Return an experiment that must already exist (reading faces: a typo must not create one).

    Raises:
        NotFound: Naming the experiments that exist.
    """
    validate_experiment_name(name)
    if not experiment_exists(workspace, name):
        names = [n for n, _ in RunStore(workspace).experiments()]
        listed = ", ".join(names) if names else "none yet; start a run with Experiment(ws, name).start_logging()"
        raise NotFound(f"Experiment {name!r} not found in workspace {workspace.path} (experiments: {listed}).")
    return Experiment(workspace, name)
