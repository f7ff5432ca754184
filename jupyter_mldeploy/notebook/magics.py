"""IPython magics: write and try a ``score.py``, register, deploy and call models from notebook cells.

Load them with ``%load_ext jupyter_mldeploy``; ``%magic?`` shows each one's help. The magics are thin: they
parse the line, call the service layer (:mod:`jupyter_mldeploy.actions`) or the core, and return objects
that render as HTML in a notebook and as text in a terminal. A mistake (an unknown model, a bad option, a
port in use) raises IPython's ``UsageError`` with the error's one-line ``summary``, no traceback.

Workspace: every magic works on the workspace ``Workspace.from_config()`` finds (``$MLDEPLOY_WORKSPACE``,
else the nearest ``.mldeploy/`` folder, else ``./.mldeploy``) until ``%mldeploy_workspace PATH`` picks
another one for the rest of the session. Reading magics (``%models``, ``%deployments``, ``%test_endpoint``,
``%mldeploy``, ``%%score_script --check``, and ``%deploy_local --model``, whose models must be registered
already) never create a workspace: a missing one is an error naming the folders searched.
``%register_model``, ``%mldeploy_workspace PATH`` and ``%deploy_local`` without ``--model`` create it and say
so once.

``--data EXPR`` options take a Python expression evaluated in the notebook's namespace, best a variable
name (``--data payload``); quote it when it holds spaces.
"""

from __future__ import annotations

import functools
import html
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from jupyter_mldeploy import actions
from jupyter_mldeploy.actions.workspaces import remember_workspace
from jupyter_mldeploy.deploy import local_deploy_configuration
from jupyter_mldeploy.deploy.trial_run import run_entry_check
from jupyter_mldeploy.entry.static_check import EntryScriptCheck, check_source
from jupyter_mldeploy.errors import DeploymentError, MLDeployError, headline
from jupyter_mldeploy.inference_config import InferenceConfig
from jupyter_mldeploy.names import validate_name
from jupyter_mldeploy.notebook.summaries import ModelTable, ServiceTable, state_badge_html
from jupyter_mldeploy.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds ``%deploy_local`` waits for a service to become healthy.
DEPLOY_TIMEOUT_S = 300.0
#: Seconds between two refreshes of ``%deploy_local``'s live status.
STATUS_INTERVAL_S = 0.25
#: Log lines shown in ``%deploy_local``'s live status.
STATUS_LOG_LINES = 12


def unquote(value: str | None) -> str | None:
    """Strip one pair of matching outer quotes: IPython's argument splitter keeps them (``"a b"``)."""
    if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _parse(magic: Callable[..., Any], line: str) -> Any:
    """``parse_argstring`` plus :func:`unquote` on every string option except the Python expressions."""
    args = parse_argstring(magic, line)
    for key, value in vars(args).items():
        if key in _EXPRESSION_OPTIONS:
            continue
        if isinstance(value, str):
            setattr(args, key, unquote(value))
        elif isinstance(value, list):
            setattr(args, key, [unquote(v) if isinstance(v, str) else v for v in value])
    return args


#: Options holding Python expressions: quotes there are the expression's own.
_EXPRESSION_OPTIONS = {"data", "sample_input"}


