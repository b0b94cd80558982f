"""The Redis plain lane, sans I/O: ``next_plain``/``next_event`` as the read loop drives them,
and ``send_plain`` (ketama's ``pick_key`` and ``FilterChain.acts_on``:
tests/unit/test_plain_lane_routing.py).

The driver ``_drive`` does what mesh/proxy/multiplex.py's ``_read_loop`` does with the
codec: the plain lane (mesh/proxy/plain.py ``PlainLane.forward``) takes ``next_plain()``
until it returns None, then ``next_event()`` is called once; a Headers event is answered
through ``local_answer`` (as ``MultiplexSession._start`` does) and the loop starts over;
NEED_DATA asks for the next chunk.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from mesh.codecs.redis import codec
from mesh.codecs.redis._server import ServerConnection

from mesh.codec import CLOSED, NEED_DATA, ConnectionOptions, Headers, RemoteProtocolError, Role

#: ("plain", command, key, raw) from next_plain; ("event", stream id, args, raw) from next_event
Item = tuple[Any, ...]


def _enc(*args: bytes) -> bytes:
    """The canonical RESP array of bulk strings (written here, not the codec's encoder)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _server(options: ConnectionOptions | None = None) -> ServerConnection:
    conn = codec.connection(Role.SERVER, options or ConnectionOptions())
    assert isinstance(conn, ServerConnection)
    return conn


def _pump(conn: ServerConnection, out: list[Item], answer: bool) -> bool:
    """One round of the read loop's inner part: False once it wants data (or is closed)."""
    while (plain := conn.next_plain()) is not None:
        out.append(("plain", *plain))
    event = conn.next_event()
    if event is NEED_DATA or event is CLOSED:
        return False
    assert type(event) is Headers
    out.append(("event", event.stream_id, list(event.extensions["args"]), event.extensions["raw"]))
    if answer:
        conn.local_answer(event)
    return True


def _drive(chunks: list[bytes], conn: ServerConnection | None = None, answer: bool = True,
           eof: bool = True) -> list[Item]:
    """Feed ``chunks`` (then EOF) as the multiplexed session does; every request, in order."""
    conn = conn or _server()
    out: list[Item] = []
    for chunk in [*chunks, b""] if eof else chunks:
        conn.receive_data(chunk)
        while _pump(conn, out, answer):
            pass
    return out


def _drive_until_error(chunks: list[bytes]) -> tuple[list[Item], BaseException | None]:
    """``_drive`` without local answers, keeping what came out before an exception."""
    conn = _server()
    out: list[Item] = []
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            while _pump(conn, out, answer=False):
                pass
    except Exception as exc:  # the caller says which exceptions are allowed
        return out, exc
    return out, None


def _splits(data: bytes, seed: int, ways: int = 20) -> list[list[bytes]]:
    """Whole, one byte at a time, and ``ways`` seeded random cuts."""
    rng = random.Random(seed)
    result = [[data], [data[i:i + 1] for i in range(len(data))]]
    for _ in range(ways):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
        result.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return result


def _raws(items: list[Item]) -> list[bytes]:
    return [item[-1] for item in items]


# -- 1. plain requests -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    (b"GET", b"k"),
    (b"get", b"k\r\n\x00\xff"),
    (b"GeT", b""),
    (b"SET", b"{user1}:name", b"value with\r\nCRLF"),
    (b"set", b"k", b"v", b"EX", b"10", b"NX"),
    (b"HSET", b"h", b"f1", b"v1", b"f2", b"v2"),
    (b"EXPIRE", b"k", b"10"),
    (b"EXPIRE", b"k", b"10", b"NX"),
    (b"HINCRBY", b"h", b"f", b"-3"),
])
def test_next_plain_returns_command_key_and_the_exact_bytes(args: tuple[bytes, ...]) -> None:
    """A one-key command comes out as (command as sent, first key, byte-identical raw)."""
    data = _enc(*args)
    conn = _server()
    conn.receive_data(data)
    assert conn.next_plain() == (args[0], args[1], data)
    assert conn.next_plain() is None
    assert conn.next_event() is NEED_DATA


