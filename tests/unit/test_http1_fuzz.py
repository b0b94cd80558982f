"""Fuzzing the readers: any bytes give events or RemoteProtocolError, nothing else.

The drivers answer requests (sometimes before their bodies end), send the next
request when a response ends, and cut the input anywhere, so the fuzz reaches
pipelining, HEAD/CONNECT detours, trailers and EOF in every state.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Data,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Trailers,
)
from tests.unit.test_http1_support import (
    CONNECT,
    GET,
    HEAD,
    REQUESTS,
    RESPONSES,
    UPGRADE,
    client,
    server,
)

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 512  # small, so the fuzz crosses the header limit often


def check_event(event: Any) -> None:
    assert type(event) in (Headers, Data, Trailers), event
    assert event.stream_id >= 1
    if type(event) is Headers:
        assert all(type(n) is bytes and type(v) is bytes for n, v in event.fields)
        assert event.fields[0][0] in (b":method", b":status")


def check_error(exc: RemoteProtocolError) -> None:
    assert "codec bug" not in str(exc), exc  # a callback of ours broke, not the peer
    assert exc.reply is None or exc.reply.startswith(b"HTTP/1.1 4") or exc.reply.startswith(
        b"HTTP/1.1 505 "
    )


def pump_server(conn: Any, early: bool) -> bool:
    """Drain a server, answering requests; False once it will give no more events."""
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError as exc:
            check_error(exc)
            return False
        if event is NEED_DATA:
            return True
        if event is CLOSED or event is PAUSED:
            return False
        check_event(event)
        if (event.end_stream or (early and type(event) is Headers)) and conn._current is not None:
            conn.send(Headers(event.stream_id, [(b":status", b"200")], True, {}))


def pump_client(conn: Any, requests: list[Headers]) -> bool:
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError as exc:
            check_error(exc)
            return False
        if event is NEED_DATA:
            return True
        if event is CLOSED or event is PAUSED:
            return False
        check_event(event)
        final = not (type(event) is Headers and event.extensions.get("informational"))
        if event.end_stream and final and requests:
            try:
                conn.send(requests.pop(0))
            except LocalProtocolError:
                return False  # the connection said it would close


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for position, kind, byte in edits:
        at = position % (len(buf) + 1)
        if kind == 0:
            buf[at:at] = bytes([byte])
        elif kind == 1 and at < len(buf):
            del buf[at]
        elif at < len(buf):
            buf[at] = byte
    return bytes(buf)


def feed_server(data: bytes, points: list[int], early: bool) -> None:
    conn = server(LIMIT)
    for chunk in cut(data, points):
        conn.receive_data(chunk)
        if not pump_server(conn, early):
            return
    conn.receive_data(b"")
    pump_server(conn, early)


def feed_client(data: bytes, points: list[int], first: Headers) -> None:
    conn = client(LIMIT)
    conn.send(first)
    requests = [GET, HEAD, GET]
    for chunk in cut(data, points):
        conn.receive_data(chunk)
        if not pump_client(conn, requests):
            return
    conn.receive_data(b"")
    pump_client(conn, requests)


points = st.lists(st.integers(0, 10_000), max_size=6)
edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.integers(0, 255)),
                 min_size=1, max_size=4)  # fmt: skip
corpus_requests = st.sampled_from(sorted(REQUESTS.values()))
corpus_responses = st.sampled_from([b"".join(d for _, d in ex) for ex in RESPONSES.values()])
first_requests = st.sampled_from([GET, HEAD, CONNECT, UPGRADE])


@FUZZ
@given(data=st.binary(max_size=300), points=points, early=st.booleans())
def test_random_bytes_to_a_server(data: bytes, points: list[int], early: bool) -> None:
    feed_server(data, points, early)


@FUZZ
@given(data=corpus_requests, edits=edits, points=points, early=st.booleans())
def test_mutated_requests_to_a_server(
    data: bytes, edits: list[tuple[int, int, int]], points: list[int], early: bool
) -> None:
    feed_server(mutate(data, edits), points, early)


@FUZZ
@given(data=st.binary(max_size=300), points=points, first=first_requests)
def test_random_bytes_to_a_client(data: bytes, points: list[int], first: Headers) -> None:
    feed_client(b"HTTP/1.1 " + data, points, first)


@FUZZ
@given(data=corpus_responses, edits=edits, points=points, first=first_requests)
def test_mutated_responses_to_a_client(
    data: bytes, edits: list[tuple[int, int, int]], points: list[int], first: Headers
) -> None:
    feed_client(mutate(data, edits), points, first)


@settings(max_examples=60, deadline=None)
@given(prefix=corpus_requests, filler=st.sampled_from([b"a", b"\r\n", b"X: y\r\n", b" "]),
       read=st.integers(1, 700))  # fmt: skip
def test_endless_input_is_bounded(prefix: bytes, filler: bytes, read: int) -> None:
    """A peer that never ends a head, line or chunk is stopped near the limit."""
    conn = server(LIMIT)
    conn.receive_data(prefix[: len(prefix) // 2])
    stream = filler * (read // len(filler) + 1)
    for _ in range(200):
        conn.receive_data(stream)
        if not pump_server(conn, False):
            return
    # Still reading: then it must be a body (bytes queued as events), not a buffer.
    assert conn._unreported <= LIMIT
