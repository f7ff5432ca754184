"""A batch job's input: which files, checked readable, cut into mini-batches without loading them.

Tabular input is CSV (``.csv``, ``.tsv`` tab-separated), JSON lines (``.jsonl``, ``.ndjson``) or Parquet
(``.parquet``, ``.pq``); file input is any files. A path may be one file, a folder (its files, not
recursing, sorted by name) or a glob (``data/*.csv``, ``**`` recurses).

Cutting never holds a whole file: a CSV or JSON-lines file is cut into byte ranges of about
``mini_batch_size`` bytes that end at a row end, as v1 cuts a tabular dataset by size; a Parquet file into
runs of row groups of about that compressed size. A CSV field may hold line breaks inside quotes (RFC 4180,
pandas' default ``quotechar='"'`` with doubled quotes as escapes): a line end counts as a row end only
outside quotes, which :class:`RowEnds` knows by streaming the file once and counting quotes (in C, with
``bytes.count`` and ``bytes.find``). JSON lines cannot hold a raw line break in a value, so their cuts only
seek. The workers read their own range (:func:`read_mini_batch`); the driver only holds the list of ranges.
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_mldeploy.errors import InvalidArgument

#: Bytes read at a time while scanning a CSV file for its row ends.
SCAN_BLOCK = 4 << 20
TABULAR_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
#: Input kinds.
TABULAR = "tabular"
FILES = "files"


@dataclass(frozen=True)
class TabularInput:
    """Tabular input, as v1's ``TabularDataset``: ``run()`` gets a pandas DataFrame per mini-batch.

    Attributes:
        path: A CSV / JSON-lines / Parquet file, a folder of them, or a glob.
    """

    path: str


@dataclass(frozen=True)
class FileInput:
    """File input, as v1's ``FileDataset``: ``run()`` gets a list of absolute file paths per mini-batch.

    Attributes:
        path: A file, a folder (its files) or a glob.
    """

    path: str


@dataclass(frozen=True)
class MiniBatch:
    """One mini-batch: what a worker reads and passes to ``run()``.

    Attributes:
        index: Position in the job (0-based); the output is assembled in this order.
        kind: ``"csv"``, ``"jsonl"``, ``"parquet"`` or ``"files"``.
        path: The tabular file (empty for file input).
        start: First byte (CSV, JSON lines) or row group (Parquet) of the range.
        end: End byte or row group, exclusive.
        files: The files of a file-input mini-batch.
        header: CSV: the header row's length in bytes (it may hold quoted line breaks too); each worker
            reads it again from the file's start.
    """

    index: int
    kind: str
    path: str = ""
    start: int = 0
    end: int = 0
    files: tuple[str, ...] = ()
    header: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (one line of the job's plan)."""
        data = asdict(self)
        data["files"] = list(self.files)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiniBatch:
        """Rebuild from :meth:`to_dict`."""
        return cls(**{**data, "files": tuple(data.get("files", ()))})


@dataclass(frozen=True)
class ResolvedInput:
    """The files of an input and its kind.

    Attributes:
        kind: :data:`TABULAR` or :data:`FILES`.
        files: Absolute paths, in order.
        source: The path or glob as given.
    """

    kind: str
    files: tuple[str, ...]
    source: str


