"""HTTP/1.1 through rpcmesh, with Debian nginx as the upstream and curl, wrk and raw sockets
(h11 as the client-side parser) as clients.

Run: ``python -m pytest -q tests/integration/test_http1_proxy.py`` (needs nginx and curl; wrk
for one test).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from .mesh_harness import (
    LOOPBACK,
    Blackhole,
    MeshProxy,
    MeshProxyFactory,
    NginxUpstream,
    require_tools,
    sha256_file,
)

pytestmark = pytest.mark.integration

HELLO = b"hello world!\n"


# --------------------------------------------------------------------------------------------
# clients


def curl(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
    """Run curl (never through an environment proxy); stdout and stderr captured."""
    exe = require_tools("curl")["curl"]
    return subprocess.run(
        [exe, "--silent", "--show-error", "--noproxy", "*", "--max-time", str(int(timeout)),
         *args],
        capture_output=True, timeout=timeout + 10, stdin=subprocess.DEVNULL,
    )


def curl_status(*args: str, timeout: float = 60.0) -> tuple[int, bytes, float]:
    """(status, body, elapsed seconds) of one curl request."""
    t0 = time.monotonic()
    res = curl("--write-out", "\n%{http_code}", *args, timeout=timeout)
    elapsed = time.monotonic() - t0
    body, _, code = res.stdout.rpartition(b"\n")
    assert code.isdigit(), f"curl failed: rc={res.returncode} {res.stderr.decode()!r}"
    return int(code), body, elapsed


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    reason: bytes = b""
    informational: list[int] = field(default_factory=list)


class RawClient:
    """A raw TCP client that writes requests itself and parses responses with h11."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.timeout = timeout
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=256 * 1024)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                body: bytes = b"") -> Response:
        """Send one request through h11 and read its response."""
        self.expect(method, target, headers)
        if body:
            self.sock.sendall(self.conn.send(h11.Data(data=body)))
        self.sock.sendall(self.conn.send(h11.EndOfMessage()))
        return self.read_response()

    def expect(self, method: str, target: str,
               headers: list[tuple[str, str]] | None = None, *, send: bool = True) -> None:
        """Tell h11 a request went out (writing it unless send=False, for pipelining)."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        hdrs = [("Host", f"{LOOPBACK}")] + list(headers or [])
        data = self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
        if send:
            self.sock.sendall(data)

    def finish_pipelined_request(self) -> None:
        self.conn.send(h11.EndOfMessage())

    def _event(self, deadline: float) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if time.monotonic() > deadline:
                raise TimeoutError("no complete response in time")
            self.conn.receive_data(self.sock.recv(65536))

    def read_response(self) -> Response:
        deadline = time.monotonic() + self.timeout
        informational = []
        while True:
            event = self._event(deadline)
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
                continue
            assert isinstance(event, h11.Response), f"expected a response, got {event!r}"
            break
        headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        chunks = []
        while True:
            ev = self._event(deadline)
            if isinstance(ev, h11.Data):
                chunks.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected event {ev!r}")
        return Response(event.status_code, headers, b"".join(chunks), event.reason,
                        informational)


def read_until_close(sock: socket.socket, timeout: float = 5.0, limit: int = 1 << 20) -> bytes:
    """Read until EOF, reset or `timeout`; raise if the peer keeps the connection open."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        if time.monotonic() > deadline:
            raise AssertionError(f"connection still open after {timeout} s; got {data[:200]!r}")
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError as exc:
            raise AssertionError(
                f"connection still open after {timeout} s; got {data[:200]!r}") from exc
        if not chunk:
            break
        data += chunk
    return data


def status_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


# --------------------------------------------------------------------------------------------
# the harness itself: nginx answers each endpoint directly