def _user_errors(func: F) -> F:
    """Turn the core's errors into ``UsageError``: IPython shows the one-line message without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MLDeployError as exc:
            raise UsageError(exc.summary) from exc

    return wrapper  # type: ignore[return-value]


# -- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreScriptReport:
    """What ``%%score_script`` wrote and found.

    Attributes:
        path: The script written (absolute).
        check: The static check (problems, one line each; detected features).
        run: The outcome of ``--check`` (``init()`` + ``run()`` in a fresh process), or None.
    """

    path: Path
    check: EntryScriptCheck
    run: Any = None

    @property
    def ok(self) -> bool:
        """True when the static check passed and, with ``--check``, the trial run too."""
        return self.check.ok and (self.run is None or self.run.ok)

    def _features(self) -> str:
        found = [name for name, on in self.check.features().items() if on]
        return f" ({', '.join(found)})" if found else ""

    def __repr__(self) -> str:
        if not self.check.ok:
            lines = [f"Wrote {self.path}; the scoring server would refuse it:"]
            lines += [f"  - {p}" for p in self.check.problems]
        else:
            lines = [f"Wrote {self.path}: init() and run() look servable{self._features()}."]
        if self.run is not None:
            lines.append(repr(self.run))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        path = html.escape(str(self.path))
        if not self.check.ok:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in self.check.problems)
            head = f"<div style='color:#cf222e'>Wrote <code>{path}</code>; the scoring server would refuse it:<ul>{items}</ul></div>"
        else:
            head = (f"<div style='color:#1a7f37'>Wrote <code>{path}</code>: init() and run() look servable"
                    f"{html.escape(self._features())}.</div>")
        return head + (self.run._repr_html_() if self.run is not None else "")


class EndpointResult(actions.EndpointCall):
    """One ``%test_endpoint`` call (:class:`~jupyter_mldeploy.actions.EndpointCall`) shown in a notebook:
    status line, pretty response, latency or a load test's percentiles.

    Attributes:
        target: The scoring URI called.
        response: The single answer (or the last answer of a load test).
        report: The load test's measurements when ``--repeat`` > 1, else None.
    """

    @classmethod
    def of(cls, call: actions.EndpointCall) -> EndpointResult:
        """Wrap the service layer's result for display."""
        return cls(call.target, call.response, call.report)

    def __repr__(self) -> str:
        lines = [f"{self.target}: {self.status_line()}"]
        if self.report is not None and self.report.errors:
            lines.append("errors: " + "; ".join(self.report.errors))
        if self.response is not None:
            lines.append(self.pretty_body()[:5000])
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#cf222e"
        parts = [f"<div style='color:{color};font-weight:bold'>{html.escape(self.status_line())}</div>"]
        if self.report is not None and self.report.errors:
            parts.append(f"<div style='color:#cf222e'>{html.escape('; '.join(self.report.errors))}</div>")
        if self.response is not None:
            parts.append(f"<pre>{html.escape(self.pretty_body()[:20000])}</pre>")
        return "<div class='mldeploy-endpoint'>" + "".join(parts) + "</div>"


@dataclass
class DeployStatus:
    """The live status ``%deploy_local`` shows while a service starts (updated in place).

    Attributes:
        name: The service.
        state: ``Preparing`` (building the environment, laying out the app folder), then the service state.
        elapsed_s: Seconds since the magic started.
        log_tail: The last lines of the server log.
        scoring_uri: Set once healthy.
        error: Set when it failed (the log then holds the ``init()`` traceback).
        notes: Extra lines (``--no-wait``, an interrupt).
    """

    name: str
    state: str = "Preparing"
    elapsed_s: float = 0.0
    log_tail: str = ""
    scoring_uri: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def _headline(self) -> str:
        if self.scoring_uri and self.state == "Healthy":
            return f"Service {self.name!r} is Healthy at {self.scoring_uri} ({self.elapsed_s:.1f} s)"
        if self.error:
            return f"Service {self.name!r} is {self.state} after {self.elapsed_s:.1f} s: {self.error}"
        return f"Service {self.name!r}: {self.state}, {self.elapsed_s:.1f} s"

    def __repr__(self) -> str:
        lines = [self._headline(), *self.notes]
        if self.log_tail and (self.error or self.state != "Healthy"):
            lines.append(self.log_tail)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        badge = state_badge_html(self.state) if self.state != "Preparing" else state_badge_html("Transitioning")
        head = f"{badge} <b>{html.escape(self._headline())}</b>"
        notes = "".join(f"<div>{html.escape(n)}</div>" for n in self.notes)
        log = ""
        if self.log_tail and (self.error or self.state != "Healthy"):
            color = "#cf222e" if self.error else "inherit"
            log = (f"<pre style='max-height:22em;overflow:auto;color:{color};font-size:0.85em'>"
                   f"{html.escape(self.log_tail)}</pre>")
        return f"<div class='mldeploy-deploy-status'>{head}{notes}{log}</div>"