def _matches(source: str) -> list[Path]:
    path = Path(source).expanduser()
    if glob.has_magic(source):
        return sorted(Path(p).resolve() for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))
    if path.is_dir():
        return sorted(p.resolve() for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if path.exists() and not path.is_file():
        raise InvalidArgument(f"Input {source!r} is neither a file nor a folder; pass a file, a folder or a glob.")
    if not path.exists():
        raise InvalidArgument(f"Input {source!r} does not exist; pass a file, a folder or a glob such as 'data/*.csv'.")
    return [path.resolve()]


def resolve_input(inputs: Any) -> ResolvedInput:
    """Find the input's files and its kind, and check every tabular file can be read.

    Args:
        inputs: A :class:`TabularInput`, a :class:`FileInput`, or a path / glob string (tabular when every
            file has a tabular suffix, else file input).

    Returns:
        ResolvedInput: The files in order.

    Raises:
        InvalidArgument: No file matches; a tabular input holds a file of another type; a file cannot be
            read or parsed (the message names it and why).
    """
    if isinstance(inputs, (TabularInput, FileInput)):
        source, declared = str(inputs.path), TABULAR if isinstance(inputs, TabularInput) else FILES
    elif isinstance(inputs, (str, os.PathLike)):
        source, declared = str(inputs), None
    else:
        raise InvalidArgument(
            f"inputs must be a path, a glob, TabularInput(path) or FileInput(path), not {type(inputs).__name__}."
        )
    files = _matches(source)
    if not files:
        raise InvalidArgument(f"Input {source!r} matches no file; check the path or glob.")
    kind = declared or (TABULAR if all(p.suffix.lower() in TABULAR_SUFFIXES for p in files) else FILES)
    for file in files:
        if kind == TABULAR:
            if file.suffix.lower() not in TABULAR_SUFFIXES:
                raise InvalidArgument(
                    f"Input file {file} is not tabular: use .csv, .tsv, .jsonl, .ndjson or .parquet files, or "
                    "pass FileInput(path) to give run() file paths."
                )
            check_tabular_file(file)
        elif not os.access(file, os.R_OK):
            raise InvalidArgument(f"Input file {file} cannot be read (permission denied); fix its permissions.")
    return ResolvedInput(kind=kind, files=tuple(str(f) for f in files), source=source)


def check_tabular_file(path: Path) -> None:
    """Read the head of a tabular file as a worker would; raise a clear error when that fails.

    Raises:
        InvalidArgument: Naming the file and what is wrong with it.
    """
    fmt = TABULAR_SUFFIXES[path.suffix.lower()]
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.ParquetFile(path).schema_arrow  # noqa: B018 - reading the footer is the check
            return
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
        head.decode("utf-8")
        if fmt == "jsonl":
            first = head.split(b"\n", 1)[0].strip()
            if first and not isinstance(json.loads(first), dict):
                raise ValueError("the first line is not a JSON object")
        else:
            import pandas as pd

            frame = pd.read_csv(io.BytesIO(head), nrows=5, sep=_separator(path))
            if len(frame.columns) == 0:
                raise ValueError("no header line")
    except ImportError as exc:
        raise InvalidArgument(f"Input file {path} needs {exc.name} to be read: pip install pyarrow.") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"Input file {path} is not UTF-8 text; is it a {fmt} file?") from None
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types; the message is what matters
        raise InvalidArgument(f"Input file {path} cannot be read as {fmt}: {type(exc).__name__}: {exc}") from None


def _separator(path: Path | str) -> str:
    return "\t" if str(path).lower().endswith(".tsv") else ","


def plan_mini_batches(resolved: ResolvedInput, limit: int) -> Iterator[MiniBatch]:
    """Cut the input into mini-batches, in input order, without reading it whole.

    Args:
        resolved: The input.
        limit: Files per mini-batch (file input) or bytes per mini-batch (tabular input).

    Yields:
        MiniBatch: Numbered from 0.
    """
    index = 0
    if resolved.kind == FILES:
        for at in range(0, len(resolved.files), limit):
            yield MiniBatch(index=index, kind="files", files=resolved.files[at:at + limit])
            index += 1
        return
    for file in resolved.files:
        fmt = TABULAR_SUFFIXES[Path(file).suffix.lower()]
        ranges = _row_group_ranges(file, limit) if fmt == "parquet" else _byte_ranges(file, limit, csv=fmt == "csv")
        header = 0
        for start, end in ranges:
            header = header or (start if fmt == "csv" else 0)  # the first range starts after the header
            yield MiniBatch(index=index, kind=fmt, path=file, start=start, end=end, header=header)
            index += 1


