"""Hostile input for the http2 codec, both engines, both roles: whatever the peer sends, the
codec gives events or raises RemoteProtocolError, never anything else, and the reply of a
RemoteProtocolError is whole frames ending in a GOAWAY with an error code.

Seeds are valid exchanges written by the ``h2`` library; hypothesis mutates them byte-wise
(bit flips, truncation, deletion, insertion, duplication) and frame-wise (wrong lengths,
types, flags and stream ids; CONTINUATION without HEADERS, DATA on stream 0, oversize
frames, HEADERS with garbage HPACK) and cuts them at random points. The codec is driven the
way a proxy drives it: control events are sent, requests are answered, Data is
acknowledged; those calls may raise LocalProtocolError and nothing else.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import h2.config
import h2.connection
import h2.errors
import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mesh.codecs.http2 import PREFACE, codec

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Reset,
    Role,
    Trailers,
)

ENGINES = ("lean", "h2")
EC = h2.errors.ErrorCodes
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"),
        (b":path", b"/p"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        (b"grpc-timeout", b"1S")]


def _oracle(client: bool) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=client,
                                                                header_encoding=None))
    conn.initiate_connection()
    return conn


def _flat(buffers: Any) -> bytes:
    return b"".join(bytes(b) for b in buffers) if isinstance(buffers, list) else bytes(buffers)


def _server_seed() -> bytes:
    """What an h2 client writes: several exchanges and connection-level frames."""
    c = _oracle(True)
    c.send_headers(1, GET, end_stream=True)
    c.send_headers(3, POST)
    c.send_data(3, b"\x00\x00\x00\x00\x04ping", pad_length=3)
    c.send_headers(3, [(b"x-trailer", b"1")], end_stream=True)
    c.ping(b"01234567")
    c.increment_flow_control_window(1000)
    c.send_headers(5, [*GET[:3], (b":path", b"/x" * 300), (b"cookie", b"c" * 40)])
    c.reset_stream(5, EC.CANCEL)
    c.send_headers(7, POST, end_stream=False)
    c.send_data(7, b"z" * 300, end_stream=True)
    return c.data_to_send()


#: requests our client role sends before it reads the server's bytes
_REQUESTS: list[Event] = [Headers(1, GET, True, {"http_version": "2"}),
                          Headers(2, POST, False, {"http_version": "2"}), Data(2, b"body", True),
                          Headers(3, POST, False, {"http_version": "2"})]


def _client_seed() -> bytes:
    """What an h2 server writes back to our client role's requests."""
    cc = codec.connection(Role.CLIENT, ConnectionOptions())
    s = _oracle(False)
    s.receive_data(b"".join(_flat(cc.send(copy.copy(e))) for e in _REQUESTS))
    s.send_headers(1, [(b":status", b"200"), (b"content-length", b"5")])
    s.send_data(1, b"hello", end_stream=True)
    s.send_headers(3, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    s.send_data(3, b"\x00" * 40, pad_length=9)
    s.ping(b"76543210")
    s.send_headers(3, [(b"grpc-status", b"0"), (b"grpc-message", b"")], end_stream=True)
    s.reset_stream(5, EC.INTERNAL_ERROR)
    s.close_connection(last_stream_id=3)
    return s.data_to_send()


SERVER_SEED = _server_seed()
CLIENT_SEED = _client_seed()


# -- driving the codec as a proxy would ------------------------------------------------------


def _check_reply(reply: bytes) -> None:
    """Whole frames; the last a GOAWAY (type 7) with a stream id of 0 and an error code."""
    pos, last = 0, None
    while pos < len(reply):
        assert len(reply) - pos >= 9, f"reply ends inside a frame header: {reply!r}"
        size = int.from_bytes(reply[pos:pos + 3], "big")
        assert len(reply) - pos - 9 >= size, f"reply ends inside a frame: {reply!r}"
        last = (reply[pos + 3], int.from_bytes(reply[pos + 5:pos + 9], "big"),
                reply[pos + 9:pos + 9 + size])
        pos += 9 + size
    assert last is not None and last[0] == 7, f"the reply does not end in GOAWAY: {reply!r}"
    assert last[1] == 0 and len(last[2]) >= 8
    assert int.from_bytes(last[2][4:8], "big") != 0, "GOAWAY without an error code"


def _answer(cc: Any, event: Event, role: Role, answered: set[int]) -> None:
    """What a proxy does with an event: answer requests, acknowledge Data."""
    try:
        if type(event) is Data:
            cc.acknowledge(event.stream_id, event.extensions.get("flow", 0))
        if role is Role.SERVER and type(event) is Headers and event.stream_id not in answered:
            answered.add(event.stream_id)
            cc.send(Headers(event.stream_id, [(b":status", b"200")]))
            cc.send(Data(event.stream_id, b"answer", False, {"consumed": lambda n: None}))
            cc.send(Trailers(event.stream_id, [(b"x-done", b"1")]))
        if role is Role.CLIENT and type(event) is Headers and not event.end_stream:
            cc.send(Reset(event.stream_id))
    except LocalProtocolError:
        pass


def drive(engine: str, role: Role, data: bytes, cuts: list[int], eof: bool) -> str:
    """Feed ``data`` cut at ``cuts``; 'events' or 'refused'. Anything else raised fails."""
    cc = codec.connection(role, ConnectionOptions(max_header_size=8192, extra={"engine": engine}))
    if role is Role.CLIENT:
        for event in _REQUESTS:
            cc.send(copy.copy(event))
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    if eof:
        chunks.append(b"")
    answered: set[int] = set()
    budget = 4 * len(data) + 64
    try:
        for chunk in chunks:
            cc.receive_data(chunk)
            while True:
                event = cc.next_event()
                if event is NEED_DATA or event is CLOSED:
                    break
                assert type(event) in (Headers, Data, Trailers, Reset), event
                budget -= 1
                assert budget > 0, "more events than the input can carry"
                if cc.is_heartbeat(event):
                    cc.send(event)
                else:
                    _answer(cc, event, role, answered)
    except RemoteProtocolError as exc:
        if exc.reply is not None:
            _check_reply(bytes(exc.reply))
        return "refused"
    return "events"


# -- mutations -------------------------------------------------------------------------------


def _split_frames(data: bytes) -> tuple[bytes, list[bytearray]]:
    head = PREFACE if data.startswith(PREFACE) else b""
    pos, out = len(head), []
    while pos + 9 <= len(data):
        size = int.from_bytes(data[pos:pos + 3], "big")
        out.append(bytearray(data[pos:pos + 9 + size]))
        pos += 9 + size
    return head, out


def _frame(kind: int, flags: int, sid: int, payload: bytes, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    return size.to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


_hpack_garbage = st.binary(min_size=1, max_size=40)
_valid_block = st.builds(lambda n, v: hpack.Encoder().encode([*GET, (n, v)]),
                         st.binary(min_size=1, max_size=8), st.binary(max_size=8))
_special_frames = st.one_of(
    st.builds(lambda sid, p: _frame(9, 4, sid, p), st.integers(0, 9), _hpack_garbage),  # CONTINUATION
    st.builds(lambda p: _frame(0, 1, 0, p), st.binary(max_size=20)),  # DATA on stream 0
    st.builds(lambda size, p: _frame(0, 0, 1, p, size), st.integers(16385, 2**24 - 1),
              st.binary(max_size=64)),  # oversize
    st.builds(lambda sid, fl, p: _frame(1, fl, sid, p), st.integers(0, 11), st.integers(0, 255),
              _hpack_garbage),  # HEADERS, garbage HPACK
    st.builds(lambda sid, fl, p: _frame(1, fl, sid, p), st.integers(1, 11), st.sampled_from([4, 5, 0]),
              _valid_block),  # HEADERS, maybe odd stream / flags
    st.builds(lambda k, fl, sid, p: _frame(k, fl, sid, p), st.integers(0, 12), st.integers(0, 255),
              st.integers(0, 2**31 - 1), st.binary(max_size=24)),  # anything
    st.builds(lambda inc, sid: _frame(8, 0, sid, inc.to_bytes(4, "big")),
              st.integers(0, 2**32 - 1), st.integers(0, 5)),  # WINDOW_UPDATE, any increment
    st.builds(lambda k, v: _frame(4, 0, 0, k.to_bytes(2, "big") + v.to_bytes(4, "big")),
              st.integers(0, 10), st.integers(0, 2**32 - 1)),  # SETTINGS, any value
)
_frame_op = st.one_of(
    st.tuples(st.just("length"), st.integers(0, 99), st.integers(-20, 20)),
    st.tuples(st.just("type"), st.integers(0, 99), st.integers(0, 12)),
    st.tuples(st.just("flags"), st.integers(0, 99), st.integers(0, 255)),
    st.tuples(st.just("sid"), st.integers(0, 99), st.integers(0, 12)),
    st.tuples(st.just("insert"), st.integers(0, 99), _special_frames),
    st.tuples(st.just("drop"), st.integers(0, 99), st.just(0)),
    st.tuples(st.just("swap"), st.integers(0, 99), st.integers(0, 99)),
)
_byte_op = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 16)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("duplicate"), st.integers(0, 1 << 16), st.integers(1, 64)),
)


