"""Sample input and output of a model version: what ``Model.register(sample_input=, sample_output=)`` keeps.

azureml SDK v1 took datasets (``sample_input_dataset``/``sample_output_dataset``) and used them for the
swagger schema of a no-code deployment and for profiling. Here a sample is one of:

* a **table**: a pandas DataFrame (or Series), a numpy array of one or two dimensions, a list of rows (lists),
  a list of ``{column: value}`` records, or a list of values (one column); also any of these wrapped as
  ``{"data": ...}``, the request body of the built-in entry scripts. Its columns (names when it has them)
  and their types are kept, so a swagger schema can name them;
* a **tensor**: a numpy array of more than two dimensions;
* any other **JSON** value (an object with other keys, a string ...), kept as given.

Each sample is one file in the version folder, ``models/<name>/<version>/.mldeploy-samples/sample_input.json``
(and ``sample_output.json``), written with the model's files and made read-only; its sha256 is in the
registry row. The file is one JSON object:

* ``{"format": "mldeploy-sample", "version": 1, "kind": "table", "ndim": 2, "named": true,
  "columns": [{"name": "sepal_length", "dtype": "float64", "type": "number"}, ...], "data": [[5.1, ...], ...]}``
  (``ndim`` 1: ``data`` is a flat list of one column; ``named`` false: the columns have no names, ``name`` is
  null; ``type`` is the JSON schema type, ``format`` ``"date-time"`` for datetimes, which are ISO strings);
* ``{"format": "mldeploy-sample", "version": 1, "kind": "tensor", "dtype": "float32", "type": "number",
  "shape": [2, 3, 4], "data": [[[...]]]}``;
* ``{"format": "mldeploy-sample", "version": 1, "kind": "json", "value": ...}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jupyter_mldeploy.errors import InvalidArgument

#: Folder of the sample files inside a version folder; a registered path may not have this name.
SAMPLES_DIRNAME = ".mldeploy-samples"
#: The ``format`` marker of a sample file.
SAMPLE_FORMAT = "mldeploy-sample"
SAMPLE_FORMAT_VERSION = 1

_ACCEPTED = (
    "a pandas DataFrame, a numpy array, a list of rows, a list of {column: value} records, a list of values, "
    "any of these as {'data': ...}, or another JSON-safe value"
)


@dataclass(frozen=True)
class SampleColumn:
    """One column of a table sample.

    Attributes:
        name: The column's name, or None for an unnamed column (a numpy array or list of rows).
        dtype: The pandas dtype it was given with or inferred as (``"float64"``, ``"int64"``, ``"bool"``,
            ``"object"``, ``"datetime64[ns]"`` ...).
        type: Its JSON schema type: ``"number"``, ``"integer"``, ``"boolean"`` or ``"string"``; None when the
            values are of mixed types.
        format: ``"date-time"`` for a datetime column (values are ISO 8601 strings), else None.
    """

    name: str | None
    dtype: str
    type: str | None
    format: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The column as stored in the sample file."""
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "type": self.type}
        if self.format is not None:
            data["format"] = self.format
        return data


