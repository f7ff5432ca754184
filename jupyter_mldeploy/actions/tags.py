"""Parsing ``KEY=VALUE`` pairs (tags, properties, filters): one behaviour for the CLI, the magics and the panel.

Accepted everywhere: repeated values (``--tag a=1 --tag b=2``), comma-separated pairs in one value
(``a=1, b=2``, as the panel's Tags box takes them), or both. A comma splits only before another ``KEY=``, so
a value may hold commas (``note=a,b``). Keys and values are stripped of surrounding spaces; an empty key or
a pair without ``=`` is refused naming the pair; a key given twice with two values is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from jupyter_mldeploy.errors import InvalidArgument

# A comma followed by something that looks like the next ``KEY=``: the only place pairs are split.
_PAIR_SPLIT = re.compile(r",\s*(?=[^=,]*=)")


def _items(values: str | Iterable[str]) -> list[str]:
    raw = [values] if isinstance(values, str) else list(values)
    items: list[str] = []
    for value in raw:
        items += [part.strip() for part in _PAIR_SPLIT.split(value) if part.strip()]
    return items


def parse_key_values(values: str | Iterable[str], what: str = "tag", allow_bare: bool = False,
                     ) -> list[tuple[str, str | None]]:
    """Parse ``KEY=VALUE`` pairs.

    Args:
        values: One string or several (each may hold comma-separated pairs).
        what: What the pairs are, for messages (``tag``, ``property``).
        allow_bare: Accept ``KEY`` alone (value None), as listing filters do (``--tag stage`` = has the tag).

    Returns:
        list[tuple[str, str | None]]: ``(key, value)`` in the order given, duplicates removed.

    Raises:
        InvalidArgument: For an empty key, a pair without ``=`` (unless ``allow_bare``), or a key given twice
            with different values.
    """
    pairs: dict[str, str | None] = {}
    for item in _items(values):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key or (not sep and not allow_bare):
            example = f"{key}=VALUE" if key else "stage=dev"
            raise InvalidArgument(f"{what.capitalize()} {item!r} is not KEY=VALUE; write it as {example}.")
        parsed = value.strip() if sep else None
        if key in pairs and pairs[key] != parsed:
            raise InvalidArgument(f"{what.capitalize()} {key!r} is given twice ({pairs[key]!r} and {parsed!r}); "
                                  "keep one.")
        pairs[key] = parsed
    return list(pairs.items())


def parse_tags(values: str | Iterable[str] | Mapping[str, str] | None, what: str = "tag") -> dict[str, str]:
    """Parse tags (or properties) into a dict; a dict is checked and returned as strings.

    Args:
        values: ``"stage=dev, team=vision"``, ``["stage=dev", "team=vision"]``, a mapping, or None.
        what: ``tag`` or ``property``, for messages.

    Returns:
        dict[str, str]: Empty for None or blank input.

    Raises:
        InvalidArgument: See :func:`parse_key_values`.
    """
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {str(k): str(v) for k, v in values.items()}
    return {key: value or "" for key, value in parse_key_values(values, what)}


def parse_filters(values: str | Iterable[str] | None, what: str = "tag") -> list[str | list[str]] | None:
    """Parse listing filters as ``Model.list(tags=...)`` takes them: ``KEY`` (has it) or ``[KEY, VALUE]``.

    Returns:
        The filters, or None when none are given (no filtering).

    Raises:
        InvalidArgument: See :func:`parse_key_values`.
    """
    if values is None:
        return None
    parsed = parse_key_values(values, what, allow_bare=True)
    return [key if value is None else [key, value] for key, value in parsed] or None


__all__ = ["parse_filters", "parse_key_values", "parse_tags"]
