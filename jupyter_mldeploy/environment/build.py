"""Build an environment into a virtual environment with uv, cached per user by spec hash.

What a build does (:func:`build_environment`):

1. Plan (:func:`plan_build`), before anything is written: pick the interpreter for ``python=X.Y``; map conda
   packages to PyPI names (:mod:`~jupyter_mldeploy.environment.conda_map`); replace v1's serving stack
   (``azureml-defaults``, ``azureml-inference-server-http``) by the jupyter_mldeploy scoring server; read the
   pip settings of this machine (``pip config`` files, ``PIP_*`` variables) and the spec's own
   ``--index-url``/``--extra-index-url``/``--find-links`` lines; hash it all.
2. Reuse ``<cache>/envs/<spec-hash>/`` when it exists: nothing runs, well under a second.
3. Otherwise, holding ``<cache>/locks/<spec-hash>.lock`` (so two concurrent builds of one spec build once):
   ``uv venv --relocatable`` into ``<cache>/envs/.tmp-<hash>-<random>/``, ``uv pip install`` the scoring
   server's :data:`~jupyter_mldeploy.server.RUNTIME_REQUIREMENTS` plus the spec's packages, copy the server
   in with :func:`~jupyter_mldeploy.server.install_runtime`, write ``mldeploy-env.json``, then rename the
   folder into place in one step. A failure removes the temporary folder: the cache never holds half an
   environment. The output streams line by line when asked and always goes to a log file
   (``<env>/mldeploy-build.log``; for a failed build ``<cache>/logs/<spec-hash>.log``).

The spec hash covers the interpreter's exact version, every requirement line (normalised and sorted, since
their order does not change what pip installs), the index URLs and find-links, the platform and CPU
architecture, the scoring server's :func:`~jupyter_mldeploy.server.runtime_digest`, and
:data:`BUILDER_VERSION`.
"""

from __future__ import annotations

import collections
import configparser
import contextlib
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from filelock import FileLock, Timeout

from jupyter_mldeploy import settings
from jupyter_mldeploy.environment.conda_dependencies import (
    SERVING_STACK_PACKAGES,
    default_python_version,
    pip_package_name,
)
from jupyter_mldeploy.environment.conda_map import conda_package_name, map_conda_package
from jupyter_mldeploy.errors import EnvironmentBuildError

if TYPE_CHECKING:
    from jupyter_mldeploy.environment.environment import Environment

#: Bumped when the build procedure changes what ends up in an environment, so old cache entries are not reused.
BUILDER_VERSION = 1

MARKER_FILE = "mldeploy-env.json"
LOG_FILE = "mldeploy-build.log"

_OUTPUT_TAIL_LINES = 40


@dataclass(frozen=True)
class BuiltEnvironment:
    """The result of :meth:`Environment.build_local`: an interpreter ready to run the scoring server.

    Attributes:
        python: The interpreter to run (``<env>/bin/python``; for a user-managed environment, its interpreter).
        path: The environment folder (``<cache>/envs/<spec-hash>``; for user-managed, the interpreter's
            ``sys.prefix``).
        spec_hash: The cache key (24 hex digits); ``"user-managed"`` for user-managed environments.
        reused: True when nothing was built (an equal spec was built before, or user-managed).
        build_seconds: Wall time of this call, in seconds.
        log_path: The build log, or None for user-managed environments.
        python_version: ``X.Y.Z`` of ``python``.
        user_managed: True for a user-managed environment.
        notes: What the build changed from the spec (substitutions, mapped or dropped packages).
    """

    python: Path
    path: Path
    spec_hash: str
    reused: bool
    build_seconds: float
    log_path: Path | None
    python_version: str
    user_managed: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter found on this machine.

    Attributes:
        path: Its executable.
        version: ``X.Y.Z``.
    """

    path: Path
    version: str


@dataclass(frozen=True)
class IndexSettings:
    """Where uv looks for packages, as pip on this machine would.

    Attributes:
        index_url: The main index (None: PyPI).
        extra_index_urls: Further indexes, in order.
        find_links: Folders or pages of distribution files.
        trusted_hosts: Hosts allowed without a valid certificate (pip ``trusted-host``).
        cert: A CA bundle (pip ``cert``), passed to uv as ``SSL_CERT_FILE``.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None

    def uv_args(self) -> list[str]:
        """Return the ``uv pip install`` options for these settings."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        if self.extra_index_urls or self.find_links:
            # pip merges every index and picks the best version; uv by default stops at the first index that
            # knows a name. Ask for pip's behaviour so a spec resolves as `pip install` would.
            args += ["--index-strategy", "unsafe-best-match"]
        return args


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build needs, decided before anything is written.

    Attributes:
        interpreter: The base interpreter of the virtual environment.
        requirements: The spec's requirement lines after conda mapping and serving-stack substitution.
        runtime_requirements: The scoring server's requirements.
        index: Package index settings.
        prerelease: True when the spec's pip options hold ``--pre``.
        notes: Changes from the spec, for the build log.
        spec_hash: The cache key (24 hex digits).
    """

    interpreter: Interpreter
    requirements: tuple[str, ...]
    runtime_requirements: tuple[str, ...]
    index: IndexSettings
    prerelease: bool
    notes: tuple[str, ...] = field(default=())
    spec_hash: str = ""


