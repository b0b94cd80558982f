"""The http2 codec against the ``h2`` library as its peer, in memory, for both engines.

An h2 client talks to our SERVER role and an h2 server to our CLIENT role; h2 is an
independent implementation, so every byte the codec writes is checked by h2's own state
machine and field validation, and every byte the codec reads was written by h2. Both engines
are run (``lean``, the default, and ``h2``, chosen by ``extra={"engine": "h2"}``).

Control events (the codec's connection-level output) are sent at once, as every session
does; ``pump`` keeps them out of the event lists, except a ``draining`` one (GOAWAY).

Known bugs are strict xfails whose reason says what goes wrong; see the report in the commit
that added this file.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hpack
import pytest
from mesh.codecs.http2 import (
    GRPC_STATUS,
    PREFACE,
    HttpKeys,
    codec,
    grpc_timeout,
    request_fields,
    response_fields,
)

from mesh.codec import (
    AGAIN,
    CLOSED,
    FAIL,
    MATCH,
    NEED_DATA,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    PoolMode,
    RemoteProtocolError,
    Reset,
    Role,
    Status,
    Trailers,
)

Fields = list[tuple[bytes, bytes]]
SC = h2.settings.SettingCodes
EC = h2.errors.ErrorCodes

ENGINES = ("lean", "h2")
#: what the codec advertises unless told otherwise (ConnectionOptions.extra)
STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 1024 * 1024
MAX_STREAMS = 1024

GET: Fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com:8080"),
               (b":path", b"/hello?lang=en")]
POST: Fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"),
                (b":path", b"/upload")]
GRPC: Fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"grpc.local:50051"),
                (b":path", b"/pkg.v1.Greeter/SayHello"), (b"content-type", b"application/grpc"),
                (b"te", b"trailers"), (b"grpc-timeout", b"250m")]
OK: Fields = [(b":status", b"200"), (b"content-type", b"text/plain")]


def engines(**xfail: str) -> list[Any]:
    """Both engines, each an expected failure (strict) where a reason is given."""
    return [pytest.param(e, id=e, marks=[pytest.mark.xfail(strict=True, reason=xfail[e])])
            if e in xfail else pytest.param(e, id=e) for e in ENGINES]


def options(engine: str, max_header_size: int = 64 * 1024, **extra: Any) -> ConnectionOptions:
    return ConnectionOptions(max_header_size=max_header_size, extra={"engine": engine, **extra})


def flat(buffers: Any) -> bytes:
    if isinstance(buffers, list):
        return b"".join(bytes(b) for b in buffers)
    return bytes(buffers)


def oracle(client: bool, settings: dict[int, int] | None = None) -> h2.connection.H2Connection:
    """An h2 peer; its own SETTINGS are ``settings`` over h2's defaults."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=client,
                                                                header_encoding=None))
    if settings:
        conn.local_settings = h2.settings.Settings(client=client, initial_values=settings)
    conn.initiate_connection()
    return conn


def pump(cc: Any, data: bytes | None = None) -> tuple[list[Event], bytes]:
    """Feed ``data``, then take events until the codec wants data; control events are sent.

    Returns the events (a draining control event included) and the bytes the control
    events produced.
    """
    if data:
        cc.receive_data(data)
    events: list[Event] = []
    out = bytearray()
    for _ in range(100_000):
        event = cc.next_event()
        if event is NEED_DATA or event is CLOSED:
            return events, bytes(out)
        if cc.is_heartbeat(event):
            out += flat(cc.send(event))
            if event.extensions.get("draining"):
                events.append(event)
            continue
        events.append(event)
    raise AssertionError("next_event() never asked for data")


def feed(cc: Any, chunks: Sequence[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += pump(cc, chunk)[0]
    return events


def cut(data: bytes, rng: random.Random, most: int = 8) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, most))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def plain(events: Sequence[Event]) -> list[Any]:
    """Events as comparable tuples (fields as plain tuples, payloads as bytes)."""
    out: list[Any] = []
    for e in events:
        if isinstance(e, Headers | Trailers):
            out.append((type(e).__name__, e.stream_id, [(bytes(n), bytes(v)) for n, v in e.fields],
                        e.end_stream, dict(e.extensions)))
        elif isinstance(e, Data):
            out.append(("Data", e.stream_id, bytes(e.payload), e.end_stream, dict(e.extensions)))
        else:
            out.append(("Reset", e.stream_id, int(e.error_code)))
    return out


def of(kind: type, items: Sequence[Any]) -> list[Any]:
    return [e for e in items if isinstance(e, kind)]


class Link:
    """One of our connections and an h2 peer, bytes moved between them until both are quiet."""

    def __init__(self, cc: Any, peer: h2.connection.H2Connection) -> None:
        self.cc = cc
        self.peer = peer
        self.events: list[Event] = []  # ours
        self.peer_events: list[Any] = []  # h2's
        self.exchange()
        #: what the peer made of the opening exchange (SETTINGS both ways, WINDOW_UPDATE)
        self.opening = self.take_peer()

    def exchange(self) -> None:
        for _ in range(10_000):
            data = self.peer.data_to_send()
            events, out = pump(self.cc, data)
            self.events += events
            if out:
                self.peer_events += self.peer.receive_data(out)
            if not data and not out:
                return
        raise AssertionError("the two connections never went quiet")

    def send(self, *events: Event) -> bytes:
        """Our events to the peer; the bytes they made."""
        out = b"".join(flat(self.cc.send(e)) for e in events)
        if out:
            self.peer_events += self.peer.receive_data(out)
        self.exchange()
        return out

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def take_peer(self) -> list[Any]:
        events, self.peer_events = self.peer_events, []
        return events


def server_link(engine: str, peer_settings: dict[int, int] | None = None, **extra: Any) -> Link:
    """Our SERVER role with an h2 client."""
    return Link(codec.connection(Role.SERVER, options(engine, **extra)), oracle(True, peer_settings))


def client_link(engine: str, peer_settings: dict[int, int] | None = None, **extra: Any) -> Link:
    """Our CLIENT role with an h2 server."""
    return Link(codec.connection(Role.CLIENT, options(engine, **extra)), oracle(False, peer_settings))


