"""HTTP/2 through rpcmesh with real peers: curl and h2load (nghttp2) as clients; hypercorn
(h2c, tests/peers/grpc_echo/h2c_server.py) and nginx (HTTP/1.1) as upstreams.

- h2c prior knowledge, client and upstream both HTTP/2 (``--protocol http2``);
- ``Upgrade: h2c`` from an HTTP/1.1 client on an auto-sniffing listener (``--protocol auto``);
- h2load, 2000 requests on 4 connections, 16 streams each;
- bridging: an HTTP/1.1 client to an h2c upstream (``--protocol http1 --upstream-protocol
  http2``), an HTTP/2 client to an HTTP/1.1 upstream (``--protocol http2 --upstream-protocol
  http1``), including 32 MiB to a slow reader with the proxy's memory bounded;
- a broken client (garbage after the preface) gets a GOAWAY and the proxy serves the next one.

The hypercorn tests run ``direct`` too (no proxy: proves the peers and the test). Every
client has a timeout; no assertion is about time.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .h2_fixtures import PeerServer
from .mesh_harness import (
    LOOPBACK,
    MeshProxy,
    MeshProxyFactory,
    NginxUpstream,
    free_port,
    require_tools,
    sha256_file,
    start_nginx,
    stop_process,
    write_random_file,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY, SETTINGS = 0x7, 0x4
PROTOCOL_ERROR, FRAME_SIZE_ERROR = 0x1, 0x6
SLOW_RATE = "4M"  # curl --limit-rate for the slow-reader test
RSS_GROWTH_LIMIT = 24 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# clients


@dataclass
class CurlResult:
    status: int
    http_version: str  # curl's %{http_version}: "1.1" or "2"
    headers: dict[str, str]  # of the final response, lower-cased names
    body_path: Path
    all_headers: str = field(repr=False, default="")

    @property
    def body(self) -> bytes:
        return self.body_path.read_bytes()


def curl(tmp_path: Path, url: str, *args: str, timeout: float = 30.0,
         name: str = "body") -> CurlResult:
    """Run curl once (bounded) and return the final response."""
    exe = require_tools("curl")["curl"]
    body, head = tmp_path / f"{name}.out", tmp_path / f"{name}.headers"
    argv = [exe, "-sS", "--noproxy", "*", "--max-time", f"{timeout:g}", "-o", str(body),
            "-D", str(head), "-w", "%{http_version} %{response_code}", *args, url]
    res = subprocess.run(argv, capture_output=True, timeout=timeout + 10, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (f"curl failed (rc {res.returncode}): "
                                 f"{res.stderr.decode(errors='replace')}\n$ {' '.join(argv)}")
    version, status = res.stdout.decode().split()
    text = head.read_text("latin-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    headers = {}
    for line in blocks[-1].splitlines()[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return CurlResult(int(status), version, headers, body, text)


def h2load(url: str, *args: str, timeout: float = 60.0,
           log_file: Path | None = None) -> tuple[int, int, int, str]:
    """(succeeded, failed, 2xx) of one bounded h2load run, and its output (with a count of
    the statuses from ``--log-file`` when one is given)."""
    exe = require_tools("h2load")["h2load"]
    extra = []
    if log_file is not None:
        log_file.unlink(missing_ok=True)  # h2load appends
        extra = ["--log-file", str(log_file)]
    res = subprocess.run([exe, *args, *extra, url], capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    assert requests and codes, f"unexpected h2load output (rc {res.returncode}):\n{out}"
    if log_file is not None and log_file.exists():
        statuses = Counter(line.split("\t")[1] for line in log_file.read_text().splitlines()
                           if line.count("\t") >= 2)
        out += f"\nstatuses from --log-file: {dict(statuses)}"
    return int(requests.group(4)), int(requests.group(5)), int(codes.group(1)), out


# --------------------------------------------------------------------------------------------
# proxies


@pytest.fixture(scope="module")
def h2_proxy(mesh_proxy_module: MeshProxyFactory, h2c_upstream: PeerServer) -> MeshProxy:
    """rpcmesh --protocol http2 in front of hypercorn (h2c both sides)."""
    return mesh_proxy_module(h2c_upstream, protocol="http2")


@pytest.fixture(scope="module", params=["direct", "rpcmesh"])
def h2c_target(request: pytest.FixtureRequest, h2c_upstream: PeerServer,
               mesh_proxy_module: MeshProxyFactory) -> int:
    if request.param == "direct":
        return h2c_upstream.port
    return mesh_proxy_module(h2c_upstream, protocol="http2").port


def url(port: int, path: str) -> str:
    return f"http://{LOOPBACK}:{port}{path}"


# --------------------------------------------------------------------------------------------
# h2c on both sides


def test_prior_knowledge_get(tmp_path: Path, h2c_target: int) -> None:
    res = curl(tmp_path, url(h2c_target, "/hello"), "--http2-prior-knowledge")
    assert (res.status, res.http_version, res.body) == (200, "2", b"hello world!\n")
    assert res.headers["x-upstream-http-version"] == "2"


def test_prior_knowledge_post_1mib_echo(tmp_path: Path, h2c_target: int) -> None:
    src = tmp_path / "upload.bin"
    digest = write_random_file(src, 1024 * 1024)
    res = curl(tmp_path, url(h2c_target, "/echo"), "--http2-prior-knowledge",
               "--data-binary", f"@{src}", "-H", "content-type: application/octet-stream")
    assert (res.status, res.http_version) == (200, "2")
    assert res.headers["x-request-sha256"] == digest  # what hypercorn received
    assert sha256_file(res.body_path) == digest  # what came back


def test_prior_knowledge_404_passthrough(tmp_path: Path, h2c_target: int) -> None:
    res = curl(tmp_path, url(h2c_target, "/status/404"), "--http2-prior-knowledge")
    assert (res.status, res.http_version, res.body) == (404, "2", b"status 404\n")


def test_h2load_all_2xx(tmp_path: Path, h2c_target: int) -> None:
    succeeded, failed, ok, out = h2load(url(h2c_target, "/hello"),
                                        "-n", "2000", "-c", "4", "-m", "16",
                                        log_file=tmp_path / "h2load.log")
    assert (succeeded, failed, ok) == (2000, 0, 2000), out


# nginx as an h2c upstream that ends every connection with GOAWAY after 100 requests
GOAWAY_AFTER = 100
NGINX_H2C_GOAWAY_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/logs/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests {max_requests};
    server {{
        listen {host}:{port} http2;
        location / {{ default_type text/plain; return 200 "hello world!\\n"; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def nginx_h2c_goaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Port of an nginx h2c upstream that sends GOAWAY (NO_ERROR) after every 100 streams."""
    prefix = tmp_path_factory.mktemp("nginx-h2c-goaway")
    port = free_port()
    conf = NGINX_H2C_GOAWAY_CONF.format(d=prefix, host=LOOPBACK, port=port,
                                        max_requests=GOAWAY_AFTER)
    proc = start_nginx(prefix, conf, port, name="nginx h2c upstream")
    try:
        yield port
    finally:
        stop_process(proc)


