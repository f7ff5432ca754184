"""Static checks of entry scripts: parsed with ast, never imported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from jupyter_mldeploy.entry_script import check_entry_script, check_source
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
        ("run(data, /)", "positional-only"),
        ("run()", "takes no input"),
        ("run(request_headers)", "takes no input"),
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
    assert any("@rawhttp and @input_schema" in p for p in result.problems)


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
