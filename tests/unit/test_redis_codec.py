"""The redis codec: framing under any split, limits, fuzz, match, local answers, ketama."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mesh.codecs.redis import codec

from mesh.cluster.balancer import Ketama, fnv1a_64, hash_tag
from mesh.cluster.endpoint import UpstreamEndpoint
from mesh.codec import (
    AGAIN,
    CLOSED,
    FAIL,
    MATCH,
    NEED_DATA,
    ConnectionOptions,
    Headers,
    RemoteProtocolError,
    Role,
    Status,
)

REQUESTS = (b"*3\r\n$3\r\nSET\r\n$3\r\nk\x00y\r\n$4\r\na\r\nb\r\n"
            b"PING\r\n"
            b"*2\r\n$4\r\nMGET\r\n$1\r\na\r\n"
            b"get  spaced   key\n")
REPLIES = (b"+OK\r\n-WRONGTYPE Operation against a key\r\n:42\r\n$-1\r\n$3\r\na\r\n\r\n"
           b"*3\r\n$1\r\nx\r\n*-1\r\n*2\r\n:1\r\n_\r\n%1\r\n+k\r\n,1.5\r\n~1\r\n#t\r\n"
           b"|1\r\n+ttl\r\n:3\r\n+v\r\n=8\r\ntxt:abcd\r\n(123\r\n!3\r\nerr\r\n")
N_REPLIES = 12


def _server_events(chunks: list[bytes], options: ConnectionOptions | None = None) -> list[Headers]:
    conn = codec.connection(Role.SERVER, options or ConnectionOptions())
    out = []
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
            out.append(event)
    return out


def _client_events(chunks: list[bytes], n: int) -> list[Headers]:
    conn = codec.connection(Role.CLIENT, ConnectionOptions())
    for i in range(n):
        conn.send(Headers(100 + i, [], True, {"args": [b"PING"]}))
    out = []
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
            out.append(event)
    return out


def _splits(data: bytes, seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    ways = [[data], [data[i:i + 1] for i in range(len(data))]]
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 5))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return ways


def test_requests_any_split() -> None:
    whole = _server_events([REQUESTS])
    assert [e.extensions["args"] for e in whole] == [
        [b"SET", b"k\x00y", b"a\r\nb"], [b"PING"], [b"MGET", b"a"], [b"get", b"spaced", b"key"]]
    assert [e.stream_id for e in whole] == [1, 2, 3, 4]
    assert whole[3].fields == [(b":command", b"GET")]
    assert whole[3].extensions["raw"] == b"*3\r\n$3\r\nget\r\n$6\r\nspaced\r\n$3\r\nkey\r\n"
    for chunks in _splits(REQUESTS, 1):
        assert _server_events(chunks) == whole


def test_replies_raw_in_order_any_split() -> None:
    whole = _client_events([REPLIES], N_REPLIES)
    assert b"".join(e.extensions["raw"] for e in whole) == REPLIES
    assert [e.stream_id for e in whole] == list(range(100, 100 + N_REPLIES))
    assert whole[1].fields == [(b":error", b"WRONGTYPE")]
    for chunks in _splits(REPLIES, 2):
        assert _client_events(chunks, N_REPLIES) == whole


@pytest.mark.parametrize("data", [b"*1\r\n$99999\r\n", b"*1\r\n:1\r\n", b"*x\r\n", b"*1\r\n$1\r\nab\r\n",
                                  b"a" * 70000])
def test_malformed_or_too_big_requests_are_refused(data: bytes) -> None:
    conn = codec.connection(Role.SERVER, ConnectionOptions(max_frame_size=1024))
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.reply is not None and info.value.reply.startswith(b"-ERR Protocol error: ")


def test_reply_without_request_is_an_error() -> None:
    conn = codec.connection(Role.CLIENT, ConnectionOptions())
    conn.receive_data(b"+OK\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([Role.SERVER, Role.CLIENT]))
def test_fuzz_only_remote_protocol_error(data: bytes, role: Role) -> None:
    conn = codec.connection(role, ConnectionOptions(max_frame_size=64, max_header_size=64))
    if role is Role.CLIENT:
        for i in range(50):
            conn.send(Headers(i, [], True, {"args": [b"PING"]}))
    try:
        conn.receive_data(data)
        conn.receive_data(b"")
        for _ in range(500):
            if conn.next_event() in (NEED_DATA, CLOSED):
                break
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize(("prefix", "want"), [
    (b"", AGAIN), (b"*", AGAIN), (b"*3\r\n", MATCH), (b"PI", AGAIN), (b"PING\r\n", MATCH),
    (b"hget ", AGAIN), (b"hget k\r\n", MATCH), (b"GET / HTTP/1.1\r\n", FAIL), (b"get k\r\n", FAIL), (b"POST /", FAIL),
    (b"\xda\xbb\xc2", FAIL), (b"\x80\x01\x00\x01", FAIL), (b"\x00\x00\x00\x10", FAIL), (b"*x", FAIL),
])
def test_match(prefix: bytes, want: object) -> None:
    assert codec.match(prefix) is want


def _answer(conn: object, *args: bytes) -> bytes | None:
    events = conn.local_answer(Headers(1, [(b":command", args[0].upper())], True,  # type: ignore[attr-defined]
                                       {"args": list(args), "raw": b""}))
    return None if events is None else events[0].extensions["raw"]


def test_local_answers_and_refusals() -> None:
    conn = codec.connection(Role.SERVER, ConnectionOptions())
    assert _answer(conn, b"GET", b"k") is None
    assert _answer(conn, b"PING") == b"+PONG\r\n"
    assert _answer(conn, b"ECHO", b"hi") == b"$2\r\nhi\r\n"
    assert _answer(conn, b"SELECT", b"0") == b"+OK\r\n"
    assert _answer(conn, b"SELECT", b"1").startswith(b"-ERR")
    assert _answer(conn, b"CLIENT", b"SETINFO", b"LIB-NAME", b"x") == b"+OK\r\n"
    assert _answer(conn, b"CLIENT", b"SETNAME", b"me") == b"+OK\r\n"
    assert _answer(conn, b"CLIENT", b"GETNAME") == b"$2\r\nme\r\n"
    assert _answer(conn, b"GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert _answer(conn, b"BLPOP", b"q", b"0") is None  # on the client's own connection
    assert b"different shards" in _answer(conn, b"BLPOP", b"q", b"r", b"0")  # type: ignore[operator]
    assert b"numkeys" in _answer(conn, b"BLMPOP", b"0", b"1", b"q", b"LEFT")  # type: ignore[operator]
    refusing = codec.connection(Role.SERVER, ConnectionOptions(extra={"blocking": "refuse"}))
    assert b"blocking" in _answer(refusing, b"BLPOP", b"q", b"0")  # type: ignore[operator]
    assert b"unknown" in _answer(conn, b"FOO")  # type: ignore[operator]
    assert _answer(conn, b"MGET", b"{t}a", b"{t}b") is None
    assert _answer(conn, b"MGET", b"a", b"b") is None  # split per shard by fan_out
    assert b"hash tag" in _answer(conn, b"RENAME", b"a", b"b")  # type: ignore[operator]
    assert _answer(conn, b"MSET", b"a", b"1", b"b").startswith(b"-ERR wrong number")  # type: ignore[union-attr]
    assert _answer(conn, b"HELLO", b"3").startswith(b"%7\r\n")  # type: ignore[union-attr]
    assert conn.upstream_codec is not None  # type: ignore[attr-defined]
    assert _answer(conn, b"COMMAND", b"COUNT").startswith(b":")  # type: ignore[union-attr]
    assert _answer(conn, b"QUIT") == b"+OK\r\n"
    assert conn.next_event() is CLOSED


def test_auth() -> None:
    conn = codec.connection(Role.SERVER, ConnectionOptions(extra={"password": "s3cret"}))
    assert _answer(conn, b"GET", b"k").startswith(b"-NOAUTH")  # type: ignore[union-attr]
    assert _answer(conn, b"AUTH", b"nope").startswith(b"-WRONGPASS")  # type: ignore[union-attr]
    assert _answer(conn, b"AUTH", b"s3cret") == b"+OK\r\n"
    assert _answer(conn, b"GET", b"k") is None


def test_local_reply_is_a_clear_error() -> None:
    conn = codec.connection(Role.SERVER, ConnectionOptions())
    request = Headers(5, [(b":command", b"GET")], True, {"args": [b"GET", b"k"]})
    (reply,) = conn.local_reply(request, Status.UNAVAILABLE, "UNAVAILABLE: connection refused")
    assert reply.stream_id == 5
    assert conn.send(reply) == b"-ERR upstream unavailable (UNAVAILABLE: connection refused)\r\n"


def test_keys() -> None:
    (event,) = _server_events([b"*4\r\n$4\r\nMSET\r\n$2\r\nk1\r\n$1\r\nv\r\n$2\r\nk2\r\n"])
    keys = codec.request_keys(event)
    assert keys.method == "MSET" and keys.service is None and keys.get("key") == "k1"


def test_twemproxy_hashing() -> None:
    assert fnv1a_64(b"") == 0x84222325
    assert fnv1a_64(b"a") == ((0x84222325 ^ 0x61) * 0x1B3) & 0xFFFFFFFF
    assert fnv1a_64(b"\xff") == (((0x84222325 ^ 0xFFFFFFFF) * 0x1B3) & 0xFFFFFFFF)  # signed char
    assert hash_tag(b"{user1}.x") == b"user1" and hash_tag(b"a{}b") == b"a{}b"
    eps = [UpstreamEndpoint("127.0.0.1", 7000 + i, 1, {}, 5, 30.0) for i in range(3)]
    ring = Ketama(eps)
    assert len(ring._points) == 480
    assert ring.pick("{tag}a") is ring.pick("{tag}b")


# -- multi-key commands split per shard (codecs/redis/_fanout.py) ------------------------------


def _request(*args: bytes) -> Headers:
    conn = codec.connection(Role.SERVER, ConnectionOptions())
    conn.receive_data(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    event = conn.next_event()
    assert isinstance(event, Headers)
    return event


def _fan_out(*args: bytes) -> Any:
    conn = codec.connection(Role.SERVER, ConnectionOptions())
    return conn.fan_out(_request(*args))  # type: ignore[attr-defined]


def _reply(raw: bytes) -> Headers:
    return Headers(0, [], True, {"raw": raw})


def test_fan_out_only_when_keys_spread() -> None:
    assert _fan_out(b"GET", b"a") is None
    assert _fan_out(b"MGET", b"a") is None
    assert _fan_out(b"MGET", b"{t}a", b"{t}b") is None
    assert _fan_out(b"RENAME", b"a", b"b") is None
    assert _fan_out(b"MGET", b"a", b"b").parts == 2
    assert _fan_out(b"MSET", b"a", b"1", b"b", b"2").parts == 2
    assert _fan_out(b"DEL", b"a", b"b", b"c").parts == 3


def test_fan_out_parts_route_by_their_own_key() -> None:
    fanout = _fan_out(b"MSET", b"a", b"1", b"b", b"2")
    assert codec.request_keys(fanout.part(1)).get("key") == "b"
    request = fanout.request([0, 1])
    assert request.extensions["raw"] == b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"


def test_mget_merge_keeps_key_order_and_nils() -> None:
    fanout = _fan_out(b"MGET", b"a", b"b", b"c", b"d")
    assert fanout.request([1, 3]).extensions["args"] == [b"MGET", b"b", b"d"]
    fanout.collect([1, 3], _reply(b"*2\r\n$-1\r\n$2\r\nvd\r\n"))
    fanout.collect([0, 2], _reply(b"*2\r\n$2\r\nva\r\n$1\r\n\r\r\n"))
    (merged,) = fanout.result()
    assert merged.extensions["raw"] == b"*4\r\n$2\r\nva\r\n$-1\r\n$1\r\n\r\r\n$2\r\nvd\r\n"
    assert merged.stream_id == 1 and merged.fields == []


def test_counts_are_summed_and_mset_says_ok_once() -> None:
    fanout = _fan_out(b"EXISTS", b"a", b"b", b"c")
    fanout.collect([0, 2], _reply(b":2\r\n"))
    fanout.collect([1], _reply(b":0\r\n"))
    assert fanout.result()[0].extensions["raw"] == b":2\r\n"
    fanout = _fan_out(b"MSET", b"a", b"1", b"b", b"2")
    fanout.collect([0], _reply(b"+OK\r\n"))
    fanout.collect([1], _reply(b"+OK\r\n"))
    assert fanout.result()[0].extensions["raw"] == b"+OK\r\n"


def test_an_error_from_one_shard_is_the_whole_reply() -> None:
    fanout = _fan_out(b"MGET", b"a", b"b")
    fanout.collect([0], _reply(b"-ERR upstream unavailable\r\n"))
    fanout.collect([1], _reply(b"*1\r\n$1\r\nx\r\n"))
    (merged,) = fanout.result()
    assert merged.extensions["raw"] == b"-ERR upstream unavailable\r\n"
    assert merged.fields == [(b":error", b"ERR")]
    fanout = _fan_out(b"MGET", b"a", b"b")
    fanout.collect([0, 1], _reply(b"*1\r\n$1\r\nx\r\n"))  # a short array is not trusted
    assert fanout.result()[0].extensions["raw"].startswith(b"-ERR unexpected MGET reply")
    fanout = _fan_out(b"DEL", b"a", b"b")
    fanout.collect([0], _reply(b"!5\r\nOOPS!\r\n"))
    assert fanout.result()[0].extensions["raw"] == b"-OOPS!\r\n"
