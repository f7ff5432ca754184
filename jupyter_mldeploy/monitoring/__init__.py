"""Model data collection (v1 ``azureml.monitoring``): record a service's inputs and predictions, read them back.

``from jupyter_mldeploy.monitoring import ModelDataCollector`` in a ``score.py`` (or, unchanged,
``from azureml.monitoring import ModelDataCollector``), deploy with ``collect_model_data=True``, then
``service.get_collected_data("inputs")``. See docs/monitoring.md.
"""

from __future__ import annotations

from jupyter_mldeploy.monitoring.store import collected_files, model_data_folder, read_collected_data
from jupyter_mldeploy.server.data_collector import DESIGNATIONS, ModelDataCollector

__all__ = ["DESIGNATIONS", "ModelDataCollector", "collected_files", "model_data_folder", "read_collected_data"]
