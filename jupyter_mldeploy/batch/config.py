"""``ParallelRunConfig``: how a batch job calls the entry script, with Azure ML v1's names and defaults.

The arguments are ``azureml.pipeline.steps.ParallelRunConfig``'s (SDK v1). Every value is checked when the
config is made; a bad one is an :class:`~jupyter_mldeploy.errors.InvalidArgument` naming the argument and
the allowed range, so a job never starts with a config it would reject half-way.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jupyter_mldeploy.errors import InvalidArgument

#: ``output_action`` values (v1): every returned row to one file, or only the counts.
APPEND_ROW = "append_row"
SUMMARY_ONLY = "summary_only"
#: v1's name of the ``append_row`` output file.
DEFAULT_APPEND_ROW_FILE = "parallel_run_step.txt"
#: ``mini_batch_size`` defaults (v1): files per mini-batch for file input, bytes for tabular input.
DEFAULT_FILES_PER_BATCH = 10
DEFAULT_TABULAR_BATCH = "1MB"
#: Accepted ``mini_batch_size`` for tabular input, in bytes: 1 KB to 2 GB.
MIN_TABULAR_BYTES = 1024
MAX_TABULAR_BYTES = 2 * 1024**3
#: Accepted ``mini_batch_size`` for file input (files per mini-batch).
MAX_FILES_PER_BATCH = 100_000
_LOGGING_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?B?)\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Return a tabular ``mini_batch_size`` in bytes: ``"64KB"``, ``"1MB"``, ``"2GB"`` or a byte count.

    Units are binary, as v1's (``1KB`` = 1024 bytes).

    Args:
        value: An int (bytes) or a string ``<digits>[B|KB|MB|GB]``, case-insensitive.

    Returns:
        int: Bytes.

    Raises:
        InvalidArgument: For another form, or a size outside 1KB..2GB.
    """
    if isinstance(value, bool):
        raise InvalidArgument(f"mini_batch_size must be a size such as '1MB', not {value!r}.")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise InvalidArgument(
                f"mini_batch_size {value!r} is not a size: for tabular input give bytes with a unit, "
                "e.g. '64KB', '1MB', '10MB' (1KB to 2GB)."
            )
        unit = match.group(2).upper()
        size = int(match.group(1)) * _UNITS[unit if unit.endswith("B") or not unit else unit + "B"]
    if not MIN_TABULAR_BYTES <= size <= MAX_TABULAR_BYTES:
        raise InvalidArgument(f"mini_batch_size {value!r} is out of range: for tabular input use 1KB to 2GB.")
    return size


def parse_file_count(value: int | str) -> int:
    """Return a file-input ``mini_batch_size``: files per mini-batch, 1 to 100000.

    Raises:
        InvalidArgument: For something other than a whole number in range.
    """
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_FILES_PER_BATCH:
        raise InvalidArgument(
            f"mini_batch_size {value!r} is out of range: for file input give a number of files, 1 to "
            f"{MAX_FILES_PER_BATCH}."
        )
    return int(text)


