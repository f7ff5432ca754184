"""What ``environment=None`` ("the interpreter this notebook runs in") means inside a container.

A container cannot run the notebook's interpreter, so the image gets the notebook's *versions* of the
packages the app needs: every distribution that provides a top-level module imported by a ``.py`` file of
the app (the entry script, or every file of the source directory), plus numpy, pandas, scikit-learn and joblib
when installed (a pickled model needs its library even when ``score.py`` never imports it: ``joblib.load``
of a scikit-learn model imports sklearn). Versions are pinned to what this interpreter has, so a model
pickled in the notebook loads in the container. Modules of the standard library, of the app itself and
the ``azureml`` shims (provided by the scoring server) are left out.
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_mldeploy.inference_config import InferenceConfig

#: Libraries whose pickles models are often made of; added when installed here.
MODEL_LIBRARIES = ("numpy", "pandas", "scikit-learn", "joblib")
_PROVIDED = {"azureml", "inference_schema", "jupyter_mldeploy"}


def _imported_modules(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def notebook_requirements(inference_config: InferenceConfig) -> list[str]:
    """Return pinned requirement lines (``name==version``) for running the app outside this interpreter.

    Args:
        inference_config: The entry script and source directory.

    Returns:
        Sorted ``name==version`` lines; empty when nothing beyond the standard library is imported and no
        model library is installed.
    """
    if inference_config.source_directory is not None:
        root = inference_config.source_directory
        files = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts and ".mldeploy" not in p.parts]
        local = {p.stem for p in root.iterdir()} | {p.name for p in root.iterdir() if p.is_dir()}
    else:
        files = [inference_config.entry_script]
        local = {inference_config.entry_script.stem}
    modules: set[str] = set()
    for file in files:
        modules |= _imported_modules(file)
    modules -= set(sys.stdlib_module_names) | local | _PROVIDED
    providers = packages_distributions()
    wanted = {dist for module in modules for dist in providers.get(module, [])}
    wanted.update(MODEL_LIBRARIES)
    pins: dict[str, str] = {}
    for dist in wanted:
        try:
            pins[dist.lower()] = f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return [pins[key] for key in sorted(pins)]