def request(uid: int, fields: Fields = GET, end: bool = True) -> Headers:
    """A request as the server role of this codec would have decoded it."""
    return Headers(uid, list(fields), end, {"http_version": "2"})


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each frame; the data must be whole frames."""
    out, pos = [], 0
    while pos < len(data):
        assert len(data) - pos >= 9, f"a truncated frame header at {pos}"
        size = int.from_bytes(data[pos:pos + 3], "big")
        kind, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        assert len(data) - pos - 9 >= size, f"a truncated frame at {pos}"
        out.append((kind, flags, sid, data[pos + 9:pos + 9 + size]))
        pos += 9 + size
    return out


# -- raw frames, for what h2 refuses to write -----------------------------------------------


def raw_frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


def raw_client(*blocks: tuple[str, int, Any, int]) -> bytes:
    """Preface, empty SETTINGS, then ("h", sid, fields, flags) / ("d", sid, payload, flags)."""
    encoder = hpack.Encoder()
    out = PREFACE + raw_frame(4, 0, 0)
    for kind, sid, value, flags in blocks:
        if kind == "h":
            out += raw_frame(1, flags, sid, encoder.encode(value))
        else:
            out += raw_frame(0, flags, sid, value)
    return out


END_STREAM, END_HEADERS = 0x1, 0x4


# -- sniffing, shape -----------------------------------------------------------------------


def test_codec_shape() -> None:
    assert codec.name == "http2"
    assert codec.pool_mode is PoolMode.MULTIPLEX
    assert codec.connection(Role.SERVER, ConnectionOptions()).should_close is False


@pytest.mark.parametrize("prefix, want", [
    (PREFACE, MATCH),
    (PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", MATCH),
    (b"P", AGAIN), (b"PRI * HTTP/2.0\r\n", AGAIN), (PREFACE[:-1], AGAIN),
    (b"", AGAIN),
    (b"PRI * HTTP/2.1\r\n\r\nSM\r\n\r\n", FAIL), (b"GET / HTTP/1.1\r\n", FAIL), (b"PUT", FAIL),
    (b"\x16\x03\x01", FAIL), (b"pri * http/2.0", FAIL),
])
def test_match(prefix: bytes, want: Any) -> None:
    assert codec.match(prefix) is want


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError):
        codec.connection(Role.SERVER, options("nghttp2"))


# -- server role: requests in, responses out ------------------------------------------------


@pytest.mark.parametrize("engine", engines())
def test_get_request_and_response(engine: str) -> None:
    link = server_link(engine)
    fields = [*GET, (b"user-agent", b"h2/4"), (b"accept", b"*/*"), (b"cookie", b"a=1"),
              (b"cookie", b"b=2")]
    link.peer.send_headers(1, fields, end_stream=True)
    link.exchange()
    (head,) = link.take()
    assert plain([head]) == [("Headers", 1, fields, True, {"http_version": "2"})]
    link.send(Headers(1, [*OK, (b"content-length", b"6")]), Data(1, b"hello\n", True))
    got = link.take_peer()
    (resp,) = of(h2.events.ResponseReceived, got)
    assert resp.stream_id == 1 and list(resp.headers) == [*OK, (b"content-length", b"6")]
    assert b"".join(e.data for e in of(h2.events.DataReceived, got)) == b"hello\n"
    assert of(h2.events.StreamEnded, got)[0].stream_id == 1
    assert link.cc.should_close is False


@pytest.mark.parametrize("engine", engines())
def test_pseudo_fields_first_in_wire_order(engine: str) -> None:
    """curl and grpc-core do not send the pseudo fields in one order; they stay as sent, first."""
    link = server_link(engine)
    curl_order = [GET[0], GET[3], GET[1], GET[2], (b"accept", b"*/*")]
    link.peer.send_headers(1, curl_order, end_stream=True)
    link.exchange()
    (head,) = link.take()
    assert [n for n, _ in head.fields] == [b":method", b":path", b":scheme", b":authority", b"accept"]


@pytest.mark.parametrize("engine", engines())
def test_post_body_in_several_frames(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, [*POST, (b"content-length", b"30000")])
    body = bytes(random.Random(1).randbytes(30000))
    for i in range(0, 30000, 10000):
        link.peer.send_data(1, body[i:i + 10000], end_stream=i == 20000)
    link.exchange()
    events = link.take()
    assert isinstance(events[0], Headers) and not events[0].end_stream
    data = of(Data, events)
    assert b"".join(bytes(d.payload) for d in data) == body
    assert [d.end_stream for d in data][-1] is True and not any(d.end_stream for d in data[:-1])
    assert sum(d.extensions["flow"] for d in data) == 30000


@pytest.mark.parametrize("engine", engines())
def test_padded_data_counts_its_padding_as_flow(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, POST)
    link.peer.send_data(1, b"x" * 100, end_stream=True, pad_length=20)
    link.exchange()
    (data,) = of(Data, link.take())
    assert bytes(data.payload) == b"x" * 100 and data.end_stream
    assert data.extensions["flow"] == 100 + 20 + 1  # the pad length byte counts too (6.9.1)


@pytest.mark.parametrize("engine", engines())
def test_large_header_block_in_continuation_frames(engine: str) -> None:
    link = server_link(engine)
    fields = [*GET, *[(b"x-big-%d" % i, bytes(random.Random(i).randbytes(3000)).hex().encode())
                      for i in range(8)]]
    link.peer.send_headers(1, fields, end_stream=True)
    wire = link.peer.data_to_send()
    assert any(kind == 9 for kind, _, _, _ in frames(wire[24:] if wire.startswith(PREFACE) else wire))
    link.cc.receive_data(wire)
    events, _ = pump(link.cc)
    assert plain(events)[0][2] == fields


@pytest.mark.parametrize("engine", engines())
def test_grpc_request_response_with_trailers(engine: str) -> None:
    link = server_link(engine)
    message = b"\x00\x00\x00\x00\x05hello"
    link.peer.send_headers(1, GRPC)
    link.peer.send_data(1, message, end_stream=True)
    link.exchange()
    head, data = link.take()
    assert isinstance(head, Headers) and head.extensions == {"http_version": "2", "grpc": True,
                                                              "timeout": pytest.approx(0.25)}
    assert isinstance(data, Data) and bytes(data.payload) == message and data.end_stream
    keys = codec.request_keys(head)
    assert (keys.service, keys.method, keys.host, keys.path) == (
        "pkg.v1.Greeter", "SayHello", "grpc.local", "/pkg.v1.Greeter/SayHello")
    reply = [(b"grpc-status", b"0"), (b"grpc-message", b""), (b"x-trailer-bin", b"AAEC")]
    link.send(Headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")]),
              Data(1, message), Trailers(1, reply))
    got = link.take_peer()
    kinds = [type(e).__name__ for e in got if not isinstance(e, h2.events.WindowUpdated)]
    assert kinds == ["ResponseReceived", "DataReceived", "TrailersReceived", "StreamEnded"]
    assert list(of(h2.events.TrailersReceived, got)[0].headers) == reply


@pytest.mark.parametrize("engine", engines())
def test_request_trailers(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, POST)
    link.peer.send_data(1, b"body")
    link.peer.send_headers(1, [(b"x-checksum", b"c0ffee")], end_stream=True)
    link.exchange()
    assert plain(link.take())[1:] == [("Data", 1, b"body", False, {"flow": 4}),
                                      ("Trailers", 1, [(b"x-checksum", b"c0ffee")], True, {})]


@pytest.mark.parametrize("engine", engines())
def test_many_concurrent_streams(engine: str) -> None:
    link = server_link(engine)
    sids = list(range(1, 201, 2))  # 100 streams
    for sid in sids:
        link.peer.send_headers(sid, [*POST[:3], (b":path", b"/s/%d" % sid)])
    for sid in reversed(sids):  # bodies interleaved, in the other order
        link.peer.send_data(sid, b"body of %d" % sid, end_stream=True)
    link.exchange()
    events = link.take()
    assert [e.stream_id for e in of(Headers, events)] == sids
    assert {e.stream_id: bytes(e.payload) for e in of(Data, events)} == {
        sid: b"body of %d" % sid for sid in sids}
    for sid in reversed(sids):  # answered out of order
        link.send(Headers(sid, OK), Data(sid, b"answer %d" % sid, True))
    got = link.take_peer()
    assert {e.stream_id: e.data for e in of(h2.events.DataReceived, got)} == {
        sid: b"answer %d" % sid for sid in sids}
    assert len(of(h2.events.StreamEnded, got)) == 100


@pytest.mark.parametrize("engine", engines())
def test_reset_by_the_client(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, POST)
    link.peer.send_headers(3, POST)
    link.exchange()
    link.take()
    link.peer.reset_stream(1, EC.CANCEL)
    link.exchange()
    assert plain(link.take()) == [("Reset", 1, 8)]
    # the proxy answers it anyway before it saw the Reset: nothing is sent, nothing raised
    assert link.send(Headers(1, OK), Trailers(1, [(b"x", b"y")])) == b""
    link.send(Headers(3, OK), Data(3, b"fine", True))  # the other stream is unaffected
    assert of(h2.events.DataReceived, link.take_peer())[0].data == b"fine"


@pytest.mark.parametrize("engine", engines())
def test_reset_sent_to_the_client(engine: str) -> None:
    link = server_link(engine)
    for sid in (1, 3):
        link.peer.send_headers(sid, POST)
    link.exchange()
    link.send(Reset(1, int(EC.INTERNAL_ERROR)), Reset(3))
    resets = {e.stream_id: e.error_code for e in of(h2.events.StreamReset, link.take_peer())}
    assert resets == {1: EC.INTERNAL_ERROR, 3: EC.CANCEL}  # 0 means "abandoned": CANCEL


@pytest.mark.parametrize("engine", engines())
def test_ping_is_answered(engine: str) -> None:
    link = server_link(engine)
    link.peer.ping(b"12345678")
    link.exchange()
    assert link.take() == []  # control only
    (ack,) = of(h2.events.PingAckReceived, link.take_peer())
    assert ack.ping_data == b"12345678"


@pytest.mark.parametrize("engine", engines())
def test_settings_exchange(engine: str) -> None:
    cc = codec.connection(Role.SERVER, options(engine))
    peer = oracle(True, {SC.INITIAL_WINDOW_SIZE: 30_000})
    first = cc.next_event()
    assert cc.is_heartbeat(first) and first.stream_id == 0 and first.extensions.get("control")
    assert cc.heartbeat_reply(first) == [first]
    link = Link(cc, peer)
    got = link.opening
    changed = of(h2.events.RemoteSettingsChanged, got)[0].changed_settings
    want = {SC.ENABLE_PUSH: 0, SC.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            SC.INITIAL_WINDOW_SIZE: STREAM_WINDOW, SC.MAX_HEADER_LIST_SIZE: 64 * 1024}
    assert {k: changed[k].new_value for k in want} == want
    assert of(h2.events.SettingsAcknowledged, got)  # the client's SETTINGS were acknowledged
    assert peer.outbound_flow_control_window == CONNECTION_WINDOW
    # ... and the client's own: a response is framed under its 30000-byte stream window
    peer.send_headers(1, GET, end_stream=True)
    link.exchange()
    link.take()
    link.send(Headers(1, OK), Data(1, b"z" * 50_000, True))
    assert sum(len(e.data) for e in of(h2.events.DataReceived, link.take_peer())) == 30_000


@pytest.mark.parametrize("engine", engines())
def test_settings_from_options(engine: str) -> None:
    link = server_link(engine, initial_stream_window=70_000, initial_connection_window=300_000,
                       max_concurrent_streams=7)
    changed = of(h2.events.RemoteSettingsChanged, link.opening)[0].changed_settings
    assert changed[SC.INITIAL_WINDOW_SIZE].new_value == 70_000
    assert changed[SC.MAX_CONCURRENT_STREAMS].new_value == 7
    assert link.peer.outbound_flow_control_window == 300_000


# -- flow control ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", engines())
def test_request_body_stalls_at_our_window_until_acknowledged(engine: str) -> None:
    """1 MiB in: the client stops at our 256 KiB stream window until the proxy acknowledges."""
    link = server_link(engine)
    client, cc = link.peer, link.cc
    client.send_headers(1, [*POST, (b"content-length", b"%d" % (1 << 20))])
    link.exchange()
    link.take()
    body = random.Random(2).randbytes(1 << 20)
    sent, received, unacked, peak, stalls = 0, bytearray(), 0, 0, 0
    while len(received) < len(body):
        room = min(client.local_flow_control_window(1), len(body) - sent, client.max_outbound_frame_size)
        if room > 0:
            client.send_data(1, body[sent:sent + room], end_stream=sent + room == len(body))
            sent += room
            link.exchange()
            for event in of(Data, link.take()):
                received += event.payload
                unacked += event.extensions["flow"]
            peak = max(peak, unacked)
            continue
        stalls += 1
        assert sent < len(body) and len(received) == sent  # all of it reached the proxy
        assert client.local_flow_control_window(1) == 0  # nothing reopened it but the proxy
        link.peer.receive_data(flat(cc.acknowledge(1, unacked)))
        unacked = 0
        link.exchange()
        assert client.local_flow_control_window(1) > 0
    assert bytes(received) == body
    assert peak <= STREAM_WINDOW
    assert stalls >= (1 << 20) // STREAM_WINDOW - 1


@pytest.mark.parametrize("engine", engines())
def test_response_held_under_a_small_peer_window(engine: str) -> None:
    """1 MiB out to a client whose windows are 16 KiB (stream) and 64 KiB (connection)."""
    link = server_link(engine, {SC.INITIAL_WINDOW_SIZE: 16384})
    client = link.peer
    client.send_headers(1, GET, end_stream=True)
    link.exchange()
    link.take()
    payload = random.Random(3).randbytes(1 << 20)
    consumed: list[int] = []
    link.send(Headers(1, OK), Data(1, payload, True, {"consumed": consumed.append}))
    assert sum(consumed) == 16384  # the rest is held by the codec
    got, ended = bytearray(), False
    for _ in range(10_000):
        events = link.take_peer()
        ended = ended or any(isinstance(e, h2.events.StreamEnded) for e in events)
        data = of(h2.events.DataReceived, events)
        if not data and ended:
            break
        assert data, "the codec stopped sending although the client opened its window"
        for event in data:
            got += event.data
            client.acknowledge_received_data(event.flow_controlled_length, 1)
        link.exchange()
        assert sum(consumed) == len(got) + sum(len(e.data) for e in of(
            h2.events.DataReceived, link.peer_events))
    assert bytes(got) == payload and ended
    assert sum(consumed) == len(payload)


@pytest.mark.parametrize("engine", engines())
def test_trailers_wait_for_held_data(engine: str) -> None:
    link = server_link(engine, {SC.INITIAL_WINDOW_SIZE: 1000})
    link.peer.send_headers(1, GRPC, end_stream=True)
    link.exchange()
    link.take()
    link.send(Headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")]),
              Data(1, b"m" * 5000), Trailers(1, [(b"grpc-status", b"0")]))
    order: list[str] = []
    for _ in range(100):
        events = link.take_peer()
        order += [type(e).__name__ for e in events if not isinstance(
            e, h2.events.WindowUpdated | h2.events.SettingsAcknowledged)]
        if "StreamEnded" in order:
            break
        for e in of(h2.events.DataReceived, events):
            link.peer.acknowledge_received_data(e.flow_controlled_length, 1)
        link.exchange()
    assert order[0] == "ResponseReceived" and order[-2:] == ["TrailersReceived", "StreamEnded"]
    assert set(order[1:-2]) == {"DataReceived"} and len(order) - 3 >= 5


@pytest.mark.parametrize("engine", engines())
def test_reset_credits_held_data_back(engine: str) -> None:
    link = server_link(engine, {SC.INITIAL_WINDOW_SIZE: 16384})
    link.peer.send_headers(1, GET, end_stream=True)
    link.exchange()
    consumed: list[int] = []
    link.send(Headers(1, OK), Data(1, b"d" * 100_000, True, {"consumed": consumed.append}))
    assert sum(consumed) == 16384
    link.peer.reset_stream(1, EC.CANCEL)
    link.exchange()
    assert plain(link.take())[-1] == ("Reset", 1, 8)
    assert sum(consumed) == 100_000  # what was held went back to the connection it came from


@pytest.mark.parametrize("engine", engines(h2="Data sent on a stream the peer reset: h2 raises "
                                               "StreamClosedError inside _flush_stream after the chunk "
                                               "was queued (or popped), send() swallows it and the "
                                               "consumed callback is never called; the source "
                                               "connection's window never reopens for those bytes"))
def test_data_for_a_reset_stream_is_credited(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, GET, end_stream=True)
    link.exchange()
    link.send(Headers(1, OK))
    link.peer.reset_stream(1, EC.CANCEL)
    link.exchange()
    assert plain(link.take())[-1] == ("Reset", 1, 8)
    consumed: list[int] = []
    link.send(Data(1, b"late" * 250, True, {"consumed": consumed.append}))  # sent before it saw it
    assert sum(consumed) == 1000


# -- client role -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", engines())
def test_client_request_ids_map_to_stream_ids(engine: str) -> None:
    link = client_link(engine)
    uids = [7, 0, 2**40, 5]
    for uid in uids:
        link.send(request(uid, [*POST[:3], (b":path", b"/r/%d" % uid)], end=False),
                  Data(uid, b"req %d" % uid, True))
    got = link.take_peer()
    seen = {e.stream_id: dict(e.headers)[b":path"] for e in of(h2.events.RequestReceived, got)}
    assert seen == {1: b"/r/7", 3: b"/r/0", 5: b"/r/%d" % 2**40, 7: b"/r/5"}
    assert {e.stream_id: e.data for e in of(h2.events.DataReceived, got)} == {
        1: b"req 7", 3: b"req 0", 5: b"req %d" % 2**40, 7: b"req 5"}
    server = link.peer
    for sid, uid in reversed(list(zip((1, 3, 5, 7), uids, strict=True))):
        server.send_headers(sid, [(b":status", b"200"), (b"x-uid", b"%d" % uid)])
        server.send_data(sid, b"resp %d" % uid)
        server.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    link.exchange()
    events = link.take()
    for uid in uids:
        mine = [e for e in events if e.stream_id == uid]
        assert [type(e).__name__ for e in mine] == ["Headers", "Data", "Trailers"], uid
        assert dict(mine[0].fields)[b"x-uid"] == b"%d" % uid
        assert bytes(mine[1].payload) == b"resp %d" % uid
        assert [(bytes(n), bytes(v)) for n, v in mine[2].fields] == [(b"grpc-status", b"0")]


@pytest.mark.parametrize("engine", engines())
def test_client_fields_from_http1(engine: str) -> None:
    """A request decoded by the HTTP/1.1 codec (no http_version 2): made fit for HTTP/2."""
    link = client_link(engine)
    link.send(Headers(3, [(b":method", b"GET"), (b":path", b"/x"), (b"host", b"example.com"),
                          (b"connection", b"keep-alive, x-foo"), (b"keep-alive", b"timeout=5"),
                          (b"te", b"trailers"), (b"transfer-encoding", b"chunked"),
                          (b"upgrade", b"websocket"), (b"proxy-connection", b"keep-alive"),
                          (b"x-a", b"1")], True))
    (req,) = of(h2.events.RequestReceived, link.take_peer())
    assert list(req.headers) == [(b":method", b"GET"), (b":scheme", b"http"),
                                 (b":authority", b"example.com"), (b":path", b"/x"),
                                 (b"te", b"trailers"), (b"x-a", b"1")]


@pytest.mark.parametrize("engine", engines())
def test_client_trailers_only_and_informational(engine: str) -> None:
    link = client_link(engine)
    link.send(request(1, GRPC, end=False), Data(1, b"\x00\x00\x00\x00\x00", True))
    link.send(request(2, [*POST, (b"expect", b"100-continue")], end=True))
    server = link.peer
    server.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc"),
                            (b"grpc-status", b"12")], end_stream=True)
    server.send_headers(3, [(b":status", b"100")])
    server.send_headers(3, [(b":status", b"204")], end_stream=True)
    link.exchange()
    got = plain(link.take())
    assert [(e[0], e[1], e[2], e[3]) for e in got] == [
        ("Headers", 1, [(b":status", b"200"), (b"content-type", b"application/grpc"),
                        (b"grpc-status", b"12")], True),
        ("Headers", 2, [(b":status", b"204")], True)]  # the 100 is not relayed


@pytest.mark.parametrize("engine", engines())
def test_client_resets_both_ways(engine: str) -> None:
    link = client_link(engine)
    link.send(request(10, POST, end=False), request(20, POST, end=False))
    link.peer.reset_stream(1, EC.REFUSED_STREAM)
    link.exchange()
    assert plain(link.take()) == [("Reset", 10, 7)]
    link.send(Reset(20, int(EC.CANCEL)))
    assert [(e.stream_id, e.error_code) for e in of(h2.events.StreamReset, link.take_peer())] == [
        (3, EC.CANCEL)]
    assert link.send(Data(10, b"late", True), Reset(10)) == b""  # gone: nothing, no error


@pytest.mark.parametrize("engine", engines())
def test_client_answers_ping(engine: str) -> None:
    link = client_link(engine)
    link.peer.ping(b"\x00\x01\x02\x03\x04\x05\x06\x07")
    link.exchange()
    assert link.take() == []
    assert of(h2.events.PingAckReceived, link.take_peer())[0].ping_data == bytes(range(8))


@pytest.mark.parametrize("engine", engines())
def test_client_stream_capacity(engine: str) -> None:
    link = client_link(engine, {SC.MAX_CONCURRENT_STREAMS: 3})
    cc = link.cc
    assert cc.stream_capacity() == 3
    link.send(request(1), request(2, POST, end=False))
    assert cc.stream_capacity() == 1
    link.peer.send_headers(1, [(b":status", b"200")], end_stream=True)
    link.exchange()
    assert cc.stream_capacity() == 2  # stream 1 is closed both ways
    link.send(request(3))
    assert cc.stream_capacity() == 1


@pytest.mark.parametrize("engine", engines(h2="h2 reports StreamEnded for the early response and "
                                               "the codec forgets the stream's id mapping at once, "
                                               "though its request side is still open: the rest of "
                                               "the body (and its END_STREAM) is dropped by send() "
                                               "without a word, consumed is never called, and the "
                                               "half-open stream holds a MAX_CONCURRENT_STREAMS slot "
                                               "for good"))
def test_client_request_body_after_an_early_response(engine: str) -> None:
    """A server may answer before the request body is complete (RFC 9113 8.1; gRPC errors)."""
    link = client_link(engine, {SC.MAX_CONCURRENT_STREAMS: 1})
    link.send(request(5, POST, end=False), Data(5, b"first"))
    link.peer.send_headers(1, [(b":status", b"200")], end_stream=True)
    link.exchange()
    assert plain(link.take())[0][:2] == ("Headers", 5)
    assert link.cc.stream_capacity() == 0  # our side of stream 1 is still open
    link.take_peer()
    consumed: list[int] = []
    link.send(Data(5, b"rest", True, {"consumed": consumed.append}))
    got = link.take_peer()
    assert [e.data for e in of(h2.events.DataReceived, got)] == [b"rest"]
    assert of(h2.events.StreamEnded, got) and sum(consumed) == 4
    assert link.cc.stream_capacity() == 1


def _goaway_link(engine: str) -> tuple[Link, bytes, bytes]:
    """Requests 7 (stream 1) and 8 (stream 3); the server's answer to stream 1, then its
    GOAWAY(last_stream_id=1, NO_ERROR): on the wire the GOAWAY comes first."""
    link = client_link(engine)
    link.send(request(7), request(8))
    server = link.peer
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"last words", end_stream=True)
    answer = server.data_to_send()
    server.close_connection(last_stream_id=1)
    return link, server.data_to_send(), answer


@pytest.mark.parametrize("engine", engines())
def test_client_goaway_drains_and_refuses(engine: str) -> None:
    link, goaway, _ = _goaway_link(engine)
    events, _ = pump(link.cc, goaway)
    drain = [e for e in events if isinstance(e, Headers)]
    assert len(drain) == 1 and link.cc.is_heartbeat(drain[0])
    assert drain[0].extensions.get("draining") is True
    assert plain([e for e in events if isinstance(e, Reset)]) == [("Reset", 8, 7)]
    assert [e.extensions.get("refused") for e in events if isinstance(e, Reset)] == [True]
    assert link.cc.stream_capacity() == 0


@pytest.mark.parametrize("engine", engines(h2="h2 moves its connection state machine to CLOSED on "
                                               "a received GOAWAY and refuses every later frame "
                                               "(python-hyper/h2#1181): the answer to stream 1, "
                                               "below last_stream_id, raises RemoteProtocolError"))
def test_client_streams_under_goaway_finish(engine: str) -> None:
    link, goaway, answer = _goaway_link(engine)
    pump(link.cc, goaway)
    events, _ = pump(link.cc, answer)
    assert plain(events) == [("Headers", 7, [(b":status", b"200")], False, events[0].extensions),
                             ("Data", 7, b"last words", True, {"flow": 10})]
    assert link.cc.should_close


@pytest.mark.parametrize("engine", engines(h2="the refused streams are never closed in h2 (no "
                                               "RST_STREAM, no state change), so open_outbound_streams "
                                               "stays > 0 and should_close stays False"))
def test_client_should_close_after_goaway(engine: str) -> None:
    link = client_link(engine)
    link.send(request(7), request(8))
    link.peer.send_headers(1, [(b":status", b"200")], end_stream=True)
    link.exchange()
    link.take()
    link.peer.close_connection(last_stream_id=1)
    link.exchange()
    assert plain([e for e in link.take() if isinstance(e, Reset)]) == [("Reset", 8, 7)]
    assert link.cc.should_close  # stream 1 is done, stream 3 refused: nothing left


@pytest.mark.parametrize("engine", engines(h2="after the client's GOAWAY h2 is CLOSED and refuses "
                                               "to send (python-hyper/h2#1181): send(Headers) raises "
                                               "LocalProtocolError although the GOAWAY concerns only "
                                               "streams the server would open (RFC 9113 6.8)"))
def test_server_answers_after_client_goaway(engine: str) -> None:
    """h2load sends GOAWAY as soon as it sent its last request (as in the shipped vectors)."""
    link = server_link(engine)
    link.peer.send_headers(1, GET, end_stream=True)
    link.exchange()
    # GOAWAY(last_stream_id=0, NO_ERROR) written here: h2 itself would stop reading after it
    events, _ = pump(link.cc, raw_frame(7, 0, 0, bytes(8)))
    assert events == [] and [type(e).__name__ for e in link.take()] == ["Headers"]
    link.send(Headers(1, OK), Data(1, b"still answered", True))
    assert of(h2.events.DataReceived, link.take_peer())[0].data == b"still answered"
    assert link.cc.should_close


@pytest.mark.parametrize("engine", engines(h2="the response's last DATA is acknowledged after h2 "
                                               "reported StreamEnded, when the codec has forgotten "
                                               "the stream: acknowledge() passes stream id 2**31-1, "
                                               "h2 counts the bytes, computes the connection "
                                               "WINDOW_UPDATE, then raises NoSuchStreamError before "
                                               "queueing it; the codec swallows the error and the "
                                               "connection window shrinks for good"))
def test_client_acknowledged_responses_reopen_the_connection_window(engine: str) -> None:
    link = client_link(engine)
    server = link.peer
    assert server.outbound_flow_control_window == CONNECTION_WINDOW
    for uid in range(6):  # 6 x 240 KiB through a 1 MiB connection window
        link.send(request(uid))
        sid = 2 * uid + 1
        server.send_headers(sid, [(b":status", b"200")])
        for i in range(15):
            server.send_data(sid, b"r" * 16384, end_stream=i == 14)
        link.exchange()
        for event in of(Data, link.take()):  # acknowledged once forwarded: after the end
            server.receive_data(flat(link.cc.acknowledge(event.stream_id, event.extensions["flow"])))
        assert server.outbound_flow_control_window >= CONNECTION_WINDOW - 512 * 1024, uid


@pytest.mark.parametrize("engine", [pytest.param("h2", marks=pytest.mark.xfail(
    strict=True, reason="_send_headers records proxy id -> stream id before h2.send_headers, which "
    "raises (TooManyStreamsError); the stale mapping then points to the stream the next request "
    "gets, and a Reset for the failed request id resets that other request"))])
def test_client_failed_request_leaves_no_mapping(engine: str) -> None:
    link = client_link(engine, {SC.MAX_CONCURRENT_STREAMS: 1})
    link.send(request(10, POST, end=False))
    with pytest.raises(LocalProtocolError):
        link.send(request(20))
    link.send(Data(10, b"", True))
    link.peer.send_headers(1, [(b":status", b"200")], end_stream=True)
    link.exchange()
    link.send(request(30, POST, end=False))  # stream 3
    link.take_peer()
    link.send(Reset(20))  # the proxy cleans up the request that failed
    assert of(h2.events.StreamReset, link.take_peer()) == []


@pytest.mark.parametrize("engine", engines())
def test_client_flow_control_of_responses(engine: str) -> None:
    """The client role also holds the server at its window until the proxy acknowledges."""
    link = client_link(engine)
    link.send(request(99))
    server = link.peer
    server.send_headers(1, [(b":status", b"200")])
    sent = 0
    while server.local_flow_control_window(1):
        size = min(server.local_flow_control_window(1), 16384)
        server.send_data(1, b"s" * size)
        sent += size
    link.exchange()
    data = of(Data, link.take())
    assert sent == STREAM_WINDOW and sum(len(d.payload) for d in data) == sent
    assert {d.stream_id for d in data} == {99}
    server.receive_data(b"".join(flat(link.cc.acknowledge(99, d.extensions["flow"])) for d in data))
    # reopened (h2 keeps up to half of it back until more is acknowledged)
    assert server.local_flow_control_window(1) >= STREAM_WINDOW // 2


# -- splits: the same events however the bytes arrive ----------------------------------------


def _client_bytes() -> bytes:
    """What an h2 client writes for a mix of exchanges (our answers are not needed for it)."""
    c = oracle(True)
    c.send_headers(1, [*GET, (b"accept", b"*/*")], end_stream=True)
    c.send_headers(3, [*POST, (b"content-length", b"2000")])
    c.send_data(3, b"a" * 1500)
    c.ping(b"pingpong")
    c.send_data(3, b"b" * 500, end_stream=True)
    c.send_headers(5, GRPC)
    c.send_data(5, b"\x00\x00\x00\x00\x03abc", pad_length=7)
    c.send_headers(5, [(b"x-end", b"1")], end_stream=True)
    for sid in range(7, 27, 2):
        c.send_headers(sid, [*POST[:3], (b":path", b"/c/%d" % sid), (b"x-same", b"dynamic table")])
    for sid in range(7, 27, 2):
        c.send_data(sid, b"%d" % sid, end_stream=True)
    c.reset_stream(7, EC.CANCEL)
    return c.data_to_send()


@pytest.mark.parametrize("engine", engines())
def test_server_splits_give_the_same_events(engine: str) -> None:
    data = _client_bytes()
    whole = plain(feed(codec.connection(Role.SERVER, options(engine)), [data]))
    assert len(whole) >= 25 and whole[-1] == ("Reset", 7, 8)
    assert plain(feed(codec.connection(Role.SERVER, options(engine)),
                      [data[i:i + 1] for i in range(len(data))])) == whole
    rng = random.Random(f"server-{engine}")
    for _ in range(20):
        assert plain(feed(codec.connection(Role.SERVER, options(engine)), cut(data, rng))) == whole


@pytest.mark.parametrize("engine", engines())
def test_client_splits_give_the_same_events(engine: str) -> None:
    requests = [request(1), request(2, POST, end=False), request(3, GRPC, end=False)]
    first = codec.connection(Role.CLIENT, options(engine))
    server = oracle(False)
    server.receive_data(b"".join(flat(first.send(copy.copy(e))) for e in requests))
    server.send_headers(1, [(b":status", b"200"), (b"content-length", b"5")])
    server.send_data(1, b"hello", end_stream=True)
    server.send_headers(5, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.ping(b"87654321")
    server.send_data(5, b"\x00" * 3000, pad_length=100)
    server.send_headers(5, [(b"grpc-status", b"0")], end_stream=True)
    server.reset_stream(3, EC.NO_ERROR)
    answer = server.data_to_send()  # its SETTINGS (and ACK of ours) first

    def decode(chunks: list[bytes]) -> list[Any]:
        cc = codec.connection(Role.CLIENT, options(engine))
        for event in requests:
            cc.send(copy.copy(event))
        return plain(feed(cc, chunks))

    whole = decode([answer])
    assert [e[0] for e in whole] == ["Headers", "Data", "Headers", "Data", "Trailers", "Reset"]
    assert decode([answer[i:i + 1] for i in range(len(answer))]) == whole
    rng = random.Random(f"client-{engine}")
    for _ in range(20):
        assert decode(cut(answer, rng)) == whole


# -- gRPC keys and deadlines -----------------------------------------------------------------


@pytest.mark.parametrize("value, seconds", [
    (b"1H", 3600.0), (b"2M", 120.0), (b"3S", 3.0), (b"250m", 0.25), (b"100u", 1e-4),
    (b"5000n", 5e-6), (b"0S", 0.0), (b"99999999S", 99999999.0),
])
def test_grpc_timeout_units(value: bytes, seconds: float) -> None:
    assert grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"1", b"10s", b"1.5S", b"-1S", b" 1S", b"1S ",
                                   b"123456789S", b"1h", b"0x1S", b"1SS", b"\xd9\xa1S"])
def test_grpc_timeout_invalid(value: bytes) -> None:
    assert grpc_timeout(value) is None


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("value, want", [(b"2S", 2.0), (b"10m", 0.01), (b"bogus", None),
                                         (b"123456789m", None)])
def test_grpc_timeout_on_requests(engine: str, value: bytes, want: float | None) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, [*GRPC[:6], (b"grpc-timeout", value)], end_stream=True)
    link.exchange()
    (head,) = link.take()
    assert head.extensions.get("grpc") is True
    assert head.extensions.get("timeout") == (None if want is None else pytest.approx(want))


@pytest.mark.parametrize("fields, keys", [
    (GRPC, ("pkg.v1.Greeter", "SayHello", "grpc.local", "/pkg.v1.Greeter/SayHello")),
    ([*GRPC[:4], (b"content-type", b"application/grpc+proto")],
     ("pkg.v1.Greeter", "SayHello", "grpc.local", "/pkg.v1.Greeter/SayHello")),
    (GET, ("example.com", "GET", "example.com", "/hello")),
    ([(b":method", b"DELETE"), (b":scheme", b"http"), (b":path", b"/a/b?c=d"), (b"host", b"h:1")],
     ("h", "DELETE", "h", "/a/b")),
    ([*GRPC[:3], (b":path", b"/pkg.Service/Method"), (b"content-type", b"application/json")],
     ("grpc.local", "POST", "grpc.local", "/pkg.Service/Method")),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"[::1]:8443"), (b":path", b"/")],
     ("[::1]", "GET", "[::1]", "/")),
])
def test_request_keys(fields: Fields, keys: tuple[str, ...]) -> None:
    k = codec.request_keys(Headers(1, fields, True))
    assert isinstance(k, HttpKeys)
    assert (k.service, k.method, k.host, k.path) == keys
    assert k.get(":method") == dict(fields)[b":method"].decode()


# -- local replies ---------------------------------------------------------------------------

MESSAGE = "NO ROUTE: café 100% sure\nsecond line"


def _local_reply(engine: str, fields: Fields, status: Status) -> list[Any]:
    link = server_link(engine)
    link.peer.send_headers(1, fields, end_stream=True)
    link.exchange()
    (head,) = link.take()
    link.send(*link.cc.local_reply(head, status, MESSAGE))
    return link.take_peer()


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_grpc_local_reply_is_trailers_only(engine: str, status: Status) -> None:
    got = _local_reply(engine, [*GRPC[:4], (b"content-type", b"application/grpc+proto")], status)
    (resp,) = of(h2.events.ResponseReceived, got)
    assert resp.stream_ended is not None and not of(h2.events.DataReceived, got)
    fields = dict(resp.headers)
    assert fields[b":status"] == b"200" and fields[b"content-type"] == b"application/grpc+proto"
    assert int(fields[b"grpc-status"]) == GRPC_STATUS[status]
    assert unquote(fields[b"grpc-message"].decode("ascii")) == MESSAGE


def test_grpc_status_mapping() -> None:
    assert {s.name: c for s, c in GRPC_STATUS.items()} == {
        "NO_ROUTE": 12, "UNAVAILABLE": 14, "TIMEOUT": 4, "OVERLOADED": 8, "BAD_REQUEST": 13,
        "INTERNAL": 13}


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("status, code", [
    (Status.NO_ROUTE, 404), (Status.UNAVAILABLE, 503), (Status.TIMEOUT, 504),
    (Status.OVERLOADED, 429), (Status.BAD_REQUEST, 400), (Status.INTERNAL, 500)],
    ids=lambda s: getattr(s, "name", str(s)))
def test_http_local_reply(engine: str, status: Status, code: int) -> None:
    got = _local_reply(engine, GET, status)
    (resp,) = of(h2.events.ResponseReceived, got)
    fields = dict(resp.headers)
    body = b"".join(e.data for e in of(h2.events.DataReceived, got))
    assert fields[b":status"] == b"%d" % code and fields[b"content-type"] == b"text/plain"
    assert body == (MESSAGE + "\n").encode() and fields[b"content-length"] == b"%d" % len(body)
    assert of(h2.events.StreamEnded, got)


@pytest.mark.parametrize("engine", engines())
def test_http_local_reply_to_head_has_no_body(engine: str) -> None:
    got = _local_reply(engine, [(b":method", b"HEAD"), *GET[1:]], Status.UNAVAILABLE)
    assert dict(of(h2.events.ResponseReceived, got)[0].headers)[b":status"] == b"503"
    assert not any(e.data for e in of(h2.events.DataReceived, got))


# -- header fields on their way into HTTP/2 --------------------------------------------------


def test_request_fields() -> None:
    assert request_fields([(b":path", b"/p"), (b"host", b"h.example"), (b":method", b"PUT"),
                           (b"te", b"trailers"), (b"connection", b"close"), (b"x", b"1"),
                           (b"http2-settings", b"AAA"), (b"te", b"gzip")]) == [
        (b":method", b"PUT"), (b":scheme", b"http"), (b":authority", b"h.example"), (b":path", b"/p"),
        (b"te", b"trailers"), (b"x", b"1")]
    assert request_fields([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"),
                           (b":path", b"/"), (b"host", b"b")]) == [
        (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]
    assert request_fields([(b":method", b"CONNECT"), (b":authority", b"a:443")]) == [
        (b":method", b"CONNECT"), (b":authority", b"a:443")]
    assert request_fields([]) == [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]


def test_response_fields() -> None:
    fields = [(b":status", b"200"), (b"content-length", b"3")]
    assert response_fields(fields) is fields  # nothing to drop: no copy
    assert response_fields([(b":status", b"200"), (b"connection", b"keep-alive"),
                            (b"transfer-encoding", b"chunked"), (b"keep-alive", b"5"),
                            (b"x", b"1")]) == [(b":status", b"200"), (b"x", b"1")]
    assert response_fields([(b":status", b"200"), (b"grpc-status", b"0")], trailers=True) == [
        (b"grpc-status", b"0")]


@pytest.mark.parametrize("engine", engines())
def test_response_fields_from_http1_reach_the_client_clean(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, GET, end_stream=True)
    link.exchange()
    link.send(Headers(1, [(b":status", b"200"), (b"connection", b"keep-alive"),
                          (b"transfer-encoding", b"chunked"), (b"x-up", b"1")]),
              Data(1, b"ok"), Trailers(1, [(b"x-sum", b"1"), (b"connection", b"close")]))
    got = link.take_peer()
    assert list(of(h2.events.ResponseReceived, got)[0].headers) == [(b":status", b"200"),
                                                                    (b"x-up", b"1")]
    assert list(of(h2.events.TrailersReceived, got)[0].headers) == [(b"x-sum", b"1")]


# -- h2c upgrade -----------------------------------------------------------------------------


def _upgrade(engine: str, body: bytes = b"") -> tuple[Any, h2.connection.H2Connection, list[Event]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                  header_encoding=None))
    settings = client.initiate_upgrade_connection()
    assert settings is not None
    http1 = Headers(1, [(b":method", b"POST" if body else b"GET"), (b":scheme", b"http"),
                        (b":authority", b"example.com"), (b":path", b"/up"),
                        (b"connection", b"Upgrade, HTTP2-Settings"), (b"upgrade", b"h2c"),
                        (b"http2-settings", settings), (b"accept", b"*/*")],
                    not body, {"upgrade": b"h2c"})
    cc = codec.upgraded_connection(options(engine), settings, http1, body)
    events, out = pump(cc, client.data_to_send())
    client.receive_data(out)
    return cc, client, events


@pytest.mark.parametrize("engine", engines())
def test_h2c_upgrade_makes_stream_1(engine: str) -> None:
    cc, client, events = _upgrade(engine)
    assert plain(events) == [("Headers", 1, [(b":method", b"GET"), (b":scheme", b"http"),
                                             (b":authority", b"example.com"), (b":path", b"/up"),
                                             (b"accept", b"*/*")], True,
                              {"http_version": "2", "upgraded": True})]
    got = client.receive_data(flat(cc.send(Headers(1, OK))) + flat(cc.send(Data(1, b"up!", True))))
    assert of(h2.events.ResponseReceived, got)[0].stream_id == 1
    assert of(h2.events.DataReceived, got)[0].data == b"up!"
    client.send_headers(3, GET, end_stream=True)  # and the connection goes on as HTTP/2
    events, _ = pump(cc, client.data_to_send())
    assert [(type(e).__name__, e.stream_id) for e in events] == [("Headers", 3)]


@pytest.mark.parametrize("engine", engines())
def test_h2c_upgrade_with_a_body(engine: str) -> None:
    _, _, events = _upgrade(engine, b"form=1")
    assert [(type(e).__name__, e.end_stream) for e in events] == [("Headers", False), ("Data", True)]
    assert bytes(events[1].payload) == b"form=1" and "flow" not in events[1].extensions


@pytest.mark.parametrize("engine", engines(
    h2="a malformed HTTP2-Settings value makes upgraded_connection() raise binascii.Error, "
       "h2.exceptions.InvalidFrameError or InvalidSettingsValueError"))
@pytest.mark.parametrize("settings", [b"AAAA", b"AAIAAAAC", b"AAMAAABkAAQCAAAAAAIAAAA"])
def test_h2c_upgrade_with_bad_settings_is_a_protocol_error(engine: str, settings: bytes) -> None:
    """The header is the client's input: only RemoteProtocolError may come of it."""
    try:
        cc = codec.upgraded_connection(options(engine), settings, Headers(1, GET, True))
        cc.receive_data(PREFACE + raw_frame(4, 0, 0))
        pump(cc)
    except RemoteProtocolError:
        pass