@dataclass(frozen=True)
class SampleData:
    """A model's sample input or output, as stored in its sample file (see the module docstring).

    ``Model.sample_input_dataset`` and ``Model.sample_output_dataset`` return one (v1's attribute names;
    v1 returned a dataset); :meth:`to_pandas_dataframe` reads it as v1's ``TabularDataset`` does.

    Attributes:
        kind: ``"table"``, ``"tensor"`` or ``"json"``.
        data: A table's rows (``ndim`` 2) or values (``ndim`` 1), a tensor's nested lists, or the JSON value.
        columns: A table's columns; empty otherwise.
        ndim: A table's dimensions (1 or 2); a tensor's ``len(shape)``; 0 for JSON.
        dtype: A tensor's dtype, else None.
        shape: A tensor's shape, else None.
    """

    kind: str
    data: Any
    columns: tuple[SampleColumn, ...] = field(default=())
    ndim: int = 0
    dtype: str | None = None
    shape: tuple[int, ...] | None = None

    @property
    def named(self) -> bool:
        """True for a table whose columns have names."""
        return bool(self.columns) and all(c.name is not None for c in self.columns)

    def value(self) -> Any:
        """The sample as a plain JSON value: records for a named table, rows or values for an unnamed one,
        nested lists for a tensor, the value itself for JSON."""
        if self.kind == "table" and self.named:
            names = [c.name for c in self.columns]
            rows = self.data if self.ndim == 2 else [[v] for v in self.data]
            return [dict(zip(names, row, strict=True)) for row in rows]
        return self.data

    def request_body(self) -> Any:
        """The request body this sample stands for: ``{"data": value()}`` for a table or tensor (what the
        built-in entry scripts read), the value itself for JSON."""
        return self.data if self.kind == "json" else {"data": self.value()}

    def to_pandas_dataframe(self) -> Any:
        """Return a table sample as a pandas DataFrame with its dtypes (v1 ``TabularDataset.to_pandas_dataframe``).

        Raises:
            InvalidArgument: For a tensor or JSON sample, which is no table.
        """
        import pandas as pd

        if self.kind != "table":
            raise InvalidArgument(
                f"This sample is a {self.kind} value, not a table: read it with .value() instead of "
                ".to_pandas_dataframe()."
            )
        rows = self.data if self.ndim == 2 else [[v] for v in self.data]
        names = [c.name if c.name is not None else i for i, c in enumerate(self.columns)]
        frame = pd.DataFrame(rows, columns=names)
        for column, name in zip(self.columns, names, strict=True):
            try:
                frame[name] = frame[name].astype(column.dtype)
            except (TypeError, ValueError):  # a dtype this pandas does not know, or nulls in an int column
                continue
        return frame

    def to_json(self) -> dict[str, Any]:
        """The sample file's content."""
        data: dict[str, Any] = {"format": SAMPLE_FORMAT, "version": SAMPLE_FORMAT_VERSION, "kind": self.kind}
        if self.kind == "table":
            data.update(ndim=self.ndim, named=self.named, columns=[c.to_json() for c in self.columns], data=self.data)
        elif self.kind == "tensor":
            data.update(dtype=self.dtype, type=json_type_of_dtype(self.dtype or ""), shape=list(self.shape or ()),
                        data=self.data)
        else:
            data["value"] = self.data
        return data

    @staticmethod
    def from_json(data: Any, source: str) -> SampleData:
        """Read a sample file's content.

        Args:
            data: The parsed JSON.
            source: Names the file in errors.

        Raises:
            InvalidArgument: When it is not a sample file of a known version.
        """
        if not isinstance(data, dict) or data.get("format") != SAMPLE_FORMAT or data.get("kind") not in (
            "table", "tensor", "json"
        ):
            raise InvalidArgument(f"{source} is not a sample file (format {SAMPLE_FORMAT!r}).")
        if data.get("version") != SAMPLE_FORMAT_VERSION:
            raise InvalidArgument(
                f"{source} has sample format version {data.get('version')!r}; this jupyter-mldeploy reads "
                f"{SAMPLE_FORMAT_VERSION}: upgrade jupyter-mldeploy."
            )
        kind = data["kind"]
        if kind == "table":
            columns = tuple(
                SampleColumn(c["name"], c["dtype"], c.get("type"), c.get("format")) for c in data["columns"]
            )
            return SampleData("table", data["data"], columns, int(data["ndim"]))
        if kind == "tensor":
            return SampleData("tensor", data["data"], (), len(data["shape"]), data["dtype"], tuple(data["shape"]))
        return SampleData("json", data["value"])


def to_sample(value: Any, argument: str) -> SampleData | None:
    """Turn what ``Model.register`` was given as ``sample_input``/``sample_output`` into a :class:`SampleData`.

    Args:
        value: See the module docstring for what is accepted; None gives None.
        argument: The argument's name, for errors.

    Raises:
        InvalidArgument: For an empty table, NaN or infinity in a list or tensor, or a value that is not
            JSON-safe; the message names the argument and what is accepted.
    """
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"data"}:
        inner = _table_or_tensor(value["data"], argument)
        if inner is not None:
            return inner
    table = _table_or_tensor(value, argument)
    if table is not None:
        return table
    try:
        safe = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"{argument} must be {_ACCEPTED}; got {type(value).__name__} that is not JSON-safe ({exc}). "
            "Convert arrays with .tolist(), or pass the DataFrame itself."
        ) from exc
    return SampleData("json", safe)