class RowEnds:
    """Finds row ends in a CSV or JSON-lines file, moving forward only, through one buffer.

    A row ends after a line end (``\\n``) that lies outside quotes. For CSV the quote state at any offset
    comes from the parity of the ``"`` bytes since ``offset``, which is a row start (doubled quotes inside
    a quoted field count twice, so they keep the parity): the file is read once, in blocks of
    :data:`SCAN_BLOCK` bytes, where only the quotes are counted between cuts. JSON lines have no quoted
    line breaks, so their row ends only need the next line end.

    Args:
        handle: The file, opened in binary mode.
        offset: A row start to scan from (0, or a mini-batch's start).
        size: Where the scan stops (the file size, or a mini-batch's end).
        quoted: Whether quotes can hold line breaks (CSV).
    """

    def __init__(self, handle: BinaryIO, offset: int, size: int, quoted: bool) -> None:
        self.handle = handle
        self.offset = offset
        self.size = size
        self.quoted = quoted
        #: Whether ``offset`` lies inside a quoted field.
        self.inside = False
        self._buffer = b""
        self._buffer_at = offset
        #: The next quote in the buffer at or after the scan position (-1: none left; None: not searched).
        self._quote: int | None = None

    def _fill(self) -> bool:
        """Make the buffer hold ``offset``; False at ``size``."""
        if self.offset - self._buffer_at < len(self._buffer):
            return True
        self.handle.seek(self.offset)
        self._buffer = self.handle.read(max(0, min(SCAN_BLOCK, self.size - self.offset)))
        self._buffer_at, self._quote = self.offset, None
        return bool(self._buffer)

    def _next_quote(self, at: int) -> int:
        if not self.quoted:
            return -1
        if self._quote is None or 0 <= self._quote < at:
            self._quote = self._buffer.find(b'"', at)
        return self._quote

    def end_of_row_at(self, at: int) -> int:
        """The end of the row holding byte ``at`` (at or after the last row end returned): just after the
        first line end at or after ``at`` outside quotes, or ``size`` when none is left."""
        if not self.quoted:
            self.offset = at
        while self.offset < at and self._fill():  # the quote state at ``at``
            begin = self.offset - self._buffer_at
            stop = min(len(self._buffer), at - self._buffer_at)
            self.inside ^= self._buffer.count(b'"', begin, stop) % 2 == 1
            self.offset = self._buffer_at + stop
        while self._fill():
            i = self.offset - self._buffer_at
            while True:
                quote = self._next_quote(i)
                if self.inside:
                    if quote < 0:
                        break
                    self.inside, i = False, quote + 1
                    continue
                newline = self._buffer.find(b"\n", i, quote if quote >= 0 else len(self._buffer))
                if newline >= 0:
                    self.offset = self._buffer_at + newline + 1
                    return self.offset
                if quote < 0:
                    break
                self.inside, i = True, quote + 1
            self.offset = self._buffer_at + len(self._buffer)
        self.offset = self.size
        return self.size


def _byte_ranges(path: str, limit: int, csv: bool) -> Iterator[tuple[int, int]]:
    """Byte ranges of about ``limit`` bytes, each ending at a row end (a CSV's header row excluded).

    A range ends at the end of the row holding its ``limit``-th byte, so a cut that falls just after a row
    end takes no extra row.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        ends = RowEnds(handle, 0, size, quoted=csv)
        start = ends.end_of_row_at(0) if csv else 0
        while start < size:
            end = ends.end_of_row_at(start + limit - 1) if start + limit < size else size
            yield start, end
            start = end


def _row_group_ranges(path: str, limit: int) -> Iterator[tuple[int, int]]:
    """Runs of whole row groups of about ``limit`` compressed bytes."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    start, size = 0, 0
    for group in range(metadata.num_row_groups):
        size += metadata.row_group(group).total_byte_size
        if size >= limit:
            yield start, group + 1
            start, size = group + 1, 0
    if start < metadata.num_row_groups:
        yield start, metadata.num_row_groups


def read_mini_batch(batch: MiniBatch) -> Any:
    """Read a mini-batch as ``run()`` takes it: a DataFrame (tabular) or a list of paths (file input).

    Runs in a worker. The CSV header is read again from the file's first ``batch.header`` bytes.

    Returns:
        pandas.DataFrame | list[str]: The mini-batch.
    """
    if batch.kind == "files":
        return list(batch.files)
    import pandas as pd

    if batch.kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(batch.path).read_row_groups(range(batch.start, batch.end)).to_pandas()
    with open(batch.path, "rb") as handle:
        head = handle.read(batch.header)
        handle.seek(batch.start)
        data = handle.read(batch.end - batch.start)
    if batch.kind == "jsonl":
        return pd.read_json(io.BytesIO(data), lines=True)
    return pd.read_csv(io.BytesIO(head + data), sep=_separator(batch.path))


def count_lines(batch: MiniBatch) -> int:
    """Items in a mini-batch that could not be parsed: its lines (tabular), files, or row-group rows."""
    if batch.kind == "files":
        return len(batch.files)
    if batch.kind == "parquet":
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(batch.path).metadata
        return sum(metadata.row_group(g).num_rows for g in range(batch.start, batch.end))
    rows = 0
    with open(batch.path, "rb") as handle:
        ends = RowEnds(handle, batch.start, batch.end, quoted=batch.kind == "csv")
        at = batch.start
        while at < batch.end:
            at = ends.end_of_row_at(at)
            rows += 1
    return rows
