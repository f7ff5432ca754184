"""Conda package names mapped to their PyPI names, so a v1 conda specification builds with uv.

Environments are built with uv (pip's packages), not conda. The common conda packages of ML specifications
have a PyPI twin, sometimes under another name (``pytorch`` -> ``torch``, ``py-xgboost`` -> ``xgboost``).
Conda's infrastructure packages (the interpreter, pip itself, C runtime libraries, BLAS builds) have no
meaning in a virtual environment whose wheels bundle their own libraries; they are dropped with a note.
Anything else is refused with a message naming the package and the way out, before any build starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jupyter_mldeploy.errors import EnvironmentBuildError

#: conda name -> PyPI distribution name. Keys are lower-case conda names.
CONDA_TO_PYPI: dict[str, str] = {
    "numpy": "numpy",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "joblib": "joblib",
    "tensorflow": "tensorflow",
    "tensorflow-cpu": "tensorflow-cpu",
    "tensorflow-gpu": "tensorflow",
    "keras": "keras",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "torch": "torch",
    "torchvision": "torchvision",
    "torchaudio": "torchaudio",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "matplotlib": "matplotlib",
    "matplotlib-base": "matplotlib",
    "seaborn": "seaborn",
    "plotly": "plotly",
    "statsmodels": "statsmodels",
    "scikit-image": "scikit-image",
    "imbalanced-learn": "imbalanced-learn",
    "shap": "shap",
    "nltk": "nltk",
    "spacy": "spacy",
    "gensim": "gensim",
    "pillow": "pillow",
    "opencv": "opencv-python",
    "py-opencv": "opencv-python",
    "h5py": "h5py",
    "pyarrow": "pyarrow",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "numba": "numba",
    "llvmlite": "llvmlite",
    "cython": "cython",
    "sympy": "sympy",
    "networkx": "networkx",
    "requests": "requests",
    "pyyaml": "pyyaml",
    "yaml": "pyyaml",
    "six": "six",
    "click": "click",
    "flask": "flask",
    "psutil": "psutil",
    "tqdm": "tqdm",
    "sqlalchemy": "sqlalchemy",
    "protobuf": "protobuf",
    "xlrd": "xlrd",
    "openpyxl": "openpyxl",
    "beautifulsoup4": "beautifulsoup4",
    "lxml": "lxml",
    "pytz": "pytz",
    "python-dateutil": "python-dateutil",
    "cloudpickle": "cloudpickle",
    "dill": "dill",
    "certifi": "certifi",
    "packaging": "packaging",
    "typing_extensions": "typing-extensions",
    "typing-extensions": "typing-extensions",
    "pydantic": "pydantic",
    "orjson": "orjson",
    "ipykernel": "ipykernel",
}

#: Conda packages that mean nothing in a uv-built virtual environment: the interpreter (chosen separately),
#: the installer, and native libraries that PyPI wheels bundle. Dropped with a note in the build log.
CONDA_DROPPED: frozenset[str] = frozenset(
    {
        "python", "pip", "setuptools", "wheel", "conda", "ca-certificates", "openssl", "tzdata",
        "libgcc-ng", "libstdcxx-ng", "libgomp", "_libgcc_mutex", "_openmp_mutex", "ld_impl_linux-64",
        "libffi", "ncurses", "readline", "sqlite", "tk", "xz", "zlib", "bzip2", "libuuid", "libzlib",
        "mkl", "mkl-service", "mkl_fft", "mkl_random", "intel-openmp", "blas", "libblas", "libcblas",
        "liblapack", "libopenblas", "openblas", "nomkl", "cpuonly", "cudatoolkit", "pytorch-cuda",
        "pytorch-mutex", "libnsl", "libxcrypt", "libsqlite", "libexpat", "expat",
    }
)

_SPEC_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class MappedConda:
    """How one conda dependency line is honoured in a uv build.

    Attributes:
        line: The conda line as written (``"numpy=1.21"``).
        requirement: The PyPI requirement line (``"numpy==1.21.*"``), or None when dropped.
        note: Why the line was changed or dropped, for the build log; empty when mapped one to one.
    """

    line: str
    requirement: str | None
    note: str = ""


def conda_package_name(line: str) -> str:
    """Return the lower-case package name of a conda dependency line.

    Handles a channel prefix (``conda-forge::numpy``) and version specs (``numpy=1.21``,
    ``numpy>=1.2``, ``numpy 1.21.*``).

    Args:
        line: One conda dependency string.

    Returns:
        The package name, lower-case.
    """
    text = line.strip().split("::", 1)[-1]
    match = _SPEC_RE.match(text)
    name = match.group("name") if match else text
    return name.lower()


def _conda_version_to_pip(spec: str) -> tuple[str, str]:
    """Turn a conda version spec into a pip one; return ``(pip_spec, note)``."""
    spec = spec.strip()
    if not spec:
        return "", ""
    note = ""
    if spec.startswith("=") and not spec.startswith("=="):
        # conda "name=1.2=build": a fuzzy version then a build string that pip cannot express.
        parts = spec[1:].split("=")
        version = parts[0].strip()
        if len(parts) > 1 and parts[1].strip():
            note = f"build string {parts[1].strip()!r} ignored"
        if not version:
            return "", note
        if version.endswith("*"):
            return f"=={version}", note
        # conda's single "=" is fuzzy: "=1.21" matches 1.21.x, as pip's "==1.21.*" does.
        return f"=={version}.*", note
    if spec.startswith("=="):
        version, _, build = spec[2:].partition("=")
        if build.strip():
            note = f"build string {build.strip()!r} ignored"
        return f"=={version.strip()}", note
    if spec[0].isdigit():
        # Match-spec form "numpy 1.21.*" or "numpy 1.21.2 py38_0".
        version, _, build = spec.partition(" ")
        if build.strip():
            note = f"build string {build.strip()!r} ignored"
        return f"=={version}", note
    return spec.replace(" ", ""), note


def map_conda_package(line: str) -> MappedConda:
    """Map one conda dependency line to a PyPI requirement.

    Args:
        line: The conda line (``"numpy=1.21"``, ``"conda-forge::scikit-learn>=1.0"``, ``"pytorch"``).

    Returns:
        MappedConda: The requirement to install, or ``requirement=None`` for a dropped infrastructure package.

    Raises:
        EnvironmentBuildError: For a package with no known PyPI twin; the message names it and the way out.
    """
    text = line.strip().split("::", 1)[-1]
    match = _SPEC_RE.match(text)
    if match is None:
        raise EnvironmentBuildError(f"Cannot read the conda dependency {line!r}: write it as NAME or NAME=VERSION.")
    conda_name = match.group("name").lower()
    rest = match.group("rest")
    if conda_name in CONDA_DROPPED:
        return MappedConda(line, None, f"conda package {line!r} dropped: not needed in a uv-built environment")
    pypi_name = CONDA_TO_PYPI.get(conda_name)
    if pypi_name is None:
        raise EnvironmentBuildError(
            f"The conda package {line!r} has no known PyPI equivalent, and environments are built with uv "
            "(pip packages), not conda. Either move it to the '- pip:' list under its PyPI name, or install "
            "conda/micromamba and use a user-managed environment "
            "(env.python.user_managed_dependencies = True with env.python.interpreter_path set)."
        )
    pip_spec, note = _conda_version_to_pip(rest)
    notes = []
    if pypi_name != conda_name:
        notes.append(f"conda package {conda_name!r} installed as PyPI {pypi_name!r}")
    if note:
        notes.append(f"{line!r}: {note}")
    return MappedConda(line, f"{pypi_name}{pip_spec}", "; ".join(notes))
