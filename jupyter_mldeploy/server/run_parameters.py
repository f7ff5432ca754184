"""What an inference-schema decorated ``run()`` takes, per parameter: tensor datatype, shape and columns.

Read from inference-schema's own ``get_input_schema`` (the document the swagger routes also show), so the
Open Inference Protocol V2 model metadata and the translation of V2 tensors and MLflow frames into ``run()``
arguments agree with what ``@input_schema`` will accept. An undecorated ``run(raw_data)`` has no
parameters here: both protocols then send ``{"data": rows}``, the v1 convention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: (JSON schema type, format) -> Open Inference Protocol V2 datatype.
_DATATYPES: dict[tuple[str, str | None], str] = {
    ("number", "float"): "FP32",
    ("number", "double"): "FP64",
    ("integer", "int8"): "INT8",
    ("integer", "int16"): "INT16",
    ("integer", "int32"): "INT32",
    ("integer", "int64"): "INT64",
    ("integer", "uint8"): "UINT8",
    ("integer", "uint16"): "UINT16",
    ("integer", "uint32"): "UINT32",
    ("integer", "uint64"): "UINT64",
}
_RECORDS_FORMAT = "pandas.DataFrame:records"


@dataclass(frozen=True)
class RunParameterSchema:
    """One input of a decorated ``run``.

    Attributes:
        name: The parameter name (the V2 input tensor name).
        datatype: V2 datatype (``FP64``, ``INT64``, ``BOOL``, ``BYTES`` ...); ``BYTES`` for mixed columns.
        shape: The sample's shape with the first (batch) dimension ``-1``; ``[-1]`` when unknown.
        columns: Column names when the parameter is a pandas DataFrame (records orient), else None.
    """

    name: str
    datatype: str
    shape: list[int]
    columns: list[str] | None = None

    def to_metadata(self) -> dict[str, Any]:
        """The V2 ``metadata_tensor`` (``name``, ``datatype``, ``shape``)."""
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}

    def rows_to_argument(self, rows: Any) -> Any:
        """Return ``rows`` as this parameter takes them in a JSON body.

        A DataFrame parameter takes records: rows given as lists (a V2 tensor, ``dataframe_split``,
        CSV) are paired with the sample's columns. Anything else passes unchanged.
        """
        if self.columns is None or not isinstance(rows, list):
            return rows
        columns = self.columns
        return [dict(zip(columns, row, strict=False)) if isinstance(row, list) else row for row in rows]


def _datatype(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if kind == "boolean":
        return "BOOL"
    if kind == "string":
        return "BYTES"
    if kind == "number":
        return _DATATYPES.get(("number", node.get("format")), "FP64")
    if kind == "integer":
        return _DATATYPES.get(("integer", node.get("format")), "INT64")
    return "BYTES"


def _shape(example: Any) -> list[int]:
    shape: list[int] = []
    while isinstance(example, list):
        shape.append(len(example))
        example = example[0] if example else None
    if not shape:
        return [-1]
    shape[0] = -1
    return shape


def _parameter(name: str, node: dict[str, Any], example: Any) -> RunParameterSchema:
    if node.get("format") == _RECORDS_FORMAT:
        properties: dict[str, Any] = (node.get("items") or {}).get("properties") or {}
        columns = list(properties)
        kinds = {_datatype(p) for p in properties.values()}
        datatype = kinds.pop() if len(kinds) == 1 else "BYTES"
        return RunParameterSchema(name, datatype, [-1, len(columns)], columns)
    leaf = node
    while leaf.get("type") == "array" and isinstance(leaf.get("items"), dict):
        leaf = leaf["items"]
    return RunParameterSchema(name, _datatype(leaf), _shape(example))


def run_parameter_schemas(run: Callable[..., Any], decorated: bool) -> list[RunParameterSchema]:
    """Return the inputs of a decorated ``run`` in declaration order (empty when not decorated).

    Args:
        run: The script's ``run``.
        decorated: Whether inference-schema decorated it.

    Returns:
        list[RunParameterSchema]: One per ``@input_schema`` parameter.
    """
    if not decorated:
        return []
    from inference_schema.schema_util import get_input_schema

    schema = get_input_schema(run) or {}
    examples = schema.get("example") or {}
    return [_parameter(name, node, examples.get(name)) for name, node in (schema.get("properties") or {}).items()]


def run_output_schema(run: Callable[..., Any], decorated: bool, name: str) -> RunParameterSchema | None:
    """Return what a decorated ``run`` returns, from its ``@output_schema`` (None without one).

    Args:
        run: The script's ``run``.
        decorated: Whether inference-schema decorated it.
        name: The output tensor's name.

    Returns:
        RunParameterSchema | None: The output's datatype and shape.
    """
    if not decorated:
        return None
    from inference_schema.schema_util import get_output_schema

    schema = get_output_schema(run) or {}
    if not schema:
        return None
    return _parameter(name, schema, schema.get("example"))