def _frame_mutate(data: bytes, ops: list[tuple[str, int, Any]]) -> bytes:
    head, parts = _split_frames(data)
    for op, at, arg in ops:
        i = at % (len(parts) + 1)
        if op == "insert":
            parts.insert(i, bytearray(arg))
            continue
        if not parts:
            continue
        i %= len(parts)
        part = parts[i]
        if op == "length":
            size = max(0, int.from_bytes(part[:3], "big") + arg)
            part[:3] = min(size, 2**24 - 1).to_bytes(3, "big")
        elif op == "type":
            part[3] = arg
        elif op == "flags":
            part[4] = arg
        elif op == "sid":
            part[5:9] = arg.to_bytes(4, "big")
        elif op == "drop":
            del parts[i]
        elif op == "swap":
            j = arg % len(parts)
            parts[i], parts[j] = parts[j], parts[i]
    return head + b"".join(bytes(p) for p in parts)


def _byte_mutate(data: bytes, ops: list[tuple[str, int, Any]]) -> bytes:
    for op, at, arg in ops:
        where = at % (len(data) + 1)
        if op == "flip" and data:
            where %= len(data)
            data = data[:where] + bytes([data[where] ^ (1 << arg)]) + data[where + 1:]
        elif op == "truncate":
            data = data[:where]
        elif op == "delete":
            data = data[:where] + data[where + arg:]
        elif op == "insert":
            data = data[:where] + arg + data[where:]
        elif op == "duplicate":
            data = data[:where] + data[where:where + arg] + data[where:]
    return data


