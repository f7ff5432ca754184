"""Try an entry script before deploying it: ``init()`` and ``run()`` once, in a fresh process.

The script runs against registered model versions laid out exactly as a service gets them: the same
:func:`~jupyter_mldeploy.deploy.app_folder.build_app_folder` (source directory copied to
``<app root>/<its name>``, models under ``azureml-models/``), the same variables
(:meth:`~jupyter_mldeploy.deploy.app_folder.AppFolder.scoring_environment`), the app root as working folder,
and the scoring server's own loading and calling code (see :mod:`~jupyter_mldeploy.server.trial_child`), so
the answer is the one the server would give. It runs in a new interpreter so nothing the script imports
or breaks reaches the caller (a notebook kernel). The outcome is the answer of ``run()``, or the traceback
of the step that failed together with the server's listing of ``AZUREML_MODEL_DIR`` — usually enough to
see a wrong file name. Starting no server and opening no port makes it the fastest loop for debugging a
``score.py``.

Used by ``%%score_script --check``; open to the CLI and the REST layer.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mldeploy.deploy.app_folder import build_app_folder, remove_app_folder
from jupyter_mldeploy.deploy.client import encode_payload
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources
from jupyter_mldeploy.server.user_script import model_dir_listing
from jupyter_mldeploy.workspace import Workspace

#: Seconds ``init()`` plus ``run()`` may take before the check process is killed.
DEFAULT_TIMEOUT_S = 120.0
#: Headers of the trial request (a JSON client's), unless the caller gives its own.
DEFAULT_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
#: Variables a trial run never inherits from the caller: the layout's own are set from the app folder.
_LAYOUT_PREFIXES = ("AZUREML_", "AML_APP_ROOT", "AML_CORS_ORIGINS")
#: Characters of the script's printed output kept in a result (its end).
PRINTED_LIMIT = 20_000

_NO_DATA = object()


@dataclass(frozen=True)
class EntryCheckRun:
    """What running an entry script once showed.

    Attributes:
        entry_script: The script that was run (the user's path).
        models: The model versions it ran against (``"name:version"``).
        stage: Where it stopped: ``"static"`` (refused before running: see ``problems``), ``"import"``,
            ``"init"``, ``"run"``, ``"timeout"``, or ``"done"`` when everything passed.
        problems: The static check's problems (one line each), when ``stage == "static"``.
        called_run: ``run()`` was called (a request body was given or a model has a ``sample_input``).
        request: The request body sent to ``run()`` (text), or None.
        status: The HTTP status the server answers (200, the status of an ``AMLResponse``, 400/415 when the
            request does not fit ``run``), or None when ``run()`` was not reached.
        response_headers: The answer's headers as the server sends them (without the per-request ids).
        output: The answer's body: JSON-decoded when it is JSON (``run()``'s value, numpy and pandas as
            lists and records), else text.
        error: ``"ExceptionType: message"`` of the failure, or None.
        traceback: The full traceback of the failure, or None.
        printed: What the script printed (stdout and stderr), its last :data:`PRINTED_LIMIT` characters.
        model_dir_listing: The files under ``AZUREML_MODEL_DIR`` as the script saw them (one per line).
        init_ms: ``init()``'s wall time in milliseconds, when it returned.
        run_ms: ``run()``'s wall time in milliseconds, when it returned.
    """

    entry_script: Path
    models: tuple[str, ...]
    stage: str
    problems: tuple[str, ...] = ()
    called_run: bool = False
    request: str | None = None
    status: int | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    output: Any = None
    error: str | None = None
    traceback: str | None = None
    printed: str = ""
    model_dir_listing: str = ""
    init_ms: float | None = None
    run_ms: float | None = None

    @property
    def ok(self) -> bool:
        """True when the script imported, ``init()`` returned and ``run()`` (if called) returned."""
        return self.stage == "done"

    def summary(self) -> str:
        """One line: what passed, or where and why it failed."""
        models = ", ".join(self.models) or "no registered model"
        if self.stage == "static":
            return f"{self.entry_script.name} cannot be served: {'; '.join(self.problems)}"
        if self.ok:
            timing = f"init() {self.init_ms:.0f} ms" if self.init_ms is not None else "init()"
            if self.called_run:
                answered = "OK" if self.status == 200 else f"answered {self.status}"
                return f"{timing}, run() {self.run_ms:.0f} ms against {models}: {answered}"
            return f"{timing} against {models}: OK (run() not called: no request body and no sample_input)"
        if self.stage == "timeout":
            return f"{self.entry_script.name} did not finish within the time limit ({self.error})"
        return f"{self.stage}() failed against {models}: {self.error}" if self.stage in ("init", "run") else (
            f"Importing {self.entry_script.name} failed: {self.error}"
        )

    def __repr__(self) -> str:
        lines = [self.summary()]
        if self.ok and self.called_run:
            lines.append(f"output: {json.dumps(self.output)[:2000]}")
        if self.traceback:
            lines.append(self.traceback.rstrip())
        if not self.ok and self.model_dir_listing:
            lines.append(self.model_dir_listing)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#cf222e"
        parts = [f"<div style='color:{color};font-weight:bold'>{html.escape(self.summary())}</div>"]
        if self.ok and self.called_run:
            parts.append(f"<pre>{html.escape(json.dumps(self.output, indent=2)[:5000])}</pre>")
        if self.printed.strip():
            parts.append(f"<details><summary>printed</summary><pre>{html.escape(self.printed)}</pre></details>")
        if self.traceback:
            parts.append(f"<pre style='color:{color}'>{html.escape(self.traceback)}</pre>")
        if not self.ok and self.model_dir_listing:
            parts.append(f"<pre>{html.escape(self.model_dir_listing)}</pre>")
        return "<div class='mldeploy-check'>" + "".join(parts) + "</div>"


def run_entry_check(
    workspace: Workspace,
    entry_script: str | os.PathLike[str],
    models: Any,
    source_directory: str | os.PathLike[str] | None = None,
    data: Any = _NO_DATA,
    timeout: float = DEFAULT_TIMEOUT_S,
    headers: Mapping[str, str] | None = None,
) -> EntryCheckRun:
    """Run ``init()`` and ``run()`` once in a new interpreter, against registered models laid out as a service.

    Args:
        workspace: The workspace holding the models.
        entry_script: The ``score.py`` (relative to ``source_directory`` when that is given).
        models: What ``Model.deploy`` takes: registered ``Model`` objects, ``"name:version"``, ``"name"``
            (latest version), or none; ``AZUREML_MODEL_DIR`` follows the service rule (the version folder
            for one model, the ``azureml-models`` root otherwise).
        source_directory: A folder copied whole to ``<app root>/<its name>`` (as a deployment does).
        data: The request body for ``run()``: ``str``/``bytes`` sent as is, anything else JSON-encoded. When
            left out, the first model's ``sample_input`` is used; without one, only ``init()`` runs.
        timeout: Seconds before the check process is killed.
        headers: The request's headers (default :data:`DEFAULT_HEADERS`); ``run(..., request_headers)``
            and ``@rawhttp`` scripts see them.

    Returns:
        EntryCheckRun: The answer, or the traceback and the model folder listing. Failures of the user's
        code are results, not exceptions.

    Raises:
        NotFound: For a missing script or source directory, or a model that is not registered.
        InvalidArgument: For a malformed model id, an unusable source directory name or an unencodable
            ``data``.
    """
    from jupyter_mldeploy.inference_config import InferenceConfig

    config = InferenceConfig(entry_script, source_directory=source_directory)
    check = config.check()
    sources = resolve_model_sources(workspace, models)
    ids = tuple(source.id for source in sources)
    if not check.ok:
        return EntryCheckRun(entry_script=config.entry_script, models=ids, stage="static", problems=check.problems)
    if data is _NO_DATA:
        data = None
        if sources:
            from jupyter_mldeploy.registry import Model

            data = Model(workspace, sources[0].name, version=sources[0].version).sample_input
    body = encode_payload(data) if data is not None else None

    scratch = Path(tempfile.mkdtemp(prefix="mldeploy-check-"))
    try:
        app = build_app_folder(
            scratch / "app", config.entry_script, config.source_directory, sources, exclude=[workspace.path]
        )
        body_file = ""
        if body is not None:
            body_file = str(scratch / "request.body")
            Path(body_file).write_bytes(body)
        request_file = scratch / "request.json"
        request_file.write_text(json.dumps({
            "body_file": body_file, "headers": list((DEFAULT_HEADERS if headers is None else headers).items()),
        }), encoding="utf-8")
        result_file = scratch / "result.json"
        env = {key: value for key, value in os.environ.items() if not key.startswith(_LAYOUT_PREFIXES)}
        env.update(app.scoring_environment())
        env["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-m", "jupyter_mldeploy.server.trial_child", str(request_file), str(result_file)]
        start = time.monotonic()
        try:
            completed = subprocess.run(
                command, cwd=app.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )
            printed = completed.stdout.decode("utf-8", errors="replace")
            outcome = json.loads(result_file.read_text(encoding="utf-8")) if result_file.exists() else {
                "stage": "import", "error": f"the check process exited with code {completed.returncode}",
            }
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            printed = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            outcome = {"stage": "timeout", "error": f"killed after {time.monotonic() - start:.0f} s"}
        listing = model_dir_listing(str(app.model_dir))
    finally:
        remove_app_folder(scratch)
    stage = str(outcome.get("stage") or "import")
    return EntryCheckRun(
        entry_script=config.entry_script,
        models=ids,
        stage=stage,
        called_run=body is not None and stage in ("run", "done"),
        request=body.decode("utf-8", errors="replace") if body is not None else None,
        status=outcome.get("status"),
        response_headers=tuple((str(n), str(v)) for n, v in outcome.get("headers") or []),
        output=outcome.get("output"),
        error=outcome.get("error"),
        traceback=outcome.get("traceback"),
        printed=printed[-PRINTED_LIMIT:],
        model_dir_listing=listing,
        init_ms=outcome.get("init_ms"),
        run_ms=outcome.get("run_ms"),
    )


__all__ = ["DEFAULT_HEADERS", "EntryCheckRun", "run_entry_check"]
