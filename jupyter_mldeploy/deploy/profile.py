"""``Model.profile``: what CPU and memory to ask for, measured on a temporary service (v1 API; v2 has none).

:func:`profile_model` checks its inputs, deploys a temporary service (the Docker target when ``cpu`` or
``memory_in_gb`` is given, so the limits are real; otherwise the process target), and returns a
:class:`ModelProfile` at once, as v1 does. In a background thread the profile then warms the service
(each request body once), sends the bodies at increasing concurrency (1, 2, 4, 8 connections, a few
seconds each), samples the service's CPU and memory meanwhile (psutil over the server's processes; the
container's cgroup through ``docker stats`` on the Docker target), deletes the service, and stores the
result as ``profiles/<name>.json`` in the workspace (:func:`list_profiles`).

The recommendation: the peak CPU (cores) and memory (GB) measured under load, plus 20% headroom, rounded
up to 0.1, and never above what was requested. ``get_details()`` has v1's keys.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

from jupyter_mldeploy.deploy.config import local_deploy_configuration
from jupyter_mldeploy.deploy.deployer import deploy_model
from jupyter_mldeploy.deploy.state import utc_now
from jupyter_mldeploy.deploy.webservice import Webservice
from jupyter_mldeploy.errors import InvalidArgument, MLDeployError, NotFound
from jupyter_mldeploy.names import validate_name
from jupyter_mldeploy.workspace import Workspace

#: Connections per load level; each level runs :data:`SECONDS_PER_LEVEL` seconds.
CONCURRENCY_LEVELS = (1, 2, 4, 8)
SECONDS_PER_LEVEL = 2.5
#: Headroom over the peak measured use in the recommendation.
HEADROOM = 1.2
SAMPLE_INTERVAL_S = 0.25
PERCENTILES = (("latencyPercentile50InMs", 50), ("latencyPercentile90InMs", 90), ("latencyPercentile95InMs", 95),
               ("latencyPercentile99InMs", 99), ("latencyPercentile999InMs", 99.9))


def read_input_dataset(input_dataset: Any) -> list[str]:
    """Return the request bodies of ``input_dataset`` (v1: one row = one request body).

    Args:
        input_dataset: A list of bodies (``str``, ``bytes`` or JSON-able objects), a path to a CSV file
            with one string column (the first row is a header when it is not JSON), or a pandas
            ``DataFrame`` with one column of strings.

    Returns:
        list[str]: The bodies, in order.

    Raises:
        InvalidArgument: Empty, more than one column, or a column that does not hold strings.
        NotFound: The CSV file does not exist.
    """
    if hasattr(input_dataset, "columns") and hasattr(input_dataset, "iloc"):
        if len(input_dataset.columns) != 1:
            raise InvalidArgument(
                f"input_dataset has {len(input_dataset.columns)} columns; give one string column holding a request "
                "body per row."
            )
        values = list(input_dataset.iloc[:, 0])
        bad = next((v for v in values if not isinstance(v, str)), None)
        if values and bad is not None:
            raise InvalidArgument(
                f"input_dataset's column {input_dataset.columns[0]!r} holds {type(bad).__name__} values; it must hold "
                "request bodies as strings (e.g. json.dumps({'data': [[...]]}))."
            )
        bodies = values
    elif isinstance(input_dataset, (str, os.PathLike)):
        path = Path(input_dataset).expanduser()
        if not path.is_file():
            raise NotFound(f"input_dataset file {path} does not exist; give a CSV with one column of request bodies.")
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
        if any(len(row) != 1 for row in rows):
            raise InvalidArgument(f"input_dataset file {path} must have exactly one column (the request body).")
        bodies = [row[0] for row in rows]
        if bodies and not _is_json(bodies[0]):
            bodies = bodies[1:]  # a header
    elif isinstance(input_dataset, (list, tuple)):
        bodies = [b.decode() if isinstance(b, bytes) else b if isinstance(b, str) else json.dumps(b)
                  for b in input_dataset]
    else:
        raise InvalidArgument(
            f"input_dataset must be a list of request bodies, a one-column CSV file or a DataFrame, not "
            f"{type(input_dataset).__name__}."
        )
    if not bodies:
        raise InvalidArgument("input_dataset is empty; give at least one request body.")
    return bodies


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@dataclass
class _Level:
    connections: int
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0


class _Sampler(threading.Thread):
    """Samples the service's CPU (cores) and memory (GB) until stopped."""

    def __init__(self, port: int, container: str | None) -> None:
        super().__init__(name="mldeploy-profile-sampler", daemon=True)
        self.port, self.container = port, container
        self.cpu: list[float] = []
        self.memory_gb: list[float] = []
        self.stop_event = threading.Event()
        self._procs: dict[int, psutil.Process] = {}

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_INTERVAL_S):
            sample = self._docker() if self.container else self._psutil()
            if sample is not None:
                self.cpu.append(sample[0])
                self.memory_gb.append(sample[1])

    def _service_processes(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == self.port and conn.pid:
                try:
                    root = psutil.Process(conn.pid)
                    found.extend([root, *root.children(recursive=True)])
                except psutil.NoSuchProcess:
                    continue
        return found

    def _psutil(self) -> tuple[float, float] | None:
        cpu = memory = 0.0
        for proc in self._service_processes():
            known = self._procs.setdefault(proc.pid, proc)
            try:
                cpu += known.cpu_percent(None) / 100  # since the previous sample of this process
                memory += known.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return cpu, memory / 1024**3

    def _docker(self) -> tuple[float, float] | None:
        out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.CPUPerc}} {{.MemUsage}}", self.container or ""],
                             capture_output=True, text=True, timeout=30)
        match = re.match(r"([\d.]+)%\s+([\d.]+)\s*([KMG]i?B)", out.stdout.strip())
        if not match:
            return None
        scale = {"K": 1024**-2, "M": 1024**-1, "G": 1.0}[match.group(3)[0]]
        return float(match.group(1)) / 100, float(match.group(2)) * scale


