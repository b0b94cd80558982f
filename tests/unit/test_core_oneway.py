"""Oneway requests (``Headers.extensions["oneway"]``): written upstream, finished at once.

A fake MULTIPLEX codec whose payloads starting with ``ow`` are oneway; the fake upstream
never answers those, as a Thrift server never answers a oneway call. The client reuses
one id for every request, as Python Thrift clients do.
"""

from __future__ import annotations

import socket
from typing import Any

import trio

from mesh.codec import Role
from mesh.config import parse
from mesh.registry import Plugin, Registry
from mesh.runtime import ProxyRuntime
from tests.unit.fakemux import MuxCodec, MuxConnection


class _OnewayConnection(MuxConnection):
    def _parse(self, line: bytes) -> Any:
        event = super()._parse(line)
        if self.role is Role.SERVER and dict(event.fields)[b"payload"].startswith(b"ow"):
            event.extensions["oneway"] = True
        return event


class _OnewayMux(MuxCodec):
    conn = _OnewayConnection


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _upstream(nursery: trio.Nursery, seen: list[bytes]) -> int:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]

    async def handle(stream: trio.SocketStream) -> None:
        buf = b""
        async with stream:
            while data := await stream.receive_some(4096):
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    seen.append(line)
                    _, sid, _, payload = line.split(b" ", 3)
                    if not payload.startswith(b"ow"):
                        await stream.send_all(sid + b" 200 " + payload + b"\r\n")

    nursery.start_soon(trio.serve_listeners, handle, [listener])
    return int(listener.socket.getsockname()[1])


async def _read_for(stream: trio.SocketStream, seconds: float) -> bytes:
    out = b""
    with trio.move_on_after(seconds):
        while chunk := await stream.receive_some(4096):
            out += chunk
    return out


def test_oneway_is_finished_when_written_and_never_answered() -> None:
    seen: list[bytes] = []
    got: dict[str, bytes] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            codec = _OnewayMux()
            registry = Registry({"mux": Plugin("mux", codec, "tests", "tests")}, {})
            listen = _free_port()
            config = parse({
                "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "mux",
                               "routes": [{"match": {"service": "svc"}, "cluster": "a",
                                           "timeout": "200ms"}]}],
                "clusters": [{"name": "a", "endpoints": [f"127.0.0.1:{await _upstream(nursery, seen)}"]}],
                "admin": None, "logging": {"access_log": False}}, "<test>")
            runtime = ProxyRuntime(config, registry)
            await nursery.start(runtime.run)
            with trio.fail_after(10):
                stream = await trio.open_tcp_stream("127.0.0.1", listen)
                async with stream:
                    # routed oneway, unrouted oneway: no reply, not even after the route timeout
                    await stream.send_all(b"MUX 0 svc ow_1\r\nMUX 0 other ow_2\r\n")
                    got["silence"] = await _read_for(stream, 0.6)
                    # the same id again, now a call: exactly its own reply
                    await stream.send_all(b"MUX 0 svc call\r\n")
                    got["call"] = await _read_for(stream, 0.5)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert got["silence"] == b""
    assert got["call"] == b"0 200 call\r\n"
    assert [line.split(b" ")[3] for line in seen] == [b"ow_1", b"call"]
    assert seen[0].split(b" ")[1] != seen[1].split(b" ")[1]  # fresh upstream ids
