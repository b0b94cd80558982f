"""The thrift codec's own decisions: every transport x protocol fed whole, one byte at a time
and split at random points; seqid rewrite and restore; oneway; local replies read back by
Apache Thrift; the skipper on big and nested structs; refusals; hypothesis fuzz."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mesh.codecs.thrift import codec
from mesh.conformance.vectors import Vector, load

from mesh.codec import (
    AGAIN,
    FAIL,
    MATCH,
    NEED_DATA,
    ConnectionOptions,
    Event,
    Headers,
    RemoteProtocolError,
    Role,
    Status,
)

VECTORS = load(Path(__file__).parents[2] / "codecs/thrift/vectors/apache-thriftpy2.msgpack")
ONEWAY = load(Path(__file__).with_name("thrift_vectors") / "oneway.json")
REQUESTS = [v for v in VECTORS if v.direction == "request"]


def _decode(vector: Vector, chunks: list[bytes], options: ConnectionOptions | None = None) -> list[Event]:
    conn = codec.connection(vector.role, options or ConnectionOptions())
    if vector.request is not None:  # the client role needs nothing sent first, but do it anyway
        req = next(v for v in VECTORS if v.name == vector.request)
        conn.send(_decode(req, [req.data])[0])
    events: list[Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def _flat(buffers: object) -> bytes:
    return b"".join(bytes(b) for b in buffers) if isinstance(buffers, list) else bytes(buffers)  # type: ignore[arg-type]


def _cut(data: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@pytest.mark.parametrize("vector", VECTORS + ONEWAY, ids=lambda v: v.name)
def test_whole_bytewise_and_random_splits_agree(vector: Vector) -> None:
    whole = _decode(vector, [vector.data])
    assert len(whole) == 1 and isinstance(whole[0], Headers) and whole[0].end_stream
    assert _decode(vector, [bytes([b]) for b in vector.data]) == whole
    rng = random.Random(vector.name)
    for _ in range(10):
        assert _decode(vector, _cut(vector.data, rng)) == whole


def test_every_transport_and_protocol_is_covered() -> None:
    seen = {(e.extensions["thrift"].transport, e.extensions["thrift"].head.protocol,
             e.extensions["thrift"].head.strict)
            for v in REQUESTS for e in _decode(v, [v.data])}
    assert seen >= {("framed", "binary", True), ("framed", "compact", True), ("buffered", "binary", True),
                    ("buffered", "compact", True), ("framed", "binary", False),
                    ("buffered", "binary", False), ("header", "binary", True), ("header", "compact", True)}


@pytest.mark.parametrize("vector", REQUESTS, ids=lambda v: v.name)
def test_seqid_rewrite_and_restore(vector: Vector) -> None:
    (request,) = _decode(vector, [vector.data])
    client = codec.connection(Role.CLIENT, ConnectionOptions())
    for new in (1, 300, 2**31 - 1):
        request.stream_id = new
        wire = _flat(client.send(request))
        server = codec.connection(Role.SERVER, ConnectionOptions())
        server.receive_data(wire)
        again = server.next_event()
        assert again.stream_id == new and again.fields == request.fields
    request.stream_id = 0
    assert _flat(client.send(request)) == vector.data


def test_two_messages_in_one_read_and_mixed_seqids() -> None:
    a, b = REQUESTS[0], REQUESTS[1]
    assert a.name.startswith("apache-echo-framed-binary")
    events = _decode(a, [a.data + a.data[:7], a.data[7:] + a.data])
    assert [e.stream_id for e in events] == [0, 0, 0]
    assert b.data  # the vectors are not empty


def test_oneway_is_marked_and_has_no_local_reply() -> None:
    for vector in ONEWAY:
        (event,) = _decode(vector, [vector.data])
        assert event.extensions.get("oneway") is True
        server = codec.connection(Role.SERVER, ConnectionOptions())
        assert server.local_reply(event, Status.NO_ROUTE, "x") == []
    for vector in REQUESTS:
        assert "oneway" not in _decode(vector, [vector.data])[0].extensions


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("vector", [v for v in REQUESTS if "echo" in v.name or "theader" in v.name],
                         ids=lambda v: v.name)
def test_local_reply_is_an_application_exception_apache_reads(vector: Vector, status: Status) -> None:
    from thrift.protocol import TBinaryProtocol, TCompactProtocol
    from thrift.Thrift import TApplicationException
    from thrift.transport import TTransport
    from thrift.transport.THeaderTransport import THeaderTransport

    server = codec.connection(Role.SERVER, ConnectionOptions())
    server.receive_data(vector.data)
    request = server.next_event()
    request.stream_id = 77
    (reply,) = server.local_reply(request, status, f"{status.name}: why")
    data = _flat(server.send(reply))
    msg = request.extensions["thrift"]
    mem = TTransport.TMemoryBuffer(data)
    trans = {"framed": lambda: TTransport.TFramedTransport(mem), "buffered": lambda: mem,
             "header": lambda: THeaderTransport(mem, allowed_client_types=(0,))}[msg.transport]()
    if msg.transport == "header":
        trans.readFrame(0)
    proto = (TCompactProtocol.TCompactProtocol(trans) if msg.head.protocol == "compact"
             else TBinaryProtocol.TBinaryProtocol(trans))
    name, mtype, seqid = proto.readMessageBegin()
    exc = TApplicationException()
    exc.read(proto)
    assert (name.encode(), mtype, seqid) == (msg.head.name, 3, 77)
    assert exc.type == (1 if status is Status.NO_ROUTE else 7 if status is Status.BAD_REQUEST else 6)
    assert exc.message == f"{status.name}: why"


def test_match() -> None:
    for vector in REQUESTS:
        assert codec.match(vector.data) is MATCH
    assert codec.match(b"\x80") is AGAIN and codec.match(b"\x00\x00") is AGAIN
    assert codec.match(b"\x80\x01\x00\x02\x00\x00\x00\x01a") is FAIL  # a reply does not open a connection
    assert codec.match(b"GET / HTTP/1.1\r\n") is FAIL
    assert codec.match(b"*1\r\n$4\r\nPING\r\n") is FAIL
    assert codec.match(bytes(16)) is FAIL


def _bin_call(body: bytes, name: bytes = b"m") -> bytes:
    return struct.pack(">Ii", 0x80010001, len(name)) + name + struct.pack(">i", 5) + body


def test_skipper_finds_the_end_of_big_and_nested_unframed_messages() -> None:
    blob = b"\x0b\x00\x01" + struct.pack(">i", 3_000_000) + b"z" * 3_000_000
    lst = b"\x0f\x00\x02\x0c" + struct.pack(">i", 500) + (b"\x08\x00\x01\x00\x00\x00\x01\x00" * 500)
    nested = b"\x0c\x00\x03" * 30 + b"\x00" * 30
    data = _bin_call(blob + lst + nested + b"\x00")
    vector = Vector("big", "request", (data,))
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    (event,) = _decode(vector, chunks, ConnectionOptions(max_frame_size=4 * 1024 * 1024))
    assert event.extensions["thrift"].raw == data


@pytest.mark.parametrize(("data", "why"), [
    (b"\x00\x10\x00\x01\x80\x01\x00\x01", "max_frame_size"),
    (_bin_call(b"\x0c\x00\x01" * 100 + b"\x00" * 101), "nested"),
    (_bin_call(b"\x11\x00\x01\x00"), "unknown binary type"),
    (b"\x82\x41\x00\x01m\x00", "a reply message where"),
    (b"\x80\x02\x00\x01", "version"),
    (struct.pack(">I", 6) + b"\x0f\xff\x00\x00\x00\x00", "THeader header longer"),
])
def test_refusals(data: bytes, why: str) -> None:
    conn = codec.connection(Role.SERVER, ConnectionOptions(max_frame_size=1 << 20))
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=why):
        while conn.next_event() is not NEED_DATA:
            pass
    with pytest.raises(RemoteProtocolError):  # and it stays refused
        conn.next_event()


def test_unframed_message_over_the_frame_limit_is_refused_early() -> None:
    data = _bin_call(b"\x0b\x00\x01" + struct.pack(">i", 10_000_000))
    conn = codec.connection(Role.SERVER, ConnectionOptions(max_frame_size=4096))
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError, match="max_frame_size"):
        conn.next_event()


def test_eof_inside_a_message_is_an_error() -> None:
    conn = codec.connection(Role.SERVER, ConnectionOptions())
    conn.receive_data(REQUESTS[0].data[:-1])
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed inside"):
        conn.next_event()


def _drain(role: Role, chunks: list[bytes]) -> None:
    conn = codec.connection(role, ConnectionOptions(max_frame_size=1 << 16, max_header_size=1024))
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            for _ in range(10_000):
                event = conn.next_event()
                if not isinstance(event, Headers):
                    break
    except RemoteProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VECTORS + ONEWAY), st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)),
                                                   max_size=6), st.integers(0, 4096), st.booleans())
def test_fuzz_mutated_frames(vector: Vector, flips: list[tuple[int, int]], cut: int, eof: bool) -> None:
    data = bytearray(vector.data)
    for at, value in flips:
        data[at % len(data)] = value
    chunks = [bytes(data[:cut]), bytes(data[cut:])] + ([b""] if eof else [])
    _drain(Role.SERVER, chunks)
    _drain(Role.CLIENT, chunks)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.sampled_from([b"", b"\x80\x01\x00\x01", b"\x82\x21", b"\x00\x00\x00\x20\x0f\xff"]))
def test_fuzz_random_bytes(data: bytes, prefix: bytes) -> None:
    _drain(Role.SERVER, [prefix + data, b""])
    _drain(Role.CLIENT, [prefix + data])


def test_configured_service_for_names_without_a_prefix() -> None:
    """protocol_options: {service: ...} names the service of a plain (non-multiplexed) port."""
    from mesh.codecs.thrift import codec as thrift

    from mesh.codec import ConnectionOptions, Headers, Role

    def keys(options: ConnectionOptions, name: bytes) -> tuple[str | None, str | None]:
        server = thrift.connection(Role.SERVER, options)
        body = b"\x80\x01\x00\x01" + len(name).to_bytes(4, "big") + name + b"\x00\x00\x00\x00\x00"
        server.receive_data(len(body).to_bytes(4, "big") + body)  # framed, strict binary, seqid 0
        event = server.next_event()
        assert isinstance(event, Headers)
        k = thrift.request_keys(event)
        return k.service, k.method

    configured = ConnectionOptions(extra={"service": "Calculator"})
    assert keys(configured, b"add") == ("Calculator", "add")
    assert keys(configured, b"Echo:ping") == ("Echo", "ping")  # a prefix wins
    assert keys(ConnectionOptions(), b"add") == (None, "add")
