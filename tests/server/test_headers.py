"""``Headers``, ``AMLResponse`` and ``AMLRequest`` behave as the werkzeug/Flask objects v1 scripts were written for.

The expected values are werkzeug 3's and azmlinfsrv 1.5.1's answers (checked by running the same
operations on both while writing these tests).
"""

from __future__ import annotations

import pytest

from jupyter_mldeploy.server.shims import AMLRequest, AMLResponse, Headers


def test_item_get_and_set_are_case_insensitive_and_set_replaces_every_value() -> None:
    headers = Headers()
    headers["Allow"] = "OPTIONS, GET, POST"
    headers.add("Set-Cookie", "a=1")
    headers.add("set-cookie", "b=2")
    assert headers["ALLOW"] == "OPTIONS, GET, POST"
    assert headers["set-COOKIE"] == "a=1"                   # the first value
    assert headers.getlist("Set-Cookie") == ["a=1", "b=2"]  # repeated headers kept, in order
    headers["SET-COOKIE"] = "c=3"                           # replaces both, at the first one's place
    assert list(headers) == [("Allow", "OPTIONS, GET, POST"), ("SET-COOKIE", "c=3")]
    assert len(headers) == 2 and "set-cookie" in headers and "nope" not in headers


def test_get_set_add_extend_items_update() -> None:
    headers = Headers([("X-Num", "7")])
    assert headers.get("x-num", type=int) == 7
    assert headers.get("x-num", type=float) == 7.0
    headers["X-Text"] = "seven"
    assert headers.get("x-text", type=int) is None          # a failed conversion gives the default
    assert headers.get("missing", "fallback") == "fallback"
    headers.set("x-num", 8)                                  # values become str
    headers.extend({"X-List": ["1", "2"], "X-One": "3"})
    headers.extend([("X-Pair", "4")], **{"X_Kw": "5"})
    assert list(headers.items()) == [
        ("x-num", "8"), ("X-Text", "seven"), ("X-List", "1"), ("X-List", "2"), ("X-One", "3"),
        ("X-Pair", "4"), ("X_Kw", "5"),
    ]
    assert list(headers.keys(lower=True))[:2] == ["x-num", "x-text"]
    headers.update({"X-List": "9", "X-New": ["a", "b"]})
    assert headers.getlist("x-list") == ["9"] and headers.getlist("x-new") == ["a", "b"]
    assert dict(headers)["X-New"] == "a"                     # dict() takes each name's first value


def test_pop_remove_setdefault_and_options() -> None:
    headers = Headers({"A": "1", "B": ["2", "3"]})
    assert headers.pop("b") == "2" and "B" not in headers
    assert headers.pop("nope", None) is None
    with pytest.raises(KeyError):
        headers.pop("nope")
    with pytest.raises(KeyError):
        headers["nope"]
    assert headers.setdefault("C", "x") == "x" and headers.setdefault("c", "y") == "x"
    del headers["a"]
    headers.remove("not-there")
    headers.add("Content-Disposition", "attachment", filename="a b.png")
    assert headers["content-disposition"] == 'attachment; filename="a b.png"'
    assert str(headers) == 'C: x\r\nContent-Disposition: attachment; filename="a b.png"\r\n\r\n'


def test_a_newline_in_a_value_is_refused() -> None:
    headers = Headers()
    with pytest.raises(ValueError, match="newline"):
        headers["X-Split"] = "a\r\nSet-Cookie: evil=1"
    with pytest.raises(ValueError, match="newline"):
        headers.add("X-Split", "a\nb")


def test_request_headers_are_title_case_with_repeated_values_joined_as_gunicorn_does() -> None:
    headers = Headers.from_request([(b"x-custom", b"1"), (b"content-type", b"application/json"), (b"x-custom", b"2")])
    assert headers["X-CUSTOM"] == "1,2"
    assert dict(headers) == {"X-Custom": "1,2", "Content-Type": "application/json"}
    request = AMLRequest("POST", "/score", b"a=1&a=2", headers, b'{"k": 1}')
    assert request.headers.get("content-type") == "application/json" and request.is_json
    assert request.args.getlist("a") == ["1", "2"] and request.full_path == "/score?a=1&a=2"
    assert request.get_data(as_text=True) == '{"k": 1}' and request.get_json() == {"k": 1}


def test_aml_response_headers_start_as_azmlinfsrv_and_accept_assignment() -> None:
    response = AMLResponse("hello", 200)
    assert list(response.headers) == [
        ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "5"), ("x-ms-run-function-failed", "False"),
    ]
    response.headers["Access-Control-Allow-Origin"] = "http://www.example.com"
    response.headers.add("Vary", "Origin")
    assert response.headers["access-control-allow-origin"] == "http://www.example.com"
    given = AMLResponse("x", 201, {"X-Two": "a, b", "Content-Type": "text/plain"})
    assert list(given.headers) == [
        ("Content-Length", "1"), ("x-ms-run-function-failed", "False"), ("X-Two", "a"), ("X-Two", "b"),
        ("Content-Type", "text/plain"),
    ]
    assert AMLResponse({"a": 1}, 200, json_str=True).headers["content-type"] == "application/json"
    assert AMLResponse(None, 500).get_data() == b"{}"


def test_aml_response_flask_surface() -> None:
    response = AMLResponse(b"\x00\x01", 200)
    assert response.status == "200 OK" and response.get_data() == b"\x00\x01"
    response.status_code = 404
    assert response.status == "404 NOT FOUND"
    response.status = "201"
    assert response.status_code == 201
    response.set_data("héllo")
    assert response.data == "héllo".encode() and response.headers["Content-Length"] == "6"
    assert response.get_data(as_text=True) == "héllo" and response.content_length == 6
    response.mimetype = "text/plain"
    assert response.content_type == "text/plain; charset=utf-8" and response.mimetype == "text/plain"
    response.content_type = "application/json"
    response.data = '{"ok": true}'
    assert response.is_json and response.get_json() == {"ok": True}
