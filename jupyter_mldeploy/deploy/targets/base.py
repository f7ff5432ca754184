"""The deployment-target contract: what the ``Webservice`` façade asks of any place a service can run.

Modelled on MLflow's ``BaseDeploymentClient`` (``mlflow/deployments/base.py``): the docstrings below are
the contract, and a target is found by name (:mod:`jupyter_mldeploy.deploy.targets.registry`). A target
receives a checked, runtime-neutral :class:`~jupyter_mldeploy.deploy.plan.DeploymentPlan` and keeps its
own facts (pids, container ids, generations) in the record's ``target_state``, which nothing else reads.
Callers never interpret :attr:`Observation.details`; they show them.

Every method is called by the façade; the façade holds the service's lock
(:meth:`~jupyter_mldeploy.deploy.service_store.ServiceStore.lock`) around ``create``, ``update``,
``settle`` and ``delete``, so a target never sees two changes of one service at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # annotations only: the deployment configuration checks target names through this package
    from jupyter_mldeploy.deploy.config import DeploymentConfiguration
    from jupyter_mldeploy.deploy.plan import DeploymentPlan
    from jupyter_mldeploy.deploy.service_store import ServiceStore
    from jupyter_mldeploy.deploy.state import ServiceRecord, ServiceState


@dataclass(frozen=True)
class Observation:
    """What a target sees of a service now.

    Attributes:
        state: The live state (``Transitioning``, ``Healthy``, ``Unhealthy``, ``Failed``, ``Unschedulable``,
            ``Deleted``).
        error: Why the service is ``Failed``/``Unhealthy``, or None.
        started_time: When the server now answering started (timezone-aware), or None when nothing runs.
        details: Target facts for display (``{"pid": 123}``, ``{"container": "..."}``); never interpreted.
    """

    state: ServiceState
    error: str | None = None
    started_time: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ServiceTarget(ABC):
    """A place services run: the process target, Docker, or a plug-in.

    Subclasses set :attr:`name` and implement the abstract methods. A target object holds no per-service
    state: everything it needs is in the store and the record, so any process can drive any service.
    """

    #: The name users give (``deployment_config.runtime``) and records store.
    name: ClassVar[str]
    #: v1's ``compute_type`` of the target's services.
    compute_type: ClassVar[str] = "Local"
    #: ``module:Class`` of the v1 façade class ``Webservice(ws, name)`` returns for the target's services
    #: (a ``Webservice`` subclass adding target-only members); empty for ``LocalWebservice``.
    webservice_class: ClassVar[str] = ""
    #: Seconds between two looks while ``wait_for_deployment`` waits (a remote API wants fewer calls).
    poll_interval_sec: ClassVar[float] = 0.1

    def check_configuration(self, config: DeploymentConfiguration) -> None:
        """Raise when ``config`` holds settings this target refuses; called by ``config.validate()``.

        Called only for ``computeType: "aks"`` configurations (the Kubernetes target checks v1's AKS rules);
        the default accepts everything. Must not touch the network.

        Raises:
            InvalidArgument: Naming the argument and the rule it breaks.
        """
        del config

    @abstractmethod
    def check_available(self) -> None:
        """Return when this target can deploy here; raise otherwise. Fast (a few seconds at most).

        Raises:
            DeploymentError: Naming what is missing and what to install or start (or which target to use).
        """

    @abstractmethod
    def create(self, store: ServiceStore, plan: DeploymentPlan, show_output: bool) -> ServiceRecord:
        """Start a new service for ``plan`` and save its record; return without waiting for ``init()``.

        The record must be saved before anything is started that could outlive a crash of the caller, so
        whatever runs is findable from the workspace. On failure the target removes what it created (the
        service folder, the rows, anything started) and raises: nothing half-made stays visible.

        Args:
            store: The workspace's services.
            plan: The checked plan (no service of that name exists).
            show_output: Stream build output while preparing.

        Returns:
            ServiceRecord: The saved record; the state reads ``Transitioning`` until ``init()`` returned.

        Raises:
            Conflict: When the port is taken (naming the holder).
            EnvironmentBuildError: When the environment (or image) cannot be built.
            DeploymentError: When the service cannot be started.
        """

    @abstractmethod
    def update(
        self, store: ServiceStore, record: ServiceRecord, plan: DeploymentPlan, wait: bool, show_output: bool
    ) -> None:
        """Switch the running service to ``plan`` with no failed request where the target can.

        With ``wait`` the switch is finished on return (adopted, or refused with the previous version still
        serving). Without ``wait`` it returns once the switch is under way: the state reads ``Transitioning``
        until :meth:`settle` (called by ``wait_for_deployment``) adopts or refuses it. A target that can only
        switch synchronously may finish before returning; callers cannot tell the difference.

        Raises:
            Conflict: When a new port is taken.
            EnvironmentBuildError: When a new environment cannot be built (nothing changed).
            DeploymentError: When the new version fails to start; the previous one keeps serving.
        """

    def settle(self, store: ServiceStore, record: ServiceRecord, timeout: float) -> None:
        """Finish a switch left under way by ``update(wait=False)``; do nothing when none is.

        Raises:
            DeploymentError: When the switch was refused (the previous version keeps serving); carries logs.
        """
        del store, record, timeout

    @abstractmethod
    def observe(self, store: ServiceStore, record: ServiceRecord) -> Observation:
        """Return the live state. Must not change anything and must answer within a few seconds."""

    @abstractmethod
    def logs(self, store: ServiceStore, record: ServiceRecord, num_lines: int | None) -> str:
        """Return the server's log: the last ``num_lines`` lines, or all of it for None."""

    @abstractmethod
    def follow_logs(self, store: ServiceStore, record: ServiceRecord, cursor: Any) -> tuple[str, Any]:
        """Return the complete log lines written since ``cursor`` and the cursor after them.

        ``cursor`` None means "since the latest start". Used by ``wait_for_deployment(show_output=True)``.
        """

    @abstractmethod
    def delete(self, store: ServiceStore, name: str) -> None:
        """Stop everything the service runs and remove its folder and rows. Idempotent.

        Must work from any process, on a half-created service, and when the record is missing or damaged
        (it then finds what runs from the workspace alone).
        """

    def scoring_uri(self, record: ServiceRecord) -> str:
        """The URI callers POST to: ``http://<host>:<port>/score`` (a wildcard host as ``127.0.0.1``)."""
        host = "127.0.0.1" if record.host in ("0.0.0.0", "", "::") else record.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{record.port}/score"