def _plain_pipeline(seed: int, n: int = 50) -> tuple[bytes, list[tuple[bytes, bytes, bytes]]]:
    rng = random.Random(seed)
    requests = []
    for i in range(n):
        key = rng.choice([b"k%d" % i, b"{user%d}:x" % (i % 5), b"bin\r\n\x00\xff%d" % i, b"", b"*2\r\n"])
        value = rng.choice([b"v", b"", b"\r\n$3\r\n*1\r\n", bytes(rng.randrange(256) for _ in range(300)),
                            b"x" * 5000])
        args = rng.choice([
            (b"GET", key), (b"get", key), (b"SET", key, value), (b"SET", key, value, b"EX", b"10"),
            (b"HSET", key, b"f", value, b"g", b"1"), (b"EXPIRE", key, b"10"), (b"INCR", key),
            (b"HINCRBY", key, b"f", b"2"), (b"LPUSH", key, value, value), (b"ZADD", key, b"1.5", b"m"),
            (b"hget", key, b"f"), (b"TTL", key),
        ])
        requests.append((args[0], args[1], _enc(*args)))
    return b"".join(raw for _, _, raw in requests), requests


def test_a_plain_pipeline_walks_under_any_split() -> None:
    """50 plain commands come out in order, raw bytes concatenating to the input, whatever the chunks."""
    data, requests = _plain_pipeline(7)
    expected = [("plain", *request) for request in requests]
    for chunks in _splits(data, 11):
        out = _drive(chunks)
        assert out == expected
        assert b"".join(_raws(out)) == data


def test_plain_pipeline_across_buffer_compaction() -> None:
    """More than 64 KiB consumed then new input: the parser stays in step with the buffer."""
    big = _enc(b"SET", b"big", b"y" * 70_000)
    small = _enc(b"GET", b"k")
    conn = _server()
    out = _drive([big + small[:5]], conn, eof=False)
    out += _drive([small[5:] + big, small], conn)
    assert out == [("plain", b"SET", b"big", big), ("plain", b"GET", b"k", small),
                   ("plain", b"SET", b"big", big), ("plain", b"GET", b"k", small)]


# -- 2. non-plain requests and mixed pipelines -------------------------------------------------

NON_PLAIN = [
    (b"PING",),
    (b"ECHO", b"hi"),
    (b"MGET", b"a", b"b", b"c"),
    (b"DEL", b"a", b"b"),
    (b"NOSUCHCOMMAND", b"k"),
    (b"GET", b"k", b"extra"),  # wrong arity
    (b"GET",),  # wrong arity, and no key
    (b"SET", b"k"),  # wrong arity (at least 3)
    (b"RENAME", b"a", b"b"),  # "same" kind, two keys
    (b"BLPOP", b"q", b"0"),  # blocking
    (b"MULTI",),
]


@pytest.mark.parametrize("args", NON_PLAIN)
def test_non_plain_requests_are_left_for_next_event(args: tuple[bytes, ...]) -> None:
    """next_plain says None and next_event returns the request, args and raw intact."""
    data = _enc(*args)
    conn = _server()
    conn.receive_data(data)
    assert conn.next_plain() is None
    assert conn.next_plain() is None  # asking again neither consumes nor loses it
    event = conn.next_event()
    assert isinstance(event, Headers)
    assert event.extensions["args"] == list(args)
    assert event.extensions["raw"] == data
    assert event.fields == [(b":command", args[0].upper())]
    assert conn.next_event() is NEED_DATA


def _mixed_pipeline(seed: int, n: int = 60) -> tuple[bytes, list[tuple[bool, tuple[bytes, ...]]]]:
    """Plain and non-plain arrays (no state-changing ones), and whether each is plain."""
    rng = random.Random(seed)
    plain = [(b"GET", b"k"), (b"SET", b"k", b"v\r\n"), (b"HSET", b"h", b"f", b"v"), (b"EXPIRE", b"k", b"5"),
             (b"incr", b"n")]
    other = [args for args in NON_PLAIN if args[0] != b"MULTI"]
    requests = [(True, rng.choice(plain)) if rng.random() < 0.5 else (False, rng.choice(other))
                for _ in range(n)]
    return b"".join(_enc(*args) for _, args in requests), requests


