"""CLIENT role: the requests it encodes and the responses it decodes."""

from __future__ import annotations

from typing import Any

import h11
import pytest
from mesh.codecs.http1 import ClientConnection

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Data,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Reset,
    Status,
    Trailers,
)
from tests.unit.test_http1_support import client, drain, request_head


def encode(conn: ClientConnection, *events: Any) -> bytes:
    out = b""
    for event in events:
        buffers = conn.send(event)
        out += b"".join(buffers) if isinstance(buffers, list) else bytes(buffers)
    return out


def exchange(request: Headers, response: bytes, eof: bool = False) -> tuple[ClientConnection, list[Any], Any]:  # noqa: E501
    conn = client()
    conn.send(request)
    conn.receive_data(response)
    if eof:
        conn.receive_data(b"")
    events, end = drain(conn)
    return conn, events, end


def h11_read(data: bytes) -> tuple[h11.Request, bytes, list[Any]]:
    """Decode a request with h11 as the server."""
    peer = h11.Connection(h11.SERVER)
    peer.receive_data(data)
    request, body = None, b""
    while True:
        event = peer.next_event()
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, body, list(event.headers)
        else:
            raise AssertionError(event)


# -- encoding requests ---------------------------------------------------------------


def test_a_request_line_then_host_then_the_fields() -> None:
    head = request_head(b"GET", b"/x?y", b"svc:8080", [(b"accept", b"*/*")])
    assert client().send(head) == b"GET /x?y HTTP/1.1\r\nhost: svc:8080\r\naccept: */*\r\n\r\n"


def test_pseudo_fields_in_any_order_give_the_same_bytes() -> None:
    fields = [(b":path", b"/x?y"), (b"accept", b"*/*"), (b":authority", b"svc:8080"),
              (b":method", b"GET"), (b":scheme", b"https")]  # fmt: skip
    assert client().send(Headers(1, fields, True, {})) == (
        b"GET /x?y HTTP/1.1\r\nhost: svc:8080\r\naccept: */*\r\n\r\n"
    )


def test_host_comes_from_a_host_field_when_there_is_no_authority() -> None:
    head = Headers(1, [(b":method", b"GET"), (b":path", b"/"), (b"host", b"h")], True, {})
    assert client().send(head) == b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"


def test_an_unknown_authority_is_an_empty_host() -> None:
    assert client().send(request_head(authority=b"")) == b"GET / HTTP/1.1\r\nhost: \r\n\r\n"


def test_connect_uses_the_authority_form() -> None:
    head = Headers(1, [(b":method", b"CONNECT"), (b":authority", b"db:5432")], True, {})
    assert client().send(head) == b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n"


def test_hop_by_hop_fields_are_not_forwarded() -> None:
    extra = [(b"connection", b"close"), (b"keep-alive", b"1"), (b"te", b"trailers"),
             (b"transfer-encoding", b"gzip"), (b"upgrade", b"x"), (b"x", b"y")]  # fmt: skip
    assert client().send(request_head(extra=extra)).endswith(b"host: example.com\r\nx: y\r\n\r\n")


@pytest.mark.parametrize(("method", "framing"), [(b"GET", b""), (b"HEAD", b""), (b"DELETE", b""),
                         (b"POST", b"content-length: 0\r\n"), (b"PUT", b"content-length: 0\r\n")])  # fmt: skip
def test_a_bodiless_request_says_length_0_only_where_a_body_means_something(
    method: bytes, framing: bytes
) -> None:
    out = client().send(request_head(method))
    assert out == method + b" / HTTP/1.1\r\nhost: example.com\r\n" + framing + b"\r\n"


def test_an_unknown_length_is_chunked_with_trailers() -> None:
    conn = client()
    out = encode(conn, request_head(b"POST", end_stream=False), Data(1, b"abc", False),
                 Data(1, b"de", False), Trailers(1, [(b"x-sum", b"5")]))  # fmt: skip
    request, body, trailers = h11_read(out)
    assert (request.method, body, trailers) == (b"POST", b"abcde", [(b"x-sum", b"5")])


def test_a_given_length_is_kept() -> None:
    conn = client()
    head = request_head(b"PUT", extra=[(b"content-length", b"3")], end_stream=False)
    out = encode(conn, head, Data(1, b"abc", True))
    assert out.endswith(b"content-length: 3\r\n\r\nabc")
    assert h11_read(out)[1] == b"abc"


def test_an_upgrade_extension_is_spelled_out() -> None:
    out = client().send(request_head(extensions={"upgrade": b"websocket"}))
    assert b"connection: upgrade\r\nupgrade: websocket\r\n" in out


@pytest.mark.parametrize(
    "events",
    [
        [request_head(path=b"/a b")],
        [Headers(1, [(b":path", b"/")], True, {})],
        [request_head(extra=[(b"x", b"a\rb")])],
        [request_head(), request_head()],
        [request_head(end_stream=False), request_head()],
        [Data(1, b"x", True)],
        [request_head(b"PUT", extra=[(b"content-length", b"1")], end_stream=False),
         Data(1, b"xx", True)],
        [object()],
    ],
)  # fmt: skip
def test_misuse_raises_local_protocol_error(events: list[Any]) -> None:
    with pytest.raises(LocalProtocolError):
        encode(client(), *events)


def test_no_local_replies_from_a_client() -> None:
    with pytest.raises(LocalProtocolError):
        client().local_reply(request_head(), Status.TIMEOUT, "x")


# -- decoding responses --------------------------------------------------------------


