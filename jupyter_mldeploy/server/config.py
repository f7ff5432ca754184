"""Scoring-server settings: the ``azmlinfsrv`` command line, its environment variables and config file.

Standard library only (the supervisor process imports nothing else). Priority, as azmlinfsrv 1.5 documents
it: command line > environment variable > config file (``--config_file`` / ``AZUREML_CONFIG_FILE``, a JSON
object whose keys are the environment variable names, e.g. ``{"SCORING_TIMEOUT_MS": 5000}``).

The resolved settings reach the worker processes as the same environment variables (see
:meth:`ServerSettings.worker_env`), so a score.py that reads ``os.environ["AZUREML_MODEL_DIR"]`` sees what
it would see under azmlinfsrv.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: azmlinfsrv's defaults (``constants.py`` / ``config.py`` of azureml-inference-server-http 1.5.1).
DEFAULT_PORT = 5001
DEFAULT_WORKER_COUNT = 1
DEFAULT_SCORING_TIMEOUT_MS = 3_600_000
#: Ours: azmlinfsrv binds 0.0.0.0; we bind loopback unless told otherwise, so a service is private to the machine.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_REQUEST_MB = 100.0
#: Ours: runs shorter than this (ms) may be called on the event-loop thread (see ``runner.Runner``).
DEFAULT_INLINE_RUN_MS = 2.0
#: Ours (``SCORING_HEADER_TIMEOUT_MS``): a request's headers must arrive within this many ms of its first
#: byte, and its body may not pause longer; else 408 (see ``connection.GuardedHttpProtocol``).
DEFAULT_HEADER_TIMEOUT_MS = 20_000
#: Ours (``SCORING_MAX_HEADER_BYTES``): request line plus headers larger than this answer 431.
DEFAULT_MAX_HEADER_BYTES = 65_536


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it and how to fix it."""


#: Ours: adaptive batching (off unless ``MLDEPLOY_BATCH_MAX_SIZE`` is set); see ``batching.Dispatcher``.
ENV_BATCH_MAX_SIZE = "MLDEPLOY_BATCH_MAX_SIZE"
ENV_BATCH_MAX_LATENCY_MS = "MLDEPLOY_BATCH_MAX_LATENCY_MS"
#: Ours, as v1's ``max_request_wait_time`` (``maxQueueWaitMs``) and ``replica_max_concurrent_requests``.
ENV_MAX_QUEUE_WAIT_MS = "MLDEPLOY_MAX_QUEUE_WAIT_MS"
ENV_MAX_CONCURRENT_REQUESTS = "MLDEPLOY_MAX_CONCURRENT_REQUESTS"
DEFAULT_BATCH_MAX_LATENCY_MS = 10.0


