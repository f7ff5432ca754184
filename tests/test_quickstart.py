"""The README's first command, ``./scripts/quickstart``, run as a new user runs it.

It must print what the README's example output shows, line for line (numbers, port and version aside), and
nothing else: pip, papermill and the kernel's warnings and the service's access log go to the log file it
names. The version it says it registered is the one the registry holds, one more than before the run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from jupyter_mldeploy import Model
from jupyter_mldeploy.errors import NotFound
from jupyter_mldeploy.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "quickstart"
MODEL_NAME = "diabetes-ridge"  # the notebook's parameter
# A pip install (when the venv is fresh) plus a notebook that deploys and calls a service.
TIMEOUT_S = 900

NUMBER = r"\d+(?:\.\d+)?"


def readme_example() -> list[str]:
    """The lines of the README block that follows "Example output of the first:"."""
    text = (REPO / "README.md").read_text()
    found = re.search(r"Example output of the first:\s*```\n(.*?)```", text, re.S)
    assert found, "README.md has no 'Example output of the first:' block"
    return found.group(1).splitlines()


def line_pattern(line: str) -> re.Pattern[str]:
    """``line`` with each number (version, port, prediction) free to differ."""
    parts = re.split(NUMBER, line)
    return re.compile(NUMBER.join(re.escape(part) for part in parts))


def latest_version() -> int:
    """The newest version of the quickstart's model, 0 before its first run."""
    try:
        ws = Workspace.get(QUICKSTART / ".mldeploy")
    except NotFound:  # no workspace yet: the first run creates it
        return 0
    models = Model.list(ws, name=MODEL_NAME, latest=True)
    return models[0].version if models else 0


@pytest.mark.slow
def test_quickstart_prints_what_the_readme_shows() -> None:
    before = latest_version()
    env = {key: value for key, value in os.environ.items() if key != "MLDEPLOY_WORKSPACE"}
    done = subprocess.run(
        [str(REPO / "scripts" / "quickstart")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stderr == ""

    printed = done.stdout.splitlines()
    expected = readme_example()
    assert len(printed) == len(expected), f"printed:\n{done.stdout}\nREADME shows:\n" + "\n".join(expected)
    for got, shown in zip(printed, expected, strict=True):
        assert line_pattern(shown).fullmatch(got), f"printed {got!r} where the README shows {shown!r}"

    # the version it names is the registry's newest, one more than before this run
    registered = re.search(rf"Registered {MODEL_NAME}:(\d+)\b", done.stdout)
    assert registered, done.stdout
    assert int(registered.group(1)) == latest_version() == before + 1

    # what it kept: the whole log (with papermill's and the kernel's lines) and the executed notebook
    log = (QUICKSTART / "quickstart.log").read_text()
    assert "Executing notebook with kernel" in log
    notebook = nbformat.read(QUICKSTART / "01_quickstart.out.ipynb", as_version=4)
    summary = [cell for cell in notebook.cells if "summary" in cell.metadata.get("tags", [])]
    assert summary and summary[0].get("execution_count")


def test_line_pattern_lets_only_numbers_differ() -> None:
    pattern = line_pattern("Scoring URI: http://127.0.0.1:39615/score")
    assert pattern.fullmatch("Scoring URI: http://127.0.0.1:41002/score")
    assert not pattern.fullmatch("Scoring URI: http://localhost:41002/score")
    assert not pattern.fullmatch("[IPKernelApp] WARNING | Kernel is running over TCP without encryption.")