def test_mixed_pipeline_keeps_the_order_through_the_driver() -> None:
    """Alternating next_plain and next_event as the read loop does keeps the client's order."""
    data, requests = _mixed_pipeline(3)
    for chunks in _splits(data, 5):
        out = _drive(chunks)
        assert [item[0] == "plain" for item in out] == [is_plain for is_plain, _ in requests]
        assert _raws(out) == [_enc(*args) for _, args in requests]
        assert [item[2] for item in out if item[0] == "event"] == [
            list(args) for is_plain, args in requests if not is_plain]
        assert [item[1] for item in out if item[0] == "event"] == list(
            range(1, 1 + sum(not p for p, _ in requests)))  # stream ids only for next_event


# -- 3. inline commands between arrays ---------------------------------------------------------


def test_inline_commands_between_arrays_come_out_in_order() -> None:
    """Telnet-style lines and arrays in one buffer: every request, in order, under any split."""
    set_ = _enc(b"SET", b"k3", b"v")
    data = (b"PING\r\n" + _enc(b"GET", b"k") + b"GET k2\r\n" + set_ + b"hget  h   f\n"
            + b"\r\n" + _enc(b"MGET", b"a", b"b") + b"EXPIRE k 1\r\n" + _enc(b"GET", b"last"))
    expected: list[Item] = [
        ("event", 1, [b"PING"], _enc(b"PING")),
        ("plain", b"GET", b"k", _enc(b"GET", b"k")),
        ("event", 2, [b"GET", b"k2"], _enc(b"GET", b"k2")),
        ("plain", b"SET", b"k3", set_),
        ("event", 3, [b"hget", b"h", b"f"], _enc(b"hget", b"h", b"f")),
        ("event", 4, [b"MGET", b"a", b"b"], _enc(b"MGET", b"a", b"b")),
        ("event", 5, [b"EXPIRE", b"k", b"1"], _enc(b"EXPIRE", b"k", b"1")),
        ("plain", b"GET", b"last", _enc(b"GET", b"last")),
    ]
    for chunks in _splits(data, 8):
        assert _drive(chunks) == expected


# -- 4. empty arrays, malformed input, fuzz ----------------------------------------------------


@pytest.mark.parametrize("empty", [b"*0\r\n", b"*-1\r\n"])
def test_empty_arrays_are_skipped_by_next_event(empty: bytes) -> None:
    """``*0`` and ``*-1`` between requests produce nothing on the general path (as Redis)."""
    conn = _server()
    conn.receive_data(_enc(b"PING") + empty + _enc(b"GET", b"k"))
    first, second = conn.next_event(), conn.next_event()
    assert isinstance(first, Headers) and isinstance(second, Headers)
    assert first.extensions["args"] == [b"PING"] and second.extensions["args"] == [b"GET", b"k"]
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize("empty", [b"*0\r\n", b"*-1\r\n"])
def test_empty_arrays_are_skipped_through_the_plain_lane(empty: bytes) -> None:
    """``*0`` and ``*-1`` seen first by next_plain are skipped too (Redis ignores them)."""
    data = _enc(b"PING") + empty + _enc(b"GET", b"k") + empty
    out = _drive([data])
    assert out == [("event", 1, [b"PING"], _enc(b"PING")), ("plain", b"GET", b"k", _enc(b"GET", b"k"))]


MALFORMED = [
    b"*1\r\n$abc\r\n",  # bulk length not a number
    b"*2\r\n:1\r\n$1\r\nx\r\n",  # an integer where a bulk string belongs
    b"*2\r\n$3\r\nGET\r\n+k\r\n",  # a simple string where a bulk string belongs
    b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nk\r\n",  # a nested array
    b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n",  # leading zero in a bulk length
    b"*2\r\n$3\r\nGET\r\n$01\r\nk\r\n",
    b"*02\r\n$3\r\nGET\r\n$1\r\nk\r\n",  # leading zero in an array length
    b"*2\r\n$3\r\nGET\r\n$-1\r\n",  # a null bulk string as an argument
    b"*2\r\n$3\r\nGETxx$1\r\nk\r\n",  # bulk string not terminated by CRLF
    b"*2\r\n$3\r\nGET\r\n$2048\r\n",  # over max_frame_size (1024 here), the body not sent yet
    b"*x\r\n",
    b"*-2\r\n",
]