def _table_or_tensor(value: Any, argument: str) -> SampleData | None:
    """A table or tensor sample for a DataFrame, Series, array or list of rows/records/values; else None."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        return _frame_sample(value, argument, named=not isinstance(value.columns, pd.RangeIndex))
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return None
        if value.ndim > 2:
            data = _json_safe(value.tolist(), argument)
            return SampleData("tensor", data, (), value.ndim, str(value.dtype), tuple(int(n) for n in value.shape))
        frame = pd.DataFrame(value if value.ndim == 2 else value.reshape(-1, 1))
        sample = _frame_sample(frame, argument, named=False)
        return sample if value.ndim == 2 else _as_column(sample)
    if not isinstance(value, (list, tuple)):
        return None
    if not value:
        raise InvalidArgument(f"{argument} is empty: give at least one row (a list of rows, records or values).")
    if all(isinstance(row, dict) for row in value):
        names: list[str] = []
        for row in value:
            names.extend(str(k) for k in row if str(k) not in names)
        rows = [[row.get(name) for name in names] for row in value]
        return _rows_sample(rows, names, argument)
    if all(isinstance(row, (list, tuple)) for row in value):
        if len({len(row) for row in value}) != 1:
            return None  # rows of different lengths (token lists ...): kept as JSON
        if any(isinstance(item, (list, tuple, dict)) for row in value for item in row):
            return None  # nested deeper than rows: kept as JSON
        return _rows_sample([list(row) for row in value], None, argument)
    if all(not isinstance(item, (list, tuple, dict)) for item in value):
        return _as_column(_rows_sample([[item] for item in value], None, argument))
    return None


def _frame_sample(frame: Any, argument: str, named: bool) -> SampleData:
    if frame.empty:
        raise InvalidArgument(f"{argument} is an empty table: give at least one row.")
    # pandas writes NaN as null and datetimes as ISO strings: the stored rows are JSON-safe.
    rows = json.loads(frame.to_json(orient="values", date_format="iso"))
    columns = tuple(
        _column(str(name) if named else None, str(dtype), [row[i] for row in rows])
        for i, (name, dtype) in enumerate(zip(frame.columns, frame.dtypes, strict=True))
    )
    return SampleData("table", rows, columns, 2)


def _rows_sample(rows: list[list[Any]], names: list[str] | None, argument: str) -> SampleData:
    import pandas as pd

    rows = _json_safe(rows, argument)
    frame = pd.DataFrame(rows)  # only to infer each column's dtype; the rows are kept as given
    columns = tuple(
        _column(names[i] if names is not None else None, str(dtype), [row[i] for row in rows])
        for i, dtype in enumerate(frame.dtypes)
    )
    return SampleData("table", rows, columns, 2)


def _as_column(sample: SampleData) -> SampleData:
    """A one-column table read as a flat list of values (``ndim`` 1), e.g. ``model.predict(X)``."""
    return SampleData("table", [row[0] for row in sample.data], sample.columns, 1)


def _json_safe(value: Any, argument: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"{argument} holds a value that is not JSON-safe ({exc}): NaN, infinity and objects cannot be "
            "stored; pass a DataFrame (NaN becomes null) or replace them."
        ) from exc


def _column(name: str | None, dtype: str, values: list[Any]) -> SampleColumn:
    if dtype.startswith("datetime64"):
        return SampleColumn(name, dtype, "string", "date-time")
    found = json_type_of_dtype(dtype)
    if found is None and values and all(isinstance(v, str) for v in values if v is not None):
        found = "string"  # pandas before 3 reads strings as object
    return SampleColumn(name, dtype, found)


def json_type_of_dtype(dtype: str) -> str | None:
    """JSON schema type of a pandas/numpy dtype name; None for ``object`` (mixed values)."""
    lowered = dtype.lower()
    if lowered.startswith("bool"):
        return "boolean"
    if lowered.startswith(("int", "uint")):
        return "integer"
    if lowered.startswith(("float", "double")):
        return "number"
    if lowered in ("str", "string") or lowered.startswith(("string", "category")):
        return "string"
    return None
