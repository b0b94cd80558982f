"""Drivers, normalisers, corpora and strategies shared by the http1 codec tests.

It holds no tests itself; the name keeps it with the files it serves.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import h11
from hypothesis import strategies as st
from mesh.codecs.http1 import ClientConnection, ServerConnection, codec

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    ConnectionOptions,
    Data,
    Headers,
    RemoteProtocolError,
    Role,
    Trailers,
)

Item = tuple[Any, ...]

# -- connections and drivers ---------------------------------------------------------


def server(max_header_size: int = 64 * 1024) -> ServerConnection:
    conn = codec.connection(Role.SERVER, ConnectionOptions(max_header_size=max_header_size))
    assert isinstance(conn, ServerConnection)
    return conn


def client(max_header_size: int = 64 * 1024) -> ClientConnection:
    conn = codec.connection(Role.CLIENT, ConnectionOptions(max_header_size=max_header_size))
    assert isinstance(conn, ClientConnection)
    return conn


def drain(conn: Any) -> tuple[list[Any], Any]:
    """Pull events until a sentinel; return (events, sentinel)."""
    events = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED or event is CLOSED:
            return events, event
        events.append(event)


def request_head(
    method: bytes = b"GET", path: bytes = b"/", authority: bytes = b"example.com",
    extra: Sequence[tuple[bytes, bytes]] = (), end_stream: bool = True, stream_id: int = 1,
    extensions: dict[str, Any] | None = None,
) -> Headers:  # fmt: skip
    fields = [(b":method", method), (b":scheme", b"http"), (b":authority", authority),
              (b":path", path), *extra]  # fmt: skip
    return Headers(stream_id, fields, end_stream, extensions or {})


def answer(request: Headers) -> Headers:
    """The reply the drivers send when a request ends: small, no body."""
    return Headers(request.stream_id, [(b":status", b"204")], True, {})


def run_server(
    chunks: Iterable[bytes | bytearray | memoryview], eof: bool = True, max_header_size: int = 65536,
    respond: Callable[[Headers], Headers] = answer,
) -> list[Item]:  # fmt: skip
    """Feed a server, answer each request as it ends; the normalised outcome."""
    conn = server(max_header_size)
    out: list[Any] = []
    current: list[Headers] = []

    def pump() -> bool:
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                out.append(("error", exc.reply))
                return False
            if event is NEED_DATA:
                return True
            if event is CLOSED or event is PAUSED:
                out.append((repr(event),))
                return False
            out.append(event)
            if type(event) is Headers:
                current[:] = [event]
            if event.end_stream:
                conn.send(respond(current[0]))

    for chunk in chunks:
        conn.receive_data(chunk)
        if not pump():
            return normalise(out)
    if eof:
        conn.receive_data(b"")
        pump()
    return normalise(out)


def run_client(
    exchanges: Sequence[tuple[Headers, bytes]], split: Callable[[bytes], Iterable[bytes]] = lambda b: [b],
    eof: bool = True, max_header_size: int = 65536,
) -> list[Item]:  # fmt: skip
    """Send each request, then feed its response (cut by ``split``); the outcome."""
    conn = client(max_header_size)
    out: list[Any] = []

    def pump() -> bool:
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                out.append(("error", exc.reply))
                return False
            if event is NEED_DATA:
                return True
            if event is CLOSED or event is PAUSED:
                out.append((repr(event),))
                return False
            out.append(event)

    for request, data in exchanges:
        if conn.should_close:
            break
        conn.send(request)
        for chunk in split(data):
            conn.receive_data(chunk)
            if not pump():
                return normalise(out)
    if eof:
        conn.receive_data(b"")
        pump()
    return normalise(out)


# -- one-shot helpers -----------------------------------------------------------------


def receive(data: bytes, **kw: Any) -> tuple[ServerConnection, list[Any], Any]:
    """Feed ``data``; the events, and the sentinel (or the error) that ended them."""
    conn = server(**kw)
    conn.receive_data(data)
    try:
        events, end = drain(conn)
    except RemoteProtocolError as exc:  # the codec raises it again on the next call
        return conn, [], exc
    return conn, events, end


def encode(conn: ServerConnection, *events: Any) -> bytes:
    out = b""
    for event in events:
        buffers = conn.send(event)
        out += b"".join(buffers) if isinstance(buffers, list) else bytes(buffers)
    return out


def h11_response(data: bytes, method: bytes = b"GET") -> tuple[h11.Response, bytes, list[Any]]:
    """Decode a response with h11 as the client that asked with ``method``."""
    peer = h11.Connection(h11.CLIENT)
    peer.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    peer.send(h11.EndOfMessage())
    peer.receive_data(data)
    peer.receive_data(b"")
    response, body, trailers = None, b"", []
    while True:
        event = peer.next_event()
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            trailers = list(event.headers)
            break
    assert response is not None
    return response, body, trailers


def ok(end: bool = False, *extra: tuple[bytes, bytes], status: bytes = b"200") -> Headers:
    return Headers(1, [(b":status", status), *extra], end, {})


# -- normalising event sequences ---------------------------------------------------


def normalise(events: Sequence[Any]) -> list[Item]:
    """Comparable tuples: adjacent Data merged, a bare end marker folded into its head."""
    merged: list[Item] = []
    for event in events:
        if type(event) is Data:
            payload = bytes(event.payload)
            last = merged[-1] if merged else None
            if last is not None and last[0] == "data" and last[1] == event.stream_id:
                merged[-1] = ("data", event.stream_id, last[2] + payload, event.end_stream)
            else:
                merged.append(("data", event.stream_id, payload, event.end_stream))
        elif type(event) is Headers:
            merged.append(("headers", event.stream_id, tuple(event.fields), event.end_stream,
                           tuple(sorted(event.extensions.items()))))  # fmt: skip
        elif type(event) is Trailers:
            merged.append(("trailers", event.stream_id, tuple(event.fields)))
        else:
            merged.append(tuple(event))
    return _fold_end_markers(merged)


def _fold_end_markers(items: list[Item]) -> list[Item]:
    folded: list[Item] = []
    for item in items:
        if item[0] == "data" and not item[2]:
            last = folded[-1] if folded else None
            if not item[3]:
                continue  # an empty non-final piece says nothing
            if last is not None and last[0] == "headers" and last[1] == item[1] and not last[3]:
                folded[-1] = (*last[:3], True, last[4])
                continue
        folded.append(item)
    return folded


# -- splitting input ---------------------------------------------------------------


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_split(data: bytes, seed: int, pieces: int = 6) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces, len(data) - 1))) if data else []
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# -- corpora: raw messages on a fresh connection -----------------------------------

REQUESTS: dict[str, bytes] = {
    "get": b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    b"HEAD /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    "post-length": b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
    "chunked-trailers": b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
    b"Trailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\nX-Two: 2\r\n\r\n",
    "chunked-empty": b"POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "expect": b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "http10": b"GET /old HTTP/1.0\r\nUser-Agent: ancient\r\n\r\n",
    "http10-keepalive": b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n"
    b"GET /k2 HTTP/1.0\r\nHost: a\r\n\r\n",
    "connection-named": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\n"
    b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Stay: 2\r\nTE: trailers\r\n\r\n",
    "close": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    b"\x81\x05hello",
    "connect": b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n\x00\x01",
    "ows": b"GET / HTTP/1.1\r\nHost:   spaced.example  \r\nX-A:\tv1 v2\t \r\n\r\n",
    "absolute-form": b"GET http://up.example/x?y HTTP/1.1\r\nHost: up.example\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "leading-crlf": b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "truncated-head": b"GET /cut HTTP/1.1\r\nHost: a\r\nX-Partial: ",
    "truncated-body": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "bad-version": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "smuggle": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "big-head": b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n",
}

GET = request_head()
HEAD = request_head(b"HEAD")
CONNECT = request_head(b"CONNECT", b"db.internal:5432", b"db.internal:5432")
UPGRADE = request_head(extensions={"upgrade": b"websocket"})

#: name -> [(request sent, the bytes that answer it), ...] on one connection
RESPONSES: dict[str, list[tuple[Headers, bytes]]] = {
    "length": [(GET, b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\n\r\nhello")],
    "keepalive-twice": [
        (GET, b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"),
        (GET, b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"),
    ],
    "chunked-trailers": [(GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n")],  # fmt: skip
    "close-delimited": [(GET, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end")],
    "http10-close": [(GET, b"HTTP/1.0 200 OK\r\n\r\nold body")],
    "http10-keepalive": [
        (GET, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
        (GET, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ],
    "continue-then-ok": [(GET, b"HTTP/1.1 100 Continue\r\n\r\n"
                          b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")],  # fmt: skip
    "early-hints": [(GET, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],  # fmt: skip
    "head": [
        (HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
        (HEAD, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (HEAD, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
    ],
    "no-content": [
        (GET, b"HTTP/1.1 204 No Content\r\n\r\n"),
        (GET, b"HTTP/1.1 304 Not Modified\r\nETag: x\r\nContent-Length: 9\r\n\r\n"),
    ],
    "switching": [(UPGRADE, b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                   b"Upgrade: websocket\r\n\r\n\x81\x02hi")],  # fmt: skip
    "connect-ok": [(CONNECT, b"HTTP/1.1 200 Connection Established\r\n\r\n\x00\x01tunnel")],
    "connect-refused": [(CONNECT, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")],
    "truncated": [(GET, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")],
    "truncated-head": [(HEAD, b"HTTP/1.1 200 OK\r\nContent-Le")],
    "garbage": [(GET, b"SSH-2.0-OpenSSH_9.2\r\n")],
    "unsolicited": [(GET, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],  # fmt: skip
    "big-head": [(GET, b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n")],
}


# -- hypothesis strategies over valid messages ---------------------------------------

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
#: Field names the codec consumes or rebuilds; generated headers avoid them.
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
            "proxy-connection", "upgrade", "te", "trailer", "expect"}  # fmt: skip
_VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%"

names = st.text(TOKEN, min_size=1, max_size=16).filter(lambda n: n.lower() not in RESERVED)
words = st.binary(min_size=1, max_size=12).map(lambda b: bytes(_VCHAR[x % len(_VCHAR)] for x in b))
values = st.lists(words, max_size=4).map(b" ".join)
header_lists = st.lists(st.tuples(names.map(str.encode), values), max_size=8)
targets = st.builds(
    lambda p, q: ("/" + p + (("?" + q) if q is not None else "")).encode(),
    st.text(PCHAR.replace("%", ""), max_size=30),
    st.none() | st.text(PCHAR.replace("%", "") + "?", max_size=20),
)
methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS",
                           b"PROPFIND", b"REPORT"])  # fmt: skip
bodies = st.binary(max_size=300)
hosts = st.sampled_from([b"example.com", b"api.internal:8080", b"[::1]:9000", b"a"])


def chunk_body(body: bytes, cuts: Sequence[int]) -> bytes:
    """``body`` in chunked framing, cut at ``cuts`` (fractions of its length, any order)."""
    points = sorted({min(len(body), max(0, c)) for c in cuts} | {0, len(body)})
    out = b"".join(b"%x\r\n%s\r\n" % (b - a, body[a:b]) for a, b in zip(points, points[1:], strict=False) if b > a)  # noqa: E501
    return out + b"0\r\n"


def raw_request(
    method: bytes, target: bytes, host: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes,
    chunked: bool, cuts: Sequence[int] = (), version: bytes = b"1.1",
    trailers: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:  # fmt: skip
    lines = [method + b" " + target + b" HTTP/" + version, b"Host: " + host]
    lines += [n + b": " + v for n, v in headers]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        tail = chunk_body(body, cuts) + b"".join(n + b": " + v + b"\r\n" for n, v in trailers)
        return b"\r\n".join(lines) + b"\r\n\r\n" + tail + b"\r\n"
    if body or method in (b"POST", b"PUT"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
