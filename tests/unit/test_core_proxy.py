"""The proxy core with a fake codec and fake upstreams, in one trio run.

Covers routing by service/method, local replies for every failure, passive
ejection, connection reuse and protocol errors, without any HTTP.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from mesh.config import parse
from mesh.registry import Plugin, Registry
from mesh.runtime import ProxyRuntime
from tests.unit.fakeline import codec as line_codec


def _registry() -> Registry:
    return Registry({"line": Plugin("line", line_codec, "tests", "tests.unit.fakeline:codec")}, {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _line_upstream(nursery: trio.Nursery, tag: bytes, delay: float = 0.0) -> tuple[int, list[int]]:
    """A fake upstream answering ``200 <tag>:<payload>``; returns (port, accepted count)."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    accepted = [0]

    async def handle(stream: trio.SocketStream) -> None:
        accepted[0] += 1
        buf = b""
        async with stream:
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    await trio.sleep(delay)
                    await stream.send_all(b"200 " + tag + b":" + line.split(b" ", 3)[3] + b"\r\n")

    nursery.start_soon(trio.serve_listeners, handle, [listener])
    return listener.socket.getsockname()[1], accepted


async def _call(port: int, lines: list[bytes]) -> list[bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        out = []
        buf = b""
        for line in lines:
            await stream.send_all(line)
            while b"\r\n" not in buf:
                data = await stream.receive_some(4096)
                if not data:
                    out.append(b"<closed>")
                    return out
                buf += data
            reply, buf = buf.split(b"\r\n", 1)
            out.append(reply)
        return out


def _config(listen: int, routes: list[dict], clusters: list[dict]) -> object:
    return parse({
        "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "line",
                       "routes": routes}],
        "clusters": clusters, "admin": None, "logging": {"access_log": False},
    }, "<test>")