def test_nginx_upstream_endpoints_direct(nginx_upstream: NginxUpstream) -> None:
    """Checks the peer, not the proxy: if this fails, the failure is in the test harness."""
    status, body, _ = curl_status(nginx_upstream.url("/hello"))
    assert (status, body) == (200, HELLO)
    res = curl("-D", "-", "-o", "/dev/null", nginx_upstream.url("/chunked"))
    assert b"transfer-encoding: chunked" in res.stdout.lower()
    status, body, _ = curl_status(nginx_upstream.url("/chunked"))
    assert status == 200 and body == nginx_upstream.chunked_body
    res = curl(nginx_upstream.url("/big"))
    assert hashlib.sha256(res.stdout).hexdigest() == nginx_upstream.big_sha256
    for code in (404, 204, 503):
        assert curl_status(nginx_upstream.url(f"/status/{code}"))[0] == code
    res = curl("-D", "-", "-o", "/dev/null", "-H", "x-big: abc", nginx_upstream.url("/headers"))
    assert b"x-echo: abc" in res.stdout.lower()
    name = f"direct-{uuid.uuid4().hex}.bin"
    status, _, _ = curl_status("-X", "PUT", "--data-binary", "payload",
                               nginx_upstream.url(f"/upload/{name}"))
    assert status == 201
    assert nginx_upstream.upload_sha256(name) == hashlib.sha256(b"payload").hexdigest()


# --------------------------------------------------------------------------------------------
# the "must show" list


def test_get_hello(nginx_proxy: MeshProxy) -> None:
    status, body, _ = curl_status(nginx_proxy.url("/hello"))
    assert (status, body) == (200, HELLO)


def test_keepalive_client_connection_reused(nginx_proxy: MeshProxy) -> None:
    paths = ["/hello", "/status/404", "/hello", "/chunked", "/hello"]
    res = curl("-v", *[nginx_proxy.url(p) for p in paths])
    err = res.stderr.decode()
    assert res.returncode == 0, err
    reused = err.count("Re-using existing connection")
    assert reused == len(paths) - 1, f"curl opened more than one connection:\n{err}"
    assert err.count("Connection #0") >= 1 and "Connection #1" not in err, err


def test_keepalive_upstream_connections_reused(nginx_proxy: MeshProxy,
                                               nginx_upstream: NginxUpstream) -> None:
    """Sequential client connections should be served from a pool of upstream connections."""
    test_id = uuid.uuid4().hex
    mark = nginx_upstream.access_log_mark()
    for _ in range(20):
        with RawClient(nginx_proxy.port) as c:
            r = c.request("GET", "/hello", [("x-test-id", test_id)])
            assert (r.status, r.body) == (200, HELLO)
    entries = [e for e in nginx_upstream.access_log(mark) if e.test_id == test_id]
    assert len(entries) == 20
    connections = {e.connection for e in entries}
    assert len(connections) <= 2, (
        f"20 sequential requests used {len(connections)} upstream connections")


def test_chunked_response_relayed(nginx_proxy: MeshProxy, nginx_upstream: NginxUpstream) -> None:
    with RawClient(nginx_proxy.port) as c:
        r = c.request("GET", "/chunked")
        assert r.status == 200
        assert r.headers.get("transfer-encoding", "").lower() == "chunked", r.headers
        assert "content-length" not in r.headers
        assert r.body == nginx_upstream.chunked_body
        # the connection stays usable after the chunked body
        r2 = c.request("GET", "/hello")
        assert (r2.status, r2.body) == (200, HELLO)


def test_big_download_sha256(nginx_proxy: MeshProxy, nginx_upstream: NginxUpstream,
                             tmp_path: Path) -> None:
    out = tmp_path / "big.out"
    status, _, _ = curl_status("-o", str(out), nginx_proxy.url("/big"), timeout=60)
    assert status == 200
    assert out.stat().st_size == nginx_upstream.big_size
    assert sha256_file(out) == nginx_upstream.big_sha256


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_20mib(framing: str, nginx_proxy: MeshProxy, nginx_upstream: NginxUpstream,
                      upload_file: tuple[Path, str]) -> None:
    path, sha = upload_file
    name = f"{framing}-{uuid.uuid4().hex}.bin"
    args = ["-T", str(path), "-H", "Expect:"]  # Expect: is tested on its own below
    if framing == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    res = curl("-v", "--write-out", "\n%{http_code}", *args,
               nginx_proxy.url(f"/upload/{name}"), timeout=60)
    code = res.stdout.rpartition(b"\n")[2]
    err = res.stderr.decode(errors="replace")
    assert code in (b"201", b"204"), f"status {code!r}\n{err[-3000:]}"
    sent = "> Transfer-Encoding: chunked" if framing == "chunked" else "> Content-Length: 20971520"
    assert sent in err, "curl did not send the intended framing"
    assert nginx_upstream.upload_sha256(name) == sha