@pytest.mark.parametrize("data", MALFORMED)
@pytest.mark.parametrize("first", ["next_plain", "next_event"])
def test_malformed_requests_raise_a_protocol_error(data: bytes, first: str) -> None:
    """Bad framing raises RemoteProtocolError with a Redis "Protocol error" reply, from either call."""
    conn = _server(ConnectionOptions(max_frame_size=1024))
    conn.receive_data(_enc(b"GET", b"ok") + data)
    assert conn.next_plain() == (b"GET", b"ok", _enc(b"GET", b"ok"))
    with pytest.raises(RemoteProtocolError) as info:
        getattr(conn, first)()
        conn.next_event()  # reached only if next_plain left the bad bytes for next_event
    assert str(info.value).startswith("Protocol error")
    assert info.value.reply is not None and info.value.reply.startswith(b"-ERR Protocol error")


@pytest.mark.parametrize("first", ["next_plain", "next_event"])
def test_an_oversized_bulk_announced_then_sent_in_pieces_is_refused(first: str) -> None:
    """The length over max_frame_size is refused as soon as its line is there."""
    conn = _server(ConnectionOptions(max_frame_size=1024))
    conn.receive_data(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2048\r\n" + b"x" * 100)
    with pytest.raises(RemoteProtocolError) as info:
        getattr(conn, first)()
    assert info.value.reply is not None and info.value.reply.startswith(b"-ERR Protocol error")


@pytest.mark.parametrize("first", ["next_plain", "next_event"])
def test_an_oversized_bulk_that_arrives_whole_is_refused(first: str) -> None:
    """A bulk over max_frame_size is refused even when all its bytes are already buffered."""
    conn = _server(ConnectionOptions(max_frame_size=1024))
    conn.receive_data(_enc(b"SET", b"k", b"x" * 2048))
    with pytest.raises(RemoteProtocolError):
        getattr(conn, first)()
        conn.next_event()


def _fuzz_pipeline() -> tuple[bytes, list[int]]:
    """A valid pipeline of plain, non-plain and inline requests, and each request's end offset."""
    parts = [_enc(b"GET", b"k"), _enc(b"SET", b"{t}a", b"v\r\n1"), b"PING\r\n", _enc(b"MGET", b"a", b"b"),
             _enc(b"HSET", b"h", b"f", b"12345"), b"GET k2\r\n", _enc(b"ECHO", b"e"), _enc(b"INCR", b"n"),
             _enc(b"EXPIRE", b"k", b"10"), _enc(b"DEL", b"a", b"b"), _enc(b"get", b"last")]
    ends, offset = [], 0
    for part in parts:
        offset += len(part)
        ends.append(offset)
    return b"".join(parts), ends


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "set", "truncate", "insert", "delete"])
        pos = rng.randrange(len(buf)) if buf else 0
        if op == "flip" and buf:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == "set" and buf:
            buf[pos] = rng.choice(b"*$:+-\r\n0123456789 x")
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = bytes(rng.choice(b"*$:+-\r\n0123456789 x") for _ in range(rng.randint(1, 6)))
        elif buf:
            del buf[pos:pos + rng.randint(1, 4)]
    return bytes(buf)


def _has_empty_array_header(data: bytes) -> bool:
    """An array header of 0 or -1 elements (``test_fuzz_mutations_with_empty_arrays`` has them)."""
    return any(header in data for header in (b"*0\r", b"*-1\r", b"*00", b"*-0", b"*-01"))


def _check_mutation(valid: bytes, ends: list[int], reference: list[Item], mutated: bytes,
                    rng: random.Random) -> None:
    """Only RemoteProtocolError; the intact prefix parses as before; same outcome under any chunks."""
    out, error = _drive_until_error([mutated])
    assert error is None or isinstance(error, RemoteProtocolError), repr(error)
    if error is not None:
        assert error.reply is not None and error.reply.startswith(b"-ERR Protocol error"), error.reply
    # the requests wholly before the first changed byte come out exactly as from the valid input
    first_change = next((i for i, (a, b) in enumerate(zip(valid, mutated, strict=False)) if a != b),
                        min(len(valid), len(mutated)))
    intact = sum(end <= first_change for end in ends)
    assert out[:intact] == reference[:intact]
    # a plain request's raw bytes are the input's own bytes, in order
    offset = 0
    for item in out:
        if item[0] == "plain":
            found = mutated.find(item[-1], offset)
            assert found >= offset, item
            offset = found + len(item[-1])
    # the same outcome whatever the chunks
    cuts = sorted(rng.sample(range(1, len(mutated)), min(len(mutated) - 1, 6))) if len(mutated) > 1 else []
    chunks = [mutated[a:b] for a, b in zip([0, *cuts], [*cuts, len(mutated)], strict=True)]
    for way in (chunks, [mutated[i:i + 1] for i in range(len(mutated))]):
        split_out, split_error = _drive_until_error(way)
        assert split_out == out
        assert type(split_error) is type(error)