def test_upstream_goaway_sequential_requests(tmp_path: Path, mesh_proxy: MeshProxyFactory,
                                             nginx_h2c_goaway: int) -> None:
    """One request at a time while the upstream drains its connection every 100 requests with
    a graceful GOAWAY: no request is ever refused by the upstream (each one starts after the
    previous answer), so the proxy must put every one on a live connection: all 2xx."""
    proxy = mesh_proxy(nginx_h2c_goaway, protocol="http2")
    succeeded, failed, ok, out = h2load(proxy.url("/"), "-n", str(3 * GOAWAY_AFTER),
                                        "-c", "1", "-m", "1", log_file=tmp_path / "h2load.log")
    assert (succeeded, failed, ok) == (3 * GOAWAY_AFTER, 0, 3 * GOAWAY_AFTER), out


# --------------------------------------------------------------------------------------------
# protocol auto: HTTP/1.1 Upgrade: h2c and prior knowledge on one listener


@pytest.fixture(scope="module")
def auto_proxy(mesh_proxy_module: MeshProxyFactory, h2c_upstream: PeerServer) -> MeshProxy:
    return mesh_proxy_module(h2c_upstream, protocol="auto")


def test_auto_prior_knowledge(tmp_path: Path, auto_proxy: MeshProxy) -> None:
    res = curl(tmp_path, auto_proxy.url("/hello"), "--http2-prior-knowledge")
    assert (res.status, res.http_version, res.body) == (200, "2", b"hello world!\n")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_auto_upgrade_h2c(tmp_path: Path, auto_proxy: MeshProxy, method: str) -> None:
    """curl --http2 sends HTTP/1.1 with ``Upgrade: h2c``: a server may switch (101, then the
    answer over HTTP/2 on stream 1) or answer over HTTP/1.1; curl accepts both."""
    if method == "GET":
        res = curl(tmp_path, auto_proxy.url("/hello"), "--http2")
        expected = b"hello world!\n"
    else:
        res = curl(tmp_path, auto_proxy.url("/echo"), "--http2", "--data-binary", "upgrade me")
        expected = b"upgrade me"
    assert (res.status, res.body) == (200, expected)
    if res.http_version != "2":
        pytest.xfail("rpcmesh answered the Upgrade: h2c request over HTTP/1.1 instead of "
                     f"switching to h2c (curl accepts that; HTTP/{res.http_version})")
    assert res.all_headers.startswith("HTTP/1.1 101")


