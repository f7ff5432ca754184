"""``%batch_score``: run a batch scoring job from a notebook cell, with live progress; returns the job.

The options are ``mldeploy batch run``'s. The job runs in its own driver process, so interrupting the
cell (or restarting the kernel) stops only the waiting: the job goes on, and ``job.cancel()`` or
``mldeploy batch cancel ID`` stops it. The workspace is the one the other magics use
(``%mldeploy_workspace``); the job is recorded there and listed by ``mldeploy batch list``.

Loaded with ``%load_ext jupyter_mldeploy``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from jupyter_mldeploy.batch import (
    BatchJob,
    FileInput,
    JobFailed,
    ParallelRunConfig,
    TabularInput,
    progress_key,
    progress_line,
)
from jupyter_mldeploy.errors import MLDeployError, NotFound
from jupyter_mldeploy.notebook.magics import unquote
from jupyter_mldeploy.workspace import Workspace


@dataclass(frozen=True)
class BatchProgressView:
    """A job's progress as a notebook shows it (a progress bar) and a terminal shows it (one line).

    Attributes:
        details: :meth:`BatchJob.get_details`.
    """

    details: dict[str, Any]

    def __repr__(self) -> str:
        return f"{self.details['id']}: {progress_line(self.details)}"

    def _repr_html_(self) -> str:
        d = self.details
        batches, items = d["miniBatches"], d["items"]
        eta = f", ETA {d['etaSeconds']:.0f} s" if d.get("etaSeconds") is not None else ""
        error = f"<div style='color:#c62828'>{html.escape(d['error'])}</div>" if d.get("error") else ""
        return (
            f"<div><b>{html.escape(str(d['id']))}</b> {html.escape(d['state'])} "
            f"<progress value='{batches['done']}' max='{max(batches['total'], 1)}' style='width:16em'></progress> "
            f"{batches['done']}/{batches['total']} mini-batches, {d['rowsPerSecond']:,.0f} rows/s, "
            f"{items['failed']} failed items, {d['retries']} retries{eta}{error}</div>"
        )


@magics_class
class BatchMagics(Magics):
    """``%batch_score``. Registered by ``%load_ext jupyter_mldeploy``."""

    def _workspace(self) -> Workspace:
        """The workspace of the other magics (``%mldeploy_workspace``), created when missing."""
        others = self.shell.magics_manager.registry.get("MLDeployMagics")
        try:
            if others is not None:
                return others.workspace
        except NotFound:
            pass
        workspace = Workspace.from_config(None, create=True)
        if workspace.created:
            print(f"Created workspace at {workspace.path}")
        return workspace

    @line_magic
    @magic_arguments()
    @argument("--entry", required=True, help="The batch script (init() and run(mini_batch)).")
    @argument("-m", "--model", action="append", default=[], metavar="MODEL[:VER]", help="A registered model (repeatable).")
    @argument("--input", required=True, help="A CSV/Parquet/JSON-lines file, a folder or a glob.")
    @argument("--input-type", choices=["auto", "tabular", "file"], default="auto",
              help="tabular: run() gets DataFrames; file: lists of paths.")
    @argument("--output", required=True, help="Folder for the output file (parallel_run_step.txt).")
    @argument("--name", default="batch", help="Job name (default batch).")
    @argument("--source-dir", default=None, help="Folder copied with the script.")
    @argument("--mini-batch-size", default=None, help="Files per mini-batch, or a size (1MB, 64KB).")
    @argument("--backend", choices=["loky", "dask"], default="loky")
    @argument("--scheduler", default=None, help="Dask: 'local' (default) or tcp://host:port.")
    @argument("--error-threshold", type=int, default=0, help="Failed items allowed; -1 ignores them (default 0).")
    @argument("--allowed-failed-count", type=int, default=None, help="Failed mini-batches allowed.")
    @argument("--allowed-failed-percent", type=float, default=None, help="Failed mini-batches allowed, in percent.")
    @argument("--append-row-file-name", default=None, help="Output file name (default parallel_run_step.txt).")
    @argument("--process-count", type=int, default=None, help="Worker processes (default: cores).")
    @argument("--run-invocation-timeout", type=int, default=60, help="Seconds per run() call (default 60).")
    @argument("--run-max-try", type=int, default=3, help="Tries of a failing mini-batch (default 3).")
    @argument("--output-action", choices=["append_row", "summary_only"], default="append_row")
    @argument("--keep-warm", type=float, default=None,
              help="loky: seconds the driver keeps its workers for the next job (0: exit after it; default 300).")
    @argument("--no-wait", action="store_true", help="Return the job at once.")
    def batch_score(self, line: str) -> BatchJob:
        """Score an input with a batch script (v1 ParallelRunStep contract), showing live progress.

        Returns the :class:`~jupyter_mldeploy.batch.BatchJob` (``get_details()``, ``get_logs()``,
        ``cancel()``). A failed job shows its error as one line.

        Example::

            job = %batch_score --entry score_batch.py -m diabetes --input data/big.csv --output out
        """
        args = parse_argstring(self.batch_score, line)
        for key, value in vars(args).items():
            if isinstance(value, str):
                setattr(args, key, unquote(value))
        args.model = [unquote(m) for m in args.model]
        inputs: Any = {"tabular": TabularInput, "file": FileInput}.get(args.input_type, str)(args.input)
        try:
            config = ParallelRunConfig(
                entry_script=args.entry, error_threshold=args.error_threshold, output_action=args.output_action,
                source_directory=args.source_dir, mini_batch_size=args.mini_batch_size,
                process_count_per_node=args.process_count, run_invocation_timeout=args.run_invocation_timeout,
                run_max_try=args.run_max_try, allowed_failed_count=args.allowed_failed_count,
                allowed_failed_percent=args.allowed_failed_percent, append_row_file_name=args.append_row_file_name,
            )
            job = BatchJob.submit(self._workspace(), args.name, config, inputs, args.model, args.output,
                                  backend=args.backend, scheduler=args.scheduler, keep_warm=args.keep_warm)
        except MLDeployError as exc:
            raise UsageError(exc.summary) from exc
        if args.no_wait:
            return job
        handle = display(BatchProgressView(job.get_details()), display_id=True)

        shown = [progress_key(job.get_details())]

        def show(details: dict[str, Any]) -> None:
            if handle is not None and progress_key(details) != shown[0]:
                shown[0] = progress_key(details)
                handle.update(BatchProgressView(details))

        try:
            job.wait_for_completion(show_output=handle is None, on_progress=show)
        except JobFailed as exc:
            raise UsageError(exc.summary) from exc
        except KeyboardInterrupt:
            print(f"Stopped waiting; batch job {job.id} keeps running (job.cancel() stops it).")
        return job


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%batch_score`` (called by ``%load_ext jupyter_mldeploy``)."""
    ipython.register_magics(BatchMagics)
