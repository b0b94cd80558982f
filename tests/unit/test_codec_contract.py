"""Pins the public plugin API: removing or renaming an export breaks plugins."""

import mesh.codec
from mesh.codec import Codec, CodecConnection, HeaderKeys, Headers

EXPECTED = {
    "AGAIN", "CLOSED", "FAIL", "MATCH", "NEED_DATA", "PAUSED", "Buffers", "Codec",
    "CodecConnection", "ConnectionOptions", "Data", "Event", "Headers", "HeaderKeys",
    "LocalProtocolError", "MatchResult", "NextEvent", "PoolMode", "ProtocolError",
    "RemoteProtocolError", "RequestKeys", "Reset", "Role", "Status", "Trailers",
}


def test_exports_are_pinned() -> None:
    assert set(mesh.codec.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(mesh.codec, name)


def test_statuses_and_modes() -> None:
    assert {s.name for s in mesh.codec.Status} == {
        "NO_ROUTE", "UNAVAILABLE", "TIMEOUT", "OVERLOADED", "BAD_REQUEST", "INTERNAL"}
    assert {m.name for m in mesh.codec.PoolMode} == {"PING_PONG", "MULTIPLEX", "PIPELINE"}


def test_remote_error_carries_reply() -> None:
    exc = mesh.codec.RemoteProtocolError("bad", b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert isinstance(exc, mesh.codec.ProtocolError) and exc.reply.startswith(b"HTTP/1.1 400")
    assert mesh.codec.RemoteProtocolError("x").reply is None


def test_header_keys_are_lazy_and_cached() -> None:
    h = Headers(1, [(b":method", b"GET"), (b":authority", b"api.example.com:8080"),
                    (b":path", b"/v1/users?id=3"), (b"x-user", b"bob"), (b"x-user", b"amy")])
    keys = HeaderKeys(h)
    assert keys._cache == {}
    assert keys.host == "api.example.com"
    assert keys.path == "/v1/users"
    assert keys.method == "GET"
    assert keys.service == "api.example.com"
    assert keys.get("X-User") == "bob,amy"
    assert keys.version is None and keys.group is None
    assert HeaderKeys(Headers(1, [(b":authority", b"[::1]:80")])).host == "[::1]"


def test_fake_codec_satisfies_protocols() -> None:
    from mesh.codec import ConnectionOptions, Role
    from tests.unit.fakeline import codec

    assert isinstance(codec, Codec)
    assert isinstance(codec.connection(Role.SERVER, ConnectionOptions()), CodecConnection)
