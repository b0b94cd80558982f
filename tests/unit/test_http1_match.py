"""The codec object: sniffing, shape, exports, request keys and the entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import mesh.codecs.http1 as http1
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mesh.codecs.http1 import METHODS, codec

from mesh.codec import (
    AGAIN,
    FAIL,
    MATCH,
    Codec,
    CodecConnection,
    ConnectionOptions,
    HeaderKeys,
    Headers,
    PoolMode,
    Role,
)
from tests.unit.test_http1_support import drain, server

# -- match ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_then_a_space_matches_and_every_proper_prefix_waits(method: bytes) -> None:
    token = method + b" "
    assert codec.match(token) is MATCH
    assert codec.match(token + b"/index.html HTTP/1.1\r\n") is MATCH
    for cut in range(len(token)):
        assert codec.match(token[:cut]) is AGAIN, token[:cut]


@pytest.mark.parametrize("method", sorted(METHODS - {b"CONNECT"}))
def test_what_match_accepts_the_parser_accepts(method: bytes) -> None:
    conn = server()
    conn.receive_data(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
    (head,), _ = drain(conn)
    assert head.fields[0] == (b":method", method)


@pytest.mark.parametrize(
    "prefix",
    [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"PRI", b"PRI ", b"get / HTTP/1.1", b"GETX /",
     b"\x16\x03\x01\x00", b"*3\r\n$3\r\nSET", b"\xda\xbb\xc2\x00", b"SSH-2.0-x", b" GET /",
     b"GET\t/", b"\x00\x00\x00\x00"],
)  # fmt: skip
def test_other_protocols_fail(prefix: bytes) -> None:
    assert codec.match(prefix) is FAIL


def test_a_bytearray_prefix_is_fine() -> None:
    assert codec.match(bytearray(b"POST /")) is MATCH  # type: ignore[arg-type]
    assert codec.match(bytearray(b"PO")) is AGAIN  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24))
def test_match_is_pure_and_consistent_with_longer_input(prefix: bytes) -> None:
    answer = codec.match(prefix)
    assert codec.match(prefix) is answer
    if answer is not AGAIN:  # a decision never changes as more bytes arrive
        assert codec.match(prefix + b"GET / HTTP/1.1\r\n") is answer


# -- the codec object ------------------------------------------------------------------


def test_codec_shape() -> None:
    assert codec.name == "http1"
    assert codec.pool_mode is PoolMode.PING_PONG
    assert isinstance(codec, Codec)
    for role in Role:
        assert isinstance(codec.connection(role, ConnectionOptions()), CodecConnection)


def test_connections_are_independent() -> None:
    one, two = (codec.connection(Role.SERVER, ConnectionOptions()) for _ in range(2))
    one.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert two.next_event() is not one.next_event()


def test_exports() -> None:
    assert sorted(http1.__all__) == sorted(
        ["METHODS", "ClientConnection", "Http1Codec", "ServerConnection", "codec"]
    )
    for name in http1.__all__:
        assert getattr(http1, name) is not None


def test_the_entry_point_names_this_object() -> None:
    (point,) = [p for p in entry_points(group="mesh.codecs") if p.name == "http1"]
    assert point.value == "mesh.codecs.http1:codec"
    assert point.load() is codec


def test_request_keys_come_from_the_pseudo_fields() -> None:
    conn = server()
    conn.receive_data(b"GET /v1/users?id=3 HTTP/1.1\r\nHost: api.internal:8080\r\nX-Env: prod\r\n\r\n")
    (head,), _ = drain(conn)
    keys = codec.request_keys(head)
    assert isinstance(keys, HeaderKeys)
    assert (keys.method, keys.host, keys.path, keys.service) == (
        "GET", "api.internal", "/v1/users", "api.internal"
    )
    assert keys.get("x-env") == "prod" and keys.get("host") is None


def test_request_keys_without_a_host() -> None:
    keys = codec.request_keys(Headers(1, [(b":method", b"GET"), (b":authority", b""),
                                          (b":path", b"/")], True, {}))  # fmt: skip
    assert keys.host is None and keys.path == "/"
