"""h11 as the oracle: generated valid messages decode alike, and h11 reads what we encode."""

from __future__ import annotations

from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.codec import Data, Headers, Trailers
from tests.unit.test_http1_support import (
    bodies,
    bytewise,
    client,
    drain,
    header_lists,
    hosts,
    methods,
    random_split,
    raw_request,
    request_head,
    run_client,
    run_server,
    server,
    targets,
    values,
)

HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te",
       b"trailer"}  # fmt: skip
FRAMING = {b"content-length", b"transfer-encoding", b"connection"}
EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pads = st.sampled_from([b"", b" ", b"\t", b"  \t"])
cuts = st.lists(st.integers(0, 300), max_size=4)
trailer_lists = st.lists(st.tuples(st.sampled_from([b"X-Sum", b"grpc-status", b"T"]), values),
                         max_size=3)  # fmt: skip
statuses = st.sampled_from([200, 201, 202, 204, 206, 301, 304, 400, 404, 418, 429, 500, 503, 599])


def padded(headers: list[tuple[bytes, bytes]], pad: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, pad + v + pad) if v else (n, v) for n, v in headers]


def h11_events(peer: h11.Connection, data: bytes, eof: bool) -> tuple[Any, bytes, list[Any]]:
    peer.receive_data(data)
    if eof:
        peer.receive_data(b"")
    head, body = None, b""
    while True:
        event = peer.next_event()
        if isinstance(event, h11.Request | h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return head, body, [tuple(h) for h in event.headers]
        else:
            raise AssertionError(f"h11 stopped at {event!r}")


def split_items(items: list[Any]) -> tuple[tuple[Any, ...], bytes, list[Any]]:
    """(head fields, body, trailer fields) of one normalised message."""
    head = items[0]
    assert head[0] == "headers"
    body = b"".join(i[2] for i in items if i[0] == "data")
    trailers = [list(i[2]) for i in items if i[0] == "trailers"]
    return head[2], body, trailers[0] if trailers else []


# -- decoding: our events against h11's ------------------------------------------------


@EXAMPLES
@given(method=methods, target=targets, host=hosts, headers=header_lists, body=bodies,
       chunked=st.booleans(), cuts=cuts, trailers=trailer_lists, pad=pads, v10=st.booleans(),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_requests_decode_as_h11_decodes_them(
    method: bytes, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]], body: bytes,
    chunked: bool, cuts: list[int], trailers: list[tuple[bytes, bytes]], pad: bytes, v10: bool,
    seed: int,
) -> None:  # fmt: skip
    version = b"1.0" if v10 and not chunked else b"1.1"
    raw = raw_request(method, target, host, padded(headers, pad), body, chunked, cuts, version,
                      trailers if chunked else ())  # fmt: skip
    request, h11_body, h11_trailers = h11_events(h11.Connection(h11.SERVER), raw, False)
    items = run_server(random_split(raw, seed), eof=False)
    fields, our_body, our_trailers = split_items(items)
    expected = [(b":method", request.method), (b":scheme", b"http"), (b":authority", host),
                (b":path", request.target)]  # fmt: skip
    expected += [(n, v) for n, v in request.headers if n not in HOP and n != b"host"]
    assert list(fields) == expected
    assert items[0][4] == (("http_version", version.decode()),)
    assert our_body == h11_body == body
    assert our_trailers == h11_trailers


@EXAMPLES
@given(status=statuses, reason=st.sampled_from([b"OK", b"Whatever Reason", b""]),
       headers=header_lists, body=bodies, framing=st.sampled_from(["length", "chunked", "close"]),
       method=st.sampled_from([b"GET", b"HEAD", b"POST"]), cuts=cuts, trailers=trailer_lists,
       pad=pads, seed=st.integers(0, 2**16))  # fmt: skip
def test_responses_decode_as_h11_decodes_them(
    status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes, framing: str,
    method: bytes, cuts: list[int], trailers: list[tuple[bytes, bytes]], pad: bytes, seed: int,
) -> None:  # fmt: skip
    bodiless = method == b"HEAD" or status in (204, 304)
    lines = [b"HTTP/1.1 %d %s" % (status, reason), *(n + b": " + v for n, v in padded(headers, pad))]
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        tail = b"" if bodiless else body
    elif framing == "chunked" and not bodiless:
        lines.append(b"Transfer-Encoding: chunked")
        from tests.unit.test_http1_support import chunk_body

        tail = chunk_body(body, cuts) + b"".join(n + b": " + v + b"\r\n" for n, v in trailers)
        tail += b"\r\n"
    else:
        tail = b"" if bodiless else body
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + tail
    eof = framing == "close" or (framing == "chunked" and bodiless)
    peer = h11.Connection(h11.CLIENT)
    peer.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    peer.send(h11.EndOfMessage())
    response, h11_body, h11_trailers = h11_events(peer, raw, eof)
    items = run_client([(request_head(method), raw)], lambda b: random_split(b, seed), eof=eof)
    fields, our_body, our_trailers = split_items(items)
    expected = [(b":status", b"%d" % response.status_code)]
    expected += [(n, v) for n, v in response.headers if n not in HOP]
    assert list(fields) == expected
    assert our_body == h11_body
    assert our_trailers == h11_trailers


