"""The service layer the faces share (jupyter_mldeploy.actions), against real HTTP servers on 127.0.0.1 and a
real workspace; the faces' own tests check they call it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fixtures.http_servers import recording_answer, redirect_answer, schema_answer, serve

from jupyter_mldeploy import actions
from jupyter_mldeploy.errors import DeploymentError, InvalidArgument, NotFound, headline
from jupyter_mldeploy.workspace import Workspace

NUMBERS = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}, "format": "numpy.ndarray"}


# -- calling an endpoint ----------------------------------------------------------------------------------


def test_a_redirect_is_reported_and_never_followed() -> None:
    with serve(recording_answer) as (target, stolen), serve(redirect_answer(f"{target}/steal")) as (redirector, seen):
        call = actions.call_endpoint(f"{redirector}/score", {"secret": 1}, validate=False)
    assert call.response is not None and call.response.status_code == 307
    assert call.response.location == f"{target}/steal"
    assert not call.ok and "redirect to" in call.status_line() and "not followed" in call.status_line()
    assert seen.paths() == ["/score"]
    assert stolen.paths() == [], "the body was sent on to the redirect's target"


def test_load_test_does_not_follow_redirects_either() -> None:
    with serve(recording_answer) as (target, stolen), serve(redirect_answer(target)) as (redirector, seen):
        call = actions.call_endpoint(f"{redirector}/score", {"x": 1}, validate=False, repeat=5, concurrency=2)
    assert call.report is not None and call.report.statuses == {307: 5} and call.report.failures == 5
    assert len(seen.paths()) == 5 and stolen.paths() == []


def test_a_body_that_misses_the_schema_is_not_sent() -> None:
    with serve(schema_answer({"data": NUMBERS}, {"data": [[1.0, 2.0, 3.0]]})) as (base, hits):
        with pytest.raises(actions.RequestMismatch) as info:
            actions.call_endpoint(f"{base}/score", {"data": [[1.0, "two", 3.0]]})
        assert info.value.http_status == 400
        assert any("data[0][1]" in p for p in info.value.problems)
        assert info.value.to_dict()["problems"] == info.value.problems
        with pytest.raises(actions.RequestMismatch, match="expected 3 values"):
            actions.call_endpoint(f"{base}/score", json.dumps({"data": [[1.0, 2.0]]}).encode())
        assert "/score" not in hits.paths()

        good = actions.call_endpoint(f"{base}/score", {"data": [[1.0, 2.0, 3.0]]})
        assert good.ok and good.response is not None and good.response.body == {"data": [[1.0, 2.0, 3.0]]}
        unchecked = actions.call_endpoint(f"{base}/score", {"data": "anything"}, validate=False)
        assert unchecked.ok
        assert hits.paths().count("/score") == 2
        endpoint = actions.resolve_endpoint(f"{base}/score")
        assert actions.example_payload(endpoint) == {"data": [[1.0, 2.0, 3.0]]}


def test_no_answer_is_service_unreachable_and_bounds_are_checked() -> None:
    with serve(recording_answer) as (base, _):
        pass  # the server is gone: its port refuses connections now
    with pytest.raises(actions.ServiceUnreachable, match="did not answer") as info:
        actions.call_endpoint(f"{base}/score", {}, validate=False)
    assert info.value.http_status == 502
    for bad in ({"repeat": 0}, {"repeat": actions.MAX_REPEAT + 1}, {"concurrency": 0},
                {"concurrency": actions.MAX_CONCURRENCY + 1}, {"repeat": True}):
        with pytest.raises(InvalidArgument):
            actions.call_endpoint(f"{base}/score", {}, validate=False, **bad)


def test_a_service_name_needs_a_workspace_and_must_exist(workspace: Workspace) -> None:
    with pytest.raises(InvalidArgument, match="workspace"):
        actions.resolve_endpoint("svc")
    with pytest.raises(NotFound, match="ghost"):
        actions.call_endpoint("ghost", {}, workspace)


# -- tags ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("stage=dev, team=vision", {"stage": "dev", "team": "vision"}),
        (["stage=dev", "team = vision "], {"stage": "dev", "team": "vision"}),
        (["stage=dev,team=x", "note=a,b"], {"stage": "dev", "team": "x", "note": "a,b"}),
        ("url=http://h/?a=1", {"url": "http://h/?a=1"}),
        ("empty=", {"empty": ""}),
        ("", {}),
        (None, {}),
        ({"k": 1}, {"k": "1"}),
    ],
)
def test_tags_parse_one_way(given: object, expected: dict[str, str]) -> None:
    assert actions.parse_tags(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "message"), [
    ("novalue", "'novalue' is not KEY=VALUE"),
    ("=x", "is not KEY=VALUE"),
    ("a=1, a=2", "'a' is given twice"),
])
def test_bad_tags_name_the_pair(given: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        actions.parse_tags(given)


def test_filters_accept_bare_keys() -> None:
    assert actions.parse_filters(["stage", "team=x"]) == ["stage", ["team", "x"]]
    assert actions.parse_filters(None) is None


# -- one-line errors and formats ----------------------------------------------------------------------------


def test_summary_is_one_line_with_the_exception() -> None:
    error = DeploymentError("Service 'x' is Failed.", logs="loading\nTraceback (most recent call last):\n"
                                                          "  File 'score.py'\nKeyError: 'model'")
    assert error.summary == "Service 'x' is Failed. (KeyError: 'model')"
    assert "\n" not in NotFound("a\n  b").summary and NotFound("a\n  b").summary == "a b"
    assert headline("") == ""


def test_times_are_local_to_the_second() -> None:
    script = ("from jupyter_mldeploy.actions import format_time; "
              "print(format_time('2026-01-02T03:04:05.678+00:00'))")
    env_tz = {"TZ": "Asia/Kolkata", "PATH": "/usr/bin:/bin"}
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env_tz, check=True)
    assert shown.stdout.strip() == "2026-01-02 08:34:05"  # UTC+05:30, seconds, no zone suffix
    assert actions.format_time(None) == "-"
    now = datetime.now(timezone.utc)
    assert actions.format_time(now) == now.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# -- workspace resolution -----------------------------------------------------------------------------------


def test_reading_never_creates_and_names_what_it_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLDEPLOY_WORKSPACE", raising=False)
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    with pytest.raises(NotFound) as info:
        Workspace.from_config(create=False)
    message = str(info.value)
    assert str(project / ".mldeploy") in message and str(tmp_path / "project" / ".mldeploy") in message
    assert "mldeploy workspace create" in message
    assert not (project / ".mldeploy").exists()
    with pytest.raises(NotFound, match="mldeploy workspace create"):
        Workspace.from_config(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()

    created = Workspace.from_config()
    assert created.created and created.path == project / ".mldeploy"
    again = Workspace.from_config(create=False)
    assert again == created and not again.created


def test_a_dot_mldeploy_folder_without_registry_is_not_a_workspace(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLDEPLOY_WORKSPACE", raising=False)
    Workspace.create(tmp_path / ".mldeploy")
    (tmp_path / "a" / ".mldeploy").mkdir(parents=True)  # a stray folder: no registry.sqlite
    location = actions.locate_workspace(start=tmp_path / "a")
    assert location.exists and location.path == tmp_path / ".mldeploy"
    assert location.source == "nearest .mldeploy"


# -- service rows -------------------------------------------------------------------------------------------


def test_service_rows_take_uptime_from_the_started_time(workspace: Workspace, tmp_path: Path) -> None:
    from fixtures.deploy_support import source_dir, train_ridge

    from jupyter_mldeploy import InferenceConfig, LocalWebservice, Model

    assert actions.list_services(workspace) == []
    path, _, samples = train_ridge(tmp_path / "train")
    model = actions.register_model(workspace, path, "diabetes", tags="stage=dev, team=ml")
    assert model.tags == {"stage": "dev", "team": "ml"}
    config = InferenceConfig("score.py", source_directory=source_dir(tmp_path, "score_ridge.py"))
    service = Model.deploy(workspace, "svc", [model], config, LocalWebservice.deploy_configuration())
    try:
        service.wait_for_deployment(timeout_sec=120)
        time.sleep(1.1)
        [row] = actions.list_services(workspace)
        assert row.name == "svc" and row.state == "Healthy" and row.models == ("diabetes:1",)
        assert row.started_time is not None and row.uptime_s is not None and row.uptime_s >= 1.0
        assert row.scoring_uri == service.scoring_uri
        call = actions.call_endpoint("svc", {"data": samples}, workspace)
        assert call.ok and len(call.response.body) == 3  # type: ignore[union-attr]
        assert actions.example_payload(actions.resolve_endpoint("svc", workspace)) is None
        with pytest.raises(InvalidArgument, match="log lines"):
            actions.service_logs(workspace, "svc", 0)
    finally:
        actions.delete_service(workspace, "svc")
    assert actions.list_services(workspace) == []
    assert actions.delete_model(workspace, "diabetes:1") == "diabetes:1"
    with pytest.raises(InvalidArgument, match="version to delete"):
        actions.delete_model(workspace, "diabetes")