def test_expect_100_continue_upload(nginx_proxy: MeshProxy, nginx_upstream: NginxUpstream,
                                    upload_file: tuple[Path, str]) -> None:
    path, sha = upload_file
    name = f"expect-{uuid.uuid4().hex}.bin"
    t0 = time.monotonic()
    # curl waits up to --expect100-timeout for the 100; a proxy that swallows it costs 10 s.
    res = curl("-v", "--write-out", "\n%{http_code}", "-T", str(path),
               "-H", "Expect: 100-continue", "--expect100-timeout", "10",
               nginx_proxy.url(f"/upload/{name}"), timeout=60)
    elapsed = time.monotonic() - t0
    err = res.stderr.decode(errors="replace")
    assert "> Expect: 100-continue" in err
    assert "< HTTP/1.1 100 Continue" in err, f"no 100 Continue relayed:\n{err[-3000:]}"
    assert res.stdout.rpartition(b"\n")[2] in (b"201", b"204")
    assert elapsed < 8, f"upload took {elapsed:.1f} s"
    assert nginx_upstream.upload_sha256(name) == sha


def test_head_then_get_on_same_connection(nginx_proxy: MeshProxy,
                                          nginx_upstream: NginxUpstream) -> None:
    with RawClient(nginx_proxy.port) as c:
        r = c.request("HEAD", "/big")
        assert r.status == 200
        assert r.headers.get("content-length") == str(nginx_upstream.big_size)
        assert r.body == b""
        # a proxy that tried to relay a HEAD body would corrupt this next response
        r2 = c.request("GET", "/hello")
        assert (r2.status, r2.body) == (200, HELLO)


def test_pipelined_requests_answered_in_order(nginx_proxy: MeshProxy,
                                              nginx_upstream: NginxUpstream) -> None:
    wire = (
        b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /status/404 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    with RawClient(nginx_proxy.port) as c:
        c.sock.sendall(wire)  # all three in one send
        results = []
        for target in ("/hello", "/status/404", "/chunked"):
            c.expect("GET", target, send=False)
            c.finish_pipelined_request()
            results.append(c.read_response())
    assert [r.status for r in results] == [200, 404, 200]
    assert results[0].body == HELLO
    assert results[2].body == nginx_upstream.chunked_body


@pytest.mark.parametrize("code", [404, 204, 503])
def test_upstream_status_relayed(code: int, nginx_proxy: MeshProxy) -> None:
    with RawClient(nginx_proxy.port) as c:
        r = c.request("GET", f"/status/{code}")
        assert r.status == code
        if code == 204:
            assert r.body == b"" and "content-length" not in r.headers
        assert "nginx" in r.headers.get("server", ""), "reply not from the upstream"
        r2 = c.request("GET", "/hello")
        assert (r2.status, r2.body) == (200, HELLO)


def test_large_request_header_relayed(nginx_proxy: MeshProxy) -> None:
    big = os.urandom(16 * 1024).hex()  # 32 KiB of header value
    with RawClient(nginx_proxy.port) as c:
        r = c.request("GET", "/headers", [("x-big", big)])
    assert r.status == 200
    assert r.headers.get("x-echo") == big


def test_upstream_down_gives_503(mesh_proxy: MeshProxyFactory, dead_port: int) -> None:
    proxy = mesh_proxy(dead_port, protocol="http1")
    status, _, elapsed = curl_status(proxy.url("/hello"), timeout=10)
    assert status == 503
    assert elapsed < 5, f"503 took {elapsed:.2f} s"
    assert proxy.alive()


def test_upstream_hang_gives_504_after_route_timeout(mesh_proxy: MeshProxyFactory,
                                                     blackhole_upstream: Blackhole) -> None:
    proxy = mesh_proxy(blackhole_upstream, protocol="http1", timeout="1s")
    status, _, elapsed = curl_status(proxy.url("/hello"), timeout=10)
    assert status == 504
    assert 0.9 <= elapsed <= 3.0, f"504 after {elapsed:.2f} s, route timeout is 1 s"
    assert blackhole_upstream.accepted >= 1, "the proxy never connected to the upstream"
    assert proxy.alive()


def test_wrk_short_run_no_errors(nginx_proxy: MeshProxy) -> None:
    wrk = require_tools("wrk")["wrk"]
    res = subprocess.run([wrk, "-t1", "-c10", "-d2s", "--timeout", "2s",
                          nginx_proxy.url("/hello")],
                         capture_output=True, text=True, timeout=30)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Non-2xx" not in out, out
    assert "Socket errors" not in out, out
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) >= 100, out
    assert nginx_proxy.alive()


