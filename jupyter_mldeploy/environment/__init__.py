"""Environments: the software a model runs in (Azure ML SDK v1's ``Environment`` and ``CondaDependencies``).

``Environment`` describes it and is registered in a workspace; ``build_local`` turns it into a virtual
environment with uv, cached per user by spec hash, and returns a :class:`BuiltEnvironment`.
"""

from __future__ import annotations

from jupyter_mldeploy.environment.build import BuiltEnvironment
from jupyter_mldeploy.environment.conda_dependencies import CondaDependencies
from jupyter_mldeploy.environment.environment import DockerSection, Environment, PythonSection

__all__ = ["BuiltEnvironment", "CondaDependencies", "DockerSection", "Environment", "PythonSection"]