# -- what the peer may not send ------------------------------------------------------------


def _outcome(engine: str, data: bytes, **kw: Any) -> str:
    cc = codec.connection(Role.SERVER, options(engine, **kw))
    try:
        events, out = pump(cc, data)
    except RemoteProtocolError as exc:
        assert exc.reply is not None and frames(exc.reply)[-1][0] == 7  # GOAWAY
        return "connection error"
    if any(isinstance(e, Reset) and e.stream_id == 1 for e in events):
        return "reset, proxy told"
    mine = [e for e in events if e.stream_id == 1]
    rst = [p for kind, _, sid, p in frames(out) if kind == 3 and sid == 1]
    if not mine and rst:
        return "refused stream"
    return "accepted"


_MALFORMED_LEAN: dict[str, str] = {}  # every case is refused by both engines now


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case, data", [
    ("upper-case name", raw_client(("h", 1, [*GET, (b"X-Up", b"1")], END_HEADERS | END_STREAM))),
    ("connection field", raw_client(("h", 1, [*GET, (b"connection", b"close")], 5))),
    ("te gzip", raw_client(("h", 1, [*GET, (b"te", b"gzip")], 5))),
    ("no :path", raw_client(("h", 1, GET[:3], 5))),
    ("pseudo after regular", raw_client(("h", 1, [*GET[:3], (b"x", b"1"), GET[3]], 5))),
    ("unknown pseudo", raw_client(("h", 1, [*GET, (b":foo", b"1")], 5))),
    ("duplicate :path", raw_client(("h", 1, [*GET, GET[3]], 5))),
    ("CR in value", raw_client(("h", 1, [*GET, (b"x", b"a\rb")], 5))),
    ("space in name", raw_client(("h", 1, [*GET, (b"x y", b"1")], 5))),
    ("tab in content-length name", raw_client(("h", 1, [*POST, (b"content-length\t", b"5")], 4),
                                              ("d", 1, b"12345", 1))),
    ("NUL in name", raw_client(("h", 1, [*GET, (b"x\x00y", b"1")], 5))),
    ("non-ASCII name", raw_client(("h", 1, [*GET, (b"\xff", b"1")], 5))),
    ("whitespace around value", raw_client(("h", 1, [*GET, (b"x-a", b" v ")], 5))),
    ("content-length mismatch", raw_client(("h", 1, [*POST, (b"content-length", b"5")], 4),
                                           ("d", 1, b"0123456789", 1))),
], ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_requests_are_refused(engine: str, case: str, data: bytes,
                                        request: pytest.FixtureRequest) -> None:
    if engine == "lean" and case in _MALFORMED_LEAN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=_MALFORMED_LEAN[case]))
    assert _outcome(engine, data) != "accepted"


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("case, data", [
    ("trailers without END_STREAM", raw_client(("h", 1, POST, END_HEADERS),
                                               ("h", 1, [(b"x-t", b"1")], END_HEADERS))),
    ("DATA after END_STREAM", raw_client(("h", 1, POST, END_HEADERS), ("d", 1, b"a", 1),
                                         ("d", 1, b"b", 1))),
], ids=["trailers without END_STREAM", "DATA after END_STREAM"])
def test_stream_errors_reach_the_proxy(engine: str, case: str, data: bytes) -> None:
    """Once the request head went to the proxy, a stream error on it must come as Reset."""
    assert _outcome(engine, data) in ("reset, proxy told", "connection error")


