"""What the faces add to a test request: direct POST vs ``actions.call_endpoint`` vs the sidebar's REST proxy.

Deploys Ridge on ``load_diabetes`` (the classic ``score.py``, process runtime) in a temporary workspace,
starts a real ``jupyter server`` with the extension on 127.0.0.1, then sends ``--requests`` requests of 3
rows each, one after another after 10 warm-up ones, three ways:

1. **direct**: ``send_request`` to the scoring URI (one new connection per request, as the proxy makes);
2. **call_endpoint**: the service layer as ``%test_endpoint`` and ``mldeploy service run`` use it: resolve
   the service, fetch its swagger (the input-schema check), send;
3. **REST proxy**: ``POST <base>/mldeploy/api/services/{name}/score`` with Jupyter's token, as the sidebar
   sends it (the handler runs ``call_endpoint`` in a worker thread).

Prints the median and p95 latency of each, in milliseconds. Run: ``python benchmarks/score_proxy.py
[--requests 200]``. Everything it creates (workspace, service, server) is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from deploy_support import source_dir, train_ridge  # noqa: E402

from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Workspace, actions  # noqa: E402
from jupyter_mldeploy.deploy.client import send_request  # noqa: E402

TOKEN = "benchmark-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(call: Callable[[], object], count: int) -> list[float]:
    for _ in range(10):
        call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def report(name: str, times: list[float]) -> None:
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"{name:<14} median {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   ({len(times)} requests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.create(root / ".mldeploy")
        path, _, samples = train_ridge(root / "train")
        model = Model.register(ws, model_path=str(path), model_name="diabetes")
        config = InferenceConfig("score.py", source_directory=source_dir(root, "score_ridge.py"))
        service = Model.deploy(ws, "bench-svc", [model], config, LocalWebservice.deploy_configuration())
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
             f"--MLDeployExtension.workspace={ws.path}", "--allow-root"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
        )
        try:
            service.wait_for_deployment(timeout_sec=120)
            base = f"http://127.0.0.1:{port}/mldeploy/api"
            headers = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/workspace", headers=headers, timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("jupyter server did not start within 60 s")
                time.sleep(0.2)
            body = json.dumps({"data": samples})
            uri = service.scoring_uri
            report("direct", timed(lambda: send_request(uri, body), args.requests))
            report("call_endpoint", timed(lambda: actions.call_endpoint("bench-svc", body, ws), args.requests))
            proxy = f"{base}/services/bench-svc/score"
            report("REST proxy", timed(lambda: requests.post(proxy, data=body, headers=headers, timeout=30),
                                       args.requests))
        finally:
            server.terminate()
            server.wait(30)
            service.delete()


if __name__ == "__main__":
    main()
