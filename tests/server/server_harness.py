"""Start and stop real scoring servers (``python -m jupyter_mldeploy.server``) for the tests.

Every server is started with ``--port 0 --status-file``; the port it got is read from the status file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Server:
    """One supervisor process started by a test."""

    proc: subprocess.Popen[bytes]
    app_dir: Path
    status_path: Path
    log_path: Path
    seen_pids: set[int] = field(default_factory=set)

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        self.seen_pids.update(data.get("workers") or [])
        return data

    @property
    def port(self) -> int:
        return int(self.status()["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status and predicate(status):
                return status
            if self.proc.poll() is not None:
                status = self.status()
                if status and predicate(status):
                    return status
                raise AssertionError(f"server exited ({self.proc.returncode}); status {status}\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; status {self.status()}\n{self.log()}")

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(lambda s: s.get("state") == "Healthy", timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def cleanup(self) -> None:
        self.status()
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.stop(timeout=20)
        for pid in self.seen_pids | {c.pid for c in children}:
            try:
                proc = psutil.Process(pid)
                if "jupyter_mldeploy.server" in " ".join(proc.cmdline()):
                    proc.kill()
                    proc.wait(5)
            except psutil.NoSuchProcess:
                pass


ServeFactory = Callable[..., Server]


def write_script(folder: Path, source: str, name: str = "score.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def start_server(
    servers: list[Server], base: Path, source: str | None, args: tuple[str, ...], env: dict[str, str] | None,
    wait: bool, files: dict[str, str] | None, command: list[str] | None,
) -> Server:
    index = len(servers)
    app_dir = base / f"app{index}"
    app_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        target = app_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content))
    argv = list(args)
    if source is not None:
        write_script(app_dir, source)
        argv = ["--entry_script", str(app_dir / "score.py"), *argv]
    status_path = base / f"status{index}.json"
    log_path = base / f"server{index}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "SCORING_", "WORKER_"))}
    full_env["AML_APP_ROOT"] = str(app_dir)
    full_env.update(env or {})
    cmd = command or [sys.executable, "-m", "jupyter_mldeploy.server"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--port", "0", "--status-file", str(status_path), *argv],
            cwd=str(app_dir), env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server(proc=proc, app_dir=app_dir, status_path=status_path, log_path=log_path)
    servers.append(server)
    if wait:
        server.wait_healthy()
    return server