# --------------------------------------------------------------------------------------------
# robustness: bad clients never hurt the proxy or leak descriptors


def bad_garbage(port: int, check: bool = True) -> None:
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(b"\x00\xff\x13\x37 this is not HTTP \x01\x02\r\n\r\n")
        data = read_until_close(s)
    if check:
        assert status_line(data).startswith(b"HTTP/1.1 400"), data[:200]


def bad_truncated(port: int, check: bool = True) -> None:
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        s.shutdown(socket.SHUT_WR)
        data = read_until_close(s)
    if check:
        assert data == b"" or status_line(data).startswith(b"HTTP/1.1 400"), data[:200]


def bad_oversized_header(port: int, check: bool = True) -> None:
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        head = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: " + b"a" * (1 << 20)
        with contextlib.suppress(OSError):  # the proxy may answer and close mid-send
            s.sendall(head + b"\r\n\r\n")
        data = read_until_close(s)
    if check:
        assert status_line(data).startswith(b"HTTP/1.1 431"), data[:200]


def bad_disconnect_mid_body(port: int, check: bool = True) -> None:
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(b"PUT /upload/abandoned.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 10000000\r\n\r\n" + b"x" * 65536)
        time.sleep(0.01)


def bad_disconnect_mid_download(port: int, check: bool = True) -> None:
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = s.recv(65536)  # the head and some body, then hang up
    if check:
        assert status_line(data).startswith(b"HTTP/1.1 200"), data[:200]


BAD_CLIENTS: dict[str, Callable[[int, bool], None]] = {
    "garbage": bad_garbage,
    "truncated": bad_truncated,
    "oversized_header": bad_oversized_header,
    "disconnect_mid_body": bad_disconnect_mid_body,
    "disconnect_mid_download": bad_disconnect_mid_download,
}


def assert_healthy(proxy: MeshProxy) -> None:
    assert proxy.alive(), "proxy process died"
    assert proxy.ready_status() == 200
    status, body, _ = curl_status(proxy.url("/hello"), timeout=10)
    assert (status, body) == (200, HELLO)


@pytest.mark.parametrize("kind", list(BAD_CLIENTS))
def test_bad_client(kind: str, nginx_proxy: MeshProxy) -> None:
    BAD_CLIENTS[kind](nginx_proxy.port, True)
    assert_healthy(nginx_proxy)


def test_hundred_bad_connections_leak_no_fds(mesh_proxy: MeshProxyFactory,
                                             nginx_upstream: NginxUpstream) -> None:
    proxy = mesh_proxy(nginx_upstream, protocol="http1")
    assert_healthy(proxy)  # warm: the upstream pool holds its connection
    time.sleep(0.2)
    start_fds = proxy.open_fds()
    kinds = list(BAD_CLIENTS.values())
    deadline = time.monotonic() + 60
    for i in range(100):
        assert time.monotonic() < deadline, f"only {i} bad connections in 60 s"
        # replies are checked by test_bad_client; here only the aftermath counts
        kinds[i % len(kinds)](proxy.port, False)
    assert_healthy(proxy)
    margin = 4
    fds = proxy.open_fds()
    poll_deadline = time.monotonic() + 5
    while fds > start_fds + margin and time.monotonic() < poll_deadline:
        time.sleep(0.1)
        fds = proxy.open_fds()
    assert fds <= start_fds + margin, (
        f"open fds {start_fds} -> {fds} after 100 bad connections: "
        f"{sorted(os.listdir(f'/proc/{proxy.pid}/fd'), key=int)}")
