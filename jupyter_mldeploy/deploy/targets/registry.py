"""Deployment targets by name: the built-ins plus the ``jupyter_mldeploy.targets`` entry-point group.

As MLflow's ``deployments/plugin_manager.py``: a target is named by a ``module:Class`` reference and imported
only when used, so ``import jupyter_mldeploy`` never loads the Docker SDK, and a third party adds a target
by declaring an entry point in its own package::

    [project.entry-points."jupyter_mldeploy.targets"]
    mytarget = "my_package.target:MyTarget"

Adding a built-in target is one line in :data:`BUILTIN_TARGETS`.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from jupyter_mldeploy.deploy.targets.base import ServiceTarget
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument

ENTRY_POINT_GROUP = "jupyter_mldeploy.targets"

#: Built-in targets: name -> ``module:Class``.
BUILTIN_TARGETS: dict[str, str] = {
    "process": "jupyter_mldeploy.deploy.targets.process:ProcessTarget",
    "docker": "jupyter_mldeploy.docker.target:DockerTarget",
    "kubernetes": "jupyter_mldeploy.kubernetes.target:KubernetesTarget",
}


def _references() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(BUILTIN_TARGETS)  # a plug-in cannot replace a built-in
    return found


def target_names() -> list[str]:
    """The names of every known target (built-ins first, then plug-ins, sorted)."""
    plugins = sorted(set(_references()) - set(BUILTIN_TARGETS))
    return [*BUILTIN_TARGETS, *plugins]


def check_target_name(name: str) -> None:
    """Raise unless ``name`` is a known target.

    Raises:
        InvalidArgument: Listing the known targets.
    """
    if name not in _references():
        raise InvalidArgument(
            f"Unknown runtime (deployment target) {name!r}: use one of {', '.join(target_names())}."
        )


@cache
def get_target(name: str) -> ServiceTarget:
    """Return the target called ``name`` (imported on first use, then reused).

    Raises:
        InvalidArgument: For an unknown name, listing the known ones.
        DeploymentError: When a plug-in's module cannot be imported (names the package to install or fix).
    """
    check_target_name(name)
    reference = _references()[name]
    module_name, _, class_name = reference.partition(":")
    try:
        target_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise DeploymentError(
            f"Deployment target {name!r} ({reference}) cannot be loaded: {exc}. Install or repair the package "
            "that provides it."
        ) from exc
    if not (isinstance(target_class, type) and issubclass(target_class, ServiceTarget)):
        raise DeploymentError(f"Deployment target {name!r} ({reference}) is not a ServiceTarget subclass.")
    return target_class()
