"""The child side of :mod:`jupyter_mldeploy.entry_check_run`: import score.py, call ``init()`` and ``run()`` once.

Run as ``python -m jupyter_mldeploy.entry_check_driver SCRIPT BODY_FILE RESULT_FILE`` with the working
folder at the app root and the variables a service gets (``AZUREML_MODEL_DIR`` ...). It needs only the
standard library (plus the scoring server's azureml stand-ins when importable), and calls ``run`` the way the
scoring server does: the body as a ``str`` for an undecorated ``run``, the JSON object's keys as keyword
arguments for an inference-schema decorated one, a request object for ``@rawhttp``. What happened is written
as JSON to ``RESULT_FILE``: ``stage`` (``import``, ``init``, ``run`` or ``done``), ``output``, ``error``,
``traceback``, ``init_ms``, ``run_ms``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
import time
import traceback
from typing import Any


def _jsonable(value: Any) -> Any:
    """numpy arrays/scalars -> lists/numbers, pandas frames -> records (as the scoring server encodes them)."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"run() returned a {type(value).__name__}, which is not JSON-serializable")


def _call_run(run: Any, body: bytes, shims: Any) -> Any:
    params = inspect.signature(run).parameters
    extra: dict[str, Any] = {"request_headers": {"Content-Type": "application/json"}} if "request_headers" in params else {}
    if shims is not None and shims.raw_http_requested():
        request = shims.AMLRequest("POST", "/score", b"", shims.Headers([("content-type", "application/json")]), body)
        return run(request)
    decorated = False
    try:
        from inference_schema.schema_util import is_schema_decorated

        decorated = bool(is_schema_decorated(run))
    except ImportError:
        decorated = False
    if decorated:
        payload = json.loads(body.decode("utf-8"))
        if not isinstance(payload, dict):
            raise TypeError("The request body must be a JSON object whose keys are run()'s parameter names.")
        kwargs = {name: value for name, value in payload.items() if name in params and name != "request_headers"}
        return run(**kwargs, **extra)
    first = next(name for name in params if name != "request_headers")
    return run(**{first: body.decode("utf-8")}, **extra)


def main(argv: list[str]) -> int:
    """Import the script, call init() and (when a body is given) run(); write the outcome; return 0."""
    script, body_file, result_file = argv
    result: dict[str, Any] = {"stage": "import"}
    app_root = os.environ.get("AML_APP_ROOT") or os.getcwd()
    for folder in (os.path.dirname(script), app_root):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    shims = None
    try:
        from jupyter_mldeploy.server import shims as server_shims

        server_shims.install_finder()
        shims = server_shims
    except ImportError:  # an interpreter without jupyter_mldeploy: real azureml packages, if any, are used
        shims = None
    try:
        spec = importlib.util.spec_from_file_location("entry_module", script)
        if spec is None or spec.loader is None:
            raise ImportError(f"{script} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result["stage"] = "init"
        start = time.perf_counter()
        module.init()
        result["init_ms"] = (time.perf_counter() - start) * 1000
        if body_file:
            result["stage"] = "run"
            with open(body_file, "rb") as handle:
                body = handle.read()
            driver = getattr(module, "driver_module", None)
            run = driver.run if driver is not None and hasattr(driver, "run") else module.run
            start = time.perf_counter()
            output = _call_run(run, body, shims)
            result["run_ms"] = (time.perf_counter() - start) * 1000
            if shims is not None and isinstance(output, shims.AMLResponse):
                output = {"status_code": output.status_code, "body": output.get_data(as_text=True)}
            result["output"] = json.loads(json.dumps(output, default=_jsonable))
        result["stage"] = "done"
    except BaseException as exc:  # noqa: B036 - the user's code may raise anything, SystemExit included
        result["error"] = f"{type(exc).__name__}: {exc}"
        frames = exc.__traceback__
        # Start the traceback at the user's code: the driver's own frames only add noise.
        while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
            frames = frames.tb_next
        result["traceback"] = "".join(traceback.format_exception(type(exc), exc, frames))
    sys.stdout.flush()
    sys.stderr.flush()
    with open(result_file, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
