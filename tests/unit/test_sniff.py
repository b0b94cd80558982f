"""protocol: auto picks the codec by the first bytes; undecidable connections end cleanly."""

from __future__ import annotations

import trio

from mesh.codec import AGAIN, FAIL, MATCH
from mesh.config import parse
from mesh.registry import Plugin, Registry
from mesh.runtime import ProxyRuntime
from mesh.sniff import SniffOutcome, decide
from tests.unit.fakeline import codec as line
from tests.unit.fakemux import mux
from tests.unit.test_core_shared import _free_port, _upstream


def test_decide_over_candidates() -> None:
    assert decide([line, mux], b"MUX 1") == (SniffOutcome.MATCHED, mux)
    assert decide([line, mux], b"LI") == (None, None)  # line says AGAIN
    assert decide([line, mux], b"GET /") == (SniffOutcome.UNKNOWN, None)
    assert line.match(b"LINE x") is MATCH and line.match(b"L") is AGAIN and line.match(b"X") is FAIL


def _registry() -> Registry:
    return Registry({c.name: Plugin(c.name, c, "tests", "tests") for c in (line, mux)}, {})


async def _raw(port: int, data: bytes, wait: float = 3.0) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        out = b""
        with trio.move_on_after(wait):
            while True:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return out + b"<EOF>"
                out += chunk
                if out.endswith(b"\r\n"):
                    return out
        return out + b"<TIMEOUT>"


def _auto(test, protocol: str = "auto", sniff_timeout: str = "300ms", idle: str = "300s") -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            up = await _upstream(nursery, b"A", "mux", {"accepted": 0})
            listen = _free_port()
            config = parse({
                "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": protocol,
                               "sniff_timeout": sniff_timeout, "sniff_max_bytes": 64,
                               "idle_timeout": idle,
                               "routes": [{"cluster": "a"}]}],
                "clusters": [{"name": "a", "endpoints": [f"127.0.0.1:{up}"]}],
                "admin": None, "logging": {"access_log": False}}, "<test>")
            runtime = ProxyRuntime(config, _registry())
            await nursery.start(runtime.run)
            with trio.fail_after(10):
                await test(listen, runtime)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_auto_listener_serves_the_sniffed_codec() -> None:
    async def test(port: int, runtime: ProxyRuntime) -> None:
        assert await _raw(port, b"MUX 5 svc hi\r\n") == b"5 200 A:hi\r\n"

    _auto(test)


def test_unknown_protocol_is_closed_and_counted() -> None:
    async def test(port: int, runtime: ProxyRuntime) -> None:
        assert await _raw(port, b"\x16\x03\x01garbage") == b"<EOF>"
        assert runtime.listeners[0].stats.failures == 1

    _auto(test)


def test_undecidable_prefix_ends_at_the_sniff_deadline() -> None:
    async def test(port: int, runtime: ProxyRuntime) -> None:
        start = trio.current_time()
        assert await _raw(port, b"LIN") == b"<EOF>"  # could still be LINE: wait, then give up
        assert 0.25 < trio.current_time() - start < 2.5

    _auto(test)


def test_tcp_listener_relays_bytes_untouched() -> None:
    async def test(port: int, runtime: ProxyRuntime) -> None:
        # The mux upstream answers its own protocol; the tcp listener just carries the bytes.
        assert await _raw(port, b"MUX 9 svc raw\r\n") == b"9 200 A:raw\r\n"

    _auto(test, protocol="tcp")


def test_tcp_relay_ends_after_the_idle_timeout() -> None:
    async def test(port: int, runtime: ProxyRuntime) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"MUX 9 svc raw\r\n")
            assert await stream.receive_some(100) == b"9 200 A:raw\r\n"
            start = trio.current_time()
            assert await stream.receive_some(100) == b""  # nothing moved for 300 ms: closed
            assert 0.2 < trio.current_time() - start < 1.5

    _auto(test, protocol="tcp", idle="300ms")
