"""Settings resolution: azmlinfsrv's flags (both spellings), command line > environment > config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mldeploy.server.config import ConfigError, build_parser, resolve_settings


def _resolve(argv: list[str], env: dict[str, str], cwd: Path):
    return resolve_settings(build_parser().parse_args(argv), env, str(cwd))


def test_priority_cli_env_file(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"WORKER_COUNT": 3, "SERVER_PORT": 7000, "SCORING_TIMEOUT_MS": 10,
                                  "AML_CORS_ORIGINS": "file.com", "AZUREML_ENTRY_SCRIPT": "from_file.py"}))
    from_file = _resolve(["--config_file", str(config)], {}, tmp_path)
    assert (from_file.worker_count, from_file.port, from_file.scoring_timeout_ms) == (3, 7000, 10)
    assert from_file.entry_script == str(tmp_path / "from_file.py")
    assert from_file.cors_origins == "file.com"
    env = {"WORKER_COUNT": "2", "SERVER_PORT": "7001", "AZUREML_CONFIG_FILE": str(config)}
    from_env = _resolve([], env, tmp_path)
    assert (from_env.worker_count, from_env.port, from_env.scoring_timeout_ms) == (2, 7001, 10)
    from_cli = _resolve(["--worker-count", "4", "--port", "0", "--entry-script", "cli.py",
                         "--access-control-allow-origins", "cli.com"], env, tmp_path)
    assert (from_cli.worker_count, from_cli.port) == (4, 0)
    assert from_cli.entry_script == str(tmp_path / "cli.py")
    assert from_cli.cors_origins == "cli.com"


def test_defaults_and_worker_env(tmp_path: Path) -> None:
    settings = _resolve(["--entry_script", "score.py", "--model_dir", "m"], {}, tmp_path)
    assert settings.port == 5001 and settings.host == "127.0.0.1" and settings.worker_count == 1
    assert settings.scoring_timeout_ms == 3_600_000 and settings.max_request_mb == 100
    env = settings.worker_env()
    assert env["AZUREML_MODEL_DIR"] == str(tmp_path / "m")
    assert env["AZUREML_ENTRY_SCRIPT"] == str(tmp_path / "score.py")
    assert env["AML_APP_ROOT"] == str(tmp_path)
    assert "AML_CORS_ORIGINS" not in env


def test_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No entry script"):
        _resolve([], {}, tmp_path)
    with pytest.raises(ConfigError, match="WORKER_COUNT"):
        _resolve(["--entry_script", "s.py"], {"WORKER_COUNT": "many"}, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        _resolve(["--config_file", "missing.json"], {}, tmp_path)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--port", "70000"])


def test_inline_run_bound_from_flag_env_and_file(tmp_path: Path) -> None:
    assert _resolve(["--entry_script", "s.py"], {}, tmp_path).inline_run_ms == 2.0
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"MLDEPLOY_INLINE_RUN_MS": 5}))
    assert _resolve(["--entry_script", "s.py", "--config_file", str(config)], {}, tmp_path).inline_run_ms == 5.0
    env = {"MLDEPLOY_INLINE_RUN_MS": "0.5", "AZUREML_CONFIG_FILE": str(config)}
    assert _resolve(["--entry_script", "s.py"], env, tmp_path).inline_run_ms == 0.5
    assert _resolve(["--entry_script", "s.py", "--inline_run_ms", "0"], env, tmp_path).inline_run_ms == 0.0
    for bad in ("fast", "-1", "nan"):
        with pytest.raises(ConfigError, match=r"MLDEPLOY_INLINE_RUN_MS must be a number of milliseconds >= 0"):
            _resolve(["--entry_script", "s.py"], {"MLDEPLOY_INLINE_RUN_MS": bad}, tmp_path)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--inline-run-ms", "-3"])


def test_v1_layout_variables_reach_the_script_as_given(tmp_path: Path) -> None:
    """A v1 image sets AZUREML_ENTRY_SCRIPT/AZUREML_SOURCE_DIRECTORY relative to AML_APP_ROOT; azmlinfsrv
    joins them for loading but the script sees them unchanged. A command-line --entry_script is absolute."""
    app = tmp_path / "app"
    env = {"AML_APP_ROOT": str(app), "AZUREML_ENTRY_SCRIPT": "src/x/score.py", "AZUREML_SOURCE_DIRECTORY": "src"}
    settings = _resolve([], env, tmp_path)
    assert settings.entry_script == str(app / "src" / "x" / "score.py")
    assert settings.source_dir == str(app / "src")
    worker = settings.worker_env()
    assert worker["AZUREML_ENTRY_SCRIPT"] == "src/x/score.py" and worker["AZUREML_SOURCE_DIRECTORY"] == "src"
    from_cli = _resolve(["--entry_script", "score.py"], {}, tmp_path).worker_env()
    assert from_cli["AZUREML_ENTRY_SCRIPT"] == str(tmp_path / "score.py")


def test_header_limits_from_cli_env_and_file_with_defaults(tmp_path: Path) -> None:
    from jupyter_mldeploy.server.config import DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_MAX_HEADER_BYTES

    defaults = _resolve(["--entry_script", "s.py"], {}, tmp_path)
    assert (defaults.header_timeout_ms, defaults.max_header_bytes) == (DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_MAX_HEADER_BYTES)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"SCORING_HEADER_TIMEOUT_MS": 1500, "SCORING_MAX_HEADER_BYTES": 4096}))
    from_file = _resolve(["--entry_script", "s.py", "--config_file", str(config)], {}, tmp_path)
    assert (from_file.header_timeout_ms, from_file.max_header_bytes) == (1500, 4096)
    from_env = _resolve(["--entry_script", "s.py", "--config_file", str(config)],
                        {"SCORING_HEADER_TIMEOUT_MS": "700"}, tmp_path)
    assert from_env.header_timeout_ms == 700
    from_cli = _resolve(["--entry_script", "s.py", "--max-header-bytes", "2048"], {}, tmp_path)
    assert from_cli.max_header_bytes == 2048
    with pytest.raises(ConfigError, match="SCORING_MAX_HEADER_BYTES must be >= 1024"):
        _resolve(["--entry_script", "s.py"], {"SCORING_MAX_HEADER_BYTES": "100"}, tmp_path)
    with pytest.raises(ConfigError, match="SCORING_HEADER_TIMEOUT_MS must be an integer"):
        _resolve(["--entry_script", "s.py"], {"SCORING_HEADER_TIMEOUT_MS": "soon"}, tmp_path)
