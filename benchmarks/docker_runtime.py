"""Docker runtime benchmark: image build cold, redeploy with a cached image, serving container vs process.

What it measures (about two minutes on 2 cores, most of it the cold build):

1. **Image build, cold**: the environment image of the diabetes app (``environment=None``: the scoring
   server's requirements plus this interpreter's numpy, pandas, scikit-learn and joblib) built with the
   engine's layer cache off (``nocache``): base image -> venv -> ``pip install`` from the package index ->
   scoring server.
2. **Deploy with the image cached**: ``Model.deploy(..., runtime="docker")`` + ``wait_for_deployment``
   until ``Healthy`` (image lookup, app folder, container start, ``init()``); target <= 5 s. Then
   **reload** of a changed ``score.py`` (SIGHUP into the running container, no build).
3. **Serving**: the same model and ``score.py`` deployed on the process runtime and in Docker (one worker
   each), called ``--requests`` times back to back over one keep-alive connection after a warm-up, in
   ``--rounds`` rounds of alternating order; medians of req/s and p50/p99 latency, and the ratio
   container/process (above 1: the container serves faster).

Run: ``python benchmarks/docker_runtime.py [--requests 2000] [--rounds 3] [--skip-cold]`` with a Docker engine and a base image
(``scripts/docker-setup``). Everything it creates (workspace, services, the images it built) is removed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from deploy_support import source_dir, train_ridge  # noqa: E402

from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Workspace  # noqa: E402
from jupyter_mldeploy.docker.build import build_context, environment_context  # noqa: E402
from jupyter_mldeploy.docker.engine import docker_client  # noqa: E402
from jupyter_mldeploy.docker.notebook_env import notebook_requirements  # noqa: E402


def serve_rate(url: str, body: str, count: int) -> tuple[float, float, float]:
    """Return ``(requests per second, p50 ms, p99 ms)`` of ``count`` sequential POSTs on one connection."""
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    for _ in range(50):
        session.post(url, data=body, headers=headers, timeout=30).raise_for_status()
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        session.post(url, data=body, headers=headers, timeout=30).raise_for_status()
        latencies.append((time.perf_counter() - before) * 1000)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return count / elapsed, statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="Requests per runtime for the serving test.")
    parser.add_argument("--rounds", type=int, default=3, help="Serving rounds (medians are reported).")
    parser.add_argument("--skip-cold", action="store_true", help="Do not measure the cold image build.")
    args = parser.parse_args()

    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="mldeploy-bench-") as tmp:
        root = Path(tmp)
        ws = Workspace.create(root / "ws")
        path, model, samples = train_ridge(root / "model")
        registered = Model.register(ws, model_path=str(path), model_name="diabetes")
        source = source_dir(root, "score_ridge.py")
        inference = InferenceConfig("score.py", source_directory=source)
        body = json.dumps({"data": samples})
        rows: list[tuple[str, str]] = []

        context = environment_context(client, None, extra_requirements=notebook_requirements(inference))
        existed = bool(client.images.list(name=context.image_tag))
        if not args.skip_cold:
            started = time.monotonic()
            build_context(client, context, show_output=False, reuse=False, nocache=True)
            rows.append(("image build, cold (no layer cache, packages from the index)",
                         f"{time.monotonic() - started:.1f} s"))
        else:
            build_context(client, context, show_output=False)

        config = LocalWebservice.deploy_configuration(runtime="docker")
        started = time.monotonic()
        container = Model.deploy(ws, "bench-docker", [registered], inference, config)
        container.wait_for_deployment(timeout_sec=120)
        deploy_s = time.monotonic() - started
        rows.append(("deploy with the image cached -> Healthy (target <= 5 s)", f"{deploy_s:.2f} s"))
        script = source / "score.py"
        script.write_text(script.read_text().replace("return result.tolist()", "return list(result)"))
        started = time.monotonic()
        container.reload()
        rows.append(("reload of a changed score.py (no build) -> serving", f"{time.monotonic() - started:.2f} s"))
        script.write_text(script.read_text().replace("return list(result)", "return result.tolist()"))
        container.reload()

        local = Model.deploy(ws, "bench-process", [registered], inference, LocalWebservice.deploy_configuration())
        local.wait_for_deployment(timeout_sec=120)
        measured: dict[str, list[tuple[float, float, float]]] = {"process": [], "docker": []}
        try:
            for round_number in range(args.rounds):
                # Alternate the order so that load from other programs does not favour one runtime.
                order = [("process", local), ("docker", container)]
                for kind, service in order if round_number % 2 == 0 else order[::-1]:
                    measured[kind].append(serve_rate(service.scoring_uri, body, args.requests))
        finally:
            local.delete()
            container.delete()

        def median(kind: str) -> tuple[float, float, float]:
            runs = measured[kind]
            return tuple(statistics.median(run[i] for run in runs) for i in range(3))  # type: ignore[return-value]

        process_rate, docker_rate = median("process"), median("docker")
        rows.append(("serving, process runtime", f"{process_rate[0]:.0f} req/s, p50 {process_rate[1]:.2f} ms, "
                                                 f"p99 {process_rate[2]:.2f} ms"))
        rows.append(("serving, docker runtime", f"{docker_rate[0]:.0f} req/s, p50 {docker_rate[1]:.2f} ms, "
                                                f"p99 {docker_rate[2]:.2f} ms"))
        rows.append(("serving ratio container/process (req/s)", f"{docker_rate[0] / process_rate[0]:.2f}"))
        if not existed:
            client.images.remove(context.image_tag, force=True)

    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)}  value")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
