"""Workspace: layout, database mode, lookup order, and refusing folders it cannot use."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mldeploy.errors import Conflict, NotFound, WorkspaceError
from jupyter_mldeploy.workspace import LAYOUT_VERSION, Workspace


def test_create_lays_out_folder_and_wal_database(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "new" / "ws")
    for name in ("models", "environments", "deployments"):
        assert (ws.path / name).is_dir()
    assert ws.registry_path.is_file()
    with ws.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()[0]
    assert {"models", "model_files", "environments", "services", "service_models"} <= tables
    assert int(version) == LAYOUT_VERSION


def test_create_exist_ok_false_refuses_existing(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "ws")
    with pytest.raises(Conflict, match="already exists"):
        Workspace.create(tmp_path / "ws", exist_ok=False)
    assert Workspace.create(tmp_path / "ws", exist_ok=True).path == (tmp_path / "ws").resolve()


def test_get_requires_existing_workspace(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="Workspace.create"):
        Workspace.get(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    Workspace.create(tmp_path / "ws")
    assert Workspace.get(tmp_path / "ws") == Workspace(tmp_path / "ws")


def test_name_of_dot_mldeploy_is_the_project_folder(tmp_path: Path) -> None:
    assert Workspace(tmp_path / "proj" / ".mldeploy").name == "proj"
    assert Workspace(tmp_path / "other").name == "other"


def test_from_config_explicit_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_WORKSPACE", str(tmp_path / "from-env"))
    monkeypatch.chdir(tmp_path)
    assert Workspace.from_config(tmp_path / "explicit").path == (tmp_path / "explicit").resolve()
    assert not (tmp_path / "from-env").exists()


def test_from_config_path_holding_dot_mldeploy(tmp_path: Path) -> None:
    project = tmp_path / "project"
    Workspace.create(project / ".mldeploy")
    assert Workspace.from_config(project).path == (project / ".mldeploy").resolve()


def test_from_config_env_before_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.create(tmp_path / ".mldeploy")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.setenv("MLDEPLOY_WORKSPACE", str(tmp_path / "from-env"))
    assert Workspace.from_config().path == (tmp_path / "from-env").resolve()


def test_from_config_nearest_parent_then_new_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outer = Workspace.create(tmp_path / ".mldeploy")
    inner = Workspace.create(tmp_path / "a" / ".mldeploy")
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert Workspace.from_config() == inner  # the nearest, not the outermost
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = Workspace.from_config()
    assert found.path == (elsewhere / ".mldeploy").resolve()
    assert found.registry_path.exists()
    assert outer != found


@pytest.mark.parametrize(("stored", "hint"), [(0, "older jupyter-mldeploy"), (LAYOUT_VERSION + 1, "upgrade")])
def test_other_layout_version_is_a_clear_error(tmp_path: Path, stored: int, hint: str) -> None:
    ws = Workspace.create(tmp_path / "ws")
    with sqlite3.connect(ws.registry_path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'layout_version'", (str(stored),))
    with pytest.raises(WorkspaceError, match=f"layout version {stored}") as info:
        Workspace(tmp_path / "ws")
    assert hint in str(info.value)


def test_refuses_a_file_and_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WorkspaceError, match="is a file"):
        Workspace(tmp_path / "afile")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not a workspace"):
        Workspace(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_unreadable_database_is_a_workspace_error(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    for suffix in ("-wal", "-shm"):
        Path(f"{ws.registry_path}{suffix}").unlink(missing_ok=True)
    ws.registry_path.write_bytes(b"this is not sqlite " * 200)
    with pytest.raises(WorkspaceError, match="not a readable registry database"):
        Workspace(tmp_path / "ws")


def test_transaction_rolls_back_on_error(workspace: Workspace) -> None:
    with pytest.raises(RuntimeError), workspace.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', '1')")
        raise RuntimeError("boom")
    with workspace.connect() as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'probe'").fetchone() is None
    with workspace.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', '2')")
    with workspace.connect() as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'probe'").fetchone()[0] == "2"


def test_one_rule_for_a_path_the_environment_and_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_mldeploy.workspace import locate_workspace

    project = tmp_path / "project"
    Workspace.create(project / ".mldeploy")
    given = locate_workspace(project)
    assert (given.path, given.exists, given.source) == (project / ".mldeploy", True, "given")
    monkeypatch.setenv("MLDEPLOY_WORKSPACE", str(project))  # a project folder, as a path argument may be
    from_env = locate_workspace(start=tmp_path)
    assert (from_env.path, from_env.source) == (project / ".mldeploy", "$MLDEPLOY_WORKSPACE")
    monkeypatch.setenv("MLDEPLOY_WORKSPACE", "relative-ws")  # read against the start folder
    relative = locate_workspace(start=tmp_path)
    assert relative.path == tmp_path / "relative-ws" and not relative.exists
    assert relative.searched == (tmp_path / "relative-ws", tmp_path / "relative-ws" / ".mldeploy")
    monkeypatch.delenv("MLDEPLOY_WORKSPACE")
    inside = project / "notebooks"
    inside.mkdir()
    found = locate_workspace(start=inside)
    assert found.path == project / ".mldeploy" and found.searched[:2] == (inside / ".mldeploy", project / ".mldeploy")


def test_created_says_whether_this_call_laid_the_folder_out(tmp_path: Path) -> None:
    first = Workspace.create(tmp_path / "ws")
    assert first.created
    assert not Workspace(tmp_path / "ws").created and not Workspace.from_config(tmp_path / "ws").created


# -- layout migrations ------------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _rows(database: Path) -> list[dict]:
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM models ORDER BY name, version")]


def _layout(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()[0])


def test_a_layout_2_workspace_migrates_on_open_and_loses_nothing(tmp_path: Path) -> None:
    """The fixture was written by the code before layout 3 (tests/fixtures/workspace_layout_2/README.md)."""
    from jupyter_mldeploy.registry import Model

    folder = tmp_path / "ws"
    shutil.copytree(FIXTURES / "workspace_layout_2", folder)
    before = _rows(folder / "registry.sqlite")
    assert _layout(folder / "registry.sqlite") == 2 and len(before) == 4
    ws = Workspace(folder)
    assert _layout(ws.registry_path) == LAYOUT_VERSION == 3
    after = _rows(ws.registry_path)
    assert [{k: row[k] for k in before[0]} for row in after] == before  # every old column, every row, unchanged
    assert {(r["samples"], r["resource_configuration"]) for r in after} == {("{}", None)}
    first, second = Model(ws, "iris", version=1), Model(ws, "iris", version=2)
    assert first.sample_input == {"data": [[0.1, 0.9], [0.8, 0.3]]}  # as layout 2 stored it
    assert [c.type for c in first.sample_input_dataset.columns] == ["number", "number"]  # read as a table
    assert second.sample_input == {"data": [{"a": 1, "b": "x"}], "method": "predict"}
    assert second.sample_input_dataset.kind == "json"
    assert (first.tags, first.properties, first.model_framework_version) == ({"stage": "dev"}, {"accuracy": "0.93"},
                                                                             "1.5.2")
    assert first.sample_output is None and first.resource_configuration is None
    assert first.serialize()["sampleInputDatasetId"] is None
    assert Model(ws, "from-run").run_id is not None and Model(ws, "from-run").download(tmp_path / "out")
    newer = Model.register(ws, Path(first.path), "iris", sample_input=[[0.2, 0.8]], sample_output=[1])
    assert newer.version == 3 and Model(ws, "iris").sample_output == [1]
    Workspace(folder)  # opening again is a no-op
    assert _layout(ws.registry_path) == 3


def test_a_release_0_1_workspace_migrates_through_every_layout(tmp_path: Path) -> None:
    from jupyter_mldeploy.registry import Model

    folder = tmp_path / "ws"
    shutil.copytree(FIXTURES / "workspace_0_1", folder)
    assert _layout(folder / "registry.sqlite") == 1
    ws = Workspace(folder)
    assert _layout(ws.registry_path) == LAYOUT_VERSION
    model = Model(ws, "diabetes")
    assert (model.version, model.run_id, model.sample_input, model.resource_configuration) == (1, None, None, None)


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    shutil.copytree(FIXTURES / "workspace_layout_2", folder)
    with sqlite3.connect(folder / "registry.sqlite") as conn:  # the second step of 2 -> 3 will fail
        conn.execute("ALTER TABLE models ADD COLUMN resource_configuration TEXT")
    before = _rows(folder / "registry.sqlite")
    with pytest.raises(WorkspaceError, match="from layout version 2 to 3") as info:
        Workspace(folder)
    assert "nothing was changed" in str(info.value) and "resource_configuration" in str(info.value)
    assert _layout(folder / "registry.sqlite") == 2 and _rows(folder / "registry.sqlite") == before


def test_the_code_before_layout_3_refuses_a_layout_3_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              ) -> None:
    """The layout-2 code (commit b2aae97) opening a workspace this code wrote: a clear error, nothing read."""
    try:
        old_source = subprocess.run(["git", "show", "b2aae97:jupyter_mldeploy/workspace.py"], cwd=FIXTURES,
                                    capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs the repository's history (git show b2aae97)")
    module_path = tmp_path / "old_workspace.py"
    module_path.write_text(old_source)
    spec = importlib.util.spec_from_file_location("old_workspace", module_path)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "old_workspace", old)  # its dataclasses look their module up
    spec.loader.exec_module(old)
    assert old.LAYOUT_VERSION == 2
    Workspace.create(tmp_path / "ws")
    with pytest.raises(WorkspaceError) as info:
        old.Workspace(tmp_path / "ws")
    assert str(info.value).endswith("has layout version 3, this jupyter-mldeploy reads version 2: upgrade "
                                    "jupyter-mldeploy to open it.")