# -- pip settings -------------------------------------------------------------------------------------


def _pip_config_files() -> list[Path]:
    """pip's configuration files in increasing priority (global, user, site, ``PIP_CONFIG_FILE``)."""
    files: list[Path] = []
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files += [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs) if d]
    files.append(Path("/etc/pip.conf"))
    home = Path.home()
    files.append(home / ".pip" / "pip.conf")
    xdg_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files.append(Path(xdg_home) / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file and env_file != os.devnull:
        files.append(Path(env_file))
    return files


def pip_index_settings() -> IndexSettings:
    """Read the package index settings pip uses on this machine (what ``pip config list`` shows).

    Sources, later ones winning: the ``[global]`` then ``[install]`` sections of pip's configuration files
    (``/etc/xdg/pip/pip.conf``, ``/etc/pip.conf``, ``~/.pip/pip.conf``, ``~/.config/pip/pip.conf``,
    ``<sys.prefix>/pip.conf``, ``$PIP_CONFIG_FILE``), then the variables ``PIP_INDEX_URL``,
    ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_TRUSTED_HOST``, ``PIP_CERT``. Multi-valued settings
    are whitespace-separated, as pip reads them. The files are read directly (not via ``pip config``) so a
    cached build is found without starting pip.

    Returns:
        IndexSettings: With relative find-links folders made absolute.
    """
    values: dict[str, str] = {}
    if os.environ.get("PIP_CONFIG_FILE") != os.devnull:
        for path in _pip_config_files():
            if not path.is_file():
                continue
            parser = configparser.RawConfigParser()
            try:
                parser.read(path, encoding="utf-8")
            except (configparser.Error, UnicodeDecodeError):
                continue
            for section in ("global", "install"):
                if parser.has_section(section):
                    for key, value in parser.items(section):
                        values[key.replace("_", "-")] = value
    for key in ("index-url", "extra-index-url", "find-links", "trusted-host", "cert"):
        env_value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env_value:
            values[key] = env_value
    if str(values.get("no-index", "")).lower() in {"1", "true", "yes", "on"}:
        values["index-url"] = ""

    def many(key: str) -> tuple[str, ...]:
        return tuple(values.get(key, "").split())

    find_links = tuple(_absolute_link(link) for link in many("find-links"))
    return IndexSettings(
        index_url=values.get("index-url") or None,
        extra_index_urls=many("extra-index-url"),
        find_links=find_links,
        trusted_hosts=many("trusted-host"),
        cert=values.get("cert") or None,
    )


def _absolute_link(link: str) -> str:
    if "://" in link:
        return link
    return str(Path(link).expanduser().resolve())


# -- interpreters -------------------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _candidate_interpreters() -> list[Interpreter]:
    """The running interpreter, then pyenv's installed CPythons (cheap: no process is started)."""
    found = [Interpreter(Path(sys.executable), platform.python_version())]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = pyenv_root / "versions"
    if versions.is_dir():
        for folder in sorted(versions.iterdir()):
            exe = folder / "bin" / "python3"
            if re.fullmatch(r"\d+\.\d+\.\d+", folder.name) and exe.exists():
                found.append(Interpreter(exe, folder.name))
    return found


def _uv_interpreters() -> list[Interpreter]:
    """Interpreters uv knows about (PATH, system, uv-managed); slower, so asked only when needed."""
    try:
        proc = subprocess.run(
            [uv_binary(), "python", "list", "--only-installed", "--output-format", "json"],
            capture_output=True, text=True, check=False, env=_uv_env(None), timeout=60,
        )
        entries = json.loads(proc.stdout or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return [
        Interpreter(Path(e["path"]), str(e["version"]))
        for e in entries
        if e.get("implementation", "cpython") == "cpython" and e.get("path") and "shims" not in e["path"]
    ]


def find_interpreter(request: str | None) -> tuple[Interpreter, str | None]:
    """Pick the interpreter for a ``python=`` request.

    ``X.Y`` matches any ``X.Y.*`` (the running interpreter first, else the highest); ``X.Y.Z`` matches
    exactly, else falls back to the highest ``X.Y.*`` with a note (conda specs written elsewhere often pin a
    patch release this machine does not have); ``>=X.Y`` takes the running interpreter when it satisfies
    the bound. Uv never downloads an interpreter (``UV_PYTHON_DOWNLOADS=never``).

    Args:
        request: The version spec of the ``python`` conda dependency (``"3.11"``, ``"3.8.13"``), or None
            for this machine's ``X.Y``.

    Returns:
        ``(interpreter, note)``; the note says when a fallback was taken.

    Raises:
        EnvironmentBuildError: When no interpreter matches, naming what is installed and the way out.
    """
    spec = (request or default_python_version()).strip().rstrip("*").rstrip(".")
    candidates = _candidate_interpreters()
    if spec.startswith(">="):
        bound = _version_tuple(spec[2:])
        current = candidates[0]
        if bound and _version_tuple(current.version) >= bound:
            return current, None
        spec = spec[2:].strip()
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", spec):
        raise EnvironmentBuildError(
            f"Cannot pick an interpreter for python={request!r}: write the python dependency as python=X.Y "
            "(or X.Y.Z), e.g. python=3.11."
        )

    def matching(pool: list[Interpreter], wanted: str) -> list[Interpreter]:
        parts = wanted.split(".")
        return [i for i in pool if i.version.split(".")[: len(parts)] == parts]

    def best(pool: list[Interpreter]) -> Interpreter:
        if pool[0] == candidates[0]:
            return pool[0]
        return max(pool, key=lambda i: _version_tuple(i.version))

    for pool_source in (lambda: candidates, _uv_interpreters):
        pool = pool_source()
        exact = matching(pool, spec)
        if exact:
            return best(exact), None
        minor = ".".join(spec.split(".")[:2])
        if minor != spec:
            same_minor = matching(pool, minor)
            if same_minor:
                chosen = best(same_minor)
                return chosen, f"python={spec} is not on this machine; using {chosen.version} (same minor version)"
    installed = sorted({i.version for i in candidates + _uv_interpreters()}, key=_version_tuple)
    raise EnvironmentBuildError(
        f"The environment asks for python={spec}, and no such interpreter is on this machine (found: "
        f"{', '.join(installed) or 'none'}). Install Python {spec} (pyenv, apt, `uv python install {spec}` "
        "where downloads are allowed), or change the python= line of the conda dependencies to an installed "
        "version."
    )


# -- uv ----------------------------------------------------------------------------------------------


def uv_binary() -> str:
    """Return the path of the uv executable shipped by the ``uv`` PyPI package.

    Raises:
        EnvironmentBuildError: When the ``uv`` package is not installed.
    """
    try:
        from uv import find_uv_bin
    except ImportError as exc:
        raise EnvironmentBuildError(
            "The 'uv' package is needed to build environments: pip install uv (it is a dependency of "
            "jupyter-mldeploy)."
        ) from exc
    return find_uv_bin()


def _uv_env(index: IndexSettings | None) -> dict[str, str]:
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("NO_COLOR", "1")
    if index is not None and index.cert and not env.get("SSL_CERT_FILE"):
        env["SSL_CERT_FILE"] = index.cert
    return env


# -- plan ---------------------------------------------------------------------------------------------

_SUPPORTED_PIP_OPTIONS = "--index-url/-i, --extra-index-url, --find-links/-f, --trusted-host, --pre"


def _split_option(line: str) -> tuple[str, str]:
    parts = shlex.split(line)
    if not parts:
        return "", ""
    first = parts[0]
    if "=" in first and first.startswith("--"):
        flag, _, value = first.partition("=")
        return flag, value
    if first.startswith("-") and not first.startswith("--") and len(first) > 2:
        return first[:2], first[2:]
    return first, " ".join(parts[1:])


def plan_build(env: Environment) -> BuildPlan:
    """Decide what building ``env`` means, without writing anything.

    Args:
        env: A non-user-managed environment.

    Returns:
        BuildPlan: with its ``spec_hash``.

    Raises:
        EnvironmentBuildError: For a conda package with no PyPI equivalent, an unsupported pip option, or a
            Python version not on this machine.
    """
    from jupyter_mldeploy.server import RUNTIME_REQUIREMENTS, runtime_digest

    conda = env.python.conda_dependencies
    notes: list[str] = []
    requirements: list[str] = []
    python_request = None
    if conda is not None:
        python_request = conda.python_version
        for line in conda.conda_packages:
            if conda_package_name(line) == "python":
                continue  # chosen by find_interpreter, not installed
            mapped = map_conda_package(line)
            if mapped.note:
                notes.append(mapped.note)
            if mapped.requirement:
                requirements.append(mapped.requirement)

    machine = pip_index_settings()
    index_url = machine.index_url
    extra = list(machine.extra_index_urls)
    links = list(machine.find_links)
    hosts = list(machine.trusted_hosts)
    prerelease = False
    if conda is not None:
        for option in conda.pip_options:
            flag, value = _split_option(option)
            if flag in {"--index-url", "-i"} and value:
                index_url = value
            elif flag == "--extra-index-url" and value:
                extra += [v for v in value.split() if v not in extra]
            elif flag in {"--find-links", "-f"} and value:
                links += [_absolute_link(v) for v in value.split() if _absolute_link(v) not in links]
            elif flag == "--trusted-host" and value:
                hosts += value.split()
            elif flag == "--pre":
                prerelease = True
            else:
                raise EnvironmentBuildError(
                    f"The pip option {option!r} in environment {env.name!r} is not supported by the uv build "
                    f"(supported: {_SUPPORTED_PIP_OPTIONS}). List the packages themselves in the pip list "
                    "instead of -r/-e/-c lines, or remove the option."
                )
        for line in conda.pip_packages:
            name = pip_package_name(line)
            if name in SERVING_STACK_PACKAGES:
                notes.append(f"pip package {line!r} (the Azure ML serving stack) replaced by the jupyter_mldeploy "
                             "scoring server")
                continue
            requirements.append(" ".join(line.split()))

    interpreter, note = find_interpreter(python_request)
    if note:
        notes.append(note)
    index = IndexSettings(
        index_url=index_url,
        extra_index_urls=tuple(extra),
        find_links=tuple(links),
        trusted_hosts=tuple(dict.fromkeys(hosts)),
        cert=machine.cert,
    )
    key = {
        "builder": BUILDER_VERSION,
        "python": interpreter.version,
        "implementation": sys.implementation.name if interpreter.path == Path(sys.executable) else "cpython",
        "platform": sys.platform,
        "machine": platform.machine().lower(),
        "requirements": sorted(set(requirements)),
        "runtime": sorted(RUNTIME_REQUIREMENTS),
        "runtime_digest": runtime_digest(),
        "index_url": index.index_url,
        "extra_index_urls": list(index.extra_index_urls),
        "find_links": list(index.find_links),
        "prerelease": prerelease,
    }
    spec_hash = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return BuildPlan(
        interpreter=interpreter,
        requirements=tuple(requirements),
        runtime_requirements=tuple(RUNTIME_REQUIREMENTS),
        index=index,
        prerelease=prerelease,
        notes=tuple(notes),
        spec_hash=spec_hash,
    )


# -- build --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Return ``<cache>/envs`` (``$MLDEPLOY_CACHE_DIR``, default ``~/.cache/jupyter_mldeploy``)."""
    base = settings.MLDEPLOY_CACHE_DIR.get()
    assert base is not None
    return Path(base).expanduser() / "envs"


def _venv_python(folder: Path) -> Path:
    if os.name == "nt":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def _site_packages(folder: Path, version: str) -> Path:
    if os.name == "nt":
        return folder / "Lib" / "site-packages"
    major_minor = ".".join(version.split(".")[:2])
    return folder / "lib" / f"python{major_minor}" / "site-packages"


class _Output:
    """Writes build output to the log file, and to stdout when asked, keeping the tail for error messages."""

    def __init__(self, log: IO[str], show: bool) -> None:
        self.log = log
        self.show = show
        self.tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL_LINES)

    def line(self, text: str) -> None:
        text = text if text.endswith("\n") else text + "\n"
        self.log.write(text)
        self.log.flush()
        self.tail.append(text)
        if self.show:
            sys.stdout.write(text)
            sys.stdout.flush()

    def run(self, step: str, cmd: list[str], env: dict[str, str]) -> None:
        self.line(f"$ {shlex.join(cmd)}")
        self.tail.clear()
        try:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                encoding="utf-8", errors="replace",
            )
        except OSError as exc:
            raise EnvironmentBuildError(f"Cannot run {cmd[0]} ({step}): {exc}") from exc
        assert proc.stdout is not None
        for text in proc.stdout:
            self.line(text)
        code = proc.wait()
        if code != 0:
            output = "".join(self.tail).rstrip()
            raise EnvironmentBuildError(f"Environment build failed at step '{step}' (exit code {code}):\n{output}")


