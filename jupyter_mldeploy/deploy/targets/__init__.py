"""Deployment targets: where a service runs, behind one interface (:class:`ServiceTarget`).

- :mod:`~jupyter_mldeploy.deploy.targets.base`: the contract (:class:`ServiceTarget`, :class:`Observation`).
- :mod:`~jupyter_mldeploy.deploy.targets.registry`: targets by name (:func:`get_target`), built-ins and plug-ins.
- :mod:`~jupyter_mldeploy.deploy.targets.supervised`: what targets running our supervisor share (spec and
  status files, the SIGHUP switch).
- :mod:`~jupyter_mldeploy.deploy.targets.process`: the ``process`` target (a detached local process).
- ``jupyter_mldeploy.docker.target``: the ``docker`` target.
"""

from __future__ import annotations

from jupyter_mldeploy.deploy.targets.base import Observation, ServiceTarget
from jupyter_mldeploy.deploy.targets.registry import get_target, target_names

__all__ = ["Observation", "ServiceTarget", "get_target", "target_names"]
