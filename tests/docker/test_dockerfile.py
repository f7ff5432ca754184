"""Generated build contexts (no engine needed): layer order, index settings, CA bundle, base image choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mldeploy import Environment
from jupyter_mldeploy.docker.dockerfile import LOCAL_BASE_IMAGE, choose_base_image, generate_context
from jupyter_mldeploy.environment.environment import DEFAULT_CPU_IMAGE
from jupyter_mldeploy.errors import InvalidArgument


@pytest.fixture
def pip_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    bundle = tmp_path / "corp-ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # only the variables below count
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example.com/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple https://extra.example.com/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_TRUSTED_HOST", "mirror.example.com")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    return bundle


def test_context_honours_the_hosts_pip_settings(pip_settings: Path) -> None:
    env = Environment("ctx")
    env.python.conda_dependencies.set_pip_requirements(["scikit-learn==1.5.0"])
    context = generate_context(env, base_image="python:3.11-slim")
    requirements = context.files["requirements.txt"].decode()
    assert "--index-url https://mirror.example.com/simple" in requirements
    assert "--extra-index-url https://extra.example.com/simple" in requirements
    assert "--trusted-host mirror.example.com" in requirements
    assert "file://" not in requirements and "--find-links" not in requirements
    assert any("file:///opt/pypi/simple" in note for note in context.notes)
    assert any("find-links" in note for note in context.notes)
    assert "starlette" in requirements and "scikit-learn==1.5.0" in requirements
    assert context.files["ca-certificates.crt"] == pip_settings.read_bytes()
    assert "ENV PIP_CERT=/etc/mldeploy/ca-certificates.crt" in context.dockerfile
    assert context.image_tag.startswith("mldeploy-env:")


def test_dependencies_come_before_code_and_the_tag_follows_the_content(pip_settings: Path, tmp_path: Path) -> None:
    env = Environment("ctx")
    context = generate_context(env, base_image="python:3.11-slim", extra_steps="RUN echo extra")
    lines = context.dockerfile.splitlines()
    position = {key: next(i for i, line in enumerate(lines) if key in line)
                for key in ("FROM python:3.11-slim", "pip install -r", "COPY runtime/", "RUN echo extra", "CMD")}
    assert position["FROM python:3.11-slim"] < position["pip install -r"] < position["COPY runtime/"]
    assert position["COPY runtime/"] < position["RUN echo extra"] < position["CMD"]
    assert generate_context(env, base_image="python:3.11-slim", extra_steps="RUN echo extra").image_tag == context.image_tag
    other = Environment("ctx")
    other.python.conda_dependencies.set_pip_requirements(["joblib"])
    assert generate_context(other, base_image="python:3.11-slim").image_tag != context.image_tag
    folder = context.write(tmp_path / "ctx")
    assert (folder / "runtime" / "jupyter_mldeploy" / "server" / "__main__.py").is_file()
    with pytest.raises(InvalidArgument, match="not empty"):
        context.write(folder)


def test_base_image_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLDEPLOY_DOCKER_BASE_IMAGE", raising=False)
    env = Environment("b")
    env.python.conda_dependencies.set_python_version("3.11")
    assert env.docker.base_image == DEFAULT_CPU_IMAGE  # v1's default is not what a local build wants
    assert choose_base_image(env, None, set()) == "python:3.11-slim"
    assert choose_base_image(env, None, {LOCAL_BASE_IMAGE}) == LOCAL_BASE_IMAGE
    assert choose_base_image(env, None, {LOCAL_BASE_IMAGE, "python:3.11-slim"}) == "python:3.11-slim"
    monkeypatch.setenv("MLDEPLOY_DOCKER_BASE_IMAGE", "corp/python:3.11")
    assert choose_base_image(env, None, {LOCAL_BASE_IMAGE}) == "corp/python:3.11"
    env.docker.base_image = "mine/py:1"
    assert choose_base_image(env, None, set()) == "mine/py:1"
    assert choose_base_image(env, "from-inference-config:1", set()) == "from-inference-config:1"