def _whole(name: str, value: Any, low: int, high: int | None = None, *, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        upper = f" to {high}" if high is not None else " or more"
        raise InvalidArgument(f"{name} must be a whole number {low}{upper}, not {value!r}.")


@dataclass
class ParallelRunConfig:
    """How to run a batch entry script over an input, as v1's ``ParallelRunConfig``.

    Args:
        entry_script: The batch script, with ``init()`` (once per worker process) and ``run(mini_batch)``
            (a pandas DataFrame for tabular input, a list of file paths for file input; returns a DataFrame
            or a list whose elements each count as one successful input item). Relative to
            ``source_directory`` when that is given.
        error_threshold: Failed items allowed over the whole input (an item fails when ``run`` returned fewer
            elements than it got, or its mini-batch failed every try); the job fails when the count goes
            above it. -1 ignores failed items.
        output_action: ``"append_row"`` (every returned row to one file in the output folder, v1's format) or
            ``"summary_only"`` (only the counts; the script writes its own output).
        environment: The :class:`~jupyter_mldeploy.environment.Environment` the script needs (v1 ran the step
            in it), or None. Workers are not started in a built environment: loky workers run the
            interpreter that runs the job, so at submit the job checks that this interpreter satisfies the
            environment (its Python version and requirement lines) and refuses, naming what is missing,
            when it does not (docs/batch.md, "Environment"). Dask workers on a ``tcp://`` cluster run their
            own interpreter, which the cluster provides.
        source_directory: A folder copied with the script (as for a web service); None copies the script
            alone.
        mini_batch_size: File input: files per mini-batch (default 10). Tabular input: bytes of input per
            mini-batch, ``"64KB"``, ``"1MB"`` (default), ``"10MB"``...
        process_count_per_node: Worker processes (loky, and dask ``scheduler="local"``); default: the core
            count.
        node_count: Machines; 1 for loky (one machine). With dask the cluster decides; recorded.
        run_invocation_timeout: Seconds one ``run()`` call may take before it is stopped and retried.
        run_max_try: Tries of a mini-batch that raises or times out (1 = no retry).
        append_row_file_name: Name of the ``append_row`` output file (default ``parallel_run_step.txt``).
        allowed_failed_count: Failed mini-batches allowed (None: no limit); a mini-batch fails when ``run``
            raised or timed out every try, or returned fewer elements than it got.
        allowed_failed_percent: Failed mini-batches allowed, as a percentage of all mini-batches (None: no
            limit).
        logging_level: The job log's level: DEBUG, INFO, WARNING, ERROR or CRITICAL.
        environment_variables: Extra variables set in every worker before ``init()``.

    Raises:
        InvalidArgument: For any value outside its range; the message names the argument.
    """

    entry_script: str
    error_threshold: int
    output_action: str
    environment: Any = None
    source_directory: str | None = None
    mini_batch_size: int | str | None = None
    process_count_per_node: int | None = None
    node_count: int = 1
    run_invocation_timeout: int = 60
    run_max_try: int = 3
    append_row_file_name: str | None = None
    allowed_failed_count: int | None = None
    allowed_failed_percent: float | None = None
    logging_level: str = "INFO"
    environment_variables: dict[str, str] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.entry_script, (str, os.PathLike)) or not str(self.entry_script).strip():
            raise InvalidArgument("entry_script must name the batch script (a .py file with init() and run()).")
        # An Environment (checked against this interpreter at submit), or its {"name", "version"} record.
        if self.environment is not None and not isinstance(self.environment, dict) and not (
            hasattr(self.environment, "python") and hasattr(self.environment, "name")
        ):
            raise InvalidArgument(
                f"environment must be an Environment (Environment.get(ws, name) or Environment.from_pip_requirements"
                f"(...)) or None, not {type(self.environment).__name__}."
            )
        _whole("error_threshold", self.error_threshold, -1)
        if self.output_action not in (APPEND_ROW, SUMMARY_ONLY):
            raise InvalidArgument(
                f"output_action must be {APPEND_ROW!r} or {SUMMARY_ONLY!r}, not {self.output_action!r}."
            )
        if self.mini_batch_size is not None and not isinstance(self.mini_batch_size, (int, str)):
            raise InvalidArgument(f"mini_batch_size must be a number of files or a size such as '1MB', not {self.mini_batch_size!r}.")
        _whole("process_count_per_node", self.process_count_per_node, 1, 256, none_ok=True)
        _whole("node_count", self.node_count, 1, 1000)
        _whole("run_invocation_timeout", self.run_invocation_timeout, 1, 7 * 24 * 3600)
        _whole("run_max_try", self.run_max_try, 1, 100)
        _whole("allowed_failed_count", self.allowed_failed_count, 0, none_ok=True)
        percent = self.allowed_failed_percent
        if percent is not None and (
            isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100
        ):
            raise InvalidArgument(f"allowed_failed_percent must be a number 0 to 100, not {percent!r}.")
        name = self.append_row_file_name
        if name is not None and (not isinstance(name, str) or not name or Path(name).name != name or name in (".", "..")):
            raise InvalidArgument(f"append_row_file_name must be a plain file name such as 'scores.txt', not {name!r}.")
        if not isinstance(self.logging_level, str) or self.logging_level.upper() not in _LOGGING_LEVELS:
            raise InvalidArgument(f"logging_level must be one of {', '.join(_LOGGING_LEVELS)}, not {self.logging_level!r}.")
        self.logging_level = self.logging_level.upper()
        variables = self.environment_variables
        if variables is not None and (
            not isinstance(variables, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in variables.items())
        ):
            raise InvalidArgument("environment_variables must be a dict of non-empty str names to str values.")

    @property
    def output_file_name(self) -> str:
        """The ``append_row`` file name: ``append_row_file_name`` or ``parallel_run_step.txt``."""
        return self.append_row_file_name or DEFAULT_APPEND_ROW_FILE

    def batch_limit(self, file_input: bool) -> int:
        """Return ``mini_batch_size`` for this input kind: files (file input) or bytes (tabular input).

        Raises:
            InvalidArgument: When the value does not fit the input kind or its range.
        """
        if file_input:
            return parse_file_count(self.mini_batch_size if self.mini_batch_size is not None else DEFAULT_FILES_PER_BATCH)
        return parse_size(self.mini_batch_size if self.mini_batch_size is not None else DEFAULT_TABULAR_BATCH)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-safe values, as the job record keeps it."""
        data = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "environment"}
        data["environment"] = self.environment
        data["entry_script"] = str(self.entry_script)
        data["source_directory"] = None if self.source_directory is None else str(self.source_directory)
        if self.environment is not None and not isinstance(self.environment, dict):
            data["environment"] = {"name": self.environment.name, "version": self.environment.version}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParallelRunConfig:
        """Rebuild a config from :meth:`to_dict`."""
        return cls(**data)
