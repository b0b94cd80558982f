"""SERVER role: how responses are framed and encoded, and local replies."""

from __future__ import annotations

from typing import Any

import pytest
from mesh.codecs.http1 import ServerConnection

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Data,
    Headers,
    LocalProtocolError,
    Reset,
    Status,
    Trailers,
)
from tests.unit.test_http1_support import REQUESTS, encode, h11_response, ok, receive, server

# -- encoding responses ------------------------------------------------------------


def answer(request: bytes, *events: Any) -> tuple[ServerConnection, bytes]:
    conn, _, _ = receive(request)
    return conn, encode(conn, *events)


@pytest.mark.parametrize(
    ("status", "line"),
    [(b"200", b"HTTP/1.1 200 OK"), (b"404", b"HTTP/1.1 404 Not Found"),
     (b"418", b"HTTP/1.1 418 I'm a Teapot"), (b"299", b"HTTP/1.1 299 Unknown"),
     (b"503", b"HTTP/1.1 503 Service Unavailable")],
)  # fmt: skip
def test_the_status_line_has_the_right_reason_phrase(status: bytes, line: bytes) -> None:
    _, out = answer(REQUESTS["get"], ok(True, status=status))
    assert out.split(b"\r\n")[0] == line


def test_a_given_content_length_frames_the_body() -> None:
    conn, out = answer(REQUESTS["get"], ok(False, (b"content-length", b"5")), Data(1, b"hel", False))
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel"
    assert conn.send(Data(1, b"lo", True)) == b"lo"


def test_an_empty_response_says_content_length_0() -> None:
    _, out = answer(REQUESTS["get"], ok(True, (b"x", b"y")))
    assert out == b"HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize("status", [b"204", b"304"])
def test_bodiless_statuses_get_no_content_length(status: bytes) -> None:
    _, out = answer(REQUESTS["get"], ok(True, status=status))
    assert b"content-length" not in out and b"transfer-encoding" not in out


def test_an_unknown_length_is_chunked_for_http11() -> None:
    conn, out = answer(REQUESTS["get"], ok())
    assert out.endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert conn.send(Data(1, b"hello", False)) == [b"5\r\n", b"hello", b"\r\n"]
    assert conn.send(Data(1, b"", False)) == b""  # never a premature last chunk
    out2 = encode(conn, Data(1, b"abc", True))
    response, body, _ = h11_response(out + b"5\r\nhello\r\n" + out2)
    assert body == b"helloabc"


def test_trailers_close_a_chunked_body() -> None:
    conn, head = answer(REQUESTS["get"], ok())
    out = head + encode(conn, Data(1, b"x", False),
                        Trailers(1, [(b"grpc-status", b"0"), (b"connection", b"x")]))  # fmt: skip
    _, body, trailers = h11_response(out)
    assert body == b"x" and trailers == [(b"grpc-status", b"0")]
    assert conn.next_event() is NEED_DATA


def test_trailers_are_dropped_when_the_body_has_a_length() -> None:
    conn, _ = answer(REQUESTS["get"], ok(False, (b"content-length", b"1")), Data(1, b"x", False))
    assert conn.send(Trailers(1, [(b"t", b"1")])) == b""


def test_an_http10_client_gets_a_close_delimited_body() -> None:
    conn, out = answer(REQUESTS["http10"], ok(), Data(1, b"body", True))
    assert out == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody"
    assert conn.should_close


def test_an_http10_keep_alive_client_is_told_so() -> None:
    conn, out = answer(REQUESTS["http10-keepalive"], ok(True))
    assert b"connection: keep-alive\r\n" in out and not conn.should_close


def test_connection_close_from_the_client_is_echoed() -> None:
    conn, out = answer(REQUESTS["close"], ok(True))
    assert b"connection: close\r\n" in out and conn.should_close


