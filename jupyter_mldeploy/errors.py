"""Exceptions raised by jupyter_mldeploy.

One root, :class:`MLDeployError`, carrying an HTTP status (as MLflow's ``MlflowException`` and BentoML's
``BentoMLException`` do), so the CLI, the magics and the REST handlers map any domain error the same way:
the CLI prints :attr:`MLDeployError.summary` and exits 1, magics raise IPython's ``UsageError`` with the
summary, panels show it in red, handlers answer ``to_dict()`` with :attr:`MLDeployError.http_status`.
"""

from __future__ import annotations

import re
from http import HTTPStatus

# The last line of a Python traceback: ``ValueError: bad``, ``pkg.mod.CustomError``, ``KeyboardInterrupt``.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
_TRACEBACK = "Traceback (most recent call last)"


def headline(text: str) -> str:
    """Summarize a report that may hold a traceback as one line.

    The lines before the traceback are joined with spaces; when a traceback follows, its exception line
    (``ValueError: bad``) is added in parentheses, so the reason survives without the stack.

    Args:
        text: A message, possibly several lines, possibly ending in a Python traceback.

    Returns:
        str: One line without newlines; empty for a blank text.
    """
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    head: list[str] = []
    for line in lines:
        cut = line.find(_TRACEBACK)
        if cut >= 0:
            if line[:cut].strip():
                head.append(line[:cut].rstrip(" :"))
            break
        head.append(line.strip(" -"))
    first = " ".join(head).rstrip(" :")
    exception = next((line for line in reversed(lines) if _EXCEPTION_LINE.match(line)), None)
    if exception and len(head) < len(lines) and exception not in first:
        return f"{first} ({exception})" if first else exception
    return first


class MLDeployError(Exception):
    """Root of every error jupyter_mldeploy raises on purpose.

    Args:
        message: One sentence naming what is wrong and, where possible, how to fix it.

    Attributes:
        http_status: The HTTP status a REST layer answers with for this error.
    """

    http_status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def summary(self) -> str:
        """The error as one line (see :func:`headline`): what the CLI prints, magics raise, panels show."""
        return headline(self.message)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON body a REST handler sends: ``{"message", "error", "status"}``."""
        return {"message": self.message, "error": type(self).__name__, "status": int(self.http_status)}


class InvalidArgument(MLDeployError, ValueError):
    """A caller passed a value that breaks a documented rule (HTTP 400)."""

    http_status = HTTPStatus.BAD_REQUEST


class NotFound(MLDeployError, LookupError):
    """A named model, environment, service or workspace does not exist (HTTP 404)."""

    http_status = HTTPStatus.NOT_FOUND


class Conflict(MLDeployError):
    """The request clashes with what exists: a taken port, a name in use, a model a service uses (HTTP 409)."""

    http_status = HTTPStatus.CONFLICT


class WorkspaceError(MLDeployError):
    """The workspace folder cannot be used as it is (wrong layout version, unreadable database)."""

    http_status = HTTPStatus.INTERNAL_SERVER_ERROR


class IntegrityError(MLDeployError):
    """Stored files no longer match the checksums recorded when they were registered."""

    http_status = HTTPStatus.INTERNAL_SERVER_ERROR


class EnvironmentBuildError(MLDeployError):
    """An environment could not be built; the message names the package or step and the way out."""

    http_status = HTTPStatus.UNPROCESSABLE_ENTITY


class DeploymentError(MLDeployError):
    """A service failed to start or to change state.

    Args:
        message: What failed.
        logs: The tail of the scoring server's log (for an ``init()`` failure: the traceback and the
            listing of ``AZUREML_MODEL_DIR``), shown after the message.
    """

    http_status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, logs: str | None = None) -> None:
        full = message if not logs else f"{message}\n{logs.rstrip()}"
        super().__init__(full)
        self.reason = message
        self.logs = logs or ""

    @property
    def summary(self) -> str:
        """The failure as one line: the message plus, when the log tail ends in a traceback, its exception."""
        first = headline(self.reason)
        exception = headline(f"{_TRACEBACK}\n{self.logs}") if _TRACEBACK in self.logs else ""
        return f"{first} ({exception})" if exception and exception not in first else first


class ScoringError(MLDeployError):
    """A call to a service's ``/score`` answered with an error status.

    Args:
        message: The server's ``{"message": ...}`` text.
        status_code: The HTTP status the service answered with.
        request_id: The ``x-request-id`` of the failed request, to find it in the logs.
    """

    http_status = HTTPStatus.BAD_GATEWAY

    def __init__(self, message: str, status_code: int, request_id: str | None = None) -> None:
        suffix = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status_code}: {message}{suffix}")
        self.status_code = status_code
        self.request_id = request_id
        self.server_message = message