def test_fuzz_mutations_only_raise_protocol_errors() -> None:
    """300 seeded mutations of a valid pipeline: only RemoteProtocolError, and a consistent prefix.

    Mutations that make an empty array header are left out here;
    ``test_fuzz_mutations_with_empty_arrays`` runs them.
    """
    valid, ends = _fuzz_pipeline()
    reference = _drive([valid], answer=False)
    assert len(reference) == len(ends)
    rng = random.Random(20240601)
    checked = 0
    while checked < 300:
        mutated = _mutate(valid, rng)
        if _has_empty_array_header(mutated):
            continue
        _check_mutation(valid, ends, reference, mutated, rng)
        checked += 1


def test_fuzz_mutations_with_empty_arrays() -> None:
    """Mutations that create empty array headers also raise nothing but RemoteProtocolError."""
    valid, ends = _fuzz_pipeline()
    reference = _drive([valid], answer=False)
    rng = random.Random(99)
    for _ in range(50):
        mutated = _mutate(valid, rng)
        at = rng.randrange(len(mutated) + 1)
        mutated = mutated[:at] + rng.choice([b"*0\r\n", b"*-1\r\n"]) + mutated[at:]
        _check_mutation(valid, ends, reference, mutated, rng)


# -- 5. connection state turns the lane off ----------------------------------------------------


def _plain_after(*setup: tuple[bytes, ...], options: ConnectionOptions | None = None
                 ) -> tuple[list[Item], tuple[bytes, bytes, bytes] | None]:
    """Drive ``setup`` (answered locally), then ask next_plain about a GET."""
    conn = _server(options)
    out = _drive([b"".join(_enc(*args) for args in setup)], conn, eof=False)
    conn.receive_data(_enc(b"GET", b"k"))
    return out, conn.next_plain()


def test_no_plain_requests_inside_multi_or_after_watch() -> None:
    """After MULTI (answered by local_answer) or WATCH, a GET goes to next_event; after EXEC/UNWATCH it is plain again."""
    assert _plain_after((b"MULTI",))[1] is None
    assert _plain_after((b"WATCH", b"k"))[1] is None
    assert _plain_after((b"MULTI",), (b"SET", b"k", b"v"))[1] is None
    get = (b"GET", b"k", _enc(b"GET", b"k"))
    assert _plain_after((b"MULTI",), (b"GET", b"x"), (b"DISCARD",))[1] == get
    assert _plain_after((b"WATCH", b"k"), (b"UNWATCH",))[1] == get


def test_a_pipeline_through_multi_exec_keeps_queued_commands_off_the_lane() -> None:
    """GET inside MULTI/EXEC (one buffer) comes out of next_event; those around it take the lane."""
    requests = [(b"GET", b"a"), (b"MULTI",), (b"GET", b"b"), (b"SET", b"c", b"1"), (b"EXEC",), (b"GET", b"d")]
    out = _drive([b"".join(_enc(*args) for args in requests)])
    assert [item[0] for item in out] == ["plain", "event", "event", "event", "event", "plain"]
    assert [item[2] for item in out[1:5]] == [list(args) for args in requests[1:5]]


def test_no_plain_requests_before_auth() -> None:
    """With a password configured, a GET is not plain until AUTH succeeds."""
    options = ConnectionOptions(extra={"password": "s3cret"})
    assert _plain_after(options=options)[1] is None
    assert _plain_after((b"AUTH", b"wrong"), options=options)[1] is None
    out, plain = _plain_after((b"AUTH", b"s3cret"), options=options)
    assert plain == (b"GET", b"k", _enc(b"GET", b"k"))
    assert out[0][2] == [b"AUTH", b"s3cret"]


