"""Batch scoring with Azure ML v1's ``ParallelRunStep`` contract, on this machine (loky) or a Dask cluster.

The batch entry script has ``init()`` (once per worker process) and ``run(mini_batch)`` (a pandas DataFrame
for tabular input, a list of file paths for file input; returns a DataFrame or a list, one element per
successful item). ``AZUREML_MODEL_DIR`` is laid out as for a web service. See docs/batch.md.

Example::

    from jupyter_mldeploy.batch import BatchJob, ParallelRunConfig

    config = ParallelRunConfig(entry_script="score_batch.py", error_threshold=10,
                               output_action="append_row", mini_batch_size="1MB")
    job = BatchJob.submit(ws, "diabetes-batch", config, "data/*.csv", ["diabetes:1"], "out")
    job.wait_for_completion(show_output=True)

Imports are lazy (PEP 562, as the top package): a worker process imports
``jupyter_mldeploy.batch.worker``, which runs this file first; importing ``BatchJob`` here eagerly would
load the deployment layers (a quarter of a second) into every worker and driver for nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BatchJob": "jupyter_mldeploy.batch.job",
    "JobFailed": "jupyter_mldeploy.batch.job",
    "list_jobs": "jupyter_mldeploy.batch.job",
    "progress_key": "jupyter_mldeploy.batch.job",
    "progress_line": "jupyter_mldeploy.batch.job",
    "ParallelRunConfig": "jupyter_mldeploy.batch.config",
    "FileInput": "jupyter_mldeploy.batch.inputs",
    "TabularInput": "jupyter_mldeploy.batch.inputs",
}

__all__ = ["BatchJob", "FileInput", "JobFailed", "ParallelRunConfig", "TabularInput", "list_jobs", "progress_key",
           "progress_line"]

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_mldeploy.batch.config import ParallelRunConfig
    from jupyter_mldeploy.batch.inputs import FileInput, TabularInput
    from jupyter_mldeploy.batch.job import BatchJob, JobFailed, list_jobs, progress_key, progress_line


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_mldeploy.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