@pytest.mark.parametrize("engine", engines(h2="options.max_header_size is never enforced: it "
                                               "goes into local_settings as a current value, so h2's "
                                               "HPACK decoder keeps its 64 KiB limit (it is set on "
                                               "SETTINGS ACK only)"))
def test_max_header_size_is_enforced(engine: str) -> None:
    data = raw_client(("h", 1, [*GET, (b"x-big", b"v" * 4000)], 5))
    assert _outcome(engine, data, max_header_size=1024) != "accepted"


@pytest.mark.parametrize("engine", engines(
    h2="max_header_size is not enforced at all (see test_max_header_size_is_enforced)"))
def test_max_header_size_is_enforced_early(engine: str) -> None:
    head = raw_frame(1, 0, 1, b"\x00" * 8192)[:9]  # a HEADERS frame of 8 KiB is announced
    cc = codec.connection(Role.SERVER, options(engine, max_header_size=1024))
    with pytest.raises(RemoteProtocolError):
        pump(cc, PREFACE + raw_frame(4, 0, 0) + head + b"\x00" * 2048)


@pytest.mark.parametrize("engine", engines(h2="h2 makes a HEADERS beyond MAX_CONCURRENT_STREAMS a "
                                               "connection error (TooManyStreamsError -> GOAWAY); "
                                               "RFC 9113 5.1.2 asks for a stream error "
                                               "(PROTOCOL_ERROR or REFUSED_STREAM): every stream of "
                                               "the client is lost"))
