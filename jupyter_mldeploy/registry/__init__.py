"""The model registry: versioned, checksummed model files in a local workspace (v1 ``Model``).

:class:`Model` is the public API; :mod:`~jupyter_mldeploy.registry.store` holds the SQLite + files storage
and its integrity rules; :mod:`~jupyter_mldeploy.registry.lineage` records where a model came from;
:mod:`~jupyter_mldeploy.registry.samples` stores sample inputs and outputs and
:mod:`~jupyter_mldeploy.registry.resource_configuration` the resources a model needs.
"""

from __future__ import annotations

from jupyter_mldeploy.registry.model import Model
from jupyter_mldeploy.registry.resource_configuration import ResourceConfiguration
from jupyter_mldeploy.registry.samples import SampleData
from jupyter_mldeploy.registry.store import ModelFile, ModelRecord

__all__ = ["Model", "ModelFile", "ModelRecord", "ResourceConfiguration", "SampleData"]
