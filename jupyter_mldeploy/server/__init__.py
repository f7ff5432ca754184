"""The scoring server: loads an Azure ML entry script (``score.py`` with ``init()``/``run()``) and answers
``/score`` as azureml-inference-server-http 1.5 (``azmlinfsrv``) does.

This package imports nothing from the rest of jupyter_mldeploy nor from the Jupyter stack: it is copied,
alone, into every built environment and image (see :func:`install_runtime`), with only the third-party
packages in :data:`RUNTIME_REQUIREMENTS`.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

#: Third-party packages the scoring server needs in a target environment (what ``azureml-defaults`` was
#: in v1). inference-schema is not listed: a script that uses it declares it, as in v1.
RUNTIME_REQUIREMENTS: tuple[str, ...] = (
    "starlette>=0.37",
    "uvicorn>=0.30",
    "httptools>=0.6",
    "uvloop>=0.19; sys_platform != 'win32'",
    "orjson>=3.9",
    "numpy>=1.23",
    "python-multipart>=0.0.13",
)

_PACKAGE_DIR = Path(__file__).resolve().parent


def _runtime_sources() -> list[Path]:
    return sorted(p for p in _PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def runtime_digest() -> str:
    """Return a sha256 over the server's source files and requirements.

    Environment spec hashes include it, so a changed server gives a fresh environment instead of a stale
    copy of the server.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256("\n".join(RUNTIME_REQUIREMENTS).encode())
    for path in _runtime_sources():
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install_runtime(site_packages: Path) -> Path:
    """Copy the scoring server into a target environment's ``site-packages``.

    Writes ``jupyter_mldeploy/__init__.py`` (version only, nothing else importable) and
    ``jupyter_mldeploy/server/``, so ``python -m jupyter_mldeploy.server`` runs there without the rest of
    the package or the Jupyter stack. The environment must also hold :data:`RUNTIME_REQUIREMENTS`.

    Args:
        site_packages: The environment's ``site-packages`` folder.

    Returns:
        Path: The copied ``jupyter_mldeploy`` package folder.
    """
    from jupyter_mldeploy._version import __version__

    target = Path(site_packages) / "jupyter_mldeploy"
    if target.exists():
        shutil.rmtree(target)
    (target / "server").mkdir(parents=True)
    (target / "__init__.py").write_text(
        '"""jupyter_mldeploy scoring runtime (the scoring server only)."""\n'
        f"__version__ = {__version__!r}\n"
    )
    (target / "_version.py").write_text(f"__version__ = {__version__!r}\n")
    for path in _runtime_sources():
        dest = target / "server" / path.relative_to(_PACKAGE_DIR)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    return target