def build_environment(env: Environment, show_output: bool = True) -> BuiltEnvironment:
    """Build ``env`` (or reuse an equal build) and return its interpreter.

    Args:
        env: The environment.
        show_output: Stream the build output to stdout, line by line.

    Returns:
        BuiltEnvironment: ``reused`` tells whether anything was built.

    Raises:
        EnvironmentBuildError: When planning or a build step fails; the message names the step or package
            and holds the tail of the output; the full output is in the log named in the message.
    """
    started = time.monotonic()
    if env.python.user_managed_dependencies:
        return _user_managed(env, started)
    plan = plan_build(env)
    root = cache_root()
    final = root / plan.spec_hash
    built = _existing(final, plan, started)
    if built is not None:
        return built
    root.mkdir(parents=True, exist_ok=True)
    locks = root.parent / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(locks / f"{plan.spec_hash}.lock"))
    try:
        lock.acquire(timeout=0.05)
    except Timeout:
        if show_output:
            sys.stdout.write(f"Waiting for another build of this environment ({plan.spec_hash}) to finish...\n")
            sys.stdout.flush()
        lock.acquire()
    try:
        built = _existing(final, plan, started)
        if built is not None:
            return built
        return _build(env, plan, final, show_output, started)
    finally:
        lock.release()


def _existing(final: Path, plan: BuildPlan, started: float) -> BuiltEnvironment | None:
    python = _venv_python(final)
    if (final / MARKER_FILE).is_file() and python.exists():
        return BuiltEnvironment(
            python=python, path=final, spec_hash=plan.spec_hash, reused=True,
            build_seconds=time.monotonic() - started, log_path=final / LOG_FILE,
            python_version=plan.interpreter.version, notes=plan.notes,
        )
    return None