def test_a_get_before_auth_in_one_buffer_gets_noauth() -> None:
    """GET, AUTH, GET in one buffer: the first GET goes to next_event (and NOAUTH), the last is plain."""
    conn = _server(ConnectionOptions(extra={"password": "pw"}))
    conn.receive_data(_enc(b"GET", b"a") + _enc(b"AUTH", b"pw") + _enc(b"GET", b"b"))
    assert conn.next_plain() is None
    first = conn.next_event()
    assert isinstance(first, Headers) and first.extensions["args"] == [b"GET", b"a"]
    answer = conn.local_answer(first)
    assert answer is not None and answer[0].extensions["raw"].startswith(b"-NOAUTH")
    assert conn.next_plain() is None
    auth = conn.next_event()
    assert isinstance(auth, Headers)
    conn.local_answer(auth)
    assert conn.next_plain() == (b"GET", b"b", _enc(b"GET", b"b"))


def test_no_plain_requests_after_hello_3_or_quit() -> None:
    """RESP3 (after HELLO 3) and QUIT turn the lane off; HELLO 2 and RESET turn RESP3 back off."""
    assert _plain_after((b"HELLO", b"3"))[1] is None
    assert _plain_after((b"QUIT",))[1] is None
    get = (b"GET", b"k", _enc(b"GET", b"k"))
    assert _plain_after((b"HELLO", b"2"))[1] == get
    assert _plain_after((b"HELLO", b"3"), (b"HELLO", b"2"))[1] == get
    assert _plain_after((b"HELLO", b"3"), (b"RESET",))[1] == get


# -- 6. the client role: send_plain ------------------------------------------------------------


def test_send_plain_records_ids_for_the_replies() -> None:
    """Requests sent with send_plain and send share one reply order; each reply carries its id."""
    conn = codec.connection(Role.CLIENT, ConnectionOptions())
    get = _enc(b"GET", b"k")
    assert conn.send_plain(7, get) == get  # type: ignore[union-attr]
    assert conn.send(Headers(3, [], True, {"args": [b"PING"]})) == _enc(b"PING")
    assert conn.send_plain(11, _enc(b"SET", b"k", b"v")) == _enc(b"SET", b"k", b"v")  # type: ignore[union-attr]
    replies = b"$1\r\nv\r\n+PONG\r\n-ERR wrong\r\n"
    for chunks in _splits(replies, 4, ways=5):
        conn = codec.connection(Role.CLIENT, ConnectionOptions())
        conn.send_plain(7, get)  # type: ignore[union-attr]
        conn.send(Headers(3, [], True, {"args": [b"PING"]}))
        conn.send_plain(11, get)  # type: ignore[union-attr]
        events = []
        for chunk in chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
        assert [e.stream_id for e in events] == [7, 3, 11]
        assert [e.extensions["raw"] for e in events] == [b"$1\r\nv\r\n", b"+PONG\r\n", b"-ERR wrong\r\n"]
        assert events[2].fields == [(b":error", b"ERR")]


def test_a_resp3_client_prefixes_hello_3_once() -> None:
    """The first send of a RESP3 upstream connection carries HELLO 3; its reply is dropped."""
    hello = _enc(b"HELLO", b"3")
    get = _enc(b"GET", b"k")
    conn = codec.resp3_codec.connection(Role.CLIENT, ConnectionOptions())
    assert conn.send_plain(1, get) == hello + get  # type: ignore[union-attr]
    assert conn.send_plain(2, get) == get  # type: ignore[union-attr]
    assert conn.send(Headers(3, [], True, {"args": [b"PING"]})) == _enc(b"PING")
    conn.receive_data(b"%1\r\n$5\r\nproto\r\n:3\r\n$1\r\na\r\n_\r\n+PONG\r\n")
    events = [conn.next_event() for _ in range(3)]
    assert [e.stream_id for e in events] == [1, 2, 3]  # type: ignore[union-attr]
    assert [e.extensions["raw"] for e in events] == [b"$1\r\na\r\n", b"_\r\n", b"+PONG\r\n"]  # type: ignore[union-attr]
    assert conn.next_event() is NEED_DATA
    first_send = codec.resp3_codec.connection(Role.CLIENT, ConnectionOptions())
    assert first_send.send(Headers(1, [], True, {"args": [b"PING"]})) == hello + _enc(b"PING")
    assert first_send.send_plain(2, get) == get  # type: ignore[union-attr]
    resp2 = codec.connection(Role.CLIENT, ConnectionOptions())
    assert resp2.send_plain(1, get) == get  # type: ignore[union-attr]
