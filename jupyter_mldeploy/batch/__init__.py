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
"""

from __future__ import annotations

from jupyter_mldeploy.batch.config import ParallelRunConfig
from jupyter_mldeploy.batch.inputs import FileInput, TabularInput
from jupyter_mldeploy.batch.job import BatchJob, JobFailed, list_jobs, progress_key, progress_line

__all__ = ["BatchJob", "FileInput", "JobFailed", "ParallelRunConfig", "TabularInput", "list_jobs", "progress_key",
           "progress_line"]
