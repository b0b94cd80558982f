"""The dns endpoint source: localhost through the runtime, settings refused clearly.

``localhost`` resolves to loopback addresses only, so the proxied traffic stays on 127.0.0.1
(and ::1 where the name has it).
"""

from __future__ import annotations

import socket

import pytest
import trio

from mesh.config import Endpoint, parse
from mesh.discovery.dns import DnsSource
from mesh.registry import load_registry
from mesh.runtime import ProxyRuntime


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="name is required"):
        DnsSource({"port": 80})
    with pytest.raises(ValueError, match="port is required"):
        DnsSource({"name": "localhost", "port": 0})
    with pytest.raises(ValueError, match="family"):
        DnsSource({"name": "localhost", "port": 80, "family": "ipx"})
    with pytest.raises(ValueError, match="unknown settings"):
        DnsSource({"name": "localhost", "port": 80, "ttl": 5})


def test_localhost_resolves_to_loopback() -> None:
    async def main() -> list[Endpoint]:
        return await DnsSource({"name": "localhost", "port": 6379, "family": "ipv4"}).resolve()

    assert trio.run(main) == [Endpoint("127.0.0.1", 6379, 1)]


def test_failures_keep_the_last_addresses() -> None:
    published: list[list[Endpoint]] = []
    reports: list[str] = []
    source = DnsSource({"name": "localhost", "port": 80, "refresh": "50ms", "family": "ipv4"})
    answers = [[Endpoint("127.0.0.1", 80)], OSError("server failure"), []]

    async def resolve() -> list[Endpoint]:
        answer = answers.pop(0) if answers else [Endpoint("127.0.0.1", 80)]
        if isinstance(answer, OSError):
            raise answer
        return answer

    source.resolve = resolve  # type: ignore[method-assign]

    async def main() -> None:
        with trio.move_on_after(0.4):
            await source.run(published.append, reports.append)

    trio.run(main)
    assert published == [[Endpoint("127.0.0.1", 80)]]  # once: failures and empties change nothing
    assert len(reports) == 1 and "server failure" in reports[0]


def test_a_dns_cluster_proxies_through_the_runtime() -> None:
    """A TCP listener whose cluster comes from DNS (localhost) relays to a real socket."""
    got: dict[str, bytes] = {}

    async def main() -> None:
        upstream = trio.socket.socket()
        await upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        port = upstream.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            listen = probe.getsockname()[1]
        config = parse({
            "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "tcp",
                           "cluster": "c"}],
            "clusters": [{"name": "c", "discovery": {"source": "dns", "config": {
                "name": "localhost", "port": port, "family": "ipv4", "refresh": "1s"}}}],
            "admin": None, "logging": {"access_log": False}}, "<test>")
        async with trio.open_nursery() as nursery:
            runtime = await nursery.start(ProxyRuntime(config, load_registry()).run)
            with trio.fail_after(5):
                while not runtime.clusters["c"].endpoints:
                    await trio.sleep(0.02)
                client = await trio.open_tcp_stream("127.0.0.1", listen)
                conn, _ = await upstream.accept()
                await client.send_all(b"ping")
                got["upstream"] = await conn.recv(10)
                await conn.send(b"pong")
                got["client"] = await client.receive_some(10)
                await client.aclose()
                conn.close()
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert got == {"upstream": b"ping", "client": b"pong"}
