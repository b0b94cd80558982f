"""A provider's READONLY event drains it: the proxy stops sending it new calls.

The providers here are fakes on trio sockets (a unit test of the core's reaction to the
``draining`` extension); the real-peer Dubbo tests are tests/integration/test_dubbo_proxy.py.
"""

from __future__ import annotations

import socket
import struct

import trio
from mesh.codecs.dubbo import codec
from mesh.codecs.hessian2 import Encoder

from mesh.config import parse
from mesh.registry import Plugin, Registry
from mesh.runtime import ProxyRuntime

_HEAD = struct.Struct(">2sBBqI")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(request_id: int) -> bytes:
    out = Encoder()
    for value in ("2.0.2", "com.example.Echo", "1.0.0", "echo", "Ljava/lang/String;", "hi"):
        out.write_string(value)
    out.write_map({"path": "com.example.Echo"})
    body = out.getvalue()
    return _HEAD.pack(b"\xda\xbb", 0xC2, 0, request_id, len(body)) + body


async def _provider(nursery: trio.Nursery, tag: bytes, calls: list[bytes], readonly_after: int) -> int:
    """Answers each call with the string ``tag``; sends READONLY after ``readonly_after`` calls."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]

    async def handle(stream: trio.SocketStream) -> None:
        buf, served = b"", 0
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 16:
                    _, _, _, rid, length = _HEAD.unpack_from(buf)
                    if len(buf) < 16 + length:
                        break
                    buf = buf[16 + length :]
                    calls.append(tag)
                    served += 1
                    body = b"\x91" + bytes([len(tag)]) + tag  # RESPONSE_VALUE, compact string
                    out = _HEAD.pack(b"\xda\xbb", 0x02, 20, rid, len(body)) + body
                    if served == readonly_after:  # one-way event, body hessian "R"
                        out += _HEAD.pack(b"\xda\xbb", 0xA2, 0, 999, 2) + b"\x01R"
                    await stream.send_all(out)

    nursery.start_soon(trio.serve_listeners, handle, [listener])
    return int(listener.socket.getsockname()[1])


def test_readonly_event_drains_the_provider() -> None:
    calls: list[bytes] = []
    answers: list[bytes] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            a = await _provider(nursery, b"A", calls, readonly_after=1)
            b = await _provider(nursery, b"B", calls, readonly_after=0)
            listen = _free_port()
            config = parse({
                "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "dubbo",
                               "routes": [{"cluster": "c"}]}],
                "clusters": [{"name": "c", "endpoints": [f"127.0.0.1:{a}", f"127.0.0.1:{b}"],
                              "lb": "round_robin"}],
                "admin": None, "logging": {"access_log": False}}, "<test>")
            registry = Registry({"dubbo": Plugin("dubbo", codec, "tests", "tests")}, {})
            await nursery.start(ProxyRuntime(config, registry).run)
            with trio.fail_after(10):
                stream = await trio.open_tcp_stream("127.0.0.1", listen)
                async with stream:
                    for i in range(8):
                        await stream.send_all(_request(i))
                        reply = b""
                        while len(reply) < 16 or len(reply) < 16 + _HEAD.unpack_from(reply)[4]:
                            reply += await stream.receive_some(65536)
                        answers.append(reply[-1:])
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(main)
    first = answers.index(b"A")
    assert answers[first + 1 :] == [b"B"] * (len(answers) - first - 1), answers
    assert calls.count(b"A") == 1
