"""JSON encoding of ``run()`` results with orjson, including numpy and pandas values.

azmlinfsrv encodes results with ``json.dumps`` and answers 500 for numpy arrays or scalars; we encode
numpy arrays as (nested) lists, numpy scalars as numbers, a pandas ``DataFrame`` as records
(``[{column: value}, ...]``) and a ``Series`` as a list. NaN and infinities become ``null`` (orjson's
rule; ``json.dumps`` would emit the invalid tokens ``NaN``/``Infinity``).
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # Only reached for what orjson cannot encode natively (non-contiguous or object arrays, pandas...).
    tolist = getattr(value, "tolist", None)
    module = type(value).__module__
    if module.startswith("pandas"):
        to_dict = getattr(value, "to_dict", None)
        if type(value).__name__ == "DataFrame" and to_dict is not None:
            return to_dict(orient="records")
        if tolist is not None:
            return tolist()
        isoformat = getattr(value, "isoformat", None)
        if isoformat is not None:
            return isoformat()
    if module == "numpy" or module.startswith("numpy."):
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return value.item()
        if tolist is not None:
            return tolist()
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if tolist is not None:
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON.

    Args:
        value: A JSON-compatible value, possibly holding numpy arrays/scalars or pandas objects.

    Returns:
        bytes: The JSON document.

    Raises:
        TypeError: When ``value`` holds something that has no JSON form.
    """
    return orjson.dumps(value, default=_default, option=_OPTIONS)
