"""What keeping the registry immutable costs: placing a 1 GB model into a service's app folder.

A registered model's files are checked against their recorded sha256 before a deployment uses them, and the
process target places copies (copy-on-write clones where the file system has them), so a ``score.py`` that
writes to its model folder cannot change the registered version. This script measures, for a model of
``--size-mb`` (default 1024) MB:

1. ``register``: ``Model.register`` (copy into the registry + sha256);
2. ``layout, first`` (process target): check (full sha256 read) + copy/clone;
3. ``layout, again``: the check is skipped (inode, size and mtime unchanged since the first check), copy only;
4. ``layout, reload``: a reload or update of the same service: the previous generation's unchanged copies are
   hard-linked (no copy);
5. ``layout, links`` (Docker target: the folder is mounted read-only): check cached + hard links;
6. ``cp`` of the same file, for reference;
7. ``deploy -> Healthy`` and ``reload -> Healthy`` of a real service on the process target.

Run: ``python benchmarks/model_placement.py [--size-mb 1024]``. Everything is created in a temporary folder
and removed; the service is deleted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from deploy_support import source_dir, train_ridge  # noqa: E402

from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model, Workspace  # noqa: E402
from jupyter_mldeploy.deploy.app_folder import VerifiedFiles, build_app_folder  # noqa: E402
from jupyter_mldeploy.deploy.model_sources import resolve_model_sources  # noqa: E402


def timed(label: str, func, results: list[tuple[str, float]]):  # noqa: ANN001, ANN201 - a script
    started = time.perf_counter()
    value = func()
    results.append((label, time.perf_counter() - started))
    print(f"{label:<28} {results[-1][1]:8.2f} s", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the model's data file in MB")
    args = parser.parse_args()
    results: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mldeploy-placement-") as tmp:
        root = Path(tmp)
        model_dir = root / "model"
        train_ridge(model_dir)
        blob = model_dir / "weights.bin"
        with open(blob, "wb") as handle:
            chunk = bytes(range(256)) * 4096  # 1 MiB, not all zeros (no sparse-file shortcut)
            for _ in range(args.size_mb):
                handle.write(chunk)
        print(f"model: {args.size_mb} MB data file + model.pkl on {subprocess.run(['df', '--output=fstype', tmp], capture_output=True, text=True).stdout.split()[-1]}")
        workspace = Workspace.create(root / "ws")
        model = timed("register", lambda: Model.register(workspace, str(model_dir), "big"), results)
        sources = resolve_model_sources(workspace, [model])
        src = source_dir(root, "score_ridge.py")
        score = src / "score.py"  # the registered folder is "model/": its files sit one level down
        score.write_text(score.read_text().replace('"model.pkl"', '"model", "model.pkl"'))
        cache = VerifiedFiles(root / "verified.json")

        def layout(name: str, placement: str, previous: str | None = None):  # noqa: ANN202
            return lambda: build_app_folder(root / name, src / "score.py", src, sources, model_placement=placement,
                                            verified=cache, previous=root / previous if previous else None)

        timed("layout, first (copy)", layout("app-1", "copy"), results)
        timed("layout, again (copy)", layout("app-2", "copy"), results)
        timed("layout, reload (reuse)", layout("app-4", "copy", previous="app-1"), results)
        timed("layout, links (docker)", layout("app-3", "link"), results)
        timed("cp, for reference", lambda: shutil.copyfile(blob, root / "copy.bin"), results)
        for name in ("app-1", "app-2", "app-3", "app-4", "copy.bin"):
            path = root / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()

        ic = InferenceConfig("score.py", source_directory=src)
        service = timed("deploy -> Healthy", lambda: _deploy(workspace, model, ic), results)
        try:
            timed("reload -> Healthy", service.reload, results)
        finally:
            service.delete()


def _deploy(workspace: Workspace, model: Model, ic: InferenceConfig):  # noqa: ANN202
    service = Model.deploy(workspace, "big", [model], ic, LocalWebservice.deploy_configuration())
    service.wait_for_deployment(timeout_sec=600)
    return service


if __name__ == "__main__":
    main()