def _round_up(value: float, step: float = 0.1) -> float:
    return round(math.ceil(round(value / step, 6)) * step, 1)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[rank], 3)


@dataclass
class ModelProfile:
    """A model profile (v1 ``ModelProfile``): started by :func:`profile_model`, stored in the workspace.

    Attributes:
        workspace: Where it is stored.
        name: The profile name.
        description: Free text, or None.
        state: ``Running``, ``Succeeded`` or ``Failed``.
        details: v1's keys (see :meth:`get_details`); filled when the profile finished.
        created_time: ISO 8601 UTC.
        progress: What the running profile is doing (shown by ``wait_for_completion(show_output=True)``).
    """

    workspace: Workspace
    name: str
    description: str | None = None
    state: str = "Running"
    details: dict[str, Any] = field(default_factory=dict)
    created_time: str = field(default_factory=utc_now)
    progress: str = ""
    _thread: threading.Thread | None = field(default=None, repr=False)

    def wait_for_completion(self, show_output: bool = False) -> None:
        """Wait until the profile finished (v1 ``wait_for_completion``).

        Args:
            show_output: Print the state while waiting and the recommendation at the end.
        """
        shown = ""
        while self._thread is not None and self._thread.is_alive():
            if show_output and self.progress != shown:
                shown = self.progress
                print(f"Profile {self.name}: {shown}", flush=True)
            self._thread.join(0.5)
        if show_output:
            print(f"Profile {self.name}: {self.state}. {self.details.get('recommendation', '')}".rstrip(), flush=True)

    def get_details(self) -> dict[str, Any]:
        """Return v1's keys: ``requestedCpu``, ``requestedMemoryInGB``, ``requestedQueriesPerSecond``,
        ``maxUtilizedMemoryInGB``, ``maxUtilizedCpu``, ``totalQueries``, ``successQueries``, ``successRate``
        (percent), ``measuredQueriesPerSecond``, ``averageLatencyInMs``, ``latencyPercentile50InMs`` ...
        ``latencyPercentile999InMs``, ``recommendedCpu``, ``recommendedMemoryInGB``, ``error``; plus ours:
        ``name``, ``state``, ``recommendation`` (one sentence) and ``levels`` (per concurrency)."""
        return {"name": self.name, "state": self.state, "description": self.description,
                "createdTime": self.created_time, **self.details}

    def serialize(self) -> dict[str, Any]:
        """The stored JSON object."""
        return self.get_details()

    def plot(self) -> Any:
        """Plot the profile with matplotlib: latency percentiles and throughput against concurrency, CPU and
        memory over time.

        Returns:
            matplotlib.figure.Figure: Two panels.

        Raises:
            MLDeployError: matplotlib is not installed, or the profile has no measurements (not finished, or
                failed).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise MLDeployError("Plotting a profile needs matplotlib: pip install matplotlib.") from None
        levels = self.details.get("levels") or []
        if not levels:
            raise MLDeployError(f"Profile {self.name} has no measurements (state {self.state}); nothing to plot.")
        figure = Figure(figsize=(10, 3.6), tight_layout=True)
        latency, usage = figure.subplots(1, 2)
        connections = [level["connections"] for level in levels]
        latency.plot(connections, [level["latencyPercentile50InMs"] for level in levels], "o-", label="p50 ms")
        latency.plot(connections, [level["latencyPercentile99InMs"] for level in levels], "o-", label="p99 ms")
        latency.set_xlabel("concurrent requests")
        latency.set_ylabel("latency (ms)")
        latency.set_xscale("log", base=2)
        throughput = latency.twinx()
        throughput.plot(connections, [level["queriesPerSecond"] for level in levels], "s--", color="gray", label="req/s")
        throughput.set_ylabel("requests per second")
        latency.legend(loc="upper left")
        latency.set_title("Latency and throughput")
        cpu, memory = self.details.get("cpuSamples") or [], self.details.get("memorySamplesInGB") or []
        seconds = [index * SAMPLE_INTERVAL_S for index in range(len(cpu))]
        usage.plot(seconds, cpu, label="CPU (cores)")
        usage.set_xlabel("seconds under load")
        usage.set_ylabel("CPU (cores)")
        memory_axis = usage.twinx()
        memory_axis.plot(seconds, memory, color="tab:red", label="memory (GB)")
        memory_axis.set_ylabel("memory (GB)")
        usage.set_title("CPU and memory")
        return figure

    def _repr_html_(self) -> str:
        """A table of the main figures, the recommendation and (with matplotlib) the plot, for notebooks."""
        details = self.get_details()
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(key)}</th><td>{html.escape(str(details.get(key)))}</td></tr>"
                       for key in _TABLE_KEYS)
        text = f"<b>Model profile {html.escape(self.name)}</b> ({html.escape(self.state)})<table>{rows}</table>"
        if details.get("recommendation"):
            text += f"<p>{html.escape(details['recommendation'])}</p>"
        try:
            figure = self.plot()
        except MLDeployError:
            return text
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        return text + f"<img src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'/>"

    def _store(self) -> Path:
        folder = self.workspace.path / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.serialize(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def get(cls, workspace: Workspace, name: str) -> ModelProfile:
        """Read a stored profile.

        Raises:
            NotFound: No profile of that name, naming the ones there are.
        """
        path = workspace.path / "profiles" / f"{name}.json"
        if not path.is_file():
            known = [p.name for p in list_profiles(workspace)]
            raise NotFound(f"No model profile {name!r} in the workspace; known profiles: {known}.")
        data = json.loads(path.read_text(encoding="utf-8"))
        details = {k: v for k, v in data.items() if k not in ("name", "state", "description", "createdTime")}
        return cls(workspace, name, data.get("description"), data.get("state", "Failed"), details,
                   data.get("createdTime") or utc_now())


_TABLE_KEYS = ("recommendedCpu", "recommendedMemoryInGB", "maxUtilizedCpu", "maxUtilizedMemoryInGB",
               "measuredQueriesPerSecond", "averageLatencyInMs", "latencyPercentile50InMs", "latencyPercentile99InMs",
               "totalQueries", "successRate", "requestedCpu", "requestedMemoryInGB", "error")


def list_profiles(workspace: Workspace) -> list[ModelProfile]:
    """Return the stored profiles of ``workspace``, by name (v1 ``Model.list_profiles`` counterpart)."""
    folder = workspace.path / "profiles"
    names = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    return [ModelProfile.get(workspace, name) for name in names]


def profile_model(
    workspace: Workspace,
    profile_name: str,
    models: Any,
    inference_config: Any,
    input_dataset: Any,
    cpu: float | None = None,
    memory_in_gb: float | None = None,
    description: str | None = None,
    *,
    seconds_per_level: float = SECONDS_PER_LEVEL,
) -> ModelProfile:
    """Profile models on a temporary service (v1 ``Model.profile``); returns while the profile runs.

    Args:
        workspace: The workspace holding the models; the profile is stored there.
        profile_name: Name of the profile (letters, digits, ``_.-``).
        models: ``Model`` objects or ``"name[:version]"`` strings, as for ``Model.deploy``.
        inference_config: The entry script and environment, as for ``Model.deploy``.
        input_dataset: Request bodies: a list, a one-column CSV file or a one-string-column DataFrame.
        cpu: CPU cores for the service (Docker target, a real limit); None = the process target.
        memory_in_gb: Memory for the service in GB (Docker target); None = the process target.
        description: Free text.
        seconds_per_level: Ours: how long each concurrency level runs (default 2.5 s).

    Returns:
        ModelProfile: Call ``wait_for_completion()`` then ``get_details()``.

    Raises:
        InvalidArgument: A bad name, dataset, ``cpu`` or ``memory_in_gb``.
        NotFound: An unknown model, or a missing dataset file.
        DeploymentError: The temporary service could not be deployed.
    """
    validate_name(profile_name, "profile")
    for label, value in (("cpu", cpu), ("memory_in_gb", memory_in_gb)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise InvalidArgument(f"{label} must be a positive number, not {value!r}.")
    if not (isinstance(seconds_per_level, (int, float)) and seconds_per_level > 0):
        raise InvalidArgument(f"seconds_per_level must be a positive number of seconds, not {seconds_per_level!r}.")
    bodies = read_input_dataset(input_dataset)
    docker = cpu is not None or memory_in_gb is not None
    config = local_deploy_configuration(runtime="docker" if docker else "process", cpu_cores=cpu,
                                        memory_gb=memory_in_gb, description=f"temporary service of profile {profile_name}")
    service_name = f"profile-{profile_name}-{uuid.uuid4().hex[:6]}"[:60]
    service = deploy_model(workspace, service_name, models, inference_config, config)
    profile = ModelProfile(workspace, profile_name, description)
    profile._thread = threading.Thread(
        target=_run_profile, args=(profile, service, bodies, cpu, memory_in_gb, docker, seconds_per_level),
        name="mldeploy-profile", daemon=True,
    )
    profile._thread.start()
    return profile


def _run_profile(profile: ModelProfile, service: Webservice, bodies: list[str], cpu: float | None,
                 memory_gb: float | None, docker: bool, seconds_per_level: float) -> None:
    details: dict[str, Any] = {"requestedCpu": cpu, "requestedMemoryInGB": memory_gb, "requestedQueriesPerSecond": None}
    try:
        profile.progress = f"deploying the temporary service {service.name}"
        service.wait_for_deployment(timeout_sec=300)
        details.update(_measure(service, bodies, cpu, memory_gb, docker, profile, seconds_per_level))
        profile.state = "Succeeded"
    except Exception as exc:  # the profile records why it failed; nothing is left running
        details["error"] = exc.summary if isinstance(exc, MLDeployError) else f"{type(exc).__name__}: {exc}"
        profile.state = "Failed"
    finally:
        profile.progress = "deleting the temporary service"
        try:
            service.delete()
        finally:
            profile.progress = profile.state
            profile.details = details
            profile._store()


def _measure(service: Webservice, bodies: list[str], cpu: float | None, memory_gb: float | None,
             docker: bool, profile: ModelProfile, seconds_per_level: float) -> dict[str, Any]:
    url = service.scoring_uri
    headers = {"Content-Type": "application/json"}
    profile.progress = f"warming up with {len(bodies)} request bodies"
    with requests.Session() as session:
        for body in bodies:  # warm-up: every body once, not counted
            session.post(url, data=body.encode(), headers=headers, timeout=60)
    container = _container_of(service.port) if docker else None
    sampler = _Sampler(service.port, container)
    sampler.start()
    levels = []
    try:
        for number, connections in enumerate(CONCURRENCY_LEVELS, 1):
            profile.progress = (f"load level {number}/{len(CONCURRENCY_LEVELS)}: {connections} concurrent requests "
                                f"for {seconds_per_level:g} s")
            levels.append(_load(url, bodies, connections, headers, seconds_per_level))
    finally:
        sampler.stop_event.set()
        sampler.join(30)
    latencies = [ms for level in levels for ms in level.latencies_ms]
    total = sum(len(level.latencies_ms) + level.failures for level in levels)
    success = sum(1 for level in levels for _ in level.latencies_ms)
    peak_cpu = max(sampler.cpu, default=0.0)
    peak_memory = max(sampler.memory_gb, default=0.0)
    recommended_cpu = max(0.1, _round_up(peak_cpu * HEADROOM))
    recommended_memory = max(0.1, _round_up(peak_memory * HEADROOM))
    if cpu is not None:
        recommended_cpu = min(recommended_cpu, float(cpu))
    if memory_gb is not None:
        recommended_memory = min(recommended_memory, float(memory_gb))
    qps = max((len(level.latencies_ms) / level.seconds for level in levels if level.seconds), default=0.0)
    result: dict[str, Any] = {
        "maxUtilizedMemoryInGB": round(peak_memory, 3),
        "maxUtilizedCpu": round(peak_cpu, 3),
        "totalQueries": total,
        "successQueries": success,
        "successRate": round(100 * success / total, 2) if total else 0.0,
        "measuredQueriesPerSecond": round(qps, 2),
        "averageLatencyInMs": round(sum(latencies) / len(latencies), 3) if latencies else None,
    }
    result.update({key: _percentile(latencies, q) for key, q in PERCENTILES})
    result.update({
        "recommendedCpu": recommended_cpu,
        "recommendedMemoryInGB": recommended_memory,
        "error": None,
        "recommendation": (
            f"Ask for {recommended_cpu:g} CPU and {recommended_memory:g} GB: the peak measured under load "
            f"({peak_cpu:.2f} cores, {peak_memory:.2f} GB at up to {CONCURRENCY_LEVELS[-1]} concurrent requests) "
            f"plus {round((HEADROOM - 1) * 100)}% headroom, rounded up to 0.1"
            + (", within the requested limits." if cpu is not None or memory_gb is not None else ".")
        ),
        "levels": [{"connections": level.connections, "queries": len(level.latencies_ms) + level.failures,
                    "queriesPerSecond": round(len(level.latencies_ms) / level.seconds, 2) if level.seconds else 0.0,
                    "latencyPercentile50InMs": _percentile(level.latencies_ms, 50),
                    "latencyPercentile99InMs": _percentile(level.latencies_ms, 99)} for level in levels],
        "cpuSamples": [round(v, 3) for v in sampler.cpu],
        "memorySamplesInGB": [round(v, 4) for v in sampler.memory_gb],
    })
    return result


def _load(url: str, bodies: list[str], connections: int, headers: dict[str, str], seconds: float) -> _Level:
    level = _Level(connections)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()

    def client(offset: int) -> None:
        index = offset
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                body = bodies[index % len(bodies)].encode()
                index += connections
                sent = time.perf_counter()
                try:
                    ok = session.post(url, data=body, headers=headers, timeout=60).status_code == 200
                except requests.RequestException:
                    ok = False
                elapsed = (time.perf_counter() - sent) * 1000
                with lock:
                    if ok:
                        level.latencies_ms.append(elapsed)
                    else:
                        level.failures += 1

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(client, range(connections)))
    level.seconds = time.perf_counter() - start
    return level


def _container_of(port: int) -> str | None:
    out = subprocess.run(["docker", "ps", "-q", "--filter", f"publish={port}"], capture_output=True, text=True, timeout=30)
    ids = out.stdout.split()
    return ids[0] if ids else None


__all__ = ["ModelProfile", "list_profiles", "profile_model", "read_input_dataset"]
