"""How every face writes times, durations and sizes, so a listing reads the same in a terminal, a notebook
table, a panel and the sidebar's JSON (issue #18: one time format everywhere)."""

from __future__ import annotations

from datetime import datetime, timezone

#: Listings show local time to the second: ``2026-11-27 18:04:05``.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def parse_time(value: datetime | str | None) -> datetime | None:
    """Read a stored time: a ``datetime`` or an ISO 8601 string; naive values are taken as UTC.

    Args:
        value: What a record or ``serialize()`` holds.

    Returns:
        datetime | None: Timezone-aware, or None for None/empty/unparsable input.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def format_time(value: datetime | str | None) -> str:
    """A time as listings show it: local time to the second (``2026-11-27 18:04:05``); ``-`` for none."""
    parsed = parse_time(value)
    return parsed.astimezone().strftime(TIME_FORMAT) if parsed is not None else "-"


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``5 min 03 s``, ``2 h 07 min``, ``3 d 04 h``; ``-`` for None."""
    if seconds is None:
        return "-"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_size(size: int) -> str:
    """``512 B``, ``1.5 KB``, ``12.3 MB`` (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


__all__ = ["TIME_FORMAT", "format_duration", "format_size", "format_time", "parse_time"]
