"""The notebook magics, driven through a real (history-less) IPython shell against real local services."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fixtures.deploy_support import wait_for
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from jupyter_mldeploy.deploy import Webservice
from jupyter_mldeploy.deploy.client import send_request
from jupyter_mldeploy.deploy.payload_schema import input_schema_from_swagger
from jupyter_mldeploy.deploy.trial_run import run_entry_check
from jupyter_mldeploy.errors import headline
from jupyter_mldeploy.notebook.magics import MLDeployMagics
from jupyter_mldeploy.workspace import Workspace

SCHEMA_SCORE = '''
import json
import os

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global factor
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.json")) as handle:
        factor = json.load(handle)["factor"]
    print("loaded factor", factor)


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@output_schema(NumpyParameterType(np.array([1.0])))
def run(data):
    return data.sum(axis=1) * factor
'''

BROKEN_INIT = '''
import os


def init():
    open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb")


def run(raw_data):
    return raw_data
'''


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config, history_length=0)
    ip.run_line_magic("load_ext", "jupyter_mldeploy")
    yield ip
    InteractiveShell.clear_instance()


@pytest.fixture
def nb(shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """The shell, working in a fresh folder and workspace; every service is deleted afterwards."""
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("mldeploy_workspace", str(tmp_path / "ws"))
    yield shell
    for service in Webservice.list(Workspace(tmp_path / "ws")):
        service.delete()


def _model_file(tmp_path: Path, factor: float) -> Path:
    """A one-file model, ``factor.json`` (registered files keep their name: AZUREML_MODEL_DIR/factor.json)."""
    folder = tmp_path / f"model-{factor}"
    folder.mkdir()
    (folder / "factor.json").write_text(json.dumps({"factor": factor}))
    return folder / "factor.json"


def _magics(shell: InteractiveShell) -> MLDeployMagics:
    return shell.magics_manager.registry["MLDeployMagics"]


def test_extension_registers_every_magic_with_help(shell: InteractiveShell) -> None:
    line = shell.magics_manager.magics["line"]
    cell = shell.magics_manager.magics["cell"]
    for name in ("register_model", "models", "deploy_local", "test_endpoint", "deployments", "mldeploy",
                 "mldeploy_workspace"):
        assert name in line, name
    assert {"score_script", "test_endpoint"} <= set(cell)
    # %magic? shows the docstring plus the argument list built by magic_arguments.
    doc = line["deploy_local"].__doc__
    assert "zero downtime" in doc and "--overwrite" in doc and "--requirements FILE" in doc


def test_score_script_reports_problems_without_importing(nb: InteractiveShell, tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    source = f"open({str(marker)!r}, 'w').write('x')\n\ndef run(data, *rest):\n    return data\n"
    report = nb.run_cell_magic("score_script", "src/score.py", source)
    assert (tmp_path / "src" / "score.py").read_text() == source
    assert not marker.exists(), "the script was imported into the kernel"
    assert not report.ok
    assert any("No init() function" in p for p in report.check.problems)
    assert any("*rest" in p for p in report.check.problems)
    assert all("\n" not in p for p in report.check.problems)
    assert "would refuse it" in report._repr_html_()


def test_score_script_check_runs_init_and_run_in_a_fresh_process(nb: InteractiveShell, tmp_path: Path) -> None:
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 2.0)}")
    nb.user_ns["rows"] = {"data": [[1.0, 2.0, 3.0], [0.5, 0.5, 0.0]]}
    report = nb.run_cell_magic("score_script", "score.py --check factor-model:1 --data rows", SCHEMA_SCORE)
    assert report.ok, repr(report)
    assert report.run.output == [12.0, 2.0]
    assert "loaded factor 2.0" in report.run.printed
    assert "factor" not in nb.user_ns, "init() ran inside the kernel"


def test_score_script_check_shows_the_traceback_and_model_listing(nb: InteractiveShell, tmp_path: Path) -> None:
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 1.0)}")
    report = nb.run_cell_magic("score_script", "score.py --check factor-model", BROKEN_INIT)
    assert not report.ok
    assert report.run.stage == "init"
    assert "FileNotFoundError" in report.run.error and "model.pkl" in report.run.error
    assert 'File "' in report.run.traceback and "score.py" in report.run.traceback
    # The listing shows what the model folder really holds: the fix is obvious.
    assert "factor.json" in report.run.model_dir_listing
    assert "init() failed" in repr(report)


def test_register_model_and_models_table(nb: InteractiveShell, tmp_path: Path) -> None:
    folder = _model_file(tmp_path, 3.0)
    model = nb.run_line_magic(
        "register_model",
        f'factor-model {folder} --tag stage=dev --tag team=ml --description "three times, exactly" '
        "--sample-input {'data':[[1,2,3]]}",
    )
    assert model.id == "factor-model:1"
    assert model.tags == {"stage": "dev", "team": "ml"}
    assert model.description == "three times, exactly"
    assert model.sample_input == {"data": [[1, 2, 3]]}
    table = nb.run_line_magic("models", "")
    assert table.ids == ["factor-model:1"]
    assert "three times, exactly" in repr(table) and "stage" in table._repr_html_()
    assert len(nb.run_line_magic("models", "other")) == 0
    with pytest.raises(UsageError, match="does not exist"):
        nb.run_line_magic("register_model", "x missing.pkl")
    with pytest.raises(UsageError, match="KEY=VALUE"):
        nb.run_line_magic("register_model", f"x {folder} --tag novalue")


def test_deploy_call_update_and_list(nb: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 2.0)}")
    service = nb.run_line_magic("deploy_local", "svc --model factor-model:1 --entry score.py")
    assert service.state == "Healthy"
    status = _magics(nb).last_deploy_status
    assert status is not None and status.scoring_uri == service.scoring_uri
    assert "Healthy" in status._repr_html_()

    table = nb.run_line_magic("deployments", "")
    row = table["svc"]
    assert row.state == "Healthy" and row.port == service.port and row.models == ("factor-model:1",)
    assert row.uptime_s is not None and row.uptime_s >= 0

    # `result = %test_endpoint ...` gets the parsed response.
    nb.user_ns["payload"] = {"data": [[1.0, 2.0, 3.0]]}
    nb.run_cell("result = %test_endpoint svc --data payload")
    assert nb.user_ns["result"] == [12.0]
    assert nb.run_cell_magic("test_endpoint", "svc", '{"data": [[1, 1, 1]]}') == [6.0]
    # No body given: the schema's example is sent.
    assert nb.run_line_magic("test_endpoint", "svc") == [12.0]
    # A scoring URI works as well as a name.
    assert nb.run_line_magic("test_endpoint", f"{service.scoring_uri} --data payload") == [12.0]

    # The payload is checked against the swagger schema first; the field is named, nothing is sent.
    with pytest.raises(UsageError, match=r"data\[0\]\[1\].*expected number"):
        nb.run_cell_magic("test_endpoint", "svc", '{"data": [[1, "two", 3]]}')
    with pytest.raises(UsageError, match=r"data\[0\].*expected 3 values"):
        nb.run_cell_magic("test_endpoint", "svc", '{"data": [[1, 2]]}')
    with pytest.raises(UsageError, match="'data' is missing"):
        nb.run_cell_magic("test_endpoint", "svc", '{"rows": [[1, 2, 3]]}')

    # --overwrite with a new model version while requests keep coming: zero downtime.
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 10.0)}")
    stop = threading.Event()
    seen: list[tuple[int, object]] = []

    def keep_calling() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answer = send_request(service.scoring_uri, nb.user_ns["payload"], session=session)
                seen.append((answer.status_code, answer.body))

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        wait_for(lambda: len(seen) >= 20, what="20 answers before the update")  # the old version answers first
        nb.run_line_magic("deploy_local", "svc --model factor-model:2 --entry score.py --overwrite")
        count = len(seen)
        wait_for(lambda: len(seen) >= count + 20, what="20 answers after the update")
    finally:
        stop.set()
        caller.join(30)
    assert {status for status, _ in seen} == {200}
    assert seen[0][1] == [12.0] and seen[-1][1] == [60.0]
    assert nb.run_line_magic("test_endpoint", "svc --data payload") == [60.0]
    assert Webservice(Workspace(tmp_path / "ws"), "svc").model_ids == ["factor-model:2"]

    # Repeated requests report percentiles and return the last parsed response.
    assert nb.run_line_magic("test_endpoint", "svc --data payload --repeat 20 --concurrency 2") == [60.0]


def test_repeated_calls_show_p50_and_p99(nb: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 1.0)}")
    nb.run_line_magic("deploy_local", "svc --model factor-model --entry score.py")
    capsys.readouterr()
    nb.user_ns["payload"] = {"data": [[1.0, 1.0, 1.0]]}
    nb.run_line_magic("test_endpoint", "svc --data payload --repeat 30 --concurrency 3")
    shown = capsys.readouterr().out
    assert "30 requests, 0 failed" in shown and "p50" in shown and "p99" in shown


def test_failed_init_ends_with_the_traceback(nb: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(BROKEN_INIT)
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 1.0)}")
    with pytest.raises(UsageError) as caught:
        nb.run_line_magic("deploy_local", "broken --model factor-model --entry score.py")
    message = str(caught.value)
    assert "\n" not in message and "FileNotFoundError" in message
    status = _magics(nb).last_deploy_status
    assert status is not None and status.state == "Failed"
    assert "model.pkl" in status.log_tail and "factor.json" in status.log_tail  # traceback + model listing


def test_update_that_fails_keeps_the_old_version_serving(nb: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 2.0)}")
    nb.run_line_magic("deploy_local", "svc --model factor-model --entry score.py")
    (tmp_path / "broken.py").write_text(BROKEN_INIT)
    with pytest.raises(UsageError, match="previous version keeps serving"):
        nb.run_line_magic("deploy_local", "svc --model factor-model --entry broken.py --overwrite")
    nb.user_ns["payload"] = {"data": [[1.0, 2.0, 3.0]]}
    assert nb.run_line_magic("test_endpoint", "svc --data payload") == [12.0]


def test_no_wait_returns_at_once(nb: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 1.0)}")
    service = nb.run_line_magic("deploy_local", "svc --model factor-model --entry score.py --no-wait")
    service.wait_for_deployment(timeout_sec=60)
    assert service.state == "Healthy"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("svc --model m --entry score.py --env e --current", "exclude each other"),
        ("svc --model m --entry missing.py", "does not exist"),
        ("svc --model nope --entry score.py", "not found"),
        ("svc --model m --entry score.py --port notaport", "invalid int"),
        ("svc --model m --entry score.py --env no-such-env", "no-such-env"),
        ("svc --model m --entry score.py --requirements missing.txt", "missing.txt does not exist"),
    ],
)
def test_deploy_local_usage_errors(nb: InteractiveShell, tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    nb.run_line_magic("register_model", f"m {_model_file(tmp_path, 1.0)}")
    with pytest.raises(UsageError, match=message):
        nb.run_line_magic("deploy_local", line)
    assert Webservice.list(Workspace(tmp_path / "ws")) == []


def test_test_endpoint_usage_errors(nb: InteractiveShell, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No service named 'ghost'"):
        nb.run_line_magic("test_endpoint", "ghost --data 1")
    with pytest.raises(UsageError, match="could not be evaluated"):
        nb.run_line_magic("test_endpoint", "http://127.0.0.1:9/score --data undefined_name")
    with pytest.raises(UsageError, match="both give a request body"):
        nb.run_cell_magic("test_endpoint", "http://127.0.0.1:9/score --data 1", "{}")
    with pytest.raises(UsageError, match="The cell is not JSON"):
        nb.run_cell_magic("test_endpoint", "http://127.0.0.1:9/score", "{nope")
    with pytest.raises(UsageError, match="did not answer"):
        nb.run_line_magic("test_endpoint", "http://127.0.0.1:9/score --data 1")


def test_usage_error_is_one_line_without_traceback(nb: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    result = nb.run_cell("%deploy_local svc --model nope --entry score.py")
    assert isinstance(result.error_in_exec, UsageError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "UsageError" in text and "Traceback" not in text


def test_mldeploy_shows_the_panel(nb: InteractiveShell, tmp_path: Path) -> None:
    panel = nb.run_line_magic("mldeploy", "")
    try:
        assert panel.titles == ("Registry", "Deployments", "Test endpoint", "Runs", "Data drift")
        assert panel.workspace == Workspace(tmp_path / "ws")
        assert panel.deployments.running
    finally:
        panel.close()
    assert not panel.deployments.running


def test_workspace_magic(nb: InteractiveShell, tmp_path: Path) -> None:
    assert nb.run_line_magic("mldeploy_workspace", "") == Workspace(tmp_path / "ws")
    other = nb.run_line_magic("mldeploy_workspace", str(tmp_path / "other"))
    assert other.path == (tmp_path / "other").resolve() and (tmp_path / "other" / "registry.sqlite").exists()


def test_headline_keeps_the_exception_line() -> None:
    text = "Service 'x' is Failed: init failed: Traceback (most recent call last):\n  File ...\nValueError: bad"
    assert headline(text) == "Service 'x' is Failed: init failed (ValueError: bad)"


def test_output_result_returns_the_whole_result(nb: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    nb.run_line_magic("register_model", f"factor-model {_model_file(tmp_path, 1.0)}")
    nb.run_line_magic("deploy_local", "svc --model factor-model --entry score.py")
    nb.user_ns["payload"] = {"data": [[1.0, 1.0, 1.0]]}
    single = nb.run_line_magic("test_endpoint", "svc --data payload -o")
    assert single.ok and single.response.status_code == 200 and single.response.latency_ms > 0
    assert "HTTP 200" in single._repr_html_()
    repeated = nb.run_line_magic("test_endpoint", "svc --data payload --repeat 15 -o")
    assert repeated.report.count == 15 and repeated.report.failures == 0
    assert repeated.report.p50_ms <= repeated.report.p99_ms


def test_input_schema_names_the_mismatching_field() -> None:
    schema = input_schema_from_swagger(
        {
            "definitions": {
                "ServiceInput": {
                    "type": "object",
                    "properties": {
                        "data": {"type": "array", "format": "numpy.ndarray",
                                 "items": {"type": "array", "items": {"type": "number"}}},
                        "frame": {"type": "array", "items": {"type": "object", "properties": {
                            "age": {"type": "integer"}, "name": {"type": "string"}}}},
                        "scale": {"type": "number"},
                    },
                    "example": {"data": [[1.0, 2.0]], "frame": [{"age": 1, "name": "a"}], "scale": 1.0},
                }
            }
        }
    )
    assert schema is not None and schema.fields == ["data", "frame", "scale"]
    good = {"data": [[1, 2], [3, 4.5]], "frame": [{"age": 3, "name": "x"}], "scale": 2}
    assert schema.validate(good) == []
    assert schema.validate(json.dumps(good)) == []
    assert schema.validate({**good, "scale": True}) == ["Field 'scale': expected number, got boolean true."]
    assert schema.validate({**good, "frame": [{"age": "old", "name": "x"}]}) == [
        "Field 'frame[0].age': expected integer, got string \"old\"."
    ]
    assert schema.validate({**good, "data": [[1, 2], [3]]}) == [
        "Field 'data[1]': expected 2 values (the schema's sample has shape (1, 2)), got 1."
    ]
    assert "missing" in schema.validate({"data": [[1, 2]], "frame": []})[0]
    assert "must be a JSON object" in schema.validate([1, 2])[0]
    assert "not JSON" in schema.validate("{oops")[0]
    # An undecorated run publishes a generic object: nothing to check.
    assert input_schema_from_swagger({"definitions": {"ServiceInput": {"type": "object", "example": {}}}}) is None


def test_entry_check_is_killed_after_its_timeout(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text("import time\n\ndef init():\n    print('sleeping', flush=True)\n"
                                      "    time.sleep(60)\n\ndef run(raw_data):\n    return raw_data\n")
    model = _model_file(tmp_path, 1.0)
    from jupyter_mldeploy.registry import Model

    Model.register(workspace, model, "m")
    started = time.monotonic()
    result = run_entry_check(workspace, tmp_path / "slow.py", ["m"], timeout=2)
    assert time.monotonic() - started < 20
    assert result.stage == "timeout" and not result.ok
    assert "sleeping" in result.printed
    assert "did not finish" in result.summary()


def test_source_dir_for_check_and_deploy(nb: InteractiveShell, tmp_path: Path) -> None:
    """A score.py importing a helper module from its source folder: checked and served with --source-dir."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "scaling.py").write_text("def scale(value):\n    return value * 100\n")
    script = (
        "import json\nfrom scaling import scale\n\ndef init():\n    pass\n\n"
        "def run(raw_data):\n    return scale(json.loads(raw_data)['x'])\n"
    )
    nb.run_line_magic("register_model", f"m {_model_file(tmp_path, 1.0)}")
    nb.user_ns["body"] = {"x": 2}
    report = nb.run_cell_magic("score_script", "score.py --source-dir src --check m --data body", script)
    assert report.path == (tmp_path / "src" / "score.py").resolve()
    assert report.ok and report.run.output == 200
    nb.run_line_magic("deploy_local", "svc --model m --source-dir src --entry score.py")
    assert nb.run_line_magic("test_endpoint", "svc --data body") == 200


