"""Metric values: what ``run.log*`` accepts, and how logged rows fold into ``run.get_metrics()``.

The fold follows Azure ML SDK v1's ``Run.get_metrics``:

* ``log(name, v)`` once gives ``v``; logged several times, the list of values in logging order;
* ``log_list(name, [..])`` gives the list (the last one logged);
* ``log_row(name, a=1, b=2)`` accumulates a table: ``{"a": [1, ...], "b": [2, ...]}``;
* ``log_table(name, {"a": [..]})`` gives the dict (the last one logged);
* ``log_image(name, ...)`` gives the image's run file name (``"images/<name>.png"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_mldeploy.errors import InvalidArgument
from jupyter_mldeploy.runs.store import MetricRow

SCALAR = "scalar"
LIST = "list"
ROW = "row"
TABLE = "table"
IMAGE = "image"


def metric_name(name: object) -> str:
    """Check a metric name: a non-empty string.

    Raises:
        InvalidArgument: Otherwise.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"A metric name must be a non-empty string such as 'accuracy', got {name!r}.")
    return name


def json_value(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON data: numbers, strings, booleans, None, lists and dicts of them.

    NumPy scalars and arrays and pandas objects are converted (``.item()``/``.tolist()``); NaN and
    infinities are kept (as v1 keeps them). Anything else is refused.

    Args:
        value: The value logged.
        what: What it is, for the message (``"metric 'accuracy'"``).

    Raises:
        InvalidArgument: For a value that is not JSON data, naming its type and the fix.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and pandas Series
        return json_value(value.tolist(), what)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_value(value.item(), what)
    if isinstance(value, Mapping):
        return {str(k): json_value(v, what) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, what) for v in value]
    raise InvalidArgument(
        f"Cannot log {type(value).__name__} as {what}: log numbers, strings, booleans, or lists and dicts of "
        "them (convert arrays with .tolist())."
    )


def fold(rows: Iterable[MetricRow]) -> dict[str, Any]:
    """Fold logged rows (in logging order) into the ``get_metrics()`` dict (see the module docstring)."""
    scalars: dict[str, list[Any]] = {}
    folded: dict[str, Any] = {}
    for row in rows:
        if row.kind == SCALAR:
            scalars.setdefault(row.name, []).append(row.value)
            values = scalars[row.name]
            folded[row.name] = values[0] if len(values) == 1 else list(values)
        elif row.kind == ROW:
            table = folded.get(row.name)
            if not isinstance(table, dict):
                table = {}
            count = max((len(v) for v in table.values()), default=0)
            for column, value in row.value.items():
                table.setdefault(column, [None] * count).append(value)
            for column, values in table.items():
                if column not in row.value:
                    values.append(None)
            folded[row.name] = table
        else:  # list, table, image: the last one logged
            folded[row.name] = row.value
    return folded


def last_scalars(rows: Iterable[MetricRow]) -> dict[str, Any]:
    """Return the last value of every scalar metric (the figure a runs table shows per metric)."""
    return {row.name: row.value for row in rows if row.kind == SCALAR}

