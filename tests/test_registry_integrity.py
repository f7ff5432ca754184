"""Registry integrity: concurrent registration, SIGKILL mid-copy, orphans, stale staging, tampered files."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jupyter_mldeploy.errors import IntegrityError
from jupyter_mldeploy.registry import Model
from jupyter_mldeploy.registry.store import STALE_UNLOCKED_AGE_S, ModelStore, NewModel
from jupyter_mldeploy.workspace import Workspace

REGISTER = """
import os, sys, time
from jupyter_mldeploy import Model, Workspace
workspace, source, name, go = sys.argv[1:5]
while go != "-" and not os.path.exists(go):
    time.sleep(0.002)
print(Model.register(Workspace(workspace), source, name).version, flush=True)
"""

HOLD_LOCK = """
import fcntl, os, sys, time
folder = sys.argv[1]
os.makedirs(os.path.join(folder, "content"))
fd = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


def _staging(ws: Workspace) -> list[Path]:
    root = ws.models_dir / ".staging"
    return sorted(root.iterdir()) if root.is_dir() else []


def _visible_versions(ws: Workspace, name: str) -> list[str]:
    folder = ws.models_dir / name
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_eight_processes_get_distinct_consecutive_versions(workspace: Workspace, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = []
    for i in range(8):
        source = tmp_path / f"src{i}" / "model.bin"
        source.parent.mkdir()
        source.write_bytes(f"process {i} ".encode() * 5000)
        procs.append(
            (i, subprocess.Popen(
                [sys.executable, "-c", REGISTER, str(workspace.path), str(source), "shared", str(go)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
        )
    time.sleep(1.0)  # let every interpreter start and wait at the barrier
    go.touch()
    by_version: dict[int, int] = {}
    for i, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        by_version[int(out.strip())] = i
    assert sorted(by_version) == list(range(1, 9))
    for version, i in by_version.items():
        model = Model(workspace, "shared", version=version)
        assert Path(model.path).read_bytes() == f"process {i} ".encode() * 5000
    assert _visible_versions(workspace, "shared") == [str(v) for v in range(1, 9)]
    assert _staging(workspace) == []


def test_sigkill_mid_copy_leaves_no_visible_version(workspace: Workspace, tmp_path: Path) -> None:
    big = tmp_path / "big" / "weights.bin"
    big.parent.mkdir()
    with open(big, "wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: cheap to create, 200 MB to copy and hash
    proc = subprocess.Popen(
        [sys.executable, "-c", REGISTER, str(workspace.path), str(big), "big", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    copied = None
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list((workspace.models_dir / ".staging").glob("*/content/weights.bin"))
        if partial and partial[0].stat().st_size > 0:
            copied = partial[0].stat().st_size
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the registration finished before it could be killed"
    assert copied is not None and copied < big.stat().st_size
    assert Model.list(workspace) == []
    assert _visible_versions(workspace, "big") == []
    assert len(_staging(workspace)) == 1  # the dead process's half copy, invisible

    small = tmp_path / "small" / "weights.bin"
    small.parent.mkdir()
    small.write_bytes(b"small")
    model = Model.register(workspace, small, "big")
    assert model.version == 1
    assert Path(model.path).read_bytes() == b"small"
    assert _staging(workspace) == []  # the stale staging folder was removed


def test_orphan_folder_from_crash_before_commit_is_replaced(workspace: Workspace, tmp_path: Path) -> None:
    orphan = workspace.models_dir / "m" / "1"
    orphan.mkdir(parents=True)
    (orphan / "half.bin").write_bytes(b"junk")
    os.chmod(orphan / "half.bin", 0o444)
    source = tmp_path / "model.pkl"
    source.write_bytes(b"real")
    model = Model.register(workspace, source, "m")
    assert model.version == 1
    assert sorted(os.listdir(model.url)) == ["model.pkl"]
    assert model.download(tmp_path / "out") == str(tmp_path / "out" / "model.pkl")


def test_staging_of_a_live_process_is_kept_and_removed_once_it_dies(workspace: Workspace, tmp_path: Path) -> None:
    folder = workspace.models_dir / ".staging" / "held-by-live-process"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        source = tmp_path / "m.bin"
        source.write_bytes(b"x")
        Model.register(workspace, source, "m")
        assert folder.is_dir()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    Model.register(workspace, source, "m")
    assert not folder.exists()
    assert [m.version for m in Model.list(workspace)] == [2, 1]


def test_lockless_staging_removed_only_when_old(workspace: Workspace, tmp_path: Path) -> None:
    root = workspace.models_dir / ".staging"
    old, young = root / "old", root / "young"
    for folder in (old, young):
        (folder / "content").mkdir(parents=True)
    past = time.time() - STALE_UNLOCKED_AGE_S - 10
    os.utime(old, (past, past))
    source = tmp_path / "m.bin"
    source.write_bytes(b"x")
    Model.register(workspace, source, "m")
    assert not old.exists()
    assert young.exists()


def _new(name: str, entries: tuple[tuple[Path, str], ...], resources: object = None) -> NewModel:
    return NewModel(
        name=name, root="m.bin", is_folder=False, entries=entries, description=None, tags={}, properties={},
        created_time=datetime.now(timezone.utc), model_framework=None, model_framework_version=None,
        sample_input=None, lineage={}, resource_configuration=resources,  # type: ignore[arg-type]
    )


def test_failure_while_copying_leaves_nothing(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"x")
    with pytest.raises(FileExistsError):
        ModelStore(workspace).register(_new("m", ((source, "m.bin"), (source, "m.bin"))))
    assert Model.list(workspace) == []
    assert _staging(workspace) == []


def test_failure_inside_the_transaction_leaves_nothing(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "m.bin"
    source.write_bytes(b"x")
    with pytest.raises(TypeError):
        # Not JSON: the row's insert fails after the version folder was renamed into place.
        ModelStore(workspace).register(_new("m", ((source, "m.bin"),), resources=object()))
    assert Model.list(workspace) == []
    assert _visible_versions(workspace, "m") == []
    assert _staging(workspace) == []
    assert Model.register(workspace, source, "m").version == 1


def test_tampered_file_fails_download_with_no_output(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 1000)
    (folder / "b.bin").write_bytes(b"b" * 1000)
    model = Model.register(workspace, folder, "m")
    stored = Path(model.url) / "models" / "b.bin"
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[500] ^= 0x01  # same size, one bit different
    stored.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match="b.bin has sha256") as info:
        model.download(out)
    assert hashlib.sha256(bytes(data)).hexdigest() in str(info.value)
    assert list(out.iterdir()) == []


def test_missing_stored_file_fails_download(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "m.pkl"
    source.write_bytes(b"x")
    model = Model.register(workspace, source, "m")
    os.unlink(model.path)
    with pytest.raises(IntegrityError, match="missing"):
        model.download(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def _fake_dead_deletion(ws: Workspace, name: str, version: int) -> Path:
    """Leave the state of a deletion killed after moving the folder: content in staging, lock not held."""
    staging = ws.models_dir / ".staging" / "dead-deletion"
    staging.mkdir(parents=True)
    (staging / "lock").write_text("12345\n")
    (staging / "restore.json").write_text(json.dumps({"name": name, "version": version}))
    os.rename(ws.models_dir / name / str(version), staging / "content")
    return staging


def test_deletion_killed_before_commit_is_restored(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "m.pkl"
    source.write_bytes(b"keep me")
    model = Model.register(workspace, source, "m")
    staging = _fake_dead_deletion(workspace, "m", 1)  # the rows were never deleted (rolled back)
    other = tmp_path / "o.pkl"
    other.write_bytes(b"o")
    Model.register(workspace, other, "other")  # any later write runs the clean-up
    assert not staging.exists()
    assert Path(model.path).read_bytes() == b"keep me"
    assert Path(model.download(tmp_path / "out")).read_bytes() == b"keep me"


def test_deletion_killed_after_commit_is_finished(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "m.pkl"
    source.write_bytes(b"x")
    Model.register(workspace, source, "m")
    Model.register(workspace, source, "m")
    staging = _fake_dead_deletion(workspace, "m", 2)
    with workspace.transaction() as conn:  # the deletion had committed
        conn.execute("DELETE FROM models WHERE name = 'm' AND version = 2")
    assert Model.register(workspace, source, "m").version == 2
    assert not staging.exists()
    assert [m.version for m in Model.list(workspace)] == [2, 1]