def test_a_response_has_status_first_and_the_request_stream_id() -> None:
    _, events, end = exchange(request_head(stream_id=41), b"HTTP/1.1 200 OK\r\nServer: n\r\n"
                              b"Connection: keep-alive\r\nContent-Length: 2\r\n\r\nhi")  # fmt: skip
    head, body = events
    assert head.stream_id == body.stream_id == 41
    assert head.fields == [(b":status", b"200"), (b"server", b"n"), (b"content-length", b"2")]
    assert head.extensions == {"http_version": "1.1"}
    assert (body.payload, body.end_stream, end) == (b"hi", True, NEED_DATA)


def test_informational_responses_do_not_end_the_exchange() -> None:
    conn, events, _ = exchange(request_head(), b"HTTP/1.1 100 Continue\r\n\r\n")
    assert events[0].extensions == {"http_version": "1.1", "informational": True}
    assert not events[0].end_stream
    with pytest.raises(LocalProtocolError):  # still one exchange in flight
        conn.send(request_head())
    conn.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    (final,), _ = drain(conn)
    assert final.end_stream and final.fields == [(b":status", b"204")]
    conn.send(request_head())  # now the next one may go


def test_101_ends_http_and_keeps_the_rest_as_trailing_data() -> None:
    conn, events, end = exchange(request_head(extensions={"upgrade": b"websocket"}),
                                 b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n\r\nframe")  # fmt: skip
    (head,) = events
    assert head.extensions["upgrade"] is True and head.end_stream and end is CLOSED
    conn.receive_data(b" more")
    assert bytes(conn.trailing_data) == b"frame more"


def test_a_response_to_head_has_no_body_whatever_it_announces() -> None:
    conn, events, end = exchange(request_head(b"HEAD"),
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")  # fmt: skip
    (head,) = events
    assert head.end_stream and (b"content-length", b"100") in head.fields and end is NEED_DATA
    assert not conn.should_close
    conn.send(request_head())
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
    events, _ = drain(conn)
    assert [type(e) for e in events] == [Headers, Data]


def test_an_http10_response_to_head_without_keep_alive_closes() -> None:
    conn, (head,), _ = exchange(request_head(b"HEAD"), b"HTTP/1.0 200 OK\r\n\r\n")
    assert head.end_stream and head.extensions["http_version"] == "1.0" and conn.should_close


def test_2xx_to_connect_opens_a_tunnel() -> None:
    conn, (head,), end = exchange(
        request_head(b"CONNECT", b"db:1", b"db:1"), b"HTTP/1.1 200 OK\r\n\r\n\x00raw"
    )
    assert head.end_stream and head.extensions["upgrade"] is True and end is CLOSED
    assert bytes(conn.trailing_data) == b"\x00raw" and not conn.should_close


@pytest.mark.parametrize("status", [b"204", b"304"])
def test_no_body_for_204_and_304(status: bytes) -> None:
    _, (head,), _ = exchange(request_head(), b"HTTP/1.1 " + status + b" X\r\nContent-Length: 5\r\n\r\n")
    assert head.end_stream


def test_a_close_delimited_body_ends_at_eof() -> None:
    conn, events, end = exchange(request_head(), b"HTTP/1.1 200 OK\r\n\r\nsome", eof=True)
    assert [type(e) for e in events] == [Headers, Data] and events[1].end_stream
    assert end is CLOSED and conn.should_close


def test_a_close_delimited_body_after_a_non_chunked_coding_ends_at_eof() -> None:
    _, events, end = exchange(request_head(), b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
                              eof=True)  # fmt: skip
    assert events[-1].end_stream and end is CLOSED


@pytest.mark.parametrize(
    "response",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n5\r\nab", b"HTTP/1.1 200 OK\r\nContent-Le"],
)  # fmt: skip
def test_eof_inside_a_framed_response_is_an_error_without_a_reply(response: bytes) -> None:
    conn = client()
    conn.send(request_head())
    conn.receive_data(response)
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as caught:
        drain(conn)
    assert caught.value.reply is None and conn.should_close


def test_eof_before_any_response_is_closed() -> None:
    _, events, end = exchange(request_head(), b"", eof=True)
    assert events == [] and end is CLOSED


@pytest.mark.parametrize(
    ("response", "closes"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False),
    ],
)
def test_should_close_follows_the_response(response: bytes, closes: bool) -> None:
    conn, _, _ = exchange(request_head(), response)
    assert conn.should_close is closes


def test_a_response_before_the_request_body_is_sent_closes() -> None:
    conn = client()
    conn.send(request_head(b"POST", end_stream=False))
    conn.receive_data(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    drain(conn)
    assert conn.should_close
    conn.send(Data(1, b"rest", True))  # the body may still be finished off
    with pytest.raises(LocalProtocolError):
        conn.send(request_head())


def test_a_response_nobody_asked_for_is_an_error() -> None:
    conn = client()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_an_oversized_response_head_is_refused() -> None:
    conn = client(max_header_size=2048)
    conn.send(request_head())
    conn.receive_data(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 4000 + b"\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as caught:
        drain(conn)
    assert caught.value.reply is None


def test_an_oversized_head_response_head_is_refused_while_gathering() -> None:
    conn = client(max_header_size=2048)
    conn.send(request_head(b"HEAD"))
    for _ in range(5):
        conn.receive_data(b"X-Long: " + b"y" * 1000)
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_a_reset_closes_the_connection() -> None:
    conn = client()
    conn.send(request_head(end_stream=False))
    assert conn.send(Reset(1)) == b"" and conn.should_close


def test_eof_between_responses_means_the_connection_is_not_reusable() -> None:
    conn, _, _ = exchange(request_head(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert not conn.should_close
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED and conn.should_close
    with pytest.raises(LocalProtocolError):
        conn.send(request_head())


def test_no_request_goes_into_a_tunnel() -> None:
    conn, _, _ = exchange(request_head(b"CONNECT", b"db:1", b"db:1"), b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(request_head())
