"""The naming rule shared by models, environments and services."""

from __future__ import annotations

import re

from jupyter_mldeploy.errors import InvalidArgument

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$"
_NAME_RE = re.compile(NAME_PATTERN)


def validate_name(value: object, kind: str = "name") -> str:
    """Check a model, environment or service name and return it.

    A name starts with a letter or digit and continues with letters, digits, ``_``, ``.`` or ``-``, at most
    255 characters in all (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$``), so it is safe as a folder name: no path
    separators, no ``..``, no whitespace.

    Args:
        value: The name to check.
        kind: What the name is for (``"model name"``, ``"service name"``), used in the message.

    Returns:
        The name, unchanged.

    Raises:
        InvalidArgument: When the name breaks the rule; the message names the rule.
    """
    # fullmatch, not match: "$" alone also accepts a trailing newline, which would reach folder names.
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or value in {".", ".."} or ".." in value:
        raise InvalidArgument(
            f"Invalid {kind} {value!r}: use 1-255 characters from letters, digits, '_', '.', '-', starting "
            f"with a letter or digit, with no '..' ({NAME_PATTERN})."
        )
    return value


def parse_name_version(value: str, kind: str = "model") -> tuple[str, int | None]:
    """Split ``"name:version"`` (or a bare ``"name"``) into its parts.

    Args:
        value: ``"name"`` or ``"name:version"`` with a positive integer version.
        kind: What is named, for the error message.

    Returns:
        ``(name, version)``; version is None when not given.

    Raises:
        InvalidArgument: For a bad name or a version that is not a positive integer.
    """
    name, sep, version = str(value).partition(":")
    validate_name(name, f"{kind} name")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidArgument(f"Invalid {kind} version {version!r} in {value!r}: use NAME:N with N = 1, 2, 3 ...")
    return name, int(version)