def run_proxy(test: Callable[[int, trio.Nursery], Awaitable[None]],
              make_config: Callable[[int, dict[str, int]], object],
              upstreams: dict[str, tuple[bytes, float]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ports = {}
            for name, (tag, delay) in upstreams.items():
                ports[name], _ = await _line_upstream(nursery, tag, delay)
            listen = _free_port()
            runtime = ProxyRuntime(make_config(listen, ports), _registry())  # type: ignore[arg-type]
            await nursery.start(runtime.run)
            with trio.fail_after(10):
                await test(listen, nursery)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_routes_by_service_and_method() -> None:
    def config(listen: int, ports: dict[str, int]) -> object:
        return _config(listen, [
            {"match": {"service": "users", "method": "delete"}, "cluster": "admin"},
            {"match": {"service": {"prefix": "user"}}, "cluster": "users"},
        ], [{"name": "users", "endpoints": [f"127.0.0.1:{ports['a']}"]},
            {"name": "admin", "endpoints": [f"127.0.0.1:{ports['b']}"]}])

    async def test(port: int, nursery: trio.Nursery) -> None:
        replies = await _call(port, [b"LINE users get x\r\n", b"LINE users delete y\r\n",
                                     b"LINE orders get z\r\n", b"LINE users get w\r\n"])
        assert replies[0] == b"200 A:x"
        assert replies[1] == b"200 B:y"
        assert replies[2].startswith(b"404 NO_ROUTE")
        assert replies[3] == b"200 A:w"

    run_proxy(test, config, {"a": (b"A", 0.0), "b": (b"B", 0.0)})


def test_dead_upstream_gives_unavailable_then_ejects() -> None:
    dead = _free_port()

    def config(listen: int, ports: dict[str, int]) -> object:
        return _config(listen, [{"cluster": "c"}], [{
            "name": "c", "endpoints": [f"127.0.0.1:{dead}", f"127.0.0.1:{ports['a']}"],
            "passive_health": {"consecutive_failures": 1, "ejection_time": "30s"}}])

    async def test(port: int, nursery: trio.Nursery) -> None:
        replies = await _call(port, [b"LINE s m %d\r\n" % i for i in range(6)])
        failures = [r for r in replies if r.startswith(b"503 UNAVAILABLE")]
        assert len(failures) == 1, replies  # one failure ejects the dead endpoint
        assert b"connect to 127.0.0.1:%d" % dead in failures[0]
        assert sum(r.startswith(b"200 A:") for r in replies) == 5

    run_proxy(test, config, {"a": (b"A", 0.0)})


def test_hanging_upstream_times_out() -> None:
    def config(listen: int, ports: dict[str, int]) -> object:
        return _config(listen, [{"cluster": "c", "timeout": "200ms"}],
                       [{"name": "c", "endpoints": [f"127.0.0.1:{ports['slow']}"]}])

    async def test(port: int, nursery: trio.Nursery) -> None:
        start = trio.current_time()
        replies = await _call(port, [b"LINE s m x\r\n"])
        assert replies[0].startswith(b"504 TIMEOUT"), replies
        assert 0.15 < trio.current_time() - start < 2

    run_proxy(test, config, {"slow": (b"S", 5.0)})


def test_upstream_connections_are_reused() -> None:
    accepted: list[int] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            up, counter = await _line_upstream(nursery, b"A")
            accepted.append(0)
            listen = _free_port()
            config = _config(listen, [{"cluster": "c"}],
                             [{"name": "c", "endpoints": [f"127.0.0.1:{up}"]}])
            runtime = ProxyRuntime(config, _registry())  # type: ignore[arg-type]
            await nursery.start(runtime.run)
            for _ in range(3):  # three client connections, sequentially
                assert await _call(listen, [b"LINE s m 1\r\n", b"LINE s m 2\r\n"]) == [
                    b"200 A:1", b"200 A:2"]
            accepted[0] = counter[0]
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert accepted[0] == 1


def test_bad_bytes_get_the_codec_reply_and_a_close() -> None:
    def config(listen: int, ports: dict[str, int]) -> object:
        return _config(listen, [{"cluster": "c"}],
                       [{"name": "c", "endpoints": [f"127.0.0.1:{ports['a']}"]}])

    async def test(port: int, nursery: trio.Nursery) -> None:
        assert await _call(port, [b"HELLO\r\n", b"LINE s m x\r\n"]) == [
            b"400 bad request", b"<closed>"]
        assert await _call(port, [b"LINE s m ok\r\n"]) == [b"200 A:ok"]

    run_proxy(test, config, {"a": (b"A", 0.0)})


@pytest.mark.parametrize("lb", ["round_robin", "random", "least_request"])
def test_balancers_spread_over_endpoints(lb: str) -> None:
    def config(listen: int, ports: dict[str, int]) -> object:
        return _config(listen, [{"cluster": "c"}], [{
            "name": "c", "lb": lb,
            "endpoints": [f"127.0.0.1:{ports['a']}", f"127.0.0.1:{ports['b']}"]}])

    async def test(port: int, nursery: trio.Nursery) -> None:
        replies = await _call(port, [b"LINE s m %d\r\n" % i for i in range(40)])
        tags = {r[4:5] for r in replies}
        assert tags == {b"A", b"B"}, replies

    run_proxy(test, config, {"a": (b"A", 0.0), "b": (b"B", 0.0)})


def test_idle_client_is_closed_after_idle_timeout() -> None:
    def config(listen: int, ports: dict[str, int]) -> object:
        return parse({
            "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "line",
                           "idle_timeout": "300ms", "routes": [{"cluster": "c"}]}],
            "clusters": [{"name": "c", "endpoints": [f"127.0.0.1:{ports['a']}"]}],
            "admin": None, "logging": {"access_log": False}}, "<test>")

    async def test(port: int, nursery: trio.Nursery) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"LINE s m x\r\n")
            assert (await stream.receive_some(100)).startswith(b"200 A:x")
            start = trio.current_time()
            assert await stream.receive_some(100) == b""  # closed by the proxy
            assert 0.2 < trio.current_time() - start < 1.5

    run_proxy(test, config, {"a": (b"A", 0.0)})