def test_too_many_streams(engine: str) -> None:
    """A client may open streams before our SETTINGS reached it (it assumes no limit)."""
    cc = codec.connection(Role.SERVER, options(engine, max_concurrent_streams=2))
    events, out = pump(cc, raw_client(*[("h", sid, GET, 5) for sid in (1, 3, 5)]))
    assert [e.stream_id for e in events] == [1, 3]
    assert [(sid, int.from_bytes(p, "big")) for kind, _, sid, p in frames(out) if kind == 3] == [
        (5, EC.REFUSED_STREAM)]
    assert frames(flat(cc.send(Headers(1, OK, True))))[0][:3] == (1, 5, 1)  # HEADERS, stream 1


@pytest.mark.parametrize("engine", engines(h2="fields are hpack.HeaderTuple objects: copy.deepcopy "
                                               "and pickle rebuild them as 1-tuples "
                                               "((name, value),), which breaks whatever copies "
                                               "events (the conformance suite's Subject.decoded)"))
def test_fields_are_plain_pairs(engine: str) -> None:
    link = server_link(engine)
    link.peer.send_headers(1, GET, end_stream=True)
    link.exchange()
    (head,) = link.take()
    assert copy.deepcopy(head.fields) == GET
    assert all(type(f) is tuple for f in head.fields)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT], ids=["server", "client"])
