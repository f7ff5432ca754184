"""Curated environments: available in every workspace without registration, as v1's ``AzureML-*`` ones were.

- ``mldeploy-minimal``: this machine's Python (``X.Y``) and the scoring server, nothing else.
- ``mldeploy-sklearn``: that plus numpy, pandas, scikit-learn and joblib. Each is pinned to the version
  installed in the interpreter running jupyter_mldeploy when there is one, so a model pickled in the notebook
  loads in the service (scikit-learn pickles are version-sensitive); unpinned otherwise.

v1 notebooks ask for Microsoft's curated names; those that have a sensible local equivalent resolve to one
of ours (an alias, logged once per name and process): ``AzureML-Minimal`` -> ``mldeploy-minimal``;
``AzureML-sklearn-*``, ``AzureML-Scikit-learn*``, ``AzureML-AutoML*``, ``AzureML-Tutorial`` ->
``mldeploy-sklearn``. Other ``AzureML-*`` names (TensorFlow, PyTorch, GPU images) are not aliased: ask for
those packages in your own conda specification.
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import PackageNotFoundError, version

from jupyter_mldeploy.environment.conda_dependencies import CondaDependencies, default_python_version
from jupyter_mldeploy.environment.environment import Environment

logger = logging.getLogger(__name__)

MINIMAL = "mldeploy-minimal"
SKLEARN = "mldeploy-sklearn"
CURATED_NAMES = (MINIMAL, SKLEARN)

#: v1 curated names (case-insensitive regular expressions) -> our curated environment.
ALIASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^azureml-minimal$", re.IGNORECASE), MINIMAL),
    (re.compile(r"^azureml-sklearn(-.*)?$", re.IGNORECASE), SKLEARN),
    (re.compile(r"^azureml-scikit-learn.*$", re.IGNORECASE), SKLEARN),
    (re.compile(r"^azureml-automl.*$", re.IGNORECASE), SKLEARN),
    (re.compile(r"^azureml-tutorial$", re.IGNORECASE), SKLEARN),
)

_SKLEARN_PACKAGES = ("numpy", "pandas", "scikit-learn", "joblib")
_aliases_logged: set[str] = set()


def _pinned(package: str) -> str:
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return package


def _curated(name: str, pip_packages: list[str]) -> Environment:
    env = Environment(name)
    env.version = "1"
    env.environment_variables = {}
    env.python.conda_dependencies = CondaDependencies.create(
        python_version=default_python_version(), pip_packages=pip_packages
    )
    return env


def curated_environments() -> list[Environment]:
    """Return fresh copies of every curated environment (``mldeploy-minimal``, ``mldeploy-sklearn``)."""
    return [_curated(MINIMAL, []), _curated(SKLEARN, [_pinned(p) for p in _SKLEARN_PACKAGES])]


def is_curated_name(name: str) -> bool:
    """Return True for a curated name or a v1 name aliased to one."""
    return name in CURATED_NAMES or alias_target(name) is not None


def alias_target(name: str) -> str | None:
    """Return the curated environment a v1 ``AzureML-*`` name maps to, or None."""
    for pattern, target in ALIASES:
        if pattern.match(name):
            return target
    return None


def curated_environment(name: str) -> Environment | None:
    """Return the curated environment for ``name`` (a curated name or an aliased v1 name), else None.

    An alias is logged (WARNING, once per name and process) so the substitution is visible in the notebook.

    Args:
        name: The asked-for name.

    Returns:
        A fresh :class:`Environment` (version ``"1"``), or None when ``name`` is not curated.
    """
    target = name if name in CURATED_NAMES else alias_target(name)
    if target is None:
        return None
    if target != name and name not in _aliases_logged:
        _aliases_logged.add(name)
        logger.warning("Environment %r is an Azure ML curated environment; using %r instead.", name, target)
    return next(env for env in curated_environments() if env.name == target)
