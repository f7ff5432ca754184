"""ParallelRunConfig: v1's names and defaults; every bad value is an InvalidArgument naming its range."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_mldeploy.batch import ParallelRunConfig
from jupyter_mldeploy.batch.config import parse_file_count, parse_size
from jupyter_mldeploy.errors import InvalidArgument


def test_defaults_are_v1s() -> None:
    config = ParallelRunConfig("score.py", 10, "append_row")
    assert (config.node_count, config.run_invocation_timeout, config.run_max_try) == (1, 60, 3)
    assert config.output_file_name == "parallel_run_step.txt"
    assert config.batch_limit(file_input=True) == 10
    assert config.batch_limit(file_input=False) == 1024**2
    assert ParallelRunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("text", "size"), [("64KB", 65536), ("1MB", 1048576), ("10mb", 10485760), ("2GB", 2 * 1024**3),
                                             ("4096", 4096), (2048, 2048), ("3K", 3072)])
def test_sizes(text: Any, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["1TB", "ten", "", "1.5MB", "-1KB", "100", "3GB", True])
def test_bad_sizes_name_the_range(text: Any) -> None:
    with pytest.raises(InvalidArgument, match="mini_batch_size.*(1KB to 2GB|'1MB')"):
        parse_size(text)


def test_file_counts() -> None:
    assert parse_file_count("25") == 25
    for bad in ("0", "1MB", -3, 100_001):
        with pytest.raises(InvalidArgument, match="mini_batch_size .* number of files, 1 to 100000"):
            parse_file_count(bad)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"error_threshold": -2}, "error_threshold must be a whole number -1 or more"),
        ({"error_threshold": 1.5}, "error_threshold"),
        ({"output_action": "append"}, "output_action must be 'append_row' or 'summary_only'"),
        ({"process_count_per_node": 0}, "process_count_per_node must be a whole number 1 to 256"),
        ({"node_count": 0}, "node_count must be a whole number 1 to 1000"),
        ({"run_invocation_timeout": 0}, "run_invocation_timeout must be a whole number 1 to"),
        ({"run_max_try": 0}, "run_max_try must be a whole number 1 to 100"),
        ({"allowed_failed_count": -1}, "allowed_failed_count must be a whole number 0 or more"),
        ({"allowed_failed_percent": 101}, "allowed_failed_percent must be a number 0 to 100"),
        ({"append_row_file_name": "../x.txt"}, "append_row_file_name must be a plain file name"),
        ({"logging_level": "LOUD"}, "logging_level must be one of DEBUG, INFO"),
        ({"environment_variables": {"A": 1}}, "environment_variables must be a dict"),
        ({"mini_batch_size": 1.5}, "mini_batch_size must be a number of files or a size"),
        ({"entry_script": ""}, "entry_script must name the batch script"),
    ],
)
def test_bad_values_name_argument_and_range(changes: dict[str, Any], named: str) -> None:
    arguments: dict[str, Any] = {"entry_script": "score.py", "error_threshold": 0, "output_action": "append_row"}
    with pytest.raises(InvalidArgument, match=named.replace("(", r"\(").replace(")", r"\)")):
        ParallelRunConfig(**{**arguments, **changes})


def test_mini_batch_size_is_checked_for_the_input_kind() -> None:
    config = ParallelRunConfig("score.py", 0, "append_row", mini_batch_size="1MB")
    assert config.batch_limit(file_input=False) == 1024**2
    with pytest.raises(InvalidArgument, match="for file input give a number of files"):
        config.batch_limit(file_input=True)


def test_an_environment_is_kept_by_name_and_a_non_environment_refused() -> None:
    """A v1 config that names an Environment is accepted (checked against this interpreter at submit) and
    recorded by name; anything else is refused, naming the type."""
    from jupyter_mldeploy.environment import Environment

    env = Environment("sklearn-env")
    config = ParallelRunConfig("score.py", 0, "append_row", environment=env)
    assert config.to_dict()["environment"] == {"name": "sklearn-env", "version": env.version}
    assert ParallelRunConfig.from_dict(config.to_dict()).environment["name"] == "sklearn-env"
    with pytest.raises(InvalidArgument, match="environment must be an Environment .* not str"):
        ParallelRunConfig("score.py", 0, "append_row", environment="sklearn-env")
    assert ParallelRunConfig("score.py", 0, "append_row").to_dict()["environment"] is None