@dataclass(frozen=True)
class ThroughputSettings:
    """Adaptive batching and request-queue limits of one worker (all off by default).

    Read from the worker's environment, where ``deploy.plan.scoring_variables`` puts the deployment
    configuration's ``batching`` (``maxBatchSize``, ``maxLatencyMs``), ``maxQueueWaitMs`` and
    ``maxConcurrentRequestsPerContainer``.

    Attributes:
        batch_max_size: ``MLDEPLOY_BATCH_MAX_SIZE``: most rows merged into one ``run()`` call; None = no
            batching.
        batch_max_latency_ms: ``MLDEPLOY_BATCH_MAX_LATENCY_MS``: longest a request waits for company.
        max_queue_wait_ms: ``MLDEPLOY_MAX_QUEUE_WAIT_MS``: a request not started within this gets 503.
        max_concurrent_requests: ``MLDEPLOY_MAX_CONCURRENT_REQUESTS``: most requests a worker holds
            (running and queued); one more gets 503 at once.
    """

    batch_max_size: int | None = None
    batch_max_latency_ms: float = DEFAULT_BATCH_MAX_LATENCY_MS
    max_queue_wait_ms: int | None = None
    max_concurrent_requests: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether requests go through the dispatcher (batching or a queue limit is set)."""
        return any(v is not None for v in (self.batch_max_size, self.max_queue_wait_ms, self.max_concurrent_requests))

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ThroughputSettings:
        """Read the four variables (unset or empty = off).

        Args:
            env: The worker's environment.

        Returns:
            ThroughputSettings: The settings.

        Raises:
            ConfigError: A value that is not a positive integer (the latency: a number >= 0), naming it.
        """
        def positive(name: str) -> int | None:
            raw = env.get(name)
            return _int_setting(name, raw, 1) if raw not in (None, "") else None

        raw_latency = env.get(ENV_BATCH_MAX_LATENCY_MS)
        latency = DEFAULT_BATCH_MAX_LATENCY_MS
        if raw_latency not in (None, ""):
            try:
                latency = float(raw_latency)
            except ValueError:
                latency = -1.0
            if not latency >= 0:
                raise ConfigError(
                    f"{ENV_BATCH_MAX_LATENCY_MS} must be a number of milliseconds >= 0, got {raw_latency!r}."
                )
        return cls(
            batch_max_size=positive(ENV_BATCH_MAX_SIZE),
            batch_max_latency_ms=latency,
            max_queue_wait_ms=positive(ENV_MAX_QUEUE_WAIT_MS),
            max_concurrent_requests=positive(ENV_MAX_CONCURRENT_REQUESTS),
        )


@dataclass(frozen=True)
class ServerSettings:
    """Everything the supervisor needs, resolved from command line, environment and config file.

    Attributes:
        entry_script: Absolute path of score.py, or None when only a spec file provides it.
        model_dir: Value for ``AZUREML_MODEL_DIR`` (absolute), or None to leave it unset.
        port: TCP port (0 = any free port; the chosen one is written to the status file).
        host: Interface to bind.
        worker_count: Worker processes (each runs ``init()`` once).
        app_root: ``AML_APP_ROOT``: the workers' working directory, added to ``sys.path``.
        source_dir: ``AZUREML_SOURCE_DIRECTORY`` (added to ``sys.path``), or None.
        scoring_timeout_ms: ``SCORING_TIMEOUT_MS``: per-request limit on ``run()``.
        cors_origins: ``AML_CORS_ORIGINS``: comma-separated origins or ``*``; None = CORS off.
        log_level: ``AZUREML_LOG_LEVEL`` (a :mod:`logging` level name).
        appinsights_key: Accepted for command-line compatibility; Application Insights is not contacted.
        config_file: The config file read, if any.
        status_file: Where the supervisor writes its JSON status, or None.
        spec_file: JSON file overriding how workers are spawned (re-read on SIGHUP), or None.
        max_request_mb: Largest accepted request body, in MB (10**6 bytes); larger answers 413.
        debug_port: ``AZUREML_DEBUG_PORT``: workers attach debugpy to this port when set.
        inline_run_ms: ``MLDEPLOY_INLINE_RUN_MS``: once a script's recent runs are all shorter than this
            many milliseconds, calls run on the event-loop thread instead of the run thread; 0 = never.
        header_timeout_ms: ``SCORING_HEADER_TIMEOUT_MS``: time allowed for a request's headers (from its
            first byte) and for any pause inside its body; a client slower than that gets 408.
        max_header_bytes: ``SCORING_MAX_HEADER_BYTES``: largest request line plus headers; larger gets 431.
        script_env: ``AZUREML_ENTRY_SCRIPT`` and ``AZUREML_SOURCE_DIRECTORY`` as the scoring script sees
            them: as given in the environment or config file (relative to the app root in a v1 image), a
            command-line ``--entry_script`` as its absolute path (azmlinfsrv exports its real path).
    """

    entry_script: str | None
    model_dir: str | None
    port: int
    host: str
    worker_count: int
    app_root: str
    source_dir: str | None
    scoring_timeout_ms: int
    cors_origins: str | None
    log_level: str
    appinsights_key: str | None
    config_file: str | None
    status_file: str | None
    spec_file: str | None
    max_request_mb: float
    debug_port: int | None
    inline_run_ms: float = DEFAULT_INLINE_RUN_MS
    header_timeout_ms: int = DEFAULT_HEADER_TIMEOUT_MS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    script_env: Mapping[str, str] = field(default_factory=dict)

    def worker_env(self) -> dict[str, str]:
        """Return the environment variables that carry these settings to a worker process.

        Returns:
            dict[str, str]: azmlinfsrv's variable names mapped to their resolved values (unset ones omitted).
        """
        env = {
            "AML_APP_ROOT": self.app_root,
            "SCORING_TIMEOUT_MS": str(self.scoring_timeout_ms),
            "AZUREML_LOG_LEVEL": self.log_level,
            "WORKER_COUNT": str(self.worker_count),
            "SERVER_PORT": str(self.port),
        }
        optional = {
            "AZUREML_ENTRY_SCRIPT": self.script_env.get("AZUREML_ENTRY_SCRIPT", self.entry_script),
            "AZUREML_MODEL_DIR": self.model_dir,
            "AZUREML_SOURCE_DIRECTORY": self.script_env.get("AZUREML_SOURCE_DIRECTORY", self.source_dir),
            "AML_CORS_ORIGINS": self.cors_origins,
            "AZUREML_DEBUG_PORT": str(self.debug_port) if self.debug_port else None,
            "AZUREML_CONFIG_FILE": self.config_file,
        }
        env.update({key: value for key, value in optional.items() if value})
        return env


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in [0, 65535] (0 picks a free port)")
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a number >= 0")
    return number


def build_parser(prog: str = "python -m jupyter_mldeploy.server") -> argparse.ArgumentParser:
    """Return the command-line parser: azmlinfsrv's flags (both ``_`` and ``-`` spellings) plus ours.

    Args:
        prog: Program name shown in ``--help`` (``mldeploy serve`` passes its own).

    Returns:
        argparse.ArgumentParser: Every option defaults to None so unset flags fall back to the
        environment and then the config file.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve an Azure ML entry script (score.py with init() and run()); a drop-in for azmlinfsrv.",
    )
    parser.add_argument("--entry_script", "--entry-script", help="Path of the entry script (score.py).")
    parser.add_argument("--model_dir", "--model-dir", help="Model folder, exported as AZUREML_MODEL_DIR.")
    parser.add_argument("--port", type=_port, help=f"Port to serve on (default {DEFAULT_PORT}; 0 = any free).")
    parser.add_argument("--host", help=f"Interface to bind (default {DEFAULT_HOST}).")
    parser.add_argument(
        "--worker_count", "--worker-count", type=_positive_int,
        help="Worker processes, each running init() once (default 1).",
    )
    parser.add_argument(
        "--appinsights_instrumentation_key", "--appinsights-instrumentation-key",
        help="Accepted for compatibility with azmlinfsrv; nothing is sent to Application Insights.",
    )
    parser.add_argument(
        "--access_control_allow_origins", "--access-control-allow-origins",
        help='Enable CORS for these origins, comma-separated (e.g. "a.com, b.com") or "*".',
    )
    parser.add_argument(
        "--config_file", "--config-file",
        help="JSON config file whose keys are the environment variable names (e.g. SCORING_TIMEOUT_MS).",
    )
    parser.add_argument("--status-file", "--status_file", help="Write the server's JSON status here.")
    parser.add_argument(
        "--spec-file", "--spec_file",
        help="JSON file overriding how workers are spawned (python, cwd, env, worker_count); re-read on SIGHUP.",
    )
    parser.add_argument(
        "--max-request-mb", "--max_request_mb", type=_positive_float,
        help=f"Largest request body in MB; bigger ones get 413 (default {DEFAULT_MAX_REQUEST_MB:g}).",
    )
    parser.add_argument(
        "--inline-run-ms", "--inline_run_ms", type=_non_negative_float,
        help=f"Call run() on the event-loop thread once recent runs all took less than this many ms "
             f"(default {DEFAULT_INLINE_RUN_MS:g}; 0 = always use the separate run thread).",
    )
    parser.add_argument(
        "--header-timeout-ms", "--header_timeout_ms", type=_positive_int,
        help=f"A request's headers must arrive within this many ms of its first byte and its body may not "
             f"pause longer, else 408 (SCORING_HEADER_TIMEOUT_MS; default {DEFAULT_HEADER_TIMEOUT_MS}).",
    )
    parser.add_argument(
        "--max-header-bytes", "--max_header_bytes", type=_positive_int,
        help=f"Largest request line plus headers in bytes, else 431 (SCORING_MAX_HEADER_BYTES; default "
             f"{DEFAULT_MAX_HEADER_BYTES}).",
    )
    return parser


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist; fix --config_file / AZUREML_CONFIG_FILE.") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Config file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a JSON object of setting names to values.")
    return data