# --------------------------------------------------------------------------------------------
# bridging


@pytest.fixture(scope="module")
def h1_to_h2c_proxy(mesh_proxy_module: MeshProxyFactory, h2c_upstream: PeerServer) -> MeshProxy:
    return mesh_proxy_module(h2c_upstream, protocol="http1",
                             extra_args=("--upstream-protocol", "http2"))


def test_http1_client_to_h2c_upstream(tmp_path: Path, h1_to_h2c_proxy: MeshProxy) -> None:
    res = curl(tmp_path, h1_to_h2c_proxy.url("/hello"), "--http1.1", name="get")
    assert (res.status, res.http_version, res.body) == (200, "1.1", b"hello world!\n")
    assert res.headers["x-upstream-http-version"] == "2"  # hypercorn saw HTTP/2
    src = tmp_path / "upload.bin"
    digest = write_random_file(src, 1024 * 1024 + 17)
    res = curl(tmp_path, h1_to_h2c_proxy.url("/echo"), "--http1.1", "--data-binary",
               f"@{src}", name="post")
    assert (res.status, res.http_version) == (200, "1.1")
    assert res.headers["x-upstream-http-version"] == "2"
    assert res.headers["x-request-sha256"] == digest
    assert sha256_file(res.body_path) == digest
    res = curl(tmp_path, h1_to_h2c_proxy.url("/status/404"), "--http1.1", name="404")
    assert (res.status, res.body) == (404, b"status 404\n")


@pytest.fixture(scope="module")
def h2_to_nginx_proxy(mesh_proxy_module: MeshProxyFactory,
                      nginx_upstream: NginxUpstream) -> MeshProxy:
    return mesh_proxy_module(nginx_upstream, protocol="http2",
                             extra_args=("--upstream-protocol", "http1"))


