"""Shared upstream pools (MULTIPLEX, PIPELINE) and multiplexed sessions, with fake codecs."""

from __future__ import annotations

import socket

import trio

from mesh.config import parse
from mesh.registry import Plugin, Registry
from mesh.runtime import ProxyRuntime
from tests.unit.fakemux import mux, pipe


def _registry() -> Registry:
    return Registry({c.name: Plugin(c.name, c, "tests", "tests") for c in (mux, pipe)}, {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _upstream(nursery: trio.Nursery, tag: bytes, kind: str, stats: dict[str, int]) -> int:
    """Fake server: payload ``d<ms>`` replies after that delay; mux replies out of order."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]

    async def handle(stream: trio.SocketStream) -> None:
        stats["accepted"] += 1
        lock = trio.Lock()
        buf = b""
        async with stream, trio.open_nursery() as inner:
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    stats["ids"] = max(stats.get("ids", 0), 0)
                    if kind == "mux":
                        _, sid, _, payload = line.split(b" ", 3)
                        inner.start_soon(_answer, stream, lock, sid + b" 200 " + tag + b":" + payload, payload)
                    else:
                        _, _, payload = line.split(b" ", 2)
                        await _sleep_for(payload)
                        await stream.send_all(b"200 " + tag + b":" + payload + b"\r\n")

    async def _answer(stream: trio.SocketStream, lock: trio.Lock, reply: bytes, payload: bytes) -> None:
        await _sleep_for(payload)
        async with lock:
            await stream.send_all(reply + b"\r\n")

    nursery.start_soon(trio.serve_listeners, handle, [listener])
    return int(listener.socket.getsockname()[1])


async def _sleep_for(payload: bytes) -> None:
    if payload.startswith(b"d"):
        await trio.sleep(int(payload[1:].split(b"_")[0]) / 1000)


async def _exchange(port: int, lines: list[bytes], replies: int) -> list[bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"".join(lines))
        buf = b""
        while buf.count(b"\r\n") < replies:
            data = await stream.receive_some(4096)
            if not data:
                break
            buf += data
        return buf.split(b"\r\n")[:replies]


def _run(protocol: str, routes: list[dict], upstreams: dict[str, bytes], test, timeout="5s") -> dict:
    stats: dict[str, dict[str, int]] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ports = {}
            for name, tag in upstreams.items():
                stats[name] = {"accepted": 0}
                ports[name] = await _upstream(nursery, tag, protocol, stats[name])
            listen = _free_port()
            for route in routes:
                route.setdefault("timeout", timeout)
            config = parse({
                "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}",
                               "protocol": protocol, "routes": routes}],
                "clusters": [{"name": n, "endpoints": [f"127.0.0.1:{p}"]} for n, p in ports.items()],
                "admin": None, "logging": {"access_log": False}}, "<test>")
            await nursery.start(ProxyRuntime(config, _registry()).run)
            with trio.fail_after(10):
                await test(listen)
            nursery.cancel_scope.cancel()

    trio.run(main)
    return stats


def test_multiplex_rewrites_ids_and_matches_out_of_order_replies() -> None:
    results: list[list[bytes]] = []

    async def test(port: int) -> None:
        async def client(prefix: bytes) -> None:
            # Every client uses the same ids 1..4, as real RPC clients do.
            lines = [b"MUX %d svc d%d_%s\r\n" % (i, 80 - 20 * i, prefix) for i in range(1, 5)]
            results.append(await _exchange(port, lines, 4))

        async with trio.open_nursery() as n:
            n.start_soon(client, b"x")
            n.start_soon(client, b"y")

    stats = _run("mux", [{"cluster": "a"}], {"a": b"A"}, test)
    assert stats["a"]["accepted"] == 1  # both clients share one upstream connection
    for replies in results:
        assert [r.split(b" ")[0] for r in replies] == [b"4", b"3", b"2", b"1"]  # fastest first
        tag = replies[0].split(b"_")[-1]
        assert all(r.startswith(b"%s 200 A:d" % r.split(b" ")[0]) and r.endswith(tag)
                   for r in replies), replies


def test_multiplex_timeout_answers_only_the_slow_call() -> None:
    async def test(port: int) -> None:
        replies = await _exchange(port, [b"MUX 7 svc d2000\r\n", b"MUX 8 svc d10\r\n"], 2)
        assert replies[0] == b"8 200 A:d10"
        assert replies[1].startswith(b"7 504 TIMEOUT")

    _run("mux", [{"cluster": "a"}], {"a": b"A"}, test, timeout="300ms")


def test_pipeline_keeps_request_order_across_shards() -> None:
    async def test(port: int) -> None:
        lines = [b"PIPE %s d%d_%d\r\n" % (svc, delay, i)
                 for i, (svc, delay) in enumerate([(b"slow", 150), (b"fast", 0), (b"slow", 50),
                                                   (b"fast", 0), (b"none", 0)])]
        replies = await _exchange(port, lines, 5)
        assert replies[:4] == [b"200 S:d150_0", b"200 F:d0_1", b"200 S:d50_2", b"200 F:d0_3"]
        assert replies[4].startswith(b"404 NO_ROUTE")

    _run("pipe", [{"match": {"service": "slow"}, "cluster": "s"},
                  {"match": {"service": "fast"}, "cluster": "f"}],
         {"s": b"S", "f": b"F"}, test)


def test_dead_upstream_gives_unavailable_for_shared_pools() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listen, dead = _free_port(), _free_port()
            config = parse({
                "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "mux",
                               "routes": [{"cluster": "a"}]}],
                "clusters": [{"name": "a", "endpoints": [f"127.0.0.1:{dead}"]}],
                "admin": None, "logging": {"access_log": False}}, "<test>")
            await nursery.start(ProxyRuntime(config, _registry()).run)
            replies = await _exchange(listen, [b"MUX 3 svc x\r\n"], 1)
            assert replies[0].startswith(b"3 503 UNAVAILABLE")
            nursery.cancel_scope.cancel()

    trio.run(main)


async def _send_then_eof(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()  # half-close: no more requests, replies still wanted
        out = b""
        while chunk := await stream.receive_some(4096):
            out += chunk
        return out


def test_replies_owed_are_sent_after_the_client_half_closes() -> None:
    async def test(port: int) -> None:
        out = await _send_then_eof(port, b"PIPE s d80_1\r\nPIPE s d10_2\r\nPIPE s d0_3\r\n")
        assert out == b"200 A:d80_1\r\n200 A:d10_2\r\n200 A:d0_3\r\n"

    _run("pipe", [{"cluster": "a"}], {"a": b"A"}, test)


def test_error_reply_comes_after_the_replies_before_it() -> None:
    async def test(port: int) -> None:
        out = await _send_then_eof(port, b"PIPE s d80_1\r\nGARBAGE\r\n")
        assert out.startswith(b"200 A:d80_1\r\n"), out
        assert out.endswith(b"0 400 bad\r\n"), out

    _run("pipe", [{"cluster": "a"}], {"a": b"A"}, test)


def test_idle_multiplexed_client_is_let_go_but_never_mid_exchange() -> None:
    """idle_timeout for MULTIPLEX sessions: swept by the reaper, not a cancel scope per wait."""
    outcome: dict[str, object] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            stats = {"accepted": 0}
            upstream = await _upstream(nursery, b"A", "mux", stats)
            listen = _free_port()
            config = parse({
                "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "mux",
                               "idle_timeout": "300ms", "routes": [{"cluster": "a", "timeout": "5s"}]}],
                "clusters": [{"name": "a", "endpoints": [f"127.0.0.1:{upstream}"]}],
                "admin": None, "logging": {"access_log": False}}, "<test>")
            await nursery.start(ProxyRuntime(config, _registry()).run)
            with trio.fail_after(10):
                # a call slower than idle_timeout is answered
                outcome["slow"] = await _exchange(listen, [b"MUX 1 svc d700_x\r\n"], 1)
                stream = await trio.open_tcp_stream("127.0.0.1", listen)
                async with stream:
                    started = trio.current_time()
                    outcome["eof"] = await stream.receive_some(100)
                    outcome["after"] = trio.current_time() - started
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert outcome["slow"] == [b"1 200 A:d700_x"]
    assert outcome["eof"] == b""
    assert 0.25 < outcome["after"] < 1.5  # type: ignore[operator]
