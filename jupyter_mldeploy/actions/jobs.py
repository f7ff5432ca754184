"""Batch jobs for the faces: the rows the deployments panel shows (the CLI's ``mldeploy batch list`` too)."""

from __future__ import annotations

from typing import Any

from jupyter_mldeploy.batch import list_jobs as batch_job_rows
from jupyter_mldeploy.workspace import Workspace


def list_jobs(workspace: Workspace) -> list[dict[str, Any]]:
    """Every batch job of ``workspace``, newest first, as JSON-safe rows.

    Args:
        workspace: The workspace.

    Returns:
        list[dict]: ``id``, ``name``, ``state`` (``Running``, ``Completed``, ``Failed``, ``Canceled``),
        ``progress`` (0..1 of mini-batches), ``miniBatches`` (``"done/total"``), ``items``, ``failed``,
        ``rowsPerSecond``, ``backend``, ``startTime``, ``endTime``, ``outputFile``, ``error``; see
        :func:`jupyter_mldeploy.batch.list_jobs`.
    """
    return batch_job_rows(workspace)