# -- the magics ----------------------------------------------------------------------------------------


@magics_class
class MLDeployMagics(Magics):
    """The ``jupyter_mldeploy`` magics. Registered by ``%load_ext jupyter_mldeploy``."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self._workspace_path: Path | None = None
        #: The last status ``%deploy_local`` showed (for scripts and tests that run without a display).
        self.last_deploy_status: DeployStatus | None = None

    # -- helpers --------------------------------------------------------------------------------------

    @property
    def workspace(self) -> Workspace:
        """The session's workspace for reading: the one ``%mldeploy_workspace`` set, else the one
        ``Workspace.from_config()`` finds; never created here.

        Raises:
            NotFound: When no workspace exists, naming the folders searched.
        """
        workspace = Workspace.from_config(self._workspace_path, create=False)
        remember_workspace(workspace)  # for `mldeploy workspace list`
        return workspace

    def _writing_workspace(self) -> Workspace:
        """The session's workspace for writing: created when missing, saying so once."""
        workspace = Workspace.from_config(self._workspace_path, create=True)
        if workspace.created:
            print(f"Created workspace at {workspace.path}")
        remember_workspace(workspace)
        return workspace

    def _eval(self, expression: str, option: str) -> Any:
        """Evaluate an option's Python expression in the user's namespace."""
        try:
            return eval(expression, self.shell.user_ns)  # noqa: S307 - the user's own expression, in the user's kernel
        except Exception as exc:
            raise UsageError(f"{option} {expression!r} could not be evaluated: {type(exc).__name__}: {exc}") from exc

    # -- workspace ------------------------------------------------------------------------------------

    @line_magic
    @magic_arguments()
    @argument("path", nargs="?", default=None, help="Workspace folder (created when missing).")
    @_user_errors
    def mldeploy_workspace(self, line: str) -> Workspace:
        """Choose the workspace the other magics use for the rest of the session, or show it.

        Without PATH, shows the workspace in use (``Workspace.from_config()`` unless set here).

        Example::

            %mldeploy_workspace .mldeploy
        """
        args = _parse(self.mldeploy_workspace, line)
        if args.path:
            workspace = Workspace.from_config(args.path, create=True)
            if workspace.created:
                print(f"Created workspace at {workspace.path}")
            remember_workspace(workspace)
            self._workspace_path = workspace.path
            return workspace
        return self.workspace

    # -- score.py -------------------------------------------------------------------------------------

    @line_cell_magic
    @magic_arguments()
    @argument("path", nargs="?", default="score.py", help="Where to write the cell (default score.py; "
              "relative to --source-dir when given).")
    @argument("--source-dir", default=None, help="The source folder copied with the script when deployed.")
    @argument("--check", metavar="MODEL[:VER]", action="append", default=None,
              help="Run init() and run() once in a fresh process against this registered model (repeatable).")
    @argument("--data", metavar="EXPR", default=None,
              help="Request body for --check (a Python expression; default: the model's sample_input).")
    @_user_errors
    def score_script(self, line: str, cell: str | None = None) -> ScoreScriptReport:
        """Write the cell to a score.py and check it without importing it into the kernel.

        The check parses the script: ``init()`` and ``run()`` exist, ``run``'s signature is one the scoring
        server accepts, inference-schema decorators are well formed; each problem is one line. With
        ``--check MODEL[:VER]`` it then runs ``init()`` and ``run()`` once in a new Python process against
        that registered model laid out as in a deployment, and shows ``run()``'s output, or the traceback
        with the listing of ``AZUREML_MODEL_DIR``.

        Example::

            %%score_script score.py --check diabetes --data sample
            import json, os, joblib
            def init(): ...
            def run(raw_data): ...
        """
        args = _parse(self.score_script, line)
        if cell is None:
            raise UsageError("%%score_script is a cell magic: put the script in the cell below the %%score_script line.")
        if not cell.strip():
            raise UsageError("The cell is empty: write the score.py (init() and run()) below %%score_script.")
        path = Path(args.path).expanduser()
        if args.source_dir is not None and not path.is_absolute():
            path = Path(args.source_dir).expanduser() / path
        path = path.resolve()
        if path.is_dir():
            raise UsageError(f"{path} is a folder: give the file to write, e.g. %%score_script {path / 'score.py'}.")
        if args.data is not None and not args.check:
            raise UsageError("--data is the request body of --check: add --check MODEL[:VER].")
        data = self._eval(args.data, "--data") if args.data is not None else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cell, encoding="utf-8")
        check = check_source(cell, path)
        run = None
        if args.check and check.ok:
            kwargs: dict[str, Any] = {"data": data} if args.data is not None else {}
            source_dir = Path(args.source_dir).expanduser().resolve() if args.source_dir else None
            run = run_entry_check(self.workspace, path, args.check, source_directory=source_dir, **kwargs)
        return ScoreScriptReport(path=path, check=check, run=run)

    # -- registry -------------------------------------------------------------------------------------

    @line_magic
    @magic_arguments()
    @argument("name", help="Model name (letters, digits, '_', '.', '-').")
    @argument("path", help="The model file or folder to register.")
    @argument("--tag", metavar="KEY=VALUE", action="append", default=[], help="A tag (repeatable).")
    @argument("--description", default=None, help="Free text (quote it).")
    @argument("--sample-input", metavar="EXPR", default=None,
              help="A JSON-safe sample request (a Python expression); prefills the endpoint tester.")
    @_user_errors
    def register_model(self, line: str) -> Any:
        """Register a file or folder as the next version of a model; returns the ``Model``.

        Example::

            %register_model diabetes outputs/model.pkl --tag stage=dev --description "ridge, alpha 0.5"
        """
        args = _parse(self.register_model, line)
        # Checked before the workspace opens, so a typo never creates one.
        validate_name(args.name, "model name")
        actions.check_model_path(args.path)
        tags = actions.parse_tags(args.tag)
        sample = self._eval(args.sample_input, "--sample-input") if args.sample_input is not None else None
        return actions.register_model(self._writing_workspace(), args.path, args.name, tags=tags,
                                      description=args.description, sample_input=sample)

    @line_magic
    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Only this model's versions.")
    @_user_errors
    def models(self, line: str) -> ModelTable:
        """List registered models and versions (a table: tags, description, files, size, time).

        Example::

            %models
            %models diabetes
        """
        args = _parse(self.models, line)
        return ModelTable.of(self.workspace, args.name)

    @line_magic
    @magic_arguments()
    @argument("name", help="Profile name.")
    @argument("--model", metavar="NAME[:VER]", action="append", default=[], help="A model version to serve (repeatable).")
    @argument("--entry", default="score.py", help="The entry script (default score.py; relative to --source-dir).")
    @argument("--source-dir", default=None, help="A folder copied whole next to the entry script.")
    @argument("--input", required=True, metavar="CSV|EXPR",
              help="Request bodies: a one-column CSV file, or a Python expression giving a list or a DataFrame.")
    @argument("--cpu", type=float, default=None, help="CPU cores (a real limit: the Docker target).")
    @argument("--memory-gb", type=float, default=None, help="Memory in GB (a real limit: the Docker target).")
    @argument("--seconds-per-level", type=float, default=2.5, help="How long each concurrency level runs.")
    @_user_errors
    def profile_model(self, line: str) -> Any:
        """Profile models on a temporary service (v1 ``Model.profile``) and show the profile: progress while
        it runs, then a table, the recommendation and a plot of latency, throughput, CPU and memory.

        Example::

            %profile_model diabetes-profile --model diabetes:1 --entry score.py --input bodies
        """
        from jupyter_mldeploy.deploy.profile import profile_model

        args = _parse(self.profile_model, line)
        source_dir = Path(args.source_dir).expanduser() if args.source_dir else None
        entry = Path(args.entry).expanduser()
        script = entry if entry.is_absolute() or source_dir is None else source_dir / entry
        if not script.is_file():
            raise UsageError(f"Entry script {script} does not exist: write it first (%%score_script {script}).")
        dataset = args.input if Path(args.input).expanduser().is_file() else self._eval(args.input, "--input")
        inference_config = InferenceConfig(entry, source_directory=source_dir)
        profile = profile_model(self.workspace, args.name, args.model, inference_config, dataset, args.cpu,
                                args.memory_gb, seconds_per_level=args.seconds_per_level)
        profile.wait_for_completion(show_output=True)
        return profile

    # -- deployment -----------------------------------------------------------------------------------

    @line_magic
    @magic_arguments()
    @argument("name", help="Service name.")
    @argument("--model", metavar="NAME[:VER]", action="append", default=[],
              help="A registered model version to serve (repeatable; latest version when VER is left out). "
              "None serves the source directory alone: no registered model.")
    @argument("--entry", default=None,
              help="The entry script (default score.py; relative to --source-dir). Left out with one --model "
              "registered with a supported framework: a built-in entry script serves it (no-code).")
    @argument("--source-dir", default=None, help="A folder copied whole next to the entry script.")
    @argument("--env", metavar="ENV[:VER]", default=None, help="A registered (or curated) environment.")
    @argument("--requirements", metavar="FILE", default=None, help="A pip requirements file (built with uv, cached).")
    @argument("--current", action="store_true", help="Serve with this kernel's interpreter (the default).")
    @argument("--port", type=int, default=None, metavar="N", help="TCP port on 127.0.0.1 (default: a free one).")
    @argument("--overwrite", action="store_true",
              help="Update the service when it exists (zero downtime while it is healthy).")
    @argument("--no-wait", action="store_true", help="Return at once; %%deployments shows the state later.")
    @_user_errors
    def deploy_local(self, line: str) -> Any:
        """Deploy registered models (or, without ``--model``, the source folder alone) as a local web service
        (process runtime); returns the service.

        While the service starts, a live status shows its state, the elapsed time and the tail of its log,
        ending in the scoring URI, or in the ``init()`` traceback with the listing of ``AZUREML_MODEL_DIR``.
        Re-running with ``--overwrite`` updates the running service in place: the old workers answer until
        the new ones finished ``init()``, so no request fails.

        Without ``--model`` no registered model is served (v1's "deploy using a local model"): the files
        come from ``--source-dir`` (else the entry script's folder), ``AZUREML_MODEL_DIR`` is the empty
        ``azureml-models`` folder, and nothing is versioned or checksummed; the status says so.

        Example::

            %deploy_local diabetes-svc --model diabetes:1 --entry score.py --overwrite
            %deploy_local local-svc --entry score.py --source-dir ./app
            %deploy_local iris-svc --model iris:1     # no-code: registered with model_framework
        """
        args = _parse(self.deploy_local, line)
        # Models must be registered in the workspace already, so it is never created for them; a deployment of
        # the source folder alone reads nothing from it, and creates it when missing.
        workspace = self.workspace if args.model else self._writing_workspace()
        environment = actions.choose_environment(workspace, args.name, env=args.env, requirements=args.requirements,
                                                 current=args.current)
        source_dir = Path(args.source_dir).expanduser() if args.source_dir else None
        if args.entry is None and args.model and source_dir is None:
            # no-code; an asked-for environment replaces the chosen one
            asked = environment if args.env or args.requirements or args.current else None
            inference_config = actions.deployment_inference_config(workspace, args.model, environment=asked)
        else:
            entry = Path(args.entry or "score.py").expanduser()
            script = entry if entry.is_absolute() or source_dir is None else source_dir / entry
            if not script.is_file():
                raise UsageError(f"Entry script {script} does not exist: write it first (%%score_script {script}).")
            inference_config = InferenceConfig(entry, source_directory=source_dir, environment=environment)
        config = local_deploy_configuration(port=args.port)

        status = DeployStatus(name=args.name)
        status.notes.extend(actions.deployment_notes(args.model, inference_config))
        self.last_deploy_status = status
        handle = display(status, display_id=True)
        start = time.monotonic()

        def show(note: str | None = None, **changes: Any) -> None:
            for key, value in changes.items():
                setattr(status, key, value)
            if note is not None:
                status.notes.append(note)
            status.elapsed_s = time.monotonic() - start
            if handle is not None:
                handle.update(status)

        outcome: dict[str, Any] = {}

        def deploy() -> None:
            try:
                outcome["service"] = actions.deploy_service(
                    workspace, args.name, args.model, inference_config, config, overwrite=args.overwrite
                )
            except BaseException as exc:  # noqa: B036 - handed to the kernel thread, re-raised there
                outcome["error"] = exc

        # The deploy call (environment build, app folder, process start) runs in a thread so the status can
        # keep counting; the kernel thread only waits and redraws.
        worker = threading.Thread(target=deploy, name=f"mldeploy-deploy-{args.name}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                show()
                worker.join(STATUS_INTERVAL_S)
        except KeyboardInterrupt:
            show(note="Interrupted: the deployment goes on in the background (%deployments shows it).")
            raise
        if "error" in outcome:
            error = outcome["error"]
            show(state="Failed", error=headline(getattr(error, "summary", str(error))),
                 log_tail=getattr(error, "logs", ""))
            raise error
        service = outcome["service"]
        if args.no_wait:
            show(state=str(service.state), note="Not waiting (--no-wait): %deployments shows the state.")
            return service
        return self._follow(service, show, start)

    def _follow(self, service: Any, show: Callable[..., None], start: float) -> Any:
        """Show state, elapsed time and log tail until the service is healthy or failed."""
        deadline = start + DEPLOY_TIMEOUT_S
        try:
            while True:
                state = str(service.state)
                show(state=state, log_tail=service.get_logs(num_lines=STATUS_LOG_LINES))
                if state != "Transitioning" or time.monotonic() >= deadline:
                    break
                time.sleep(STATUS_INTERVAL_S)
            # Settles an in-place update (adopting the new workers, or restoring the old ones) and raises
            # with the init() traceback when the service failed.
            service.wait_for_deployment(timeout_sec=max(1.0, deadline - time.monotonic()))
        except DeploymentError as exc:
            show(state=str(service.state), error=headline(exc.summary), log_tail=exc.logs)
            raise UsageError(f"{headline(exc.summary).rstrip('.')}. The init() traceback is shown above; "
                             "fix score.py and run the cell again with --overwrite.") from exc
        except KeyboardInterrupt:
            show(note="Interrupted: the service keeps starting in the background (%deployments shows it).")
            raise
        show(state="Healthy", scoring_uri=service.scoring_uri, log_tail="")
        return service

    @line_magic
    @_user_errors
    def deployments(self, line: str) -> ServiceTable:
        """List the workspace's services: state, port, models, uptime and scoring URI.

        Example::

            %deployments
        """
        if line.strip():
            raise UsageError(f"%deployments takes no arguments (got {line.strip()!r}).")
        return ServiceTable.of(self.workspace)

    # -- calling --------------------------------------------------------------------------------------

    @line_cell_magic
    @magic_arguments()
    @argument("target", help="A service name of the workspace, or a scoring URI (http://...).")
    @argument("--data", metavar="EXPR", default=None, help="The request body: a Python expression "
              "(dict/list -> JSON, str sent as is).")
    @argument("--file", metavar="PATH", default=None, help="Send this file's content as the body.")
    @argument("--repeat", type=int, default=1, metavar="N", help="Send it N times and report p50/p99 latency.")
    @argument("--concurrency", type=int, default=1, metavar="C", help="Parallel clients for --repeat.")
    @argument("--no-validate", action="store_true", help="Skip the check against the service's input schema.")
    @argument("--protocol", choices=actions.PROTOCOLS, default="azureml",
              help="azureml (/score, the default), v2 (/v2/models/<model>/infer) or mlflow (/invocations); a "
                   "given body must be in that protocol's format, the default example is reshaped for it "
                   "(docs/protocols.md).")
    @argument("-o", "--output-result", action="store_true",
              help="Return the whole result (status, latency, load-test report) instead of the parsed response, "
                   "as %%timeit -o does.")
    @_user_errors
    def test_endpoint(self, line: str, cell: str | None = None) -> Any:
        """Call a service's /score and show the status, the pretty response and the latency.

        The body comes from ``--data EXPR``, ``--file PATH``, or (cell form) the cell's JSON; without any,
        the schema's example or the model's ``sample_input`` is sent. When the service publishes an input
        schema (an inference-schema decorated ``run``), the body is checked first and a mismatching field is
        named instead of sending a request that would fail. With ``--repeat N`` the request is sent N times
        (``--concurrency C`` clients) and p50/p99 latencies are shown. Returns the parsed response (the last
        one when repeated), so ``result = %test_endpoint svc --data payload`` works; with ``-o`` it returns the
        :class:`EndpointResult` (``.response``, ``.report.p50_ms``, ``.report.failures`` ...) instead.

        Examples::

            %test_endpoint diabetes-svc --data payload
            result = %test_endpoint diabetes-svc --data payload --repeat 200 --concurrency 4

            %%test_endpoint diabetes-svc
            {"data": [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]]}
        """
        args = _parse(self.test_endpoint, line)
        sources = [s for s, given in (("--data", args.data is not None), ("--file", args.file is not None),
                                      ("the cell", bool(cell and cell.strip()))) if given]
        if len(sources) > 1:
            raise UsageError(f"{' and '.join(sources)} both give a request body: keep one.")
        workspace = None if actions.is_scoring_uri(args.target) else self.workspace
        endpoint = actions.resolve_endpoint(args.target, workspace)
        schema = None if args.no_validate or args.protocol != "azureml" else actions.input_schema(endpoint)
        payload = self._payload(args, cell, endpoint, schema)
        try:
            call = actions.call_endpoint(endpoint, payload, schema=schema, validate=not args.no_validate,
                                         protocol=args.protocol,
                                         repeat=args.repeat, concurrency=args.concurrency)
        except actions.RequestMismatch as exc:
            raise UsageError(f"{exc.summary} (--no-validate sends it anyway).") from exc
        result = EndpointResult.of(call)
        if args.output_result:
            return result
        display(result)
        return result.response.body if result.response is not None else None

    def _payload(self, args: Any, cell: str | None, endpoint: actions.Endpoint, schema: Any) -> Any:
        if args.data is not None:
            return self._eval(args.data, "--data")
        if args.file is not None:
            file = Path(args.file).expanduser()
            if not file.is_file():
                raise UsageError(f"--file {file} does not exist.")
            return file.read_bytes()
        if cell is not None and cell.strip():
            try:
                return json.loads(cell)
            except json.JSONDecodeError as exc:
                raise UsageError(f"The cell is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.") from exc
        # The default body is the service's example, reshaped for the chosen protocol as the panel does.
        example = actions.example_payload(endpoint, schema, protocol=args.protocol)
        if example is not None:
            return example
        raise UsageError("No request body: pass --data EXPR or --file PATH, or use %%test_endpoint with JSON in "
                         "the cell (register the model with a sample_input to have a default).")

    # -- panel ----------------------------------------------------------------------------------------

    @line_magic
    @_user_errors
    def mldeploy(self, line: str) -> Any:
        """Show the jupyter_mldeploy panel: registry, deployments (live states, logs) and an endpoint tester.

        Example::

            %mldeploy
        """
        if line.strip():
            raise UsageError(f"%mldeploy takes no arguments (got {line.strip()!r}).")
        # ipywidgets loads only when the panel is shown, not on %load_ext.
        from jupyter_mldeploy.notebook.widgets import panel

        return panel(self.workspace)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext jupyter_mldeploy``)."""
    ipython.register_magics(MLDeployMagics)
    ipython.extension_manager.load_extension("jupyter_mldeploy.notebook.batch_magic")  # %batch_score


__all__ = ["DeployStatus", "EndpointResult", "MLDeployMagics", "ScoreScriptReport", "load_ipython_extension"]