def _build(env: Environment, plan: BuildPlan, final: Path, show_output: bool, started: float) -> BuiltEnvironment:
    from jupyter_mldeploy.server import install_runtime

    root = final.parent
    for stale in root.glob(f".tmp-{plan.spec_hash}-*"):
        # Left by a build that was killed; we hold this spec's lock, so nobody is writing there.
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():
        shutil.rmtree(final)  # an incomplete folder without the marker (cannot come from our rename)
    tmp = root / f".tmp-{plan.spec_hash}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    log_path = tmp / LOG_FILE
    uv = uv_binary()
    uv_env = _uv_env(plan.index)
    try:
        with log_path.open("w", encoding="utf-8") as log:
            out = _Output(log, show_output)
            out.line(f"Building environment {env.name!r} (spec {plan.spec_hash}) with Python "
                     f"{plan.interpreter.version} ({plan.interpreter.path})")
            for note in plan.notes:
                out.line(f"note: {note}")
            out.run("create the virtual environment",
                    [uv, "venv", "--relocatable", "--allow-existing", "--no-project", "--python", str(plan.interpreter.path), str(tmp)],
                    uv_env)
            python = _venv_python(tmp)
            requirements = tmp / "requirements.txt"
            requirements.write_text("\n".join([*plan.runtime_requirements, *plan.requirements]) + "\n",
                                    encoding="utf-8")
            cmd = [uv, "pip", "install", "--python", str(python), *plan.index.uv_args(), "-r", str(requirements)]
            if plan.prerelease:
                cmd += ["--prerelease", "allow"]
            out.run("install packages", cmd, uv_env)
            site = _site_packages(tmp, plan.interpreter.version)
            if not site.is_dir():
                raise EnvironmentBuildError(f"The new environment has no site-packages folder at {site}.")
            install_runtime(site)
            out.line(f"Installed the jupyter_mldeploy scoring server into {site}")
            elapsed = time.monotonic() - started
            out.line(f"Built in {elapsed:.1f} s")
            marker = {
                "spec_hash": plan.spec_hash,
                "environment": env.name,
                "python_version": plan.interpreter.version,
                "base_interpreter": str(plan.interpreter.path),
                "requirements": list(plan.requirements),
                "runtime_requirements": list(plan.runtime_requirements),
                "index": asdict(plan.index),
                "notes": list(plan.notes),
                "build_seconds": round(elapsed, 3),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, final)
    except BaseException as exc:
        failed_log = _keep_failed_log(log_path, root.parent / "logs", plan.spec_hash)
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, EnvironmentBuildError):
            raise EnvironmentBuildError(f"{exc.message}\nFull build log: {failed_log}") from None
        if isinstance(exc, OSError):
            raise EnvironmentBuildError(f"Environment build failed: {exc}. Full build log: {failed_log}") from exc
        raise
    return BuiltEnvironment(
        python=_venv_python(final), path=final, spec_hash=plan.spec_hash, reused=False,
        build_seconds=time.monotonic() - started, log_path=final / LOG_FILE,
        python_version=plan.interpreter.version, notes=plan.notes,
    )


