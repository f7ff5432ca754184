"""Fixtures for the batch scoring tests: a small registered Ridge model, its data, and batch scripts.

Data stay small (hundreds of rows) so each job takes seconds; the large figures are the benchmark's
(benchmarks/batch_scoring.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.workspace import Workspace


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path, Ridge]:
    """The diabetes features with an ``id`` column, the pickled Ridge model and the model itself."""
    folder = tmp_path_factory.mktemp("diabetes")
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(features, target)
    path = folder / "diabetes_ridge.pkl"
    joblib.dump(model, path)
    frame = features.copy()
    frame.insert(0, "id", np.arange(len(frame)))
    return frame, path, model


@pytest.fixture(autouse=True)
def drivers_exit_after_their_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs of these tests run on their own driver, which exits with the job (``keep_warm=0``): a warm
    driver and its two workers would otherwise stay 300 s after every test. The warm-driver tests pass
    ``keep_warm`` explicitly (tests/batch/test_batch_warm.py)."""
    monkeypatch.setenv("MLDEPLOY_BATCH_KEEP_WARM", "0")


@pytest.fixture
def scored_workspace(workspace: Workspace, diabetes: tuple[pd.DataFrame, Path, Ridge]) -> Workspace:
    """A workspace with ``diabetes:1`` registered."""
    Model.register(workspace, model_path=str(diabetes[1]), model_name="diabetes")
    return workspace


@pytest.fixture
def no_stray_workers(tmp_path: Path) -> Iterator[None]:
    """Fail when a driver or loky worker of this test is still alive at its end.

    This test's processes are told apart by their working folder, which lies under ``tmp_path`` (the
    driver runs in the job folder, its workers inherit it, then move to the app folder): other pytest
    sessions running batch jobs at the same time are not counted.
    """
    def batch_processes() -> set[int]:
        found = set()
        for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            mine = (proc.info.get("cwd") or "").startswith(str(tmp_path))
            if mine and ("jupyter_mldeploy.batch.driver" in cmd or "LokyProcess" in cmd):
                found.add(proc.pid)
        return found

    yield
    deadline = time.monotonic() + 10
    while (left := batch_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"batch processes left behind: {sorted(left)}"