def test_h2_client_to_http1_upstream(tmp_path: Path, h2_to_nginx_proxy: MeshProxy,
                                     nginx_upstream: NginxUpstream) -> None:
    res = curl(tmp_path, h2_to_nginx_proxy.url("/hello"), "--http2-prior-knowledge", name="hello")
    assert (res.status, res.http_version, res.body) == (200, "2", b"hello world!\n")
    res = curl(tmp_path, h2_to_nginx_proxy.url("/big"), "--http2-prior-knowledge", name="big")
    assert (res.status, res.http_version) == (200, "2")
    assert res.body_path.stat().st_size == nginx_upstream.big_size
    assert sha256_file(res.body_path) == nginx_upstream.big_sha256
    res = curl(tmp_path, h2_to_nginx_proxy.url("/status/404"), "--http2-prior-knowledge",
               name="404")
    assert (res.status, res.http_version) == (404, "2")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_slow_reader_memory_bounded(tmp_path: Path, mesh_proxy: MeshProxyFactory,
                                    nginx_upstream: NginxUpstream) -> None:
    """32 MiB from nginx to an HTTP/2 client reading at 4 MB/s: flow control and TCP back
    pressure must hold the proxy's memory, not buffer the body in it."""
    proxy = mesh_proxy(nginx_upstream, protocol="http2", extra_args=("--upstream-protocol", "http1"))
    warm = curl(tmp_path, proxy.url("/hello"), "--http2-prior-knowledge", name="warm")
    assert warm.status == 200
    start = peak = rss_bytes(proxy.pid)
    exe = require_tools("curl")["curl"]
    body = tmp_path / "slow.out"
    proc = subprocess.Popen([exe, "-sS", "--noproxy", "*", "--http2-prior-knowledge",
                             "--limit-rate", SLOW_RATE, "--max-time", "60", "-o", str(body),
                             "-w", "%{http_version} %{response_code}", proxy.url("/big")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 70
        while proc.poll() is None and time.monotonic() < deadline:
            peak = max(peak, rss_bytes(proxy.pid))
            time.sleep(0.05)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert out.decode().split() == ["2", "200"]
    assert sha256_file(body) == nginx_upstream.big_sha256
    growth = peak - start
    assert growth < RSS_GROWTH_LIMIT, (
        f"proxy RSS grew by {growth / 2**20:.1f} MiB (from {start / 2**20:.1f} MiB) while "
        f"relaying {nginx_upstream.big_size / 2**20:.0f} MiB to a slow reader")


# --------------------------------------------------------------------------------------------
# a broken client


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") \
        + payload


EMPTY_SETTINGS = frame(SETTINGS, 0, 0)
GARBAGE = {
    # RFC 9113 6.10: a CONTINUATION must follow a HEADERS without END_HEADERS
    "continuation-without-headers": (EMPTY_SETTINGS + frame(0x9, 0x4, 1, b"\x82\x86\x84\x41"),
                                     {PROTOCOL_ERROR}),
    # 6.1: DATA on stream 0
    "data-on-stream-0": (EMPTY_SETTINGS + frame(0x0, 0x0, 0, b"abcd"), {PROTOCOL_ERROR}),
    # 3.4: the client preface's first frame must be SETTINGS
    "first-frame-not-settings": (frame(0x6, 0, 0, b"12345678"), {PROTOCOL_ERROR}),
    # an HTTP/1 request after the preface: a frame header claiming 4.6 MB (over the 16 KiB
    # SETTINGS_MAX_FRAME_SIZE, 4.2) whose first frame is not SETTINGS (3.4)
    "http1-after-preface": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                            {PROTOCOL_ERROR, FRAME_SIZE_ERROR}),
}


def read_until_goaway(sock: socket.socket, timeout: float = 3.0) -> tuple[list[int], int | None]:
    """Frame types received until a GOAWAY (its error code returned), EOF or `timeout`."""
    buf, types = b"", []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            length, ftype = int.from_bytes(buf[:3], "big"), buf[3]
            payload, buf = buf[9:9 + length], buf[9 + length:]
            types.append(ftype)
            if ftype == GOAWAY:
                return types, int.from_bytes(payload[4:8], "big")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return types, None


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_after_preface_gets_goaway(tmp_path: Path, h2_proxy: MeshProxy, case: str) -> None:
    garbage, codes = GARBAGE[case]
    with socket.create_connection((LOOPBACK, h2_proxy.port), timeout=5) as sock:
        sock.sendall(PREFACE + garbage)
        types, code = read_until_goaway(sock)
    assert code is not None, (f"no GOAWAY from rpcmesh within 3 s (frame types received: "
                              f"{types}; connection closed or still open)")
    assert code in codes, f"GOAWAY error code {code}, expected one of {sorted(codes)}"
    assert h2_proxy.alive()
    res = curl(tmp_path, h2_proxy.url("/hello"), "--http2-prior-knowledge")
    assert (res.status, res.body) == (200, b"hello world!\n")
