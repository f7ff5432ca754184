"""The child process of a trial run (:mod:`jupyter_mldeploy.deploy.trial_run`): load score.py, ``init()``, one request.

Run as ``python -m jupyter_mldeploy.server.trial_child REQUEST_FILE RESULT_FILE`` in the app root, with the
variables a deployment's scoring process gets (``AML_APP_ROOT``, ``AZUREML_ENTRY_SCRIPT``,
``AZUREML_MODEL_DIR``, ...). It does what a scoring worker does, with the worker's own parts: the script
is found and ``sys.path`` prepared by :class:`~jupyter_mldeploy.server.layout.ScriptLocation`, loaded by
:class:`~jupyter_mldeploy.server.user_script.UserScript`, called by
:meth:`~jupyter_mldeploy.server.user_script.UserScript.invoke_run` and answered by
:func:`~jupyter_mldeploy.server.encoding.encode_result`; so the result is what the server would answer.

``REQUEST_FILE`` is JSON ``{"body_file": path or "", "headers": [[name, value], ...]}`` (no body file: only
``init()`` runs). ``RESULT_FILE`` receives JSON: ``stage`` (``import``, ``init``, ``run`` or ``done``),
``error``, ``traceback``, ``init_ms``, ``run_ms``, and when ``run()`` was called ``status``,
``headers``, ``body`` (text) and ``output`` (the body JSON-decoded when it is JSON).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

#: Frames from this package and the scoring server are not the user's: a traceback starts after them.
_OWN_FOLDERS = (str(Path(__file__).resolve().parent.parent), )


def _user_traceback(exc: BaseException) -> str:
    frames = exc.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename.startswith(_OWN_FOLDERS):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(exc), exc, frames))


def _answer(result: dict[str, Any], status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    result["status"] = status
    result["headers"] = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]
    result["body"] = text
    content_type = next((v for n, v in result["headers"] if n.lower() == "content-type"), "")
    try:
        result["output"] = json.loads(text) if "json" in content_type.lower() else text
    except ValueError:
        result["output"] = text


def trial(request_file: str) -> dict[str, Any]:
    """Load the script, call ``init()`` and, when a body is given, ``run()`` once; return what happened.

    Args:
        request_file: The JSON request description (see the module docstring).

    Returns:
        dict[str, Any]: The result (see the module docstring); failures of the user's code are in it.
    """
    from jupyter_mldeploy.server import shims
    from jupyter_mldeploy.server.encoding import encode_result
    from jupyter_mldeploy.server.layout import ScriptLocation
    from jupyter_mldeploy.server.user_script import ClientError, UserScript

    with open(request_file, encoding="utf-8") as handle:
        request = json.load(handle)
    result: dict[str, Any] = {"stage": "import"}
    location = ScriptLocation.from_environ(os.environ)
    location.prepare_sys_path()
    shims.install_finder()
    try:
        script = UserScript(location.entry_script)
        result["stage"] = "init"
        start = time.perf_counter()
        script.init()
        result["init_ms"] = (time.perf_counter() - start) * 1000
        if request.get("body_file"):
            result["stage"] = "run"
            body = Path(request["body_file"]).read_bytes()
            headers = shims.Headers([(str(name), str(value)) for name, value in request.get("headers") or []])
            start = time.perf_counter()
            try:
                value = script.invoke_run(body, headers, method="POST")
            except ClientError as exc:
                # Refused before run() was called, with the server's status and message.
                _answer(result, exc.status, [(b"content-type", b"application/json")],
                        json.dumps({"message": exc.message}).encode())
                result["error"] = f"The server answers {exc.status}: {exc.message}"
                return result
            result["run_ms"] = (time.perf_counter() - start) * 1000
            try:
                answer = encode_result(value)
            except TypeError as exc:
                result["error"] = f"run() returned a value with no JSON form (the server answers 500): {exc}"
                return result
            _answer(result, answer.status, answer.headers, answer.body)
        result["stage"] = "done"
    except BaseException as exc:  # noqa: B036 - the user's code may raise anything, SystemExit included
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = _user_traceback(exc)
    return result


def main(argv: list[str]) -> int:
    """``REQUEST_FILE RESULT_FILE``: run :func:`trial` and write its result; return 0."""
    request_file, result_file = argv
    result = trial(request_file)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(result_file, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
