"""``ResourceConfiguration``: the CPU, memory and GPU a model needs, as azureml SDK v1 records them.

v1 (``azureml.core.resource_configuration.ResourceConfiguration``) stores it with a model version
(``Model.register(..., resource_configuration=...)``) and a no-code deployment without a deployment
configuration takes its container's resources from it. Here it is kept in the registry row and applied the
same way (``jupyter_mldeploy.deploy.no_code.with_model_resources``)::

    from jupyter_mldeploy import Model, ResourceConfiguration

    Model.register(ws, "iris.pkl", "iris", model_framework=Model.Framework.SCIKITLEARN,
                   resource_configuration=ResourceConfiguration(cpu=0.5, memory_in_gb=1))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jupyter_mldeploy.errors import InvalidArgument

_EXAMPLE = "ResourceConfiguration(cpu=1, memory_in_gb=0.5, gpu=None)"


@dataclass(frozen=True)
class ResourceConfiguration:
    """The resources a model needs (v1 ``ResourceConfiguration``); checked when created.

    Args:
        cpu: CPU cores (a number > 0, fractions allowed), or None.
        memory_in_gb: Memory in GB (a number > 0), or None.
        gpu: GPUs (an integer >= 0), or None.

    Raises:
        InvalidArgument: For a value of the wrong type or out of range, naming the argument and an example.
    """

    cpu: float | None = None
    memory_in_gb: float | None = None
    gpu: int | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "memory_in_gb"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidArgument(
                    f"ResourceConfiguration {name} must be a number greater than 0 (e.g. {_EXAMPLE}), "
                    f"not {value!r}."
                )
            object.__setattr__(self, name, float(value))
        if self.gpu is not None and (isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0):
            raise InvalidArgument(
                f"ResourceConfiguration gpu must be a whole number of GPUs >= 0 (e.g. {_EXAMPLE}), not {self.gpu!r}."
            )

    def serialize(self) -> dict[str, Any]:
        """Return v1's JSON shape: ``{"cpu": 1.0, "memoryInGB": 0.5, "gpu": None}``."""
        return {"cpu": self.cpu, "memoryInGB": self.memory_in_gb, "gpu": self.gpu}

    @staticmethod
    def deserialize(payload: Any) -> ResourceConfiguration:
        """Build one from :meth:`serialize`'s shape (v1 ``ResourceConfiguration.deserialize``).

        Raises:
            InvalidArgument: When ``payload`` is not such an object, or holds other keys or bad values.
        """
        if not isinstance(payload, dict) or set(payload) - {"cpu", "memoryInGB", "gpu"}:
            raise InvalidArgument(
                f"A resource configuration must be an object with keys cpu, memoryInGB and gpu, not {payload!r}."
            )
        return ResourceConfiguration(payload.get("cpu"), payload.get("memoryInGB"), payload.get("gpu"))

    def container_resource_requirements(self) -> dict[str, Any]:
        """Return the deployment configuration's ``containerResourceRequirements`` for these resources (the
        keys that are set): ``{"cpu": 1.0, "memoryInGB": 0.5}``, plus ``"gpu"`` when given."""
        pairs = (("cpu", self.cpu), ("memoryInGB", self.memory_in_gb), ("gpu", self.gpu))
        return {key: value for key, value in pairs if value is not None}
