"""Which file of a deployed model a built-in entry script loads.

Standard library only (shipped with the scoring server). The same rule runs twice: at plan time on the
registered files (so a folder with two candidate files is refused before anything starts) and at ``init()``
on the deployed copy.
"""

from __future__ import annotations

import os

#: File name endings of a scikit-learn model (pickle or joblib).
SKLEARN_SUFFIXES: tuple[str, ...] = (".pkl", ".pickle", ".joblib", ".sav")
#: File name ending of an ONNX model.
ONNX_SUFFIXES: tuple[str, ...] = (".onnx",)
#: The file that marks an MLflow model folder (its folder is the model).
MLFLOW_MARKER: tuple[str, ...] = ("mlmodel",)


class ModelFileError(ValueError):
    """The model's file cannot be chosen: none or several candidates, or not one deployed model."""


def find_model_file(path: str, suffixes: tuple[str, ...], what: str) -> str:
    """Return the model file to load: ``path`` itself when it is a file, else its only candidate file.

    Args:
        path: The registered (or deployed) model file or folder.
        suffixes: The (lower-case) file name endings that make a candidate, e.g. :data:`SKLEARN_SUFFIXES`.
        what: The framework, for messages (``"scikit-learn"``).

    Returns:
        str: The file's path.

    Raises:
        ModelFileError: A folder with no candidate or with several; the message names the way out.
    """
    if os.path.isfile(path):
        return path
    candidates = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(path)
        for name in names
        if name.lower().endswith(suffixes)
    )
    if len(candidates) == 1:
        return candidates[0]
    endings = ", ".join(f"*{s}" for s in suffixes)
    if not candidates:
        raise ModelFileError(
            f"No {what} model file ({endings}) in {path}: register the model file itself, or deploy with an "
            "entry script that loads it."
        )
    shown = ", ".join(os.path.relpath(c, path) for c in candidates)
    raise ModelFileError(
        f"Folder {path} holds {len(candidates)} candidate {what} model files ({shown}): register the one to "
        "serve (Model.register(model_path=<that file>)), or deploy with an entry script that loads it."
    )


def served_model() -> str:
    """Return the deployed model's file or folder: the one entry of ``$AZUREML_MODEL_DIR`` (one model served).

    Raises:
        ModelFileError: When ``AZUREML_MODEL_DIR`` is unset or does not hold exactly one entry.
    """
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    if not model_dir or not os.path.isdir(model_dir):
        raise ModelFileError(f"AZUREML_MODEL_DIR ({model_dir!r}) is not a folder: deploy exactly one registered model.")
    entries = sorted(os.listdir(model_dir))
    if len(entries) != 1:
        raise ModelFileError(
            f"{model_dir} holds {entries}: a built-in entry script serves exactly one registered model."
        )
    return os.path.join(model_dir, entries[0])