def _int_setting(name: str, raw: Any, minimum: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}.")
    return value


def _or_default(value: Any, default: Any) -> Any:
    return default if value is None else value


def resolve_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, cwd: str | None = None
) -> ServerSettings:
    """Merge command line, environment and config file into :class:`ServerSettings`.

    Args:
        args: Parsed command line from :func:`build_parser`.
        environ: Environment to read (default ``os.environ``).
        cwd: Working directory relative paths on the command line are resolved against (default: current).

    Returns:
        ServerSettings: The resolved settings.

    Raises:
        ConfigError: When the config file is unreadable, a number is malformed, or no entry script is given
            by any source (and no spec file could provide one).
    """
    env = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    config_path = args.config_file or env.get("AZUREML_CONFIG_FILE") or None
    if config_path:
        config_path = os.path.abspath(os.path.join(cwd, config_path))
    file_values = _read_config_file(config_path) if config_path else {}

    def pick(cli_value: Any, name: str) -> Any:
        if cli_value is not None:
            return cli_value
        if env.get(name):
            return env[name]
        value = file_values.get(name)
        return None if value is None or value == "" else value

    app_root = os.path.abspath(os.path.join(cwd, str(pick(None, "AML_APP_ROOT") or cwd)))
    # A command-line path is relative to where the command runs (as azmlinfsrv's realpath); one from the
    # environment or the config file is relative to the app root (as azmlinfsrv's load_script joins them).
    script_env: dict[str, str] = {}
    if args.entry_script:
        entry_script: str | None = os.path.abspath(os.path.join(cwd, args.entry_script))
    else:
        raw_entry = pick(None, "AZUREML_ENTRY_SCRIPT")
        entry_script = os.path.abspath(os.path.join(app_root, str(raw_entry))) if raw_entry else None
        if raw_entry:
            script_env["AZUREML_ENTRY_SCRIPT"] = str(raw_entry)
    if entry_script is None and not args.spec_file:
        raise ConfigError(
            "No entry script: give --entry_script score.py (or AZUREML_ENTRY_SCRIPT, or a --config_file "
            "holding AZUREML_ENTRY_SCRIPT)."
        )
    if args.model_dir:
        model_dir: str | None = os.path.abspath(os.path.join(cwd, args.model_dir))
    else:
        raw_model_dir = pick(None, "AZUREML_MODEL_DIR")
        model_dir = os.path.abspath(os.path.join(app_root, str(raw_model_dir))) if raw_model_dir else None
    source_dir = pick(None, "AZUREML_SOURCE_DIRECTORY")
    if source_dir:
        script_env["AZUREML_SOURCE_DIRECTORY"] = str(source_dir)
    debug_port = pick(None, "AZUREML_DEBUG_PORT")
    max_mb = pick(args.max_request_mb, "MLDEPLOY_MAX_REQUEST_MB")
    try:
        max_request_mb = float(max_mb) if max_mb is not None else DEFAULT_MAX_REQUEST_MB
    except ValueError:
        raise ConfigError(f"MLDEPLOY_MAX_REQUEST_MB must be a number of MB, got {max_mb!r}.") from None
    raw_inline = pick(args.inline_run_ms, "MLDEPLOY_INLINE_RUN_MS")
    try:
        inline_run_ms = float(raw_inline) if raw_inline is not None else DEFAULT_INLINE_RUN_MS
    except ValueError:
        inline_run_ms = -1.0
    if not inline_run_ms >= 0:
        raise ConfigError(
            f"MLDEPLOY_INLINE_RUN_MS must be a number of milliseconds >= 0 (0 turns inline runs off), "
            f"got {raw_inline!r}."
        )
    return ServerSettings(
        entry_script=entry_script,
        model_dir=model_dir,
        port=_int_setting("port (--port / SERVER_PORT)", _or_default(pick(args.port, "SERVER_PORT"), DEFAULT_PORT), 0),
        host=str(args.host or DEFAULT_HOST),
        worker_count=_int_setting(
            "worker count (--worker_count / WORKER_COUNT)",
            pick(args.worker_count, "WORKER_COUNT") or DEFAULT_WORKER_COUNT,
            1,
        ),
        app_root=app_root,
        source_dir=os.path.abspath(os.path.join(app_root, str(source_dir))) if source_dir else None,
        scoring_timeout_ms=_int_setting(
            "SCORING_TIMEOUT_MS", pick(None, "SCORING_TIMEOUT_MS") or DEFAULT_SCORING_TIMEOUT_MS, 1
        ),
        cors_origins=pick(args.access_control_allow_origins, "AML_CORS_ORIGINS"),
        log_level=str(pick(None, "AZUREML_LOG_LEVEL") or "INFO").upper(),
        appinsights_key=pick(args.appinsights_instrumentation_key, "AML_APP_INSIGHTS_KEY"),
        config_file=config_path,
        status_file=os.path.abspath(os.path.join(cwd, args.status_file)) if args.status_file else None,
        spec_file=os.path.abspath(os.path.join(cwd, args.spec_file)) if args.spec_file else None,
        max_request_mb=max_request_mb,
        debug_port=_int_setting("AZUREML_DEBUG_PORT", debug_port, 1) if debug_port else None,
        inline_run_ms=inline_run_ms,
        header_timeout_ms=_int_setting(
            "SCORING_HEADER_TIMEOUT_MS",
            _or_default(pick(args.header_timeout_ms, "SCORING_HEADER_TIMEOUT_MS"), DEFAULT_HEADER_TIMEOUT_MS), 1,
        ),
        max_header_bytes=_int_setting(
            "SCORING_MAX_HEADER_BYTES",
            _or_default(pick(args.max_header_bytes, "SCORING_MAX_HEADER_BYTES"), DEFAULT_MAX_HEADER_BYTES), 1024,
        ),
        script_env=script_env,
    )


def parse_settings(argv: Sequence[str] | None = None) -> ServerSettings:
    """Parse ``argv`` and resolve it against the environment (a convenience for tests and tools).

    Args:
        argv: Command-line arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        ServerSettings: The resolved settings.

    Raises:
        ConfigError: See :func:`resolve_settings`.
    """
    return resolve_settings(build_parser().parse_args(argv))