def test_a_response_to_head_carries_no_body_bytes() -> None:
    conn, _, _ = receive(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = encode(conn, ok(False, (b"content-length", b"1234")), Data(1, b"x" * 1234, True))
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
    assert h11_response(out, b"HEAD")[1] == b""


def test_1xx_is_not_sent_to_an_http10_client() -> None:
    _, out = answer(REQUESTS["http10"], ok(False, status=b"100"))
    assert out == b""


def test_early_hints_carry_their_fields() -> None:
    _, out = answer(REQUESTS["get"], ok(False, (b"link", b"</a>"), status=b"103"))
    assert out == b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"


def test_101_opens_a_tunnel_for_an_upgrade_request() -> None:
    conn, out = answer(REQUESTS["upgrade"], ok(True, status=b"101"))
    assert out == (b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n"
                   b"upgrade: websocket\r\n\r\n")  # fmt: skip
    assert conn.next_event() is CLOSED and not conn.should_close
    assert bytes(conn.trailing_data) == b"\x81\x05hello"


def test_a_declined_upgrade_closes_the_connection() -> None:
    conn, out = answer(REQUESTS["upgrade"], ok(True, status=b"404"))
    assert b"connection: close" in out and conn.should_close


def test_2xx_to_connect_opens_a_tunnel() -> None:
    conn, out = answer(REQUESTS["connect"], ok(False))
    assert out == b"HTTP/1.1 200 OK\r\n\r\n"
    assert conn.next_event() is CLOSED and bytes(conn.trailing_data) == b"\x00\x01"


def test_a_reset_closes_the_connection() -> None:
    conn, _, _ = receive(REQUESTS["get"])
    assert conn.send(Reset(1)) == b"" and conn.should_close


@pytest.mark.parametrize(
    "events",
    [
        [Data(1, b"x", True)],
        [Headers(1, [(b":method", b"GET")], True, {})],
        [Headers(1, [(b":status", b"2000")], True, {})],
        [ok(True), ok(True)],
        [ok(False), ok(True)],
        [ok(True, (b"x", b"a\r\nInjected: yes"))],
        [ok(True, (b"x\n", b"a"))],
        [ok(False, (b"content-length", b"2")), Data(1, b"abc", True)],
        [ok(True, (b"content-length", b"2"))],
        [ok(True, (b"content-length", b"2"), (b"content-length", b"3"))],
        [ok(True, (b"content-length", b"-1"))],
        [ok(True, status=b"101")],
        ["not an event"],
    ],
)
def test_misuse_raises_local_protocol_error(events: list[Any]) -> None:
    conn, _, _ = receive(REQUESTS["get"])
    with pytest.raises(LocalProtocolError):
        encode(conn, *events)


def test_no_response_without_a_request() -> None:
    with pytest.raises(LocalProtocolError):
        server().send(ok(True))


# -- local replies --------------------------------------------------------------------

CODES = {Status.NO_ROUTE: 404, Status.UNAVAILABLE: 503, Status.TIMEOUT: 504,
         Status.OVERLOADED: 429, Status.BAD_REQUEST: 400, Status.INTERNAL: 500}  # fmt: skip


@pytest.mark.parametrize("status", list(Status))
def test_local_replies_decode_to_their_status(status: Status) -> None:
    conn, (request,), _ = receive(REQUESTS["get"])
    events = conn.local_reply(request, status, "no route to ünïcode")
    out = encode(conn, *events)
    response, body, _ = h11_response(out)
    assert response.status_code == CODES[status]
    assert body == "no route to ünïcode\n".encode()
    assert (b"content-type", b"text/plain; charset=utf-8") in list(response.headers)
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize("status", list(Status))
def test_local_replies_to_head_have_no_body(status: Status) -> None:
    conn, (request,), _ = receive(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = encode(conn, *conn.local_reply(request, status, "x"))
    response, body, _ = h11_response(out, b"HEAD")
    assert response.status_code == CODES[status] and body == b""
    assert out.endswith(b"content-length: 2\r\n\r\n")


def test_no_heartbeats_in_http1() -> None:
    conn, (request,), _ = receive(REQUESTS["get"])
    assert conn.is_heartbeat(request) is False and conn.heartbeat_reply(request) == []