_cuts = st.lists(st.integers(0, 1 << 16), max_size=8)
_roles = pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT], ids=["server", "client"])
_engines = pytest.mark.parametrize("engine", ENGINES)


def _seed(role: Role) -> bytes:
    return SERVER_SEED if role is Role.SERVER else CLIENT_SEED


# -- the properties ------------------------------------------------------------------------


@_engines
@_roles
def test_seeds_are_valid(engine: str, role: Role) -> None:
    data = _seed(role)
    assert drive(engine, role, data, [], False) == "events"
    rng = random.Random(0)
    for _ in range(5):
        assert drive(engine, role, data, rng.sample(range(len(data)), 6), True) == "events"


@_engines
@_roles
@FUZZ
@given(tail=st.binary(max_size=600), cuts=_cuts, eof=st.booleans(), settings_first=st.booleans())
def test_random_bytes_after_the_preface(engine: str, role: Role, tail: bytes, cuts: list[int],
                                        eof: bool, settings_first: bool) -> None:
    opening = _frame(4, 0, 0, b"") if settings_first else b""
    data = (PREFACE if role is Role.SERVER else b"") + opening + tail
    drive(engine, role, data, cuts, eof)


@_engines
@_roles
@FUZZ
@given(ops=st.lists(_frame_op, min_size=1, max_size=5), cuts=_cuts, eof=st.booleans())
def test_mutated_frames(engine: str, role: Role, ops: list[Any], cuts: list[int], eof: bool) -> None:
    drive(engine, role, _frame_mutate(_seed(role), ops), cuts, eof)


@_engines
@_roles
@FUZZ
@given(ops=st.lists(_byte_op, min_size=1, max_size=6), cuts=_cuts, eof=st.booleans())
def test_mutated_bytes(engine: str, role: Role, ops: list[Any], cuts: list[int], eof: bool) -> None:
    drive(engine, role, _byte_mutate(_seed(role), ops), cuts, eof)


# -- what must be refused, whatever else ------------------------------------------------------

_SETTINGS = _frame(4, 0, 0, b"")
_REFUSED = {
    "CONTINUATION without HEADERS": _frame(9, 4, 1, hpack.Encoder().encode(GET)),
    "DATA on stream 0": _frame(0, 1, 0, b"data"),
    "oversize frame": _frame(0, 0, 1, b"x" * 100, 16385),
    "invalid HPACK": _frame(1, 5, 1, b"\xff\xff\xff\xff\xff\xff"),
    "HEADERS on stream 0": _frame(1, 5, 0, hpack.Encoder().encode(GET)),
    "PING of 7 bytes": _frame(6, 0, 0, b"1234567"),
    "SETTINGS on a stream": _frame(4, 0, 1, b""),
    "SETTINGS of 5 bytes": _frame(4, 0, 0, b"12345"),
    "WINDOW_UPDATE of 0 on the connection": _frame(8, 0, 0, bytes(4)),
    "window overflow": _frame(8, 0, 0, (2**31 - 1).to_bytes(4, "big")),
    "PUSH_PROMISE": _frame(5, 4, 1, bytes(4) + hpack.Encoder().encode(GET)),
    "frame inside a header block": _frame(1, 0, 1, b"") + _frame(6, 0, 0, bytes(8)),
}