# -- encoding: h11 reads what we send ---------------------------------------------------

pieces = st.lists(st.binary(max_size=80), max_size=4)


@EXAMPLES
@given(status=statuses, headers=header_lists, parts=pieces, give_length=st.booleans(),
       trailers=trailer_lists, method=st.sampled_from([b"GET", b"HEAD"]), v10=st.booleans(),
       use_trailers=st.booleans())  # fmt: skip
def test_h11_reads_the_responses_we_send(
    status: int, headers: list[tuple[bytes, bytes]], parts: list[bytes], give_length: bool,
    trailers: list[tuple[bytes, bytes]], method: bytes, v10: bool, use_trailers: bool,
) -> None:  # fmt: skip
    conn = server()
    conn.receive_data(method + b" / HTTP/1." + (b"0" if v10 else b"1") + b"\r\nHost: a\r\n\r\n")
    (request,), _ = drain(conn)
    body = b"".join(parts)
    fields = [(b":status", b"%d" % status), *((n.lower(), v) for n, v in headers)]
    if give_length:
        fields.append((b"content-length", b"%d" % len(body)))
    events: list[Any] = [Headers(request.stream_id, fields, not parts and not use_trailers, {})]
    events += [Data(1, p, i == len(parts) - 1 and not use_trailers, {}) for i, p in enumerate(parts)]
    if use_trailers:
        events.append(Trailers(1, [(n.lower(), v) for n, v in trailers], {}))
    out = b""
    for event in events:
        buffers = conn.send(event)
        out += b"".join(buffers) if isinstance(buffers, list) else bytes(buffers)
    peer = h11.Connection(h11.CLIENT)
    peer.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    peer.send(h11.EndOfMessage())
    response, h11_body, h11_trailers = h11_events(peer, out, conn.should_close)
    assert response.status_code == status
    assert [(n, v) for n, v in response.headers if n not in FRAMING] == fields[1 : len(headers) + 1]
    bodiless = method == b"HEAD" or status in (204, 304)
    assert h11_body == (b"" if bodiless else body)
    chunked = not (bodiless or give_length or v10) and bool(parts or use_trailers)
    assert h11_trailers == ([(n.lower(), v) for n, v in trailers] if chunked and use_trailers else [])


@EXAMPLES
@given(method=methods, target=targets, host=hosts, headers=header_lists, parts=pieces,
       give_length=st.booleans(), trailers=trailer_lists, use_trailers=st.booleans(),
       reorder=st.booleans())  # fmt: skip
def test_h11_reads_the_requests_we_send(
    method: bytes, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]], parts: list[bytes],
    give_length: bool, trailers: list[tuple[bytes, bytes]], use_trailers: bool, reorder: bool,
) -> None:  # fmt: skip
    body = b"".join(parts)
    extra = [(n.lower(), v) for n, v in headers]
    if give_length:
        extra.append((b"content-length", b"%d" % len(body)))
    head = request_head(method, target, host, extra, end_stream=not parts and not use_trailers)
    if reorder:  # HTTP/2 puts no order on pseudo fields
        head.fields = head.fields[4:] + head.fields[3::-1]
    events: list[Any] = [head]
    events += [Data(1, p, i == len(parts) - 1 and not use_trailers, {}) for i, p in enumerate(parts)]
    if use_trailers:
        events.append(Trailers(1, [(n.lower(), v) for n, v in trailers], {}))
    conn = client()
    out = b""
    for event in events:
        buffers = conn.send(event)
        out += b"".join(buffers) if isinstance(buffers, list) else bytes(buffers)
    request, h11_body, h11_trailers = h11_events(h11.Connection(h11.SERVER), out, False)
    assert (request.method, request.target) == (method, target)
    assert request.headers[0] == (b"host", host)
    assert [(n, v) for n, v in list(request.headers)[1:] if n not in FRAMING] == extra[: len(headers)]
    assert h11_body == body
    chunked = not give_length and bool(parts or use_trailers)
    assert h11_trailers == ([(n.lower(), v) for n, v in trailers] if chunked and use_trailers else [])


@settings(max_examples=40, deadline=None)
@given(method=methods, target=targets, host=hosts, headers=header_lists, body=bodies)
def test_a_request_survives_decode_encode_decode(
    method: bytes, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """What the server role decodes, the client role re-encodes to the same request."""
    raw = raw_request(method, target, host, headers, body, chunked=False)
    items = run_server(bytewise(raw), eof=False)
    fields, decoded_body, _ = split_items(items)
    conn = client()
    out = conn.send(Headers(1, list(fields), not decoded_body, {}))
    if decoded_body:
        out += bytes(conn.send(Data(1, decoded_body, True, {})))  # type: ignore[arg-type]
    again = run_server([bytes(out)], eof=False)
    fields_again, body_again, _ = split_items(again)
    assert body_again == decoded_body
    if method in (b"POST", b"PUT", b"PATCH") and not decoded_body:
        # RFC 9110 8.6: an empty body of a method that gives it meaning says so.
        fields = (*(f for f in fields if f[0] != b"content-length"), (b"content-length", b"0"))
    assert fields_again == fields
