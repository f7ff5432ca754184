"""Deployments the sidebar started and the Jupyter server runs in the background, until their service is healthy.

A deployment can take a while (an environment built with uv, the app folder laid out, the scoring server
started), longer than a browser should hold a request open, so ``POST models/{name}/{version}/deploy``
answers 202 at once and the deployment runs here, on a thread of its own: not on the event loop, and not on
the shared pool ``asyncio.to_thread`` uses, which a few slow builds would otherwise fill for every other
route. ``GET deploys`` lists what is under way (the service appears in ``GET services`` as soon as the
deployer created it, ``Transitioning`` while ``init()`` runs) and what failed (an environment that did not
build, a port taken meanwhile, ``init()``'s error); a job that ended with a healthy service is gone. A failed
job stays listed until dismissed (``DELETE deploys/{service}``) or deployed again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jupyter_mldeploy.errors import Conflict, MLDeployError, NotFound

#: ``DeployJob.state`` while the deployer runs, and once it raised.
DEPLOYING = "Deploying"
FAILED = "Failed"


@dataclass
class DeployJob:
    """One deployment the sidebar started.

    Attributes:
        service: The service name.
        model: The served version, ``"name:version"``.
        notes: What the faces say before deploying (which built-in entry script, which environment).
        started_time: When the job started (UTC).
        state: :data:`DEPLOYING` or :data:`FAILED`.
        error: Why it failed (the core error's one-line summary), or None.
        finished_time: When it failed, or None.
    """

    service: str
    model: str
    notes: list[str] = field(default_factory=list)
    started_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    state: str = DEPLOYING
    error: str | None = None
    finished_time: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{service, model, state, error, notes, startedTime, finishedTime}`` (times ISO 8601, UTC)."""
        return {
            "service": self.service,
            "model": self.model,
            "state": self.state,
            "error": self.error,
            "notes": list(self.notes),
            "startedTime": self.started_time.isoformat(),
            "finishedTime": self.finished_time.isoformat() if self.finished_time else None,
        }


class DeployJobs:
    """The background deployments of one Jupyter server, by service name (thread-safe).

    Args:
        log: Where a failure is logged (the server's log).
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._jobs: dict[str, DeployJob] = {}

    def start(self, job: DeployJob, deploy: Callable[[], object]) -> DeployJob:
        """Run ``deploy`` on a new thread, listed as ``job`` until it returns; a failure stays listed.

        Args:
            job: What to list meanwhile.
            deploy: The blocking deployment (returns once the service is healthy).

        Returns:
            The job.

        Raises:
            Conflict: When a deployment of the same service is still under way.
        """
        with self._lock:
            running = self._jobs.get(job.service)
            if running is not None and running.state == DEPLOYING:
                raise Conflict(f"Service {job.service!r} is being deployed ({running.model}) since "
                               f"{running.started_time.isoformat(timespec='seconds')}: wait for it to appear in "
                               "the services.")
            self._jobs[job.service] = job
        threading.Thread(target=self._run, args=(job, deploy), name=f"mldeploy-deploy-{job.service}",
                         daemon=True).start()
        return job

    def _run(self, job: DeployJob, deploy: Callable[[], object]) -> None:
        try:
            deploy()
        except MLDeployError as exc:
            self._fail(job, exc.summary)
        except Exception as exc:  # noqa: BLE001 - any failure must reach the sidebar, not only the log
            self._fail(job, f"{type(exc).__name__}: {exc}")
        else:
            with self._lock:
                if self._jobs.get(job.service) is job:
                    del self._jobs[job.service]

    def _fail(self, job: DeployJob, error: str) -> None:
        self._log.warning("mldeploy: deploying %s (%s) failed: %s", job.service, job.model, error)
        with self._lock:
            job.state, job.error, job.finished_time = FAILED, error, datetime.now(timezone.utc)

    def list(self) -> list[dict[str, Any]]:
        """Every job under way or failed, by service name."""
        with self._lock:
            return [self._jobs[name].to_dict() for name in sorted(self._jobs)]

    def dismiss(self, service: str) -> None:
        """Forget a failed job.

        Raises:
            NotFound: When no job of that service is listed.
            Conflict: When it is still under way.
        """
        with self._lock:
            job = self._jobs.get(service)
            if job is None:
                raise NotFound(f"No deployment of {service!r} is listed.")
            if job.state == DEPLOYING:
                raise Conflict(f"Service {service!r} is still being deployed; it cannot be dismissed.")
            del self._jobs[service]


__all__ = ["DEPLOYING", "FAILED", "DeployJob", "DeployJobs"]