def _keep_failed_log(log_path: Path, logs_dir: Path, spec_hash: str) -> Path | None:
    with contextlib.suppress(OSError):
        logs_dir.mkdir(parents=True, exist_ok=True)
        target = logs_dir / f"{spec_hash}.log"
        shutil.copyfile(log_path, target)
        return target
    return None


_PROBE = """
import importlib.util, json, sys
names = json.loads(sys.argv[1])
missing = [n for n in names if importlib.util.find_spec(n) is None]
print(json.dumps({"version": "%d.%d.%d" % sys.version_info[:3], "prefix": sys.prefix, "missing": missing}))
"""


def _user_managed(env: Environment, started: float) -> BuiltEnvironment:
    from jupyter_mldeploy.server import RUNTIME_REQUIREMENTS

    requested = env.python.interpreter_path
    if not requested or requested == "python":
        interpreter = sys.executable
    else:
        candidate = Path(requested).expanduser()
        if candidate.is_absolute() or os.sep in requested:
            interpreter = str(candidate)
        else:
            interpreter = shutil.which(requested) or ""
        if not interpreter or not Path(interpreter).exists():
            raise EnvironmentBuildError(
                f"The user-managed environment {env.name!r} names the interpreter {requested!r}, which does not "
                "exist: set env.python.interpreter_path to an existing python executable."
            )
    modules = [
        pip_package_name(req).replace("-", "_")
        for req in RUNTIME_REQUIREMENTS
        if not (sys.platform == "win32" and "win32" in req)
    ]
    try:
        proc = subprocess.run(
            [interpreter, "-c", _PROBE, json.dumps(modules)], capture_output=True, text=True, timeout=60, check=False
        )
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentBuildError(
            f"Cannot run the interpreter {interpreter} of environment {env.name!r}: {exc}"
        ) from exc
    if info["missing"]:
        raise EnvironmentBuildError(
            f"The interpreter {interpreter} of the user-managed environment {env.name!r} lacks the scoring "
            f"server's packages {info['missing']}: install them with `{interpreter} -m pip install "
            f"{' '.join(shlex.quote(r.split(';')[0]) for r in RUNTIME_REQUIREMENTS)}`, or let jupyter_mldeploy "
            "build the environment (user_managed_dependencies = False)."
        )
    return BuiltEnvironment(
        python=Path(interpreter), path=Path(info["prefix"]), spec_hash="user-managed", reused=True,
        build_seconds=time.monotonic() - started, log_path=None, python_version=info["version"],
        user_managed=True,
    )
