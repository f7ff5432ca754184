"""Real uv builds, kept few and small: one tiny pure-python pin (six), reuse, a changed pin, a failure,
concurrency, and user-managed environments."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jupyter_mldeploy import BuiltEnvironment, CondaDependencies, Environment
from jupyter_mldeploy.environment.build import cache_root
from jupyter_mldeploy.errors import EnvironmentBuildError


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of this module's own, so the first build is always a real one."""
    return tmp_path_factory.mktemp("env-cache")


@pytest.fixture(autouse=True)
def _use_module_cache(module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", str(module_cache))


def _env(name: str, pips: list[str], conda: list[str] | None = None) -> Environment:
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=pips, conda_packages=conda)
    return env


def _leftovers() -> list[str]:
    root = cache_root()
    return [p.name for p in root.iterdir() if p.name.startswith(".tmp")] if root.exists() else []


@pytest.fixture(scope="module")
def six_build(module_cache: Path) -> BuiltEnvironment:
    mp = pytest.MonkeyPatch()
    mp.setenv("MLDEPLOY_CACHE_DIR", str(module_cache))
    try:
        return _env("six", ["six==1.16.0", "azureml-defaults"]).build_local(show_output=False)
    finally:
        mp.undo()


@pytest.mark.slow
def test_build_installs_spec_and_runtime_only(six_build: BuiltEnvironment, module_cache: Path, tmp_path: Path) -> None:
    assert six_build.reused is False
    assert six_build.path == module_cache / "envs" / six_build.spec_hash
    assert six_build.python.exists()
    assert (six_build.path / "mldeploy-env.json").is_file()
    log = six_build.log_path.read_text()
    assert "six==1.16.0" in log and "replaced by the jupyter_mldeploy scoring server" in log
    # The code goes through stdin: a command line naming the server module looks like a leftover scoring
    # server to the session's process check.
    probe = subprocess.run(
        [str(six_build.python), "-"],
        input="import jupyter_mldeploy.server, starlette, uvicorn, orjson, numpy, six; print(six.__version__)",
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "1.16.0"
    workspace_import = subprocess.run(
        [str(six_build.python), "-c", "import jupyter_mldeploy.workspace"], capture_output=True, text=True,
        check=False, cwd=tmp_path,
    )
    assert workspace_import.returncode != 0 and "ModuleNotFoundError" in workspace_import.stderr
    assert "azureml" not in subprocess.run(
        [str(six_build.python), "-m", "pip", "list"], capture_output=True, text=True, check=False
    ).stdout.lower()


@pytest.mark.slow
def test_second_build_reuses_in_under_a_second(six_build: BuiltEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    marker = six_build.path / "mldeploy-env.json"
    before = (marker.stat().st_mtime_ns, sorted(p.name for p in cache_root().iterdir()))
    started = time.monotonic()
    again = _env("six-again", ["azureml-defaults", "six==1.16.0"]).build_local(show_output=True)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert again.reused is True and again.path == six_build.path and again.spec_hash == six_build.spec_hash
    assert (marker.stat().st_mtime_ns, sorted(p.name for p in cache_root().iterdir())) == before
    assert "uv pip install" not in capsys.readouterr().out


@pytest.mark.slow
def test_changed_pin_builds_a_new_environment(six_build: BuiltEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    other = _env("six-new", ["six==1.17.0"]).build_local(show_output=True)
    out = capsys.readouterr().out
    assert "six==1.17.0" in out  # streamed
    assert other.reused is False and other.spec_hash != six_build.spec_hash and other.path != six_build.path
    version = subprocess.run([str(other.python), "-c", "import six; print(six.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "1.17.0"


@pytest.mark.slow
def test_failed_build_leaves_nothing_in_the_cache() -> None:
    env = _env("broken", ["six==1.16.0", "no-such-package-mldeploy-xyz==1.0"])
    from jupyter_mldeploy.environment.build import plan_build

    spec_hash = plan_build(env).spec_hash
    with pytest.raises(EnvironmentBuildError) as info:
        env.build_local(show_output=False)
    message = str(info.value)
    assert "install packages" in message and "no-such-package-mldeploy-xyz" in message
    assert "Full build log:" in message
    assert not (cache_root() / spec_hash).exists()
    assert _leftovers() == []
    log = cache_root().parent / "logs" / f"{spec_hash}.log"
    assert "no-such-package-mldeploy-xyz" in log.read_text()


def test_conda_only_package_fails_before_building() -> None:
    before = sorted(p.name for p in cache_root().iterdir()) if cache_root().exists() else []
    env = _env("condaonly", ["six==1.16.0"], conda=["cudnn=8.2"])
    with pytest.raises(EnvironmentBuildError, match="'cudnn=8.2'.*'- pip:'.*micromamba"):
        env.build_local(show_output=False)
    after = sorted(p.name for p in cache_root().iterdir()) if cache_root().exists() else []
    assert after == before


@pytest.mark.slow
def test_concurrent_builds_of_one_spec_build_once() -> None:
    results: list[BuiltEnvironment] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(_env("twins", ["six==1.15.0"]).build_local(show_output=False))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert sorted(r.reused for r in results) == [False, True]
    assert results[0].path == results[1].path
    marker = json.loads((results[0].path / "mldeploy-env.json").read_text())
    assert marker["requirements"] == ["six==1.15.0"]


def test_user_managed_uses_this_interpreter() -> None:
    built = Environment.from_current("here").build_local(show_output=False)
    assert built.python == Path(sys.executable)
    assert built.user_managed and built.reused and built.log_path is None
    assert built.path == Path(sys.prefix)


def test_user_managed_without_runtime_says_so(tmp_path: Path) -> None:
    from jupyter_mldeploy.environment.build import uv_binary

    bare = tmp_path / "bare"
    subprocess.run([uv_binary(), "venv", "--python", sys.executable, str(bare)], check=True, capture_output=True)
    env = Environment("bare")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(bare / "bin" / "python")
    with pytest.raises(EnvironmentBuildError, match=r"lacks the scoring server's packages .*starlette"):
        env.build_local(show_output=False)
    env.python.interpreter_path = str(tmp_path / "nope" / "python")
    with pytest.raises(EnvironmentBuildError, match="does not exist"):
        env.build_local(show_output=False)
