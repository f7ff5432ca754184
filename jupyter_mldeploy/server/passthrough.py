"""Forwarding the client's own bytes of a large array of floats to a classic ``run(raw_data)``.

A classic ``run(raw_data)`` parses its body itself (``json.loads(raw_data)["data"]``), so the V2 and MLflow
translation of a large request (parse the whole body, check every value, encode ``{"data": rows}`` again)
is work the script then repeats. When the rows are a JSON array of floats, this module finds that array's
bytes in the request body and proves, at ``bytes``-method speed, everything the full translation would
have checked about it except the spelling of each number:

* :func:`locate` finds the one real key (``"data"``, ``"inputs"``, ...) and the span of its array value;
  :meth:`Span.rest` is the body with that span replaced by ``[]``, which the protocol parses (small) to
  read and check every other field, and which proves the span's boundaries;
* :func:`float_layout` reduces the span to its skeleton (brackets, commas and one ``.`` per number) with a
  single ``bytes.translate`` and compares it with the skeleton of a 1-d or 2-d rectangular array: that one
  comparison checks that the values are floats (no strings, booleans, nulls or integers), the nesting,
  the rectangularity and the count.

The spelling of the numbers (``1-2.5``, ``01.5``, ``5.``) is what it cannot prove: ``run()``'s own JSON parse
refuses such a body, and the app then checks the body on the full path to answer that path's refusal
(``RunCall.recheck``). Integers, exponents of 300 or more (which may overflow a double: orjson refuses
them, Python's ``json`` gives ``inf``), bodies with ``\\u`` escapes of ASCII letters (a key could be
spelled ``"\\u0064ata"``) and other layouts take the full path, whose conversions they need. Not caught: a
number beyond a double's range written without such an exponent (309 integer digits) reaches ``run()``,
whose ``json`` reads ``inf`` where the full path's orjson refuses the body (docs/protocols.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Bodies at least this large are forwarded. Measured (10 features per row): at 1 row (180 bytes) locating and
#: checking the span costs 4 us more than the full translation, at 10 rows (1 kB) 3 us less, at 1000 rows
#: (100 kB) 80 us instead of 800-990 us.
MIN_BYTES = 1024
_COMMA, _OPEN, _CLOSE = ord(","), ord("["), ord("]")
#: The whitespace JSON allows between tokens.
_WHITESPACE = b" \t\n\r"
#: Deleted from the span to leave its skeleton; ``E`` is mapped to ``e`` by :data:`_SKELETON_TABLE`.
_NUMBER_CHARS = b"0123456789+-" + _WHITESPACE
_SKELETON_TABLE = bytes.maketrans(b"E", b"e")
#: An exponent this large may overflow a double (or underflow with many leading zeros): the full path
#: decides, as orjson parses.
_EXPONENT_LIMIT = 300
#: More exponents than this and checking each costs more than the full path saves.
_MAX_EXPONENTS = 64


@dataclass(frozen=True, slots=True)
class Span:
    """Where a key's array value sits in a request body.

    Attributes:
        start: Offset of its ``[``.
        end: Offset just past its closing ``]``.
    """

    start: int
    end: int

    def rest(self, body: bytes) -> bytes:
        """Return ``body`` with the span replaced by ``[]`` (the part the protocol parses)."""
        return body[:self.start] + b"[]" + body[self.end:]

    def rows_body(self, body: bytes) -> bytes:
        """Return the classic ``run()``'s body ``{"data": <the span's bytes>}``."""
        return b"".join((b'{"data": ', memoryview(body)[self.start:self.end], b"}"))  # one copy of the rows

    def cut_rows_body(self, body: bytes, columns: int) -> bytes:
        """Return ``{"data": rows}`` of a flat array of numbers cut into rows of ``columns`` values.

        V2's flat data for a 2-d shape (what tritonclient sends): the full path cuts the parsed list into
        rows, this cuts the text. The array holds only numbers (:func:`float_layout`), so every comma
        separates two values: ``]`` goes before and ``[`` after each ``columns``-th one, ``[`` after the
        opening bracket and ``]`` before the closing one; the values keep the client's bytes. One
        ``np.insert`` over the bytes: about 130 us for 10,000 values, against 800 us for the full path.

        Args:
            body: The request body.
            columns: Values per row (the shape's second dimension), at least 1.
        """
        array = np.frombuffer(body, np.uint8, self.end - self.start, self.start)
        cuts = np.flatnonzero(array == _COMMA)[columns - 1::columns]
        where = np.empty(2 * len(cuts) + 2, np.intp)
        brackets = np.empty(len(where), np.uint8)
        where[0], brackets[0] = 1, _OPEN
        where[1:-1:2], brackets[1:-1:2] = cuts, _CLOSE
        where[2:-1:2], brackets[2:-1:2] = cuts + 1, _OPEN
        where[-1], brackets[-1] = len(array) - 1, _CLOSE
        return b'{"data": ' + np.insert(array, where, brackets).tobytes() + b"}"


def _key_at(body: bytes, key: bytes, start: int) -> tuple[int, int]:
    """Return (offset of the next real ``key``, offset just past its ``:``), or (-1, -1).

    A real key is the quoted name not preceded by a backslash (else it is the end of a name holding an
    escaped quote, e.g. ``"x\\"data"``) and followed by optional whitespace and ``:`` (a string value
    never is).
    """
    size = len(body)
    found = body.find(key, start)
    while found >= 0:
        after = found + len(key)
        while after < size and body[after] in _WHITESPACE:
            after += 1
        if after < size and body[after] == 58 and (found == 0 or body[found - 1] != 92):  # ':' and '\\'
            return found, after + 1
        found = body.find(key, after)
    return -1, -1


def locate(body: bytes, key: bytes) -> Span | None:
    """Find the array value of the one real ``key`` of ``body``.

    The array ends at the last ``]`` before the first ``"`` or ``}`` after its start: an array of numbers
    holds neither, and in valid JSON only whitespace and a comma separate it from the next key or the end
    of its object. Parsing :meth:`Span.rest` proves it; :func:`float_layout` proves the span holds numbers.

    Args:
        body: The request body.
        key: The quoted key, e.g. ``b'"data"'``.

    Returns:
        Span | None: None when the key is absent, appears more than once as a key, does not hold an
        array, or the body spells a key with ``\\u`` escapes of ASCII letters (``"\\u0064ata"`` is another
        ``"data"`` the text search would miss).
    """
    found, value = _key_at(body, key, 0)
    if found < 0:
        return None
    size = len(body)
    while value < size and body[value] in _WHITESPACE:
        value += 1
    if value >= size or body[value] != 91:  # '['
        return None
    bounds = [at for at in (body.find(b'"', value), body.find(b"}", value)) if at >= 0]
    end = body.rfind(b"]", value, min(bounds) if bounds else size) + 1
    if end <= 0 or _key_at(body, key, end)[0] >= 0 or _escaped_letter(body, 0, value) or _escaped_letter(body, end, size):
        return None
    return Span(value, end)


def _escaped_letter(body: bytes, start: int, end: int) -> bool:
    """Whether ``body[start:end]`` holds a ``\\u`` escape of ``\\u0040``-``\\u007f`` (letters and ``_``)."""
    at = body.find(b"\\u00", start, end)
    while at >= 0:
        if body[at + 4:at + 5] in (b"4", b"5", b"6", b"7"):
            return True
        at = body.find(b"\\u00", at + 4, end)
    return False


@lru_cache(maxsize=32)
def skeleton(shape: tuple[int, ...]) -> bytes:
    """The skeleton of a float array of ``shape`` (1-d or 2-d): brackets, commas, one ``.`` per value.

    Args:
        shape: ``(n,)`` or ``(rows, columns)``, each at least 1.

    Returns:
        bytes: e.g. ``[[.,.],[.,.]]`` for ``(2, 2)``.
    """
    flat = b"[" + b".," * (shape[-1] - 1) + b".]"
    if len(shape) == 1:
        return flat
    return b"[" + b",".join([flat] * shape[0]) + b"]"


def float_layout(body: bytes, span: Span) -> tuple[int, ...] | None:
    """Return the shape of the span when it is a 1-d or 2-d rectangular JSON array of floats, else None.

    Every value must be a float as written (a ``.`` or an exponent, so integers, which the full path
    would convert, do not count); exponents of :data:`_EXPONENT_LIMIT` or more, and more than
    :data:`_MAX_EXPONENTS` of them, are left to the full path.

    Args:
        body: The request body.
        span: An array located by :func:`locate`.

    Returns:
        tuple[int, ...] | None: ``(n,)`` or ``(rows, columns)``.
    """
    found = body[span.start:span.end].translate(_SKELETON_TABLE, _NUMBER_CHARS)
    if b"e" in found:
        if found.count(b"e") > _MAX_EXPONENTS or not _exponents_small(body, span):
            return None
        # A number is "." (1.5), "e" (1e-05) or ".e" (1.5e-05); the skeleton has "." for each.
        found = found.replace(b".e", b".").replace(b"e", b".")
    if len(found) < 3:
        return None
    if found[1] == 91:  # '[': rows
        closing = found.find(b"]")  # "[[.,.,.]": 2 * columns + 1; a row and its comma are one longer
        shape: tuple[int, ...] = ((len(found) - 1) // (closing + 1), (closing - 1) // 2)
    else:
        shape = ((len(found) - 1) // 2,)
    if min(shape) < 1 or found != skeleton(shape):
        return None
    return shape


def _exponents_small(body: bytes, span: Span) -> bool:
    """Whether every exponent in the span is below :data:`_EXPONENT_LIMIT` in magnitude (and well formed
    enough to read; a malformed one is left to the full path)."""
    for letter in (b"e", b"E"):
        at = body.find(letter, span.start, span.end)
        while at >= 0:
            digits = at + 1
            if body[digits] in b"+-":
                digits += 1
            stop = digits
            while body[stop] in b"0123456789":
                stop += 1
            if stop == digits or int(body[digits:stop]) >= _EXPONENT_LIMIT:
                return False
            at = body.find(letter, stop, span.end)
    return True
