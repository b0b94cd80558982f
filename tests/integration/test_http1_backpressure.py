"""Bodies stream with backpressure: a slow reader never makes the proxy buffer a body whole."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest

from .mesh_harness import BIG_SIZE, LOOPBACK

pytestmark = pytest.mark.integration


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_reader_of_32mib_download_keeps_proxy_memory_bounded(nginx_proxy, nginx_upstream) -> None:
    proxy = nginx_proxy
    before = _rss_kib(proxy.pid)
    sock = socket.create_connection((LOOPBACK, proxy.port), timeout=10)
    # A small receive buffer makes the kernel push back quickly, as a slow mobile client would.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    peak = before
    digest = hashlib.sha256()
    head, received = b"", 0
    deadline = time.monotonic() + 60
    # Read slowly for the first 2 s (the proxy must stop reading from nginx), then drain.
    slow_until = time.monotonic() + 2
    while received < BIG_SIZE and time.monotonic() < deadline:
        chunk = sock.recv(16 * 1024 if time.monotonic() < slow_until else 1 << 20)
        if not chunk:
            break
        if not head:
            head_end = chunk.find(b"\r\n\r\n")
            assert head_end > 0
            head, chunk = chunk[:head_end], chunk[head_end + 4:]
        digest.update(chunk)
        received += len(chunk)
        if time.monotonic() < slow_until:
            time.sleep(0.01)
            peak = max(peak, _rss_kib(proxy.pid))
    sock.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert received == BIG_SIZE
    assert digest.hexdigest() == nginx_upstream.big_sha256
    grown_mib = (peak - before) / 1024
    assert grown_mib < 8, f"proxy RSS grew {grown_mib:.1f} MiB while the client read slowly"
