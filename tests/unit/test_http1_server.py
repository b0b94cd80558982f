"""SERVER role: request events, pipelining, limits and EOF (responses: test_http1_responses)."""

from __future__ import annotations

import pytest

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Data,
    Headers,
    RemoteProtocolError,
    Trailers,
)
from tests.unit.test_http1_support import REQUESTS, drain, encode, h11_response, ok, receive, server

# -- request events ------------------------------------------------------------------


def test_a_request_head_has_pseudo_fields_first_and_no_host_header() -> None:
    _, events, end = receive(REQUESTS["get"])
    (head,) = events
    assert head.stream_id == 1
    assert head.fields == [
        (b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"),
        (b":path", b"/a/b?c=d"), (b"user-agent", b"t"), (b"accept", b"*/*"),
    ]  # fmt: skip
    assert head.end_stream is True
    assert head.extensions == {"http_version": "1.1"}
    assert end is NEED_DATA


def test_hop_by_hop_fields_and_those_connection_names_are_removed() -> None:
    _, (head,), _ = receive(REQUESTS["connection-named"])
    assert head.fields[4:] == [(b"x-stay", b"2")]


@pytest.mark.parametrize("name", [b"Keep-Alive", b"Proxy-Connection", b"TE", b"Trailer", b"Upgrade"])
def test_each_hop_by_hop_field_is_removed(name: bytes) -> None:
    _, (head,), _ = receive(b"GET / HTTP/1.1\r\nHost: a\r\n" + name + b": x\r\nA: b\r\n\r\n")
    assert head.fields[4:] == [(b"a", b"b")]


def test_content_length_stays_and_the_body_follows() -> None:
    _, events, end = receive(REQUESTS["post-length"])
    head, body = events
    assert (b"content-length", b"11") in head.fields and not head.end_stream
    assert (type(body), body.payload, body.end_stream) == (Data, b"hello world", True)
    assert end is PAUSED  # the next request waits for this one's response


def test_expect_continue_becomes_an_extension() -> None:
    _, (head, body), _ = receive(REQUESTS["expect"])
    assert head.extensions == {"http_version": "1.1", "expect_continue": True}
    assert all(name != b"expect" for name, _ in head.fields)
    assert body.payload == b"abc" and body.end_stream


def test_other_expectations_are_forwarded() -> None:
    _, (head,), _ = receive(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n")
    assert (b"expect", b"something") in head.fields and "expect_continue" not in head.extensions


@pytest.mark.parametrize(
    ("data", "version"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", "1.0"),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "1.0"),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", "1.1"),
        (b"\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n", "1.1"),  # not at the read's start
        (b"\r\nGET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "1.0"),
    ],
)
def test_the_http_version_is_reported(data: bytes, version: str) -> None:
    _, (head,), _ = receive(data)
    assert head.extensions["http_version"] == version


def test_an_upgrade_request_reports_its_token() -> None:
    _, (head,), _ = receive(REQUESTS["upgrade"])
    assert head.extensions["upgrade"] == b"websocket"
    assert head.end_stream


def test_chunked_trailers_become_a_trailers_event() -> None:
    _, events, _ = receive(REQUESTS["chunked-trailers"])
    assert [type(e) for e in events] == [Headers, Data, Data, Trailers]
    assert b"".join(e.payload for e in events[1:3]) == b"hello world"
    assert events[3].fields == [(b"x-sum", b"42"), (b"x-two", b"2")]


def test_trailing_whitespace_is_not_part_of_a_value() -> None:
    _, (head,), _ = receive(REQUESTS["ows"])
    assert head.fields[2] == (b":authority", b"spaced.example")
    assert head.fields[4] == (b"x-a", b"v1 v2")


# -- pipelining ---------------------------------------------------------------------


def test_a_pipelined_request_waits_until_the_response_is_sent() -> None:
    conn, events, end = receive(REQUESTS["pipelined"])
    assert [e.fields[3][1] for e in events] == [b"/1"] and end is PAUSED
    assert conn.next_event() is PAUSED
    encode(conn, ok(False, (b"content-length", b"2")))
    assert conn.next_event() is PAUSED  # the head alone does not end the exchange
    encode(conn, Data(1, b"ok", True))
    events, end = drain(conn)
    assert [(e.stream_id, e.fields[3][1]) for e in events] == [(2, b"/2")] and end is PAUSED
    encode(conn, ok(True))
    events, end = drain(conn)
    assert [(e.stream_id, e.fields[0][1]) for e in events] == [(3, b"HEAD")]
    encode(conn, ok(True))
    assert conn.next_event() is NEED_DATA


def test_an_informational_response_does_not_release_the_next_request() -> None:
    conn, _, _ = receive(REQUESTS["expect"] + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert encode(conn, ok(False, status=b"100")) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.next_event() is PAUSED
    encode(conn, ok(True))
    assert conn.next_event().fields[3] == (b":path", b"/next")


def test_an_error_after_a_complete_request_waits_for_its_response() -> None:
    conn, _, end = receive(REQUESTS["get"] + b"NOT HTTP\r\n\r\n")
    assert end is PAUSED
    encode(conn, ok(True))
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.reply is not None and caught.value.reply.startswith(b"HTTP/1.1 400 ")
    assert conn.should_close


def test_eof_after_a_complete_request_is_reported_after_its_response() -> None:
    conn, _, _ = receive(REQUESTS["get"])
    conn.receive_data(b"")
    assert conn.next_event() is PAUSED
    encode(conn, ok(True))
    assert conn.next_event() is CLOSED


def test_a_response_before_the_request_body_ends_closes_the_connection() -> None:
    conn, (head, _), _ = receive(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
    encode(conn, ok(True, status=b"413"))
    assert conn.should_close and conn.next_event() is PAUSED


# -- limits and errors -----------------------------------------------------------------


def test_an_oversized_head_gets_a_complete_431_reply() -> None:
    conn, _, _ = receive(REQUESTS["big-head"], max_header_size=1024)
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    reply = caught.value.reply
    assert reply is not None
    response, body, _ = h11_response(reply)
    assert response.status_code == 431
    assert (b"connection", b"close") in list(response.headers)
    assert body


@pytest.mark.parametrize("shape", ["one-value", "many-fields", "long-target"])
def test_the_header_limit_trips_within_one_read_of_being_passed(shape: str) -> None:
    limit, read = 8192, 1000
    start = {"one-value": b"GET / HTTP/1.1\r\nX: ", "many-fields": b"GET / HTTP/1.1\r\n",
             "long-target": b"GET /"}[shape]  # fmt: skip
    unit = {"one-value": b"v" * read, "many-fields": b"X-Field: " + b"f" * (read - 11) + b"\r\n",
            "long-target": b"p" * read}[shape]  # fmt: skip
    conn = server(max_header_size=limit)
    conn.receive_data(start)
    fed = len(start)
    while fed <= limit + 2 * read:
        conn.receive_data(unit)
        fed += len(unit)
        try:
            conn.next_event()
        except RemoteProtocolError as exc:
            assert exc.reply is not None and exc.reply.startswith(b"HTTP/1.1 431 ")
            assert fed <= limit + 2 * read
            return
    pytest.fail(f"no 431 after {fed} bytes of head")


def test_a_head_under_the_limit_passes_even_across_large_reads() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 5000 + b"\r\n\r\n"
    body_then_head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6000\r\n\r\n" + b"b" * 6000
    conn = server(max_header_size=8192)
    conn.receive_data(body_then_head + head[:3000])  # a big read ends with half a head
    conn.receive_data(head[3000:])
    events, end = drain(conn)
    assert end is PAUSED and events[-1].end_stream
    encode(conn, ok(True))
    (second,), _ = drain(conn)
    assert second.fields[4] == (b"x", b"v" * 5000)


def test_oversized_trailers_are_refused() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    data += b"".join(b"T%d: %s\r\n" % (i, b"t" * 100) for i in range(20)) + b"\r\n"
    conn, _, _ = receive(data, max_header_size=1024)
    with pytest.raises(RemoteProtocolError) as caught:
        drain(conn)
    assert caught.value.reply is not None and caught.value.reply.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(
    ("name", "status"),
    [("garbage", 400), ("two-hosts", 400), ("smuggle", 400), ("bad-version", 505)],
)
def test_bad_requests_raise_with_a_reply(name: str, status: int) -> None:
    conn, _, _ = receive(REQUESTS[name])
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    reply = caught.value.reply
    assert reply is not None and h11_response(reply)[0].status_code == status
    with pytest.raises(RemoteProtocolError):  # and keeps raising
        conn.next_event()


def test_eof_between_requests_is_closed() -> None:
    conn, _, _ = receive(b"")
    assert conn.next_event() is CLOSED


def test_eof_inside_a_head_is_an_error_with_a_400() -> None:
    conn, _, _ = receive(REQUESTS["truncated-head"])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.reply is not None and caught.value.reply.startswith(b"HTTP/1.1 400 ")


def test_eof_inside_a_body_is_an_error_without_a_reply() -> None:
    conn, _, _ = receive(REQUESTS["truncated-body"])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.reply is None
