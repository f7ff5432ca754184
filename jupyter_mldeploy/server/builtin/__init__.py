"""Built-in entry scripts for no-code deployment: ordinary ``score.py`` files, one per model framework.

Each is loaded and called by :class:`~jupyter_mldeploy.server.user_script.UserScript` exactly as a user's
script is; the deploy layer (``jupyter_mldeploy.deploy.no_code``) points an ``InferenceConfig`` at one when a
model registered with a supported ``model_framework`` is deployed without an inference configuration. Copy
one (``mldeploy model scaffold-entry-script``) to customise it.
"""

from __future__ import annotations

from pathlib import Path

#: The folder holding the built-in scripts.
BUILTIN_DIR = Path(__file__).resolve().parent

#: scikit-learn: ``joblib.load`` reads joblib files and plain pickles alike.
SKLEARN_SCRIPT = BUILTIN_DIR / "sklearn_score.py"
#: ONNX: an ``onnxruntime.InferenceSession``.
ONNX_SCRIPT = BUILTIN_DIR / "onnx_score.py"
#: MLflow: ``mlflow.pyfunc.load_model`` on the folder holding ``MLmodel``.
MLFLOW_SCRIPT = BUILTIN_DIR / "mlflow_score.py"