def test_reading_magics_never_create_a_workspace(shell: InteractiveShell, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_magics(shell), "_workspace_path", None)  # no %mldeploy_workspace in this session
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    for name, rest in (("models", ""), ("deployments", ""), ("mldeploy", ""), ("test_endpoint", "svc --data 1"),
                       ("mldeploy_workspace", "")):
        with pytest.raises(UsageError, match="No workspace found") as info:
            shell.run_line_magic(name, rest)
        assert str(project / ".mldeploy") in str(info.value) and "\n" not in str(info.value), name
    assert not (project / ".mldeploy").exists()
    for typo in (f"a/b {_model_file(tmp_path, 9.0)}", f"m {tmp_path / 'missing.json'}"):
        with pytest.raises(UsageError, match="Invalid model name|does not exist"):
            shell.run_line_magic("register_model", typo)
    assert not (project / ".mldeploy").exists()  # a typo never creates a workspace

    capsys.readouterr()
    shell.run_line_magic("register_model", f"m {_model_file(tmp_path, 1.0)} --tag stage=dev,team=ml")
    shell.run_line_magic("register_model", f"m {_model_file(tmp_path, 2.0)}")
    printed = capsys.readouterr().out
    assert printed.count("Created workspace at") == 1 and str(project / ".mldeploy") in printed
    table = shell.run_line_magic("models", "")
    assert table.ids == ["m:2", "m:1"] and table.rows[1].tags == {"stage": "dev", "team": "ml"}
    with pytest.raises(UsageError, match="'x' is given twice"):
        shell.run_line_magic("register_model", f"m {_model_file(tmp_path, 3.0)} --tag x=1 --tag x=2")
