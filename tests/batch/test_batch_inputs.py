"""Inputs: found by path, folder or glob, checked readable, cut into mini-batches that cover every row once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jupyter_mldeploy.batch import FileInput, TabularInput
from jupyter_mldeploy.batch.inputs import (
    FILES,
    TABULAR,
    count_lines,
    plan_mini_batches,
    read_mini_batch,
    resolve_input,
)
from jupyter_mldeploy.errors import InvalidArgument


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(rows), "x": np.linspace(0, 1, rows), "name": [f"r{i}" for i in range(rows)]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_mini_batches_cover_every_row_once(tmp_path: Path, suffix: str) -> None:
    frame = _frame(3000)
    path = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, row_group_size=250)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    resolved = resolve_input(str(path))
    assert resolved.kind == TABULAR
    batches = list(plan_mini_batches(resolved, 8 * 1024))
    assert len(batches) > 3
    assert [b.index for b in batches] == list(range(len(batches)))
    parts = [read_mini_batch(b) for b in batches]
    assert all(list(p.columns) == ["id", "x", "name"] for p in parts)
    together = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(together, frame, check_dtype=False)


def test_byte_ranges_are_contiguous_and_end_at_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    _frame(5000).to_csv(path, index=False)
    data = path.read_bytes()
    batches = list(plan_mini_batches(resolve_input(str(path)), 1024))
    assert batches[0].start == data.index(b"\n") + 1  # the header is not a row
    assert batches[-1].end == len(data)
    for before, after in zip(batches, batches[1:], strict=False):
        assert before.end == after.start
        assert data[before.end - 1:before.end] == b"\n"
        assert 1024 <= before.end - before.start < 1024 + 64  # cut at the size, then to the line end


def test_a_cut_just_after_a_line_end_takes_no_extra_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    line = b"1234567\n"  # 8 bytes: 1 KB holds exactly 128 lines
    path.write_bytes(b"v\n" + line * 256)
    batches = list(plan_mini_batches(resolve_input(str(path)), 1024))
    assert [len(read_mini_batch(b)) for b in batches] == [128, 128]


def test_folders_globs_and_file_input(tmp_path: Path) -> None:
    for i in range(3):
        _frame(10).to_csv(tmp_path / f"part{i}.csv", index=False)
    (tmp_path / "notes.txt").write_text("not a table")
    assert resolve_input(str(tmp_path / "part*.csv")).files == tuple(str(tmp_path / f"part{i}.csv") for i in range(3))
    # A folder with a non-tabular file is file input unless declared tabular.
    assert resolve_input(str(tmp_path)).kind == FILES
    with pytest.raises(InvalidArgument, match="notes.txt is not tabular.*FileInput"):
        resolve_input(TabularInput(str(tmp_path)))
    resolved = resolve_input(FileInput(str(tmp_path)))
    batches = list(plan_mini_batches(resolved, 3))
    assert [len(b.files) for b in batches] == [3, 1]
    assert read_mini_batch(batches[1]) == [str(tmp_path / "part2.csv")]
    # One batch per file for tabular input: a mini-batch never spans two files.
    assert len(list(plan_mini_batches(resolve_input(str(tmp_path / "part*.csv")), 1024 * 1024))) == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "bad.csv is not UTF-8 text"),
        ("bad.parquet", b"id,x\n1,2\n", "bad.parquet cannot be read as parquet"),
        ("bad.jsonl", b"[1, 2]\n", "bad.jsonl cannot be read as jsonl.*not a JSON object"),
        ("empty.csv", b"", "empty.csv cannot be read as csv"),
    ],
)
def test_unreadable_inputs_are_named(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InvalidArgument, match=message):
        resolve_input(str(tmp_path / name))


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist; pass a file, a folder or a glob"):
        resolve_input(str(tmp_path / "nope.csv"))
    with pytest.raises(InvalidArgument, match="matches no file"):
        resolve_input(str(tmp_path / "*.csv"))
    with pytest.raises(InvalidArgument, match="inputs must be a path, a glob"):
        resolve_input(42)


def _quoted_frame(rows: int) -> pd.DataFrame:
    """Rows whose text fields hold line breaks (LF and CRLF), commas and doubled quotes, inside quotes."""
    notes = [f'line one of {i}\nline two, with a comma\r\nand "quoted" words' if i % 3 else f"plain {i}"
             for i in range(rows)]
    return pd.DataFrame({"id": np.arange(rows), "note": notes, "x": np.linspace(0, 1, rows)})


@pytest.mark.parametrize("limit", [1, 64, 1024, 8 * 1024])
def test_quoted_line_breaks_stay_inside_their_row(tmp_path: Path, limit: int) -> None:
    frame = _quoted_frame(600)
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    data = path.read_bytes()
    assert data.count(b"\n") > 2 * len(frame)  # most rows span several lines
    batches = list(plan_mini_batches(resolve_input(str(path)), limit))
    assert len(batches) > 1 and batches[-1].end == len(data)
    for before, after in zip(batches, batches[1:], strict=False):
        assert before.end == after.start
        # every cut lies outside quotes: an even number of quote bytes before it
        assert data[:before.end].count(b'"') % 2 == 0 and data[before.end - 1:before.end] == b"\n"
    together = pd.concat([read_mini_batch(b) for b in batches], ignore_index=True)
    pd.testing.assert_frame_equal(together, frame, check_dtype=False)
    assert sum(count_lines(b) for b in batches) == len(frame)  # a failed read counts rows, not lines


def test_a_quoted_header_and_a_last_row_without_line_end(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(b'id,"multi\nline name"\n1,"a\nb"\n2,c\n3,"d,""e"""')
    batches = list(plan_mini_batches(resolve_input(str(path)), 1))
    assert [len(read_mini_batch(b)) for b in batches] == [1, 1, 1]
    assert list(read_mini_batch(batches[2]).iloc[0]) == [3, 'd,"e"']
    assert read_mini_batch(batches[0]).columns.tolist() == ["id", "multi\nline name"]


def test_json_lines_are_cut_at_line_ends_whatever_their_quotes(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    frame = _quoted_frame(300)
    frame.to_json(path, orient="records", lines=True)  # line breaks escaped as \n inside the strings
    batches = list(plan_mini_batches(resolve_input(str(path)), 512))
    together = pd.concat([read_mini_batch(b) for b in batches], ignore_index=True)
    pd.testing.assert_frame_equal(together, frame, check_dtype=False)


def test_an_unclosed_quote_makes_the_rest_of_its_file_one_row(tmp_path: Path) -> None:
    """A malformed CSV (a quote never closed) is still cut without error: the rows before the quote are
    cut as usual, the rest of the file joins the last range, whose read fails (so that mini-batch fails and
    its items are counted: its whole rows, plus one for the rest)."""
    path = tmp_path / "broken.csv"
    good = "".join(f"{i},ok\n" for i in range(200))
    path.write_text("id,note\n" + good + '200,"never closed\n' + "".join(f"{i},x\n" for i in range(201, 400)))
    batches = list(plan_mini_batches(resolve_input(str(path)), 256))
    before = sum(len(read_mini_batch(b)) for b in batches[:-1])
    assert 0 < before < 200 and batches[-1].end == path.stat().st_size
    with pytest.raises(pd.errors.ParserError, match="EOF inside string"):
        read_mini_batch(batches[-1])
    assert count_lines(batches[-1]) == 200 - before + 1
