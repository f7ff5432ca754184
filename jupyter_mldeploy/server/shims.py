"""The few ``azureml`` names an unchanged v1 score.py imports, provided inside the scoring process.

``from azureml.contrib.services.aml_request import AMLRequest, rawhttp``,
``from azureml.contrib.services.aml_response import AMLResponse`` and
``from azureml.core.model import Model`` (for ``Model.get_model_path``) work without any azureml package:
:func:`install_finder` appends an import finder to the END of ``sys.meta_path``, so an installed azureml
package is always found first and these stand-ins only fill the gaps. The same classes are also served as
``azureml_inference_server_http.api.aml_request`` / ``.aml_response`` (azmlinfsrv's own spelling).

:class:`AMLRequest` offers the Flask request attributes scripts use (``method``, ``args``, ``headers``,
``get_data(as_text=...)``, ``json``/``get_json()``, ``path``, ``full_path``, ``url``, ``form``, ``files``,
``cookies``...); :class:`AMLResponse` takes azmlinfsrv's ``AMLResponse(message, status_code,
response_headers, json_str)`` and behaves as the Flask ``Response`` it is there. Both carry
:class:`Headers`, which behave as werkzeug's (item get and set, ``add``, ``set``, ``get``, ``extend``,
``items``, case-insensitive names, repeated headers kept).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import io
import json
import logging
import os
import re
import shutil
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from jupyter_mldeploy.server import data_collector, model_path

F = TypeVar("F", bound=Callable[..., Any])
_logger = logging.getLogger("mldeploy.server")

#: Set by :func:`rawhttp`; read by the script loader (azmlinfsrv keeps the same module-level flag).
_rawHttpRequested = False


def rawhttp(func: F) -> F:
    """Mark ``run`` as wanting the raw :class:`AMLRequest` instead of the decoded body.

    Args:
        func: The script's ``run`` function.

    Returns:
        The same function, unchanged.
    """
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


class MultiDict(Mapping[str, Any]):
    """A read-only mapping that keeps every value of a repeated key (like werkzeug's ``MultiDict``).

    Args:
        pairs: ``(key, value)`` pairs in request order.
    """

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._first: dict[str, str] = {}
        for key, value in pairs:
            self._first.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        """Return the first value of ``key`` (converted with ``type`` when given), else ``default``."""
        if key not in self._first:
            return default
        value = self._first[key]
        if type is None:
            return value
        try:
            return type(value)
        except (TypeError, ValueError):
            return default

    def getlist(self, key: str) -> list[str]:
        """Return every value of ``key`` in request order (an empty list when absent)."""
        return [value for name, value in self._pairs if name == key]

    def items(self, multi: bool = False) -> Any:  # type: ignore[override]
        """Return ``(key, first value)`` pairs, or every pair with ``multi=True``."""
        return list(self._pairs) if multi else list(self._first.items())

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        """Return a plain dict of first values (``flat=False``: of value lists)."""
        if flat:
            return dict(self._first)
        return {key: self.getlist(key) for key in self._first}


_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_MISSING: Any = object()


def _header_value(value: Any) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError("Header values must not contain newline characters.")
    return text


def _with_options(value: Any, options: Mapping[str, Any]) -> str:
    """``value; key=option; ...`` as werkzeug's ``dump_options_header`` (``_`` in keys becomes ``-``)."""
    parts = [_header_value(value)]
    for key, option in options.items():
        key = key.replace("_", "-")
        if option is None:
            parts.append(key)
            continue
        text = str(option)
        if not _TOKEN.match(text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return "; ".join(parts)


def _pairs_of(source: Any) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` pairs of a mapping (list values give one pair each) or of an iterable of pairs."""
    if isinstance(source, Headers):
        yield from source.items()
    elif isinstance(source, Mapping):
        for key, value in source.items():
            if isinstance(value, (list, tuple)):
                for item in value:
                    yield key, item
            else:
                yield key, value
    else:
        for key, value in source:
            yield key, value


class Headers:
    """HTTP headers with the behaviour of werkzeug's ``Headers`` (what Flask's request and response carry).

    An ordered list of ``(name, value)`` pairs; names compare case-insensitively and a repeated name keeps
    every value. ``headers[name]`` is the first value (``KeyError`` when absent), ``headers[name] = value``
    replaces every value of that name in place of the first one, ``add`` appends, iteration yields
    ``(name, value)`` pairs and ``len`` counts pairs, as werkzeug's. Values are stored as ``str``; one
    holding a newline is refused (``ValueError``), as werkzeug does, so a header cannot be split in two.
    ``dict(headers)`` maps each name to its first value.

    Args:
        defaults: Initial headers: a mapping (a list value adds each item) or an iterable of pairs.
    """

    __slots__ = ("_list", "_raw")

    def __init__(self, defaults: Any = None) -> None:
        self._list: list[tuple[str, str]] = []
        self._raw: list[tuple[bytes, bytes]] | None = None
        if defaults:
            self.extend(defaults)

    @classmethod
    def from_request(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """The headers of a request as Flask under azmlinfsrv sees them, decoded on first use.

        The WSGI server azmlinfsrv runs on (gunicorn) hands Flask one value per name, repeated headers
        joined by ``,``, and werkzeug names them in ``Title-Case``; so do these.

        Args:
            raw: ``(name, value)`` byte pairs as received (ASGI's ``scope["headers"]``).

        Returns:
            Headers: The request headers.
        """
        headers = cls()
        headers._raw = raw
        return headers

    @property
    def _pairs(self) -> list[tuple[str, str]]:
        if self._raw is not None:
            joined: dict[str, tuple[str, str]] = {}
            for name, value in self._raw:
                text_name, text = name.decode("latin-1"), value.decode("latin-1")
                key = text_name.lower()
                joined[key] = (joined[key][0], f"{joined[key][1]},{text}") if key in joined else (text_name.title(), text)
            self._list = list(joined.values())
            self._raw = None
        return self._list

    # Reading -----------------------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            lowered = key.lower()
            for name, value in self._pairs:
                if name.lower() == lowered:
                    return value
            raise KeyError(key)
        if isinstance(key, slice):
            return Headers(self._pairs[key])
        return self._pairs[key]

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        """Return the first value of ``key`` (converted with ``type``; ``default`` if that raises ValueError)."""
        try:
            value = self[key]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except ValueError:
            return default

    def getlist(self, key: str, type: Callable[[str], Any] | None = None) -> list[Any]:  # noqa: A002
        """Return every value of ``key`` in order (converted with ``type``, skipping those that raise ValueError)."""
        lowered = key.lower()
        found = []
        for name, value in self._pairs:
            if name.lower() != lowered:
                continue
            if type is None:
                found.append(value)
                continue
            try:
                found.append(type(value))
            except ValueError:
                continue
        return found

    def get_all(self, name: str) -> list[str]:
        """``getlist(name)`` (werkzeug's alias, from the email library's API)."""
        return self.getlist(name)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        lowered = key.lower()
        return any(name.lower() == lowered for name, _ in self._pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def keys(self, lower: bool = False) -> Iterator[str]:
        """Yield each pair's name (lower-cased with ``lower=True``); a repeated name comes once per value."""
        for name, _ in list(self._pairs):
            yield name.lower() if lower else name

    def values(self) -> Iterator[str]:
        """Yield each pair's value."""
        for _, value in list(self._pairs):
            yield value

    def items(self, lower: bool = False) -> Iterator[tuple[str, str]]:
        """Yield ``(name, value)`` pairs in order (names lower-cased with ``lower=True``)."""
        for name, value in list(self._pairs):
            yield (name.lower() if lower else name), value

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        """Return the pairs as a list (what WSGI's ``start_response`` takes)."""
        return list(self._pairs)

    def copy(self) -> Headers:
        """Return a copy."""
        return Headers(self._pairs)

    __copy__ = copy

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        return NotImplemented

    __hash__ = None  # type: ignore[assignment] - mutable, as werkzeug's

    def __str__(self) -> str:
        return "".join(f"{name}: {value}\r\n" for name, value in self._pairs) + "\r\n"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"

    # Writing -----------------------------------------------------------------------------------------

    def add(self, key: str, value: Any, **options: Any) -> None:
        """Append a header, keeping those of the same name (``options`` as ``; key=value`` parameters)."""
        self._pairs.append((key, _with_options(value, options) if options else _header_value(value)))

    add_header = add

    def set(self, key: str, value: Any, **options: Any) -> None:
        """Replace every value of ``key`` by ``value``, at the place of the first one (appended when absent)."""
        text = _with_options(value, options) if options else _header_value(value)
        pairs = self._pairs
        lowered = key.lower()
        for index, (name, _) in enumerate(pairs):
            if name.lower() == lowered:
                pairs[index] = (key, text)
                pairs[index + 1:] = [pair for pair in pairs[index + 1:] if pair[0].lower() != lowered]
                return
        pairs.append((key, text))

    def setlist(self, key: str, values: Iterable[Any]) -> None:
        """Replace every value of ``key`` by ``values`` (removing it when ``values`` is empty)."""
        items = list(values)
        if not items:
            self.remove(key)
            return
        self.set(key, items[0])
        for value in items[1:]:
            self.add(key, value)

    def setdefault(self, key: str, default: Any) -> str:
        """Return the first value of ``key``; set it to ``default`` first when absent."""
        if key in self:
            return self[key]
        self.set(key, default)
        return self[key]

    def setlistdefault(self, key: str, default: Iterable[Any]) -> list[str]:
        """Return every value of ``key``; set them to ``default`` first when absent."""
        if key not in self:
            self.setlist(key, default)
        return self.getlist(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str):
            self.set(key, value)
        elif isinstance(key, slice):
            self._pairs[key] = [(str(name), _header_value(item)) for name, item in value]
        else:
            name, item = value
            self._pairs[key] = (str(name), _header_value(item))

    def extend(self, *args: Any, **kwargs: Any) -> None:
        """Add every header of a mapping, an iterable of pairs or keyword arguments, keeping existing ones."""
        if len(args) > 1:
            raise TypeError(f"extend expected at most 1 argument, got {len(args)}")
        for source in (*args, kwargs):
            for key, value in _pairs_of(source):
                self.add(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Replace the values of every name given (a list value replaces with each item), as werkzeug's."""
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 argument, got {len(args)}")
        for source in (*args, kwargs):
            grouped: dict[str, tuple[str, list[Any]]] = {}
            for key, value in _pairs_of(source):
                grouped.setdefault(key.lower(), (key, []))[1].append(value)
            for key, values in grouped.values():
                self.setlist(key, values)

    def remove(self, key: str) -> None:
        """Remove every value of ``key`` (nothing happens when it is absent)."""
        lowered = key.lower()
        self._pairs[:] = [pair for pair in self._pairs if pair[0].lower() != lowered]

    def __delitem__(self, key: Any) -> None:
        if isinstance(key, str):
            self.remove(key)
        else:
            del self._pairs[key]

    def pop(self, key: Any = None, default: Any = _MISSING) -> Any:
        """Remove and return: the first value of a name (all its values go), a pair by index, or the last pair.

        Raises:
            KeyError: The name is absent and no ``default`` was given.
        """
        if key is None:
            return self._pairs.pop()
        if isinstance(key, int):
            return self._pairs.pop(key)
        try:
            value = self[key]
        except KeyError:
            if default is _MISSING:
                raise
            return default
        self.remove(key)
        return value

    def popitem(self) -> tuple[str, str]:
        """Remove and return the last pair."""
        return self._pairs.pop()

    def clear(self) -> None:
        """Remove every header."""
        self._pairs.clear()


class _ContentTyped:
    """``content_type`` and ``mimetype`` read from a ``headers`` attribute (werkzeug's names)."""

    headers: Headers

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, or None."""
        return self.headers.get("content-type")

    @property
    def mimetype(self) -> str:
        """The content type without parameters, lower case (``""`` when absent)."""
        return (self.content_type or "").split(";", 1)[0].strip().lower()


class FileStorage(_ContentTyped):
    """One uploaded file of a ``multipart/form-data`` body, shaped like werkzeug's ``FileStorage``.

    Args:
        data: The part's content.
        filename: The ``filename`` of its ``Content-Disposition`` (may be ``""``).
        name: The form field name.
        headers: The part's own headers.
    """

    def __init__(self, data: bytes, filename: str, name: str, headers: Headers) -> None:
        self.stream = io.BytesIO(data)
        self.filename = filename
        self.name = name
        self.headers = headers

    @property
    def content_length(self) -> int:
        """Size of the content in bytes."""
        return len(self.stream.getbuffer())

    def read(self, size: int = -1) -> bytes:
        """Read from :attr:`stream` (all that is left by default)."""
        return self.stream.read(size)

    def save(self, dst: str | os.PathLike[str] | Any, buffer_size: int = 16384) -> None:
        """Write what is left in :attr:`stream` to a path or a binary file object (as werkzeug: from the
        stream's current position, so ``read()`` first leaves nothing to save without ``stream.seek(0)``).

        Args:
            dst: A file path, or an object with ``write(bytes)`` (left open).
            buffer_size: Copy chunk size in bytes.
        """
        if isinstance(dst, (str, os.PathLike)):
            with open(dst, "wb") as handle:
                shutil.copyfileobj(self.stream, handle, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    def __bool__(self) -> bool:
        return bool(self.filename)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


def _disposition(value: str) -> dict[str, str]:
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(value)
    return {key.decode("latin-1").lower(): val.decode("utf-8", "replace") for key, val in params.items()}


def parse_multipart(body: bytes, content_type: str) -> tuple[list[tuple[str, str]], list[tuple[str, FileStorage]]]:
    """Split a ``multipart/form-data`` body into form fields and files, as werkzeug's form parser does.

    A part whose ``Content-Disposition`` has a ``filename`` is a file; the others are text fields
    (decoded as UTF-8). Parsing uses python-multipart (the parser starlette uses).

    Args:
        body: The whole request body.
        content_type: The request's ``Content-Type`` header (must carry the ``boundary``).

    Returns:
        tuple: ``(fields, files)``, each a list of ``(field name, value)`` pairs in body order.

    Raises:
        ValueError: No boundary, or a malformed body.
    """
    from python_multipart import MultipartParser
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValueError("multipart/form-data body without a boundary parameter in Content-Type")
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    part_headers: list[tuple[str, str]] = []
    header = {"field": b"", "value": b""}
    chunks: list[bytes] = []

    def on_part_begin() -> None:
        part_headers.clear()
        chunks.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        part_headers.append((header["field"].decode("latin-1"), header["value"].decode("utf-8", "replace")))
        header["field"] = header["value"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def on_part_end() -> None:
        headers = Headers(list(part_headers))
        disposition = _disposition(headers.get("content-disposition", ""))
        name = disposition.get("name", "")
        content = b"".join(chunks)
        if "filename" in disposition:
            files.append((name, FileStorage(content, disposition["filename"], name, headers)))
        else:
            fields.append((name, content.decode("utf-8", "replace")))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    parser.write(body)
    parser.finalize()
    return fields, files


class AMLRequest(_ContentTyped):
    """The HTTP request handed to a ``@rawhttp`` ``run(request)``, shaped like Flask's ``request``.

    Args:
        method: HTTP method (upper case).
        path: URL path, e.g. ``/score``.
        query_string: Raw query string bytes.
        headers: Request headers.
        body: The whole request body.
        scheme: ``http`` or ``https``.
        host: ``host[:port]`` the client addressed.
        remote_addr: Client IP address, or None.
        root_path: ASGI root path (mount prefix), usually empty.
    """

    def __init__(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: Headers,
        body: bytes,
        scheme: str = "http",
        host: str = "",
        remote_addr: str | None = None,
        root_path: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.scheme = scheme
        self.host = host or headers.get("host", "")
        self.remote_addr = remote_addr
        self.root_path = root_path
        self._body = body
        self._parsed_form: tuple[MultiDict, MultiDict] | None = None
        self.args = MultiDict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))

    def __repr__(self) -> str:
        return f"<AMLRequest {self.url!r} [{self.method}]>"

    @property
    def full_path(self) -> str:
        """Path plus ``?`` and the query string (as Flask's ``full_path``)."""
        return f"{self.path}?{self.query_string.decode('latin-1')}"

    @property
    def host_url(self) -> str:
        """``scheme://host/``."""
        return f"{self.scheme}://{self.host}/"

    @property
    def base_url(self) -> str:
        """The URL without the query string."""
        return f"{self.scheme}://{self.host}{self.root_path}{self.path}"

    @property
    def url(self) -> str:
        """The full URL including the query string."""
        query = self.query_string.decode("latin-1")
        return self.base_url + (f"?{query}" if query else "")

    @property
    def content_length(self) -> int | None:
        """The ``Content-Length`` header as an int, or None."""
        return self.headers.get("content-length", type=int)

    @property
    def is_json(self) -> bool:
        """True for ``application/json`` and ``application/*+json`` (Flask's rule)."""
        mimetype = self.mimetype
        return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))

    @property
    def data(self) -> bytes:
        """The raw body."""
        return self._body

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        """Return the body as ``bytes``, or ``str`` (UTF-8, undecodable bytes replaced) with ``as_text=True``."""
        return self._body.decode("utf-8", "replace") if as_text else self._body

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Parse the body as JSON.

        Args:
            force: Parse even when the content type is not JSON.
            silent: Return None instead of raising on a wrong content type or invalid JSON.
            cache: Accepted for Flask compatibility.

        Returns:
            The parsed value, or None (``silent``).

        Raises:
            ValueError: The content type is not JSON (without ``force``) or the body is not valid JSON.
        """
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError(f"Did not attempt to load JSON data because the content type {self.content_type!r} "
                             "is not 'application/json'.")
        try:
            return json.loads(self._body)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        """``get_json()``."""
        return self.get_json()

    def _form_data(self) -> tuple[MultiDict, MultiDict]:
        if self._parsed_form is None:
            fields: list[tuple[str, Any]] = []
            files: list[tuple[str, Any]] = []
            if self.mimetype == "application/x-www-form-urlencoded":
                fields = parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True)
            elif self.mimetype == "multipart/form-data":
                try:
                    fields, files = parse_multipart(self._body, self.content_type or "")  # type: ignore[assignment]
                except ValueError as exc:
                    # werkzeug's form parser is silent here too (request.form/files stay empty).
                    _logger.warning("Could not parse the multipart/form-data body: %s", exc)
            self._parsed_form = (MultiDict(fields), MultiDict(files))
        return self._parsed_form

    @property
    def form(self) -> MultiDict:
        """Text fields of an ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body.

        Empty for other content types and for a malformed body (as werkzeug; a warning is logged).
        """
        return self._form_data()[0]

    @property
    def files(self) -> MultiDict:
        """Uploaded files of a ``multipart/form-data`` body: field name -> :class:`FileStorage`."""
        return self._form_data()[1]

    @property
    def values(self) -> MultiDict:
        """Query arguments and form fields together (Flask's ``values``)."""
        return MultiDict(self.args.items(multi=True) + self.form.items(multi=True))

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies from the ``Cookie`` header."""
        jar = SimpleCookie()
        jar.load(self.headers.get("cookie", ""))
        return {name: morsel.value for name, morsel in jar.items()}


def _content_type(mimetype: str) -> str:
    """werkzeug's ``get_content_type``: ``text/*`` and XML-like types get ``; charset=utf-8``."""
    if mimetype.startswith("text/") or mimetype.endswith("+xml") or mimetype in (
        "application/ecmascript", "application/javascript", "application/sql", "application/xml",
        "application/xml-dtd", "application/xml-external-parsed-entity",
    ):
        return f"{mimetype}; charset=utf-8"
    return mimetype


class AMLResponse:
    """What a ``run()`` may return to set the HTTP response itself: azmlinfsrv's ``AMLResponse``.

    There it is a Flask ``Response``; this one offers the part of that surface v1 scripts use: ``headers``
    (a werkzeug-like :class:`Headers`), ``status_code`` and ``status`` (readable and assignable),
    ``get_data(as_text=...)``, ``set_data``, ``data``, ``mimetype``, ``content_type``, ``content_length``
    and ``get_json()``. As there, the headers start as ``Content-Type``, ``Content-Length``,
    ``x-ms-run-function-failed``, then ``response_headers``.

    Args:
        message: The body: ``str`` (UTF-8) or ``bytes`` as-is, or any JSON-serialisable value with
            ``json_str=True``. None gives ``{}`` as JSON.
        status_code: HTTP status.
        response_headers: Extra headers. As azmlinfsrv does, a value holding commas becomes one header per
            comma-separated part, and a ``Content-Type`` given here replaces the default one.
        json_str: Encode ``message`` as JSON (content type ``application/json``).
        run_function_failed: Value of the ``x-ms-run-function-failed`` header (the server forces True for
            a 5xx status).
    """

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        given = dict(response_headers or {})
        self.headers = Headers()
        self.status_code = int(status_code)
        if message is None:
            body: Any = json.dumps({})
            self.headers["Content-Type"] = "application/json"
        elif json_str:
            body = json.dumps(message)
            self.headers["Content-Type"] = "application/json"
        else:
            body = message if isinstance(message, (bytes, bytearray)) else str(message)
            if "Content-Type" not in given:
                self.headers["Content-Type"] = "text/html; charset=utf-8"
        self._data = b""
        self.set_data(body)
        self.headers["x-ms-run-function-failed"] = run_function_failed
        for name, value in given.items():
            for part in str(value).split(","):
                self.headers.add(name, part.strip())

    def __repr__(self) -> str:
        return f"<AMLResponse {len(self._data)} bytes [{self.status}]>"

    @property
    def status(self) -> str:
        """The status line's code and reason, e.g. ``"201 CREATED"`` (assign ``"404"`` or ``"404 NOT FOUND"``)."""
        try:
            reason = HTTPStatus(self.status_code).phrase.upper()
        except ValueError:
            reason = "UNKNOWN"
        return f"{self.status_code} {reason}"

    @status.setter
    def status(self, value: str | int) -> None:
        self.status_code = int(str(value).split(None, 1)[0])

    def get_data(self, as_text: bool = False) -> Any:
        """Return the body as ``bytes`` (``str`` with ``as_text=True``)."""
        return self._data.decode("utf-8", "replace") if as_text else self._data

    def set_data(self, value: str | bytes) -> None:
        """Replace the body (``str`` is encoded as UTF-8) and its ``Content-Length``."""
        self._data = value.encode() if isinstance(value, str) else bytes(value)
        self.headers["Content-Length"] = str(len(self._data))

    @property
    def data(self) -> bytes:
        """The body (assignable, as ``set_data``)."""
        return self._data

    @data.setter
    def data(self, value: str | bytes) -> None:
        self.set_data(value)

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header (assignable)."""
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value: str) -> None:
        self.headers["Content-Type"] = value

    @property
    def mimetype(self) -> str | None:
        """The content type without parameters, lower case; assigning ``text/*`` adds ``charset=utf-8``."""
        content_type = self.content_type
        return content_type.split(";", 1)[0].strip().lower() if content_type else None

    @mimetype.setter
    def mimetype(self, value: str) -> None:
        self.headers["Content-Type"] = _content_type(value)

    @property
    def content_length(self) -> int | None:
        """The ``Content-Length`` header as an int."""
        return self.headers.get("Content-Length", type=int)

    @property
    def is_json(self) -> bool:
        """True for ``application/json`` and ``application/*+json``."""
        mimetype = self.mimetype or ""
        return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))

    def get_json(self, force: bool = False, silent: bool = False) -> Any:
        """Parse the body as JSON (None when the content type is not JSON, unless ``force``)."""
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self._data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        """``get_json()``."""
        return self.get_json()


class Model:
    """The part of ``azureml.core.model.Model`` a scoring script uses: :meth:`get_model_path`."""

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None) -> str:
        """Return the deployed model's path (``azureml-models/<name>/<version>/<entry>``).

        Args:
            model_name: Registered model name.
            version: Version number; None = the highest deployed.
            _workspace: Ignored (v1 accepts a workspace for remote lookups).

        Returns:
            str: The model file or folder path.

        Raises:
            FileNotFoundError: No such model where the scoring container keeps them.
        """
        return model_path.get_model_path(model_name, version)


def _module_contents() -> dict[str, dict[str, Any]]:
    this = sys.modules[__name__]
    request = {"AMLRequest": AMLRequest, "rawhttp": rawhttp, "__getattr__": lambda name: getattr(this, name)}
    response = {"AMLResponse": AMLResponse}
    return {
        "azureml": {},
        "azureml.contrib": {},
        "azureml.contrib.services": {},
        "azureml.contrib.services.aml_request": request,
        "azureml.contrib.services.aml_response": response,
        "azureml.core": {"Model": Model},
        "azureml.core.model": {"Model": Model},
        "azureml.monitoring": {"ModelDataCollector": data_collector.ModelDataCollector},
        "azureml_inference_server_http": {},
        "azureml_inference_server_http.api": {},
        "azureml_inference_server_http.api.aml_request": request,
        "azureml_inference_server_http.api.aml_response": response,
    }


class AzureMLShimFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Provides the modules above when no installed package does (it sits last on ``sys.meta_path``)."""

    def __init__(self) -> None:
        self._contents = _module_contents()

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Return a spec for one of the shimmed module names, else None."""
        if fullname not in self._contents:
            return None
        is_package = not fullname.endswith(("aml_request", "aml_response", ".model"))
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)
        if is_package:
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        """Use the default module creation."""
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        """Fill the module with the stand-in names."""
        contents = dict(self._contents[module.__name__])
        module.__dict__.update(contents)
        module.__doc__ = "Stand-in provided by jupyter_mldeploy's scoring server (no azureml package installed)."


def install_finder() -> AzureMLShimFinder:
    """Append the shim finder to ``sys.meta_path`` (once).

    Returns:
        AzureMLShimFinder: The installed finder.
    """
    for finder in sys.meta_path:
        if isinstance(finder, AzureMLShimFinder):
            return finder
    finder = AzureMLShimFinder()
    sys.meta_path.append(finder)
    return finder


def raw_http_requested() -> bool:
    """Return True when ``@rawhttp`` was applied, by our stand-in or by a real installed azureml package."""
    if _rawHttpRequested:
        return True
    for name in ("azureml.contrib.services.aml_request", "azureml_inference_server_http.api.aml_request"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_rawHttpRequested", False) is True:
            return True
    return False