def test_table_size_update_after_the_peer_shrinks_its_table(engine: str, role: Role) -> None:
    if role is Role.SERVER:
        link = server_link(engine, {SC.HEADER_TABLE_SIZE: 0})
        link.peer.send_headers(1, GET, end_stream=True)
        link.exchange()
        out = flat(link.cc.send(Headers(1, OK, True)))
    else:
        link = client_link(engine, {SC.HEADER_TABLE_SIZE: 0})
        out = flat(link.cc.send(request(1)))
    block = [p for kind, _, _, p in frames(out) if kind == 1][0]
    assert block[0] & 0xE0 == 0x20 and block[0] & 0x1F == 0  # "table size is now 0"


@pytest.mark.parametrize("engine", engines())
def test_never_indexed_fields_are_forwarded_never_indexed(engine: str) -> None:
    downstream = server_link(engine)
    secret = hpack.NeverIndexedHeaderTuple(b"authorization", b"Bearer s3cret")
    downstream.peer.send_headers(1, [*GET, secret], end_stream=True)
    downstream.exchange()
    (head,) = downstream.take()
    upstream = client_link(engine)
    upstream.send(head)
    (req,) = of(h2.events.RequestReceived, upstream.take_peer())
    (field,) = [f for f in req.headers if f[0] == b"authorization"]
    assert isinstance(field, hpack.NeverIndexedHeaderTuple)


@pytest.mark.parametrize("engine", engines())
def test_protocol_error_reply_is_goaway(engine: str) -> None:
    cc = codec.connection(Role.SERVER, options(engine))
    with pytest.raises(RemoteProtocolError) as info:
        pump(cc, PREFACE + raw_frame(4, 0, 0) + raw_frame(0, 0, 0, b"data on stream 0"))
    reply = info.value.reply
    assert reply is not None
    parsed = frames(reply)
    goaways = [p for kind, _, _, p in parsed if kind == 7]
    assert parsed[-1][0] == 7 and goaways
    assert int.from_bytes(goaways[-1][4:8], "big") == EC.PROTOCOL_ERROR
    with pytest.raises(RemoteProtocolError):  # it stays failed
        cc.next_event()


@pytest.mark.parametrize("engine", engines())
def test_eof_gives_closed(engine: str) -> None:
    cc = codec.connection(Role.SERVER, options(engine))
    cc.receive_data(PREFACE + raw_frame(4, 0, 0))
    pump(cc)
    cc.receive_data(b"")
    assert cc.next_event() is CLOSED