@_engines
@pytest.mark.parametrize("case", list(_REFUSED))
def test_connection_errors_are_refused_with_goaway(engine: str, case: str,
                                                   request: pytest.FixtureRequest) -> None:
    if engine == "h2" and case == "oversize frame":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "h2's FrameBuffer checks a frame's length against SETTINGS_MAX_FRAME_SIZE only once the "
            "whole frame is buffered: a frame header announcing 16 MiB - 1 makes the h2 engine hold "
            "up to 16 MiB per connection before it refuses")))
    data = PREFACE + _SETTINGS + _REFUSED[case]
    if case == "PUSH_PROMISE":  # only a server may push: the client role reads it
        cc = codec.connection(Role.CLIENT, ConnectionOptions(extra={"engine": engine}))
        cc.send(Headers(1, GET, True, {"http_version": "2"}))
        data = _SETTINGS + _REFUSED[case]
    else:
        cc = codec.connection(Role.SERVER, ConnectionOptions(extra={"engine": engine}))
    cc.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            event = cc.next_event()
            if cc.is_heartbeat(event):
                cc.send(event)
            assert event is not NEED_DATA, "accepted"
    assert info.value.reply is not None
    _check_reply(bytes(info.value.reply))


# -- the two engines agree on valid traffic --------------------------------------------------

_NAMES = st.sampled_from([b"x-a", b"accept", b"user-agent", b"content-type", b"cookie", b"x-a-longer-name"])
_VALUES = st.binary(max_size=30).map(lambda b: bytes(c for c in b if 0x21 <= c <= 0x7E) or b"v")
_CLIENT_OPS = st.lists(st.one_of(
    st.tuples(st.just("open"), st.lists(st.tuples(_NAMES, _VALUES), max_size=4), st.booleans()),
    st.tuples(st.just("data"), st.integers(0, 20), st.integers(0, 5000), st.booleans(),
              st.one_of(st.none(), st.integers(0, 255))),
    st.tuples(st.just("trailers"), st.integers(0, 20)),
    st.tuples(st.just("reset"), st.integers(0, 20), st.integers(0, 13)),
    st.tuples(st.just("ping")),
    st.tuples(st.just("window"), st.integers(1, 100_000)),
), max_size=25)


def _client_session(ops: list[Any]) -> bytes:
    """What an h2 client writes doing ``ops`` (operations h2 refuses are left out)."""
    c = _oracle(True)
    opened: list[int] = []
    for op in ops:
        try:
            if op[0] == "open":
                sid = c.get_next_available_stream_id()
                c.send_headers(sid, [*POST[:4], *op[1]], end_stream=op[2])
                opened.append(sid)
            elif op[0] == "data" and opened:
                sid = opened[op[1] % len(opened)]
                size = min(op[2], c.local_flow_control_window(sid), 16000)
                pad = op[4] if op[4] is not None and size + op[4] + 1 <= c.local_flow_control_window(
                    sid) else None
                c.send_data(sid, b"d" * size, end_stream=op[3], pad_length=pad)
            elif op[0] == "trailers" and opened:
                c.send_headers(opened[op[1] % len(opened)], [(b"x-t", b"1")], end_stream=True)
            elif op[0] == "reset" and opened:
                c.reset_stream(opened[op[1] % len(opened)], op[2])
            elif op[0] == "ping":
                c.ping(b"12345678")
            elif op[0] == "window":
                c.increment_flow_control_window(op[1])
        except h2.exceptions.ProtocolError:
            pass
    return c.data_to_send()


def _decoded(engine: str, chunks: list[bytes]) -> Any:
    cc = codec.connection(Role.SERVER, ConnectionOptions(extra={"engine": engine}))
    out: list[Any] = []
    try:
        for chunk in chunks:
            cc.receive_data(chunk)
            while (event := cc.next_event()) is not NEED_DATA:
                if cc.is_heartbeat(event):
                    cc.send(event)
                    continue
                if isinstance(event, Headers | Trailers):
                    out.append((type(event).__name__, event.stream_id,
                                [(bytes(n), bytes(v)) for n, v in event.fields], event.end_stream,
                                event.extensions))
                elif isinstance(event, Data):
                    out.append(("Data", event.stream_id, bytes(event.payload), event.end_stream,
                                event.extensions))
                else:
                    out.append(("Reset", event.stream_id, int(event.error_code)))
    except RemoteProtocolError as exc:
        out.append(("refused", str(exc)))
    return out


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=_CLIENT_OPS, cuts=_cuts)
def test_engines_agree_on_valid_client_traffic(ops: list[Any], cuts: list[int]) -> None:
    data = _client_session(ops)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    lean = _decoded("lean", chunks)
    assert not any(e[0] == "refused" for e in lean), lean
    assert lean == _decoded("h2", chunks)
