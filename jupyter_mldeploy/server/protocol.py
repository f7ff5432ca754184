"""The files through which a deployment target drives the supervisor: the worker spec and the status file.

Any process can drive a running scoring server with these two files and two signals, which is what lets a
new kernel, the CLI or the Jupyter server manage a service another process started:

* the **spec file** (``--spec-file``, written by the target, re-read on ``SIGHUP``): :class:`SpecFile`;
* the **status file** (``--status-file``, written atomically by the supervisor): :class:`SupervisorStatus`;
* ``SIGHUP``: start a new worker generation from the spec file and retire the old one once every new worker's
  ``init()`` returned (the old keeps serving if it fails; ``last_reload`` says so); ``SIGTERM``: graceful exit.

Both files are JSON objects; unknown keys are ignored, so either side may add fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class ProtocolError(ValueError):
    """A spec or status file whose content does not have the documented shape."""


@dataclass(frozen=True)
class SpecFile:
    """What the next worker generation runs (the spec file's content).

    Attributes:
        python: Interpreter for the workers, or None for the supervisor's own.
        cwd: Working directory of the workers (the app root), or None for ``AML_APP_ROOT``.
        env: Variables merged over the supervisor's environment (``AZUREML_MODEL_DIR`` ...).
        worker_count: Workers in the generation, or None for the server's setting.
    """

    python: str | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    worker_count: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object to write."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SpecFile:
        """Read a spec file's JSON content.

        Raises:
            ProtocolError: When it is not an object, ``env`` is not an object, or ``worker_count`` < 1.
        """
        if not isinstance(data, dict):
            raise ProtocolError("must hold a JSON object")
        env = data.get("env") or {}
        if not isinstance(env, dict):
            raise ProtocolError("'env' must be an object of strings")
        count = data.get("worker_count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ProtocolError("worker_count must be an integer >= 1")
        return cls(
            python=str(data["python"]) if data.get("python") else None,
            cwd=str(data["cwd"]) if data.get("cwd") else None,
            env={str(k): str(v) for k, v in env.items()},
            worker_count=count,
        )


@dataclass(frozen=True)
class ReloadReport:
    """The outcome of the latest ``SIGHUP`` switch.

    Attributes:
        generation: The number of the generation that was started (every attempt gets a new number).
        ok: True when it was adopted, False when its ``init()`` failed and the old generation kept serving.
        error: The failure (often a traceback), or None.
    """

    generation: int
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class SupervisorStatus:
    """The status file's content.

    Attributes:
        state: ``Transitioning`` (``init()`` running), ``Healthy`` or ``Failed``.
        pid: The supervisor's pid.
        port: The bound port.
        host: The bound interface.
        generation: The serving worker generation, or None before the first is ready.
        workers: The serving workers' pids.
        error: Why the server is ``Failed``, or None.
        last_reload: The latest switch's outcome, or None when there was none.
        updated: ISO 8601 UTC time of the write.
    """

    state: str
    pid: int | None = None
    port: int | None = None
    host: str | None = None
    generation: int | None = None
    workers: list[int] = field(default_factory=list)
    error: str | None = None
    last_reload: ReloadReport | None = None
    updated: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object to write."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SupervisorStatus:
        """Read a status file's JSON content (unknown keys ignored).

        Raises:
            ProtocolError: When it is not an object or lacks ``state``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("state"), str):
            raise ProtocolError("must hold a JSON object with a 'state'")
        last = data.get("last_reload")
        report = None
        if isinstance(last, dict) and isinstance(last.get("generation"), int):
            report = ReloadReport(int(last["generation"]), bool(last.get("ok")), last.get("error"))
        generation = data.get("generation")
        return cls(
            state=data["state"],
            pid=data.get("pid") if isinstance(data.get("pid"), int) else None,
            port=data.get("port") if isinstance(data.get("port"), int) else None,
            host=data.get("host") if isinstance(data.get("host"), str) else None,
            generation=generation if isinstance(generation, int) else None,
            workers=[int(w) for w in data.get("workers") or [] if isinstance(w, int)],
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            last_reload=report,
            updated=data.get("updated") if isinstance(data.get("updated"), str) else None,
        )
