"""Helpers of the batch tests: the v1 batch script, a slow script, writing scripts, finding a process's children."""

from __future__ import annotations

import textwrap
from pathlib import Path

import psutil
from sklearn.datasets import load_diabetes

#: The v1 batch script of the docs: load the model in init(), predict a DataFrame in run().
SCORE_BATCH = textwrap.dedent('''
    import os
    import joblib

    def init():
        global model
        model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "diabetes_ridge.pkl"))

    def run(mini_batch):
        return model.predict(mini_batch[FEATURES]).tolist()
''')

#: Every mini-batch takes a little while, so a job can be killed or cancelled half-way.
STEADY = textwrap.dedent('''
    import time

    def init():
        pass

    def run(mini_batch):
        time.sleep(0.15)
        return mini_batch["id"].tolist()
''')


def write_script(folder: Path, body: str, name: str = "score_batch.py") -> Path:
    """Write a batch script; ``FEATURES`` in the body is the feature column list."""
    path = folder / name
    columns = list(load_diabetes(as_frame=True).data.columns)
    path.write_text(body.replace("FEATURES", repr(columns)), encoding="utf-8")
    return path


def children_of(pid: int) -> list[psutil.Process]:
    """Live descendants of ``pid``."""
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []
