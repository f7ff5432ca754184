"""Whether the running interpreter already satisfies an environment, without building it.

Batch scoring runs its workers in the interpreter that runs the job (loky starts workers with
``sys.executable``), so a job given an :class:`~jupyter_mldeploy.environment.Environment` cannot switch
interpreters; it can only check that this one holds what the environment asks for and refuse, naming what
is missing, when it does not. The requirement lines are the ones a build would install
(:func:`~jupyter_mldeploy.environment.build.plan_build`: conda packages mapped to PyPI, the Azure ML
serving stack left out), compared with the installed distributions as ``pip check`` would
(:mod:`importlib.metadata` versions against PEP 440 specifiers).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from jupyter_mldeploy.environment.build import plan_build
from jupyter_mldeploy.environment.environment import Environment


def _running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _unmet(line: str) -> str | None:
    """Return why the requirement ``line`` is not met here, or None when it is (or cannot be judged)."""
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return None  # not a plain requirement (a URL, a path): only a build can tell
    if requirement.marker is not None and not requirement.marker.evaluate():
        return None
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        return f"{line} (not installed)"
    if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
        return f"{line} (installed {installed})"
    return None


def unsatisfied_requirements(env: Environment) -> list[str]:
    """List what ``env`` asks for that the running interpreter does not have.

    Args:
        env: The environment (built or user-managed).

    Returns:
        One line per unmet requirement, e.g. ``"scikit-learn==1.2.0 (installed 1.5.1)"``,
        ``"python 3.9 (this interpreter: 3.11)"``; empty when this interpreter satisfies it.

    Raises:
        EnvironmentBuildError: When the environment cannot be planned at all (a conda package with no PyPI
            equivalent, an unsupported pip option, a Python version not on this machine), as a build would.
    """
    if env.python.user_managed_dependencies:
        requested = env.python.interpreter_path
        if not requested or requested == "python" or Path(requested).expanduser().resolve() == Path(sys.executable).resolve():
            return []
        return [f"interpreter_path {requested} (this interpreter: {sys.executable})"]
    plan = plan_build(env)
    missing: list[str] = []
    wanted = ".".join(plan.interpreter.version.split(".")[:2])
    if wanted != _running_python():
        missing.append(f"python {wanted} (this interpreter: {_running_python()})")
    missing += [reason for reason in map(_unmet, plan.requirements) if reason is not None]
    return missing


__all__ = ["unsatisfied_requirements"]
