"""Static checks of entry scripts: parsed with ast, never imported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from jupyter_mldeploy.entry.static_check import check_entry_script, check_source
from jupyter_mldeploy.errors import InvalidArgument, NotFound


def check(code: str):
    return check_source(textwrap.dedent(code), "score.py")


def test_classic_script_passes_with_no_features():
    result = check(
        """
        import json
        def init():
            global model
            model = 1
        def run(raw_data):
            return json.loads(raw_data)
        """
    )
    assert result.ok, result.problems
    assert result.run_parameters == ("raw_data",)
    assert result.features() == {"schema": False, "rawhttp": False, "request_headers": False}
    result.raise_for_problems()


def test_script_is_never_imported(tmp_path: Path):
    marker = tmp_path / "imported"
    script = tmp_path / "score.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef init(): pass\ndef run(data): return data\n")
    assert check_entry_script(script).ok
    assert not marker.exists()


def test_missing_init_and_run_are_two_lines():
    result = check("x = 1\n")
    assert not result.ok
    assert len(result.problems) == 2
    assert any("No init()" in p for p in result.problems)
    assert any("No run()" in p for p in result.problems)
    with pytest.raises(InvalidArgument) as info:
        result.raise_for_problems()
    assert "No run()" in str(info.value) and "score.py" in str(info.value)


@pytest.mark.parametrize(
    ("signature", "fragment"),
    [
        ("run(*args)", "*args"),
        ("run(data, **kwargs)", "**kwargs"),
        ("run(data, /)", "takes data before '/'"),
        ("run()", "takes no input"),
        ("run(request_headers)", "takes only request_headers"),
    ],
)
def test_bad_run_signatures(signature: str, fragment: str):
    result = check(f"def init(): pass\ndef {signature}: return 1\n")
    assert not result.ok
    assert any(fragment in p for p in result.problems), result.problems
    assert all("\n" not in p for p in result.problems)


def test_schema_decorators_and_request_headers_detected():
    result = check(
        """
        from inference_schema.schema_decorators import input_schema, output_schema
        from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
        import numpy as np
        def init(): pass
        @input_schema("data", NumpyParameterType(np.array([[1.0]])))
        @output_schema(NumpyParameterType(np.array([1.0])))
        def run(data, request_headers):
            return data
        """
    )
    assert result.ok, result.problems
    assert result.uses_schema and result.has_output_schema
    assert result.input_parameters == ("data",)
    assert result.accepts_request_headers
    assert result.features()["schema"] is True


def test_input_schema_naming_a_missing_parameter():
    result = check(
        """
        from inference_schema.schema_decorators import input_schema
        def init(): pass
        @input_schema("input", object)
        def run(data):
            return data
        """
    )
    assert any("declares parameter 'input'" in p and "data" in p for p in result.problems)


def test_malformed_decorators():
    result = check(
        """
        from inference_schema import schema_decorators as sd
        def init(): pass
        @sd.input_schema
        @sd.output_schema()
        def run(data):
            return data
        """
    )
    assert any("@input_schema" in p and "needs arguments" in p for p in result.problems)
    assert any("@output_schema" in p and "needs a type" in p for p in result.problems)


def test_rawhttp_with_input_schema_clash():
    result = check(
        """
        from azureml.contrib.services.aml_request import rawhttp
        from inference_schema.schema_decorators import input_schema
        def init(): pass
        @rawhttp
        @input_schema("request", object)
        def run(request):
            return request
        """
    )
    assert result.uses_rawhttp
    assert result.broken_rules == ("rawhttp-with-schema",)
    assert any("both @rawhttp and an inference-schema decorator" in p for p in result.problems)


def test_rawhttp_with_output_schema_only_is_refused_as_the_server_does():
    # azmlinfsrv asks inference-schema's is_schema_decorated, which an @output_schema alone makes true.
    result = check(
        """
        from azureml.contrib.services.aml_request import rawhttp
        from inference_schema.schema_decorators import output_schema
        def init(): pass
        @rawhttp
        @output_schema(object)
        def run(request):
            return request
        """
    )
    assert result.broken_rules == ("rawhttp-with-schema",)


def test_rawhttp_alone_is_fine():
    result = check(
        """
        from azureml.contrib.services.aml_request import rawhttp
        def init(): pass
        @rawhttp
        async def run(request):
            return request.get_data()
        """
    )
    assert result.ok and result.uses_rawhttp and result.is_async


def test_init_with_required_arguments():
    result = check("def init(path): pass\ndef run(data): return data\n")
    assert any("init" in p and "requires arguments" in p for p in result.problems)


def test_run_imported_or_conditionally_defined_counts():
    result = check(
        """
        try:
            from mypkg.scoring import init, run
        except ImportError:
            def init(): pass
            def run(data): return data
        """
    )
    assert result.has_init and result.has_run


def test_syntax_error_is_one_line_with_its_line_number():
    result = check("def init(:\n    pass\n")
    assert len(result.problems) == 1
    assert "line 1" in result.problems[0]


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(NotFound, match="does not exist"):
        check_entry_script(tmp_path / "nope.py")
    with pytest.raises(InvalidArgument, match="is a folder"):
        check_entry_script(tmp_path)


#: Scripts the two readers of the contract must judge alike: (name, source).
AGREEMENT_CASES = [
    ("classic", "def init(): pass\ndef run(raw_data): return raw_data\n"),
    ("no-init", "def run(raw_data): return raw_data\n"),
    ("no-run", "def init(): pass\n"),
    ("star-args", "def init(): pass\ndef run(*args): return 1\n"),
    ("star-kwargs", "def init(): pass\ndef run(data, **kwargs): return 1\n"),
    ("positional-only", "def init(): pass\ndef run(data, /): return 1\n"),
    ("keyword-only", "def init(): pass\ndef run(*, data): return data\n"),
    ("no-input", "def init(): pass\ndef run(): return 1\n"),
    ("headers-only", "def init(): pass\ndef run(request_headers): return 1\n"),
    ("headers-too", "def init(): pass\ndef run(data, request_headers): return 1\n"),
    ("rawhttp", "from azureml.contrib.services.aml_request import rawhttp\ndef init(): pass\n"
                "@rawhttp\ndef run(request): return 1\n"),
    ("rawhttp-input-schema", "from azureml.contrib.services.aml_request import rawhttp\n"
                             "from inference_schema.schema_decorators import input_schema\n"
                             "from inference_schema.parameter_types.standard_py_parameter_type import "
                             "StandardPythonParameterType as T\ndef init(): pass\n"
                             "@rawhttp\n@input_schema('request', T(1))\ndef run(request): return 1\n"),
    ("rawhttp-output-schema", "from azureml.contrib.services.aml_request import rawhttp\n"
                              "from inference_schema.schema_decorators import output_schema\n"
                              "from inference_schema.parameter_types.standard_py_parameter_type import "
                              "StandardPythonParameterType as T\ndef init(): pass\n"
                              "@rawhttp\n@output_schema(T(1))\ndef run(request): return 1\n"),
    ("schema", "from inference_schema.schema_decorators import input_schema\n"
               "from inference_schema.parameter_types.standard_py_parameter_type import "
               "StandardPythonParameterType as T\ndef init(): pass\n"
               "@input_schema('data', T(1))\ndef run(data, request_headers=None): return 1\n"),
]

#: Loads each script as the scoring server does and prints its verdict: "ok <mode>" or the error message.
_SERVER_VERDICTS = """
import json, sys
from jupyter_mldeploy.server import shims
from jupyter_mldeploy.server.user_script import UserScript, UserScriptError
shims.install_finder()
verdicts = {}
for path in sys.argv[1:]:
    shims._rawHttpRequested = False  # a fresh worker per script, as in a deployment
    try:
        verdicts[path] = "ok " + UserScript(path).mode
    except UserScriptError as exc:
        verdicts[path] = str(exc)
print(json.dumps(verdicts))
"""


def test_static_check_and_server_agree_on_every_rule(tmp_path: Path):
    """The static check and the server read one table of rules: same verdict, same rule, same input mode."""
    import json
    import subprocess
    import sys

    from jupyter_mldeploy.server import script_rules

    paths = {}
    for name, source in AGREEMENT_CASES:
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(source)
    completed = subprocess.run(
        [sys.executable, "-c", _SERVER_VERDICTS, *map(str, paths.values())], capture_output=True, text=True,
        check=True, timeout=120,
    )
    verdicts = json.loads(completed.stdout)
    rules = {rule.code: rule for rule in script_rules.RULES}
    for name, path in paths.items():
        static = check_entry_script(path)
        server = verdicts[str(path)]
        if static.broken_rules:
            first = rules[static.broken_rules[0]]
            assert server == first.message.format(path=path), (name, static.problems, server)
        else:
            assert server == f"ok {static.input_mode}", (name, static.problems, server)
