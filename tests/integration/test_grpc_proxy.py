"""gRPC through rpcmesh: a grpcio client -> rpcmesh (``--protocol http2``) -> a grpcio server.

Real peers on both ends (tests/peers/grpc_echo/server.py, service ``mesh.test.Echo``, bytes
messages through generic handlers). Every call test runs twice, ``direct`` (client to the
server, no proxy: proves the peer and the test) and ``rpcmesh`` (the same calls through the
proxy), so a failure only in the second is rpcmesh's. Every call has a deadline; no test
asserts on timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .h2_fixtures import PeerServer, echo_module, grpc_channel, method, require_module
from .mesh_harness import LOOPBACK, MeshProxyFactory, require_tools

grpc = require_module("grpc", "grpcio")

CALL_TIMEOUT = 10.0  # deadline of every call that is not about deadlines


@pytest.fixture(scope="module")
def echo() -> Any:
    return echo_module()


@pytest.fixture(scope="module", params=["direct", "rpcmesh"])
def target(request: pytest.FixtureRequest, grpc_echo: PeerServer,
           mesh_proxy_module: MeshProxyFactory) -> int:
    """The port the client calls: the server itself, or rpcmesh in front of it."""
    if request.param == "direct":
        return grpc_echo.port
    return mesh_proxy_module(grpc_echo, protocol="http2").port


@pytest.fixture
def channel(target: int) -> Iterator[Any]:
    with grpc_channel(target) as ch:
        yield ch


def unary(ch: Any, name: str) -> Any:
    return ch.unary_unary(method(name))


def control(**spec: Any) -> bytes:
    return json.dumps(spec).encode()


def slow_stats(ch: Any) -> dict[str, int]:
    return json.loads(unary(ch, "Stats")(b"", timeout=CALL_TIMEOUT))  # type: ignore[no-any-return]


def wait_slow_settled(port: int, before: dict[str, int], timeout: float = 5.0) -> dict[str, int]:
    """Counters of Slow calls once every call started since `before` has ended (bounded),
    asked directly of the server."""
    deadline = time.monotonic() + timeout
    with grpc_channel(port) as ch:
        while True:
            now = slow_stats(ch)
            started = now["slow_started"] - before["slow_started"]
            ended = (now["slow_completed"] - before["slow_completed"]
                     + now["slow_cancelled"] - before["slow_cancelled"])
            if (started >= 1 and ended >= started) or time.monotonic() > deadline:
                return now
            time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# calls, direct and through rpcmesh


def test_unary_metadata_and_trailers(channel: Any, echo: Any) -> None:
    payload = b"hello through the mesh \x00\xff"
    response, call = unary(channel, "Unary").with_call(
        payload, timeout=CALL_TIMEOUT,
        metadata=[("x-request-id", "r-42"), ("x-token-bin", b"\x00\x01\xfe\xff"),
                  ("x-multi", "one"), ("x-multi", "two"), ("other-key", "not echoed")])
    assert response == payload
    initial = list(call.initial_metadata())
    assert ("x-request-id", "r-42") in initial
    assert ("x-token-bin", b"\x00\x01\xfe\xff") in initial
    assert [v for k, v in initial if k == "x-multi"] == ["one", "two"]
    assert not [k for k, _ in initial if k == "other-key"]
    trailing = dict(call.trailing_metadata())
    assert trailing["x-trailer"] == "done"
    assert trailing["x-trailer-bin"] == echo.TRAILER_BIN
    assert trailing["x-request-size"] == str(len(payload))
    assert call.code() == grpc.StatusCode.OK


def test_large_request_and_response(channel: Any, echo: Any) -> None:
    request = os.urandom(3 * 1024 * 1024)
    response = unary(channel, "Unary")(request, timeout=CALL_TIMEOUT)
    assert len(response) == len(request)
    assert hashlib.sha256(response).hexdigest() == hashlib.sha256(request).hexdigest()
    size = 5 * 1024 * 1024
    big = unary(channel, "Big")(control(size=size), timeout=CALL_TIMEOUT)
    assert len(big) == size
    assert hashlib.sha256(big).digest() == hashlib.sha256(echo.big_payload(size)).digest()


def test_server_streaming(channel: Any, echo: Any) -> None:
    count, size = 200, 16 * 1024
    call = channel.unary_stream(method("ServerStream"))(control(count=count, size=size),
                                                        timeout=CALL_TIMEOUT)
    messages = list(call)
    assert len(messages) == count
    assert messages == [echo.stream_message(i, size) for i in range(count)]
    assert call.code() == grpc.StatusCode.OK


def test_client_streaming(channel: Any) -> None:
    messages = [os.urandom(n) for n in (0, 1, 100, 4096, 65_535, 70_000, 300_000)] * 5
    result = json.loads(channel.stream_unary(method("ClientStream"))(
        iter(messages), timeout=CALL_TIMEOUT))
    assert result == {"count": len(messages), "bytes": sum(map(len, messages)),
                      "sha256": hashlib.sha256(b"".join(messages)).hexdigest()}


def test_bidi_streaming_ping_pong(channel: Any) -> None:
    """Each message's echo arrives before the next message is sent: the proxy streams both
    ways instead of waiting for the end of the request."""
    outbox: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[bytes]:
        while (item := outbox.get(timeout=CALL_TIMEOUT)) is not None:
            yield item

    call = channel.stream_stream(method("Bidi"))(requests(), timeout=CALL_TIMEOUT)
    try:
        for i in range(20):
            message = f"ping {i} ".encode() * (1 + i * 50)
            outbox.put(message)
            assert next(call) == message
    finally:
        outbox.put(None)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("code", ["NOT_FOUND", "PERMISSION_DENIED"])
def test_error_status_with_trailers(channel: Any, echo: Any, code: str) -> None:
    message = f"no such thing: 100% {code.lower()} \u00e9\u4e2d"
    with pytest.raises(grpc.RpcError) as info:
        unary(channel, "Fail")(control(code=code, message=message), timeout=CALL_TIMEOUT)
    err = info.value
    assert err.code() == grpc.StatusCode[code]
    assert err.details() == message
    trailing = dict(err.trailing_metadata())
    assert trailing["x-fail-code"] == code.lower()
    assert trailing["x-fail-bin"] == echo.FAIL_BIN


def test_client_deadline_exceeded(channel: Any, grpc_echo: PeerServer) -> None:
    before = slow_stats(channel)
    with pytest.raises(grpc.RpcError) as info:
        unary(channel, "Slow")(control(seconds=3), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    after = wait_slow_settled(grpc_echo.port, before)
    assert after["slow_cancelled"] - before["slow_cancelled"] == 1, (
        f"the server's Slow call was not cancelled: {before} -> {after}")
    # the channel (and through rpcmesh, its connection) still works
    assert unary(channel, "Unary")(b"after", timeout=CALL_TIMEOUT) == b"after"


@pytest.mark.parametrize("path", [method("NoSuchMethod"), "/mesh.test.NoSuchService/Unary"])
def test_unimplemented(channel: Any, path: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(path)(b"x", timeout=CALL_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_fifty_concurrent_calls_one_channel(channel: Any) -> None:
    call = unary(channel, "Unary")
    futures = [call.future(f"call {i} ".encode() * (i + 1), timeout=CALL_TIMEOUT,
                           metadata=[("x-call", str(i))]) for i in range(50)]
    for i, future in enumerate(futures):
        assert future.result(timeout=CALL_TIMEOUT) == f"call {i} ".encode() * (i + 1)
        assert ("x-call", str(i)) in list(future.initial_metadata())
        assert dict(future.trailing_metadata())["x-trailer"] == "done"


# --------------------------------------------------------------------------------------------
# local replies of rpcmesh


def test_upstream_down_is_unavailable(mesh_proxy: MeshProxyFactory, dead_port: int) -> None:
    """Nothing listens upstream: rpcmesh answers the call itself, trailers-only, grpc-status
    14 (UNAVAILABLE), and keeps the client's connection."""
    proxy = mesh_proxy(dead_port, protocol="http2")
    with grpc_channel(proxy.port) as ch:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as info:
                unary(ch, "Unary")(b"anyone?", timeout=CALL_TIMEOUT)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.debug_error_string()
    # the same on the wire, as curl sees it: one HEADERS block with :status 200 and
    # grpc-status 14 (a trailers-only response), not a reset or a closed connection
    curl = require_tools("curl")["curl"]
    frame = b"\x00" + (7).to_bytes(4, "big") + b"anyone?"
    out = subprocess.run(
        [curl, "-sS", "--http2-prior-knowledge", "--max-time", "10", "-D", "-", "-o",
         os.devnull, "-H", "content-type: application/grpc", "-H", "te: trailers",
         "--data-binary", "@-", f"http://{LOOPBACK}:{proxy.port}{method('Unary')}"],
        input=frame, capture_output=True, timeout=20)
    head = out.stdout.decode("latin-1").lower()
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    assert head.startswith("http/2 200"), head
    assert "grpc-status: 14" in head, head
    assert "content-type: application/grpc" in head, head
    assert proxy.alive()


def test_route_timeout_is_deadline_exceeded(mesh_proxy: MeshProxyFactory,
                                            grpc_echo: PeerServer) -> None:
    """rpcmesh's route timeout (0.5 s) ends a Slow(2 s) call with a longer client deadline:
    DEADLINE_EXCEEDED from rpcmesh, and the upstream call is cancelled (RST_STREAM)."""
    proxy = mesh_proxy(grpc_echo, protocol="http2", timeout="0.5s")
    with grpc_channel(grpc_echo.port) as direct:
        before = slow_stats(direct)
    with grpc_channel(proxy.port) as ch:
        with pytest.raises(grpc.RpcError) as info:
            # the client's deadline (10 s) is past the server's 2 s: only rpcmesh's route
            # timeout can end this call early
            unary(ch, "Slow")(control(seconds=2), timeout=CALL_TIMEOUT)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, info.value.debug_error_string()
        after = wait_slow_settled(grpc_echo.port, before)
        assert after["slow_cancelled"] - before["slow_cancelled"] == 1, (
            f"rpcmesh did not cancel the upstream call after its route timeout: {before} -> {after}")
        # the client's connection is still good for the next call
        assert unary(ch, "Unary")(b"next", timeout=CALL_TIMEOUT) == b"next"
