"""The small HTTP/1.1 client of the registry sources (mesh/discovery/_http.py), against raw
trio servers on 127.0.0.1: framing (length, chunked, to the end of the connection), every way
of not getting an answer (refused, silent, not HTTP, too large), failover across servers."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from mesh.discovery._http import HttpError, Server, Servers, parse_servers, request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def serving(nursery: trio.Nursery, answer: bytes | None, seen: list[bytes] | None = None) -> int:
    """A one-shot-per-connection server: reads the request head, writes ``answer``, closes
    (``None``: never answers)."""

    async def handler(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        if seen is not None:
            seen.append(data)
        if answer is None:
            await trio.sleep_forever()
        await stream.send_all(answer)
        await stream.aclose()

    listeners = await nursery.start(lambda task_status: trio.serve_tcp(
        handler, 0, host="127.0.0.1", task_status=task_status))
    return int(listeners[0].socket.getsockname()[1])


def run(test: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await test(nursery)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_framings() -> None:
    answers = {
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Consul-Index: 7\r\n\r\nhello": b"hello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n": b"hello",
        b"HTTP/1.0 200 OK\r\n\r\nhello": b"hello",  # to the end of the connection
    }

    async def test(nursery: trio.Nursery) -> None:
        for answer, body in answers.items():
            seen: list[bytes] = []
            port = await serving(nursery, answer, seen)
            response = await request(Server("http", "127.0.0.1", port, "/nacos", "u:p"), "GET",
                                     "/v1/ns/instance/list", query={"serviceName": "a b"},
                                     timeout=2)
            assert (response.status, response.body) == (200, body)
            assert seen[0].startswith(b"GET /nacos/v1/ns/instance/list?serviceName=a+b HTTP/1.1\r\n")
            assert b"Authorization: Basic dTpw\r\n" in seen[0]  # u:p
        assert response.headers.get("x-consul-index") is None

    run(test)


def test_no_answer_is_an_http_error() -> None:
    async def test(nursery: trio.Nursery) -> None:
        refused = Server("http", "127.0.0.1", free_port())
        with pytest.raises(HttpError, match=f"127.0.0.1:{refused.port}"):
            await request(refused, "GET", "/", timeout=2)
        silent = Server("http", "127.0.0.1", await serving(nursery, None))
        with pytest.raises(HttpError, match="no answer within 0.1s"):
            await request(silent, "GET", "/", timeout=0.1)
        garbage = Server("http", "127.0.0.1", await serving(nursery, b"SSH-2.0-OpenSSH\r\n\r\n"))
        with pytest.raises(HttpError, match="not an HTTP answer"):
            await request(garbage, "GET", "/", timeout=2)
        cut = Server("http", "127.0.0.1", await serving(
            nursery, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal"))
        with pytest.raises(HttpError, match="closed before a complete answer"):
            await request(cut, "GET", "/", timeout=2)
        big = Server("http", "127.0.0.1", await serving(
            nursery, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100))
        with pytest.raises(HttpError, match="larger than 10 bytes"):
            await request(big, "GET", "/", timeout=2, max_body=10)

    run(test)


def test_servers_fail_over_and_stay_on_the_one_that_answers() -> None:
    async def test(nursery: trio.Nursery) -> None:
        down = Server("http", "127.0.0.1", free_port())
        failing = Server("http", "127.0.0.1", await serving(
            nursery, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
        up = Server("http", "127.0.0.1", await serving(
            nursery, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        servers = Servers((down, failing, up), timeout=2)
        assert (await servers.request("GET", "/")).body == b"ok"
        assert servers.current == 2
        with pytest.raises(HttpError, match="HTTP 503"):
            await Servers((down, failing), timeout=2).request("GET", "/")

    run(test)


def test_parse_servers() -> None:
    parse = parse_servers
    assert parse("10.0.0.1", setting="address", default_port=8848, default_path="/nacos") == (
        Server("http", "10.0.0.1", 8848, "/nacos"),)
    assert parse(["https://[::1]/x/", "h:1"], setting="a", default_port=8500) == (
        Server("https", "::1", 443, "/x"), Server("http", "h", 1, ""))
    assert str(Server("http", "::1", 80)) == "[::1]:80"
    for bad, message in ((None, "a is required"), ("", "a is required"), (5, "a must be a string"),
                         ("h:port", "is not host:port or a URL"), ("h/x?y=1", "query")):
        with pytest.raises(ValueError, match=message):
            parse(bad, setting="a", default_port=1)
