"""Helpers for the real-peer integration tests: processes, ports, nginx, the rpcmesh proxy.

Imported by conftest.py (which wraps these in fixtures) and by the test modules (for the
types and small helpers). Everything runs on free 127.0.0.1 ports; every wait is bounded;
processes are stopped by PID only (SIGTERM, then SIGKILL after 5 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"
IN_CI = os.environ.get("CI", "").lower() == "true"
READY_TIMEOUT = 10.0
STOP_GRACE = 5.0

# Debian installs nginx in /usr/sbin, which is not on a non-root user's PATH.
_TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
_DEBIAN_PACKAGE = {"nginx": "nginx", "curl": "curl", "wrk": "wrk", "h2load": "nghttp2-client"}


# --------------------------------------------------------------------------------------------
# small helpers


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=_TOOL_PATH)


def require_tools(*names: str) -> dict[str, str]:
    """Paths of the named programs; skip (fail under CI=true) when one is missing."""
    found = {name: find_tool(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        packages = " ".join(sorted({_DEBIAN_PACKAGE.get(n, n) for n in missing}))
        msg = (
            f"integration test needs {', '.join(missing)} on PATH "
            f"(Debian: apt-get install -y {packages})"
        )
        if IN_CI:
            pytest.fail(f"{msg}; CI=true, so a missing peer is an error, not a skip",
                        pytrace=False)
        pytest.skip(msg)
    return {name: path for name, path in found.items() if path is not None}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.25) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, *, host: str = LOOPBACK, timeout: float = 2.0,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def admin_status(port: int, path: str = "/ready", timeout: float = 1.0) -> int | None:
    try:
        return http_get(port, path, timeout=timeout)[0]
    except (OSError, http.client.HTTPException):
        return None


def stop_process(proc: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM the process by PID, SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


def tail(path: Path, limit: int = 12_000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    if len(data) > limit:
        data = b"...[truncated]...\n" + data[-limit:]
    return data.decode("utf-8", "replace")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`; return their sha256."""
    h = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


# Logs attached to a failing test's report (see conftest.py): name -> path, live processes only.
LIVE_LOGS: dict[str, Path] = {}


# --------------------------------------------------------------------------------------------
# nginx upstream

BIG_SIZE = 32 * 1024 * 1024
UPLOAD_SIZE = 20 * 1024 * 1024

NGINX_UPSTREAM_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/logs/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    log_format mesh '$connection $connection_requests $request_method $uri $status '
                    '$request_length $body_bytes_sent "$http_x_test_id"';
    access_log {d}/logs/access.log mesh;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    large_client_header_buffers 4 64k;
    server {{
        listen {host}:{port};
        server_name localhost;
        root {d}/www;

        location = /hello {{ default_type text/plain; return 200 "hello world!\\n"; }}
        location = /big {{ }}
        location = /chunked {{
            # sub_filter rewrites the body, so nginx drops Content-Length and sends chunked.
            default_type text/plain;
            alias {d}/www/chunked.txt;
            sub_filter 'foo' 'bar';
            sub_filter_once off;
            sub_filter_types *;
        }}
        location /upload/ {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 64m;
        }}
        location = /status/404 {{ return 404; }}
        location = /status/204 {{ return 204; }}
        location = /status/503 {{ return 503; }}
        location = /headers {{
            default_type text/plain;
            add_header x-echo $http_x_big always;
            return 200 "ok\\n";
        }}
    }}
}}
"""


@dataclass
class AccessLogEntry:
    connection: int
    connection_requests: int
    method: str
    uri: str
    status: int
    request_length: int
    body_bytes_sent: int
    test_id: str


@dataclass
class NginxUpstream:
    """A running Debian nginx with the test endpoints.

    Endpoints: /hello (200 "hello world!\\n"), /big (32 MiB, `big_sha256`), /chunked
    (Transfer-Encoding: chunked, body `chunked_body`), PUT/GET /upload/<name> (dav, 64 MiB max),
    /status/404|204|503, /headers (echoes request header x-big as response header x-echo).
    The access log records `$connection $connection_requests` and the request header
    x-test-id, see `access_log()`.
    """

    host: str
    port: int
    prefix: Path
    proc: subprocess.Popen[bytes]
    big_sha256: str
    big_size: int
    chunked_body: bytes

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def access_log_path(self) -> Path:
        return self.prefix / "logs" / "access.log"

    @property
    def error_log_path(self) -> Path:
        return self.prefix / "logs" / "error.log"

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """GET directly from nginx (not through any proxy)."""
        return http_get(self.port, path, host=self.host, timeout=timeout)

    def upload_sha256(self, name: str, timeout: float = 30.0) -> str | None:
        """sha256 of /upload/<name> as stored by nginx, read directly; None if absent."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", f"/upload/{name}")
            resp = conn.getresponse()
            if resp.status != 200:
                resp.read()
                return None
            h = hashlib.sha256()
            while chunk := resp.read(1 << 20):
                h.update(chunk)
            return h.hexdigest()
        finally:
            conn.close()

    def upload_path(self, name: str) -> Path:
        return self.prefix / "www" / "upload" / name

    def access_log_mark(self) -> int:
        """A position in the access log; pass it to access_log() to read only later lines."""
        try:
            return self.access_log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def access_log(self, since: int = 0) -> list[AccessLogEntry]:
        with self.access_log_path.open("rb") as f:
            f.seek(since)
            data = f.read()
        entries = []
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split(" ", 7)
            if len(parts) != 8:
                continue
            entries.append(AccessLogEntry(
                int(parts[0]), int(parts[1]), parts[2], parts[3], int(parts[4]),
                int(parts[5]), int(parts[6]), parts[7].strip('"'),
            ))
        return entries

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_nginx(prefix: Path, conf_text: str, port: int, *, name: str = "nginx",
                timeout: float = READY_TIMEOUT) -> subprocess.Popen[bytes]:
    """Start nginx with `conf_text` under `prefix`; return once `port` accepts."""
    nginx = require_tools("nginx")["nginx"]
    for sub in ("logs", "tmp", "www"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    out = (prefix / "logs" / "stdout.log").open("wb")
    # -e: the error log before the config is read (else nginx tries /var/log/nginx).
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
    )
    out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if port_accepts(port):
            return proc
        time.sleep(0.05)
    stop_process(proc)
    pytest.fail(
        f"{name} did not start on {LOOPBACK}:{port} within {timeout:.0f} s "
        f"(exit code {proc.returncode})\n--- stdout ---\n{tail(prefix / 'logs' / 'stdout.log')}"
        f"\n--- error.log ---\n{tail(prefix / 'logs' / 'error.log')}",
        pytrace=False,
    )


# --------------------------------------------------------------------------------------------
# rpcmesh proxy


@dataclass
class MeshProxy:
    """A running `python -m mesh proxy ...`."""

    port: int
    admin_port: int
    proc: subprocess.Popen[bytes]
    log: Path
    argv: list[str]
    host: str = LOOPBACK

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def admin_url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.admin_port}{path}"

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready_status(self) -> int | None:
        """Status of GET /ready on the admin port, None if it does not answer."""
        return admin_status(self.admin_port)

    def admin_get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return http_get(self.admin_port, path, timeout=5.0)

    def log_text(self) -> str:
        return tail(self.log, 1 << 20)

    def stop(self) -> None:
        stop_process(self.proc)


UpstreamSpec = Any  # "host:port", a port number, an object with .address, or a sequence


def _upstream_arg(upstream: UpstreamSpec) -> str:
    if isinstance(upstream, str):
        return upstream
    if isinstance(upstream, int):
        return f"{LOOPBACK}:{upstream}"
    if hasattr(upstream, "address"):
        return str(upstream.address)
    if isinstance(upstream, Iterable):
        return ",".join(_upstream_arg(u) for u in upstream)
    raise TypeError(f"cannot make an --upstream from {upstream!r}")


class MeshProxyFactory:
    """Callable fixture value: ``mesh_proxy(upstream, protocol="http1", lb=None,
    timeout=None, extra_args=())`` starts a proxy and returns a ready :class:`MeshProxy`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[MeshProxy] = []

    def __call__(self, upstream: UpstreamSpec, *, protocol: str = "http1",
                 lb: str | None = None, timeout: str | None = None,
                 extra_args: Sequence[str] = (), ready_timeout: float = READY_TIMEOUT,
                 ) -> MeshProxy:
        last_log = ""
        for attempt in range(3):  # retry only when a port we picked was taken meanwhile
            proxy = self._start(upstream, protocol, lb, timeout, extra_args, attempt)
            if self._wait_ready(proxy, ready_timeout):
                return proxy
            last_log = proxy.log_text()
            exit_code = proxy.proc.poll()
            proxy.stop()
            LIVE_LOGS.pop(self._log_name(proxy), None)
            if exit_code is None or "in use" not in last_log.lower():
                break
        if exit_code is not None:
            why = f"mesh proxy exited with code {exit_code} before it was ready"
        else:
            why = (f"mesh proxy not ready within {ready_timeout:.0f} s (listen port accepting "
                   "and admin /ready == 200); stopped it")
        pytest.fail(f"{why}\ncommand: {' '.join(proxy.argv)}\n--- proxy log ---\n"
                    f"{last_log[-12_000:]}", pytrace=False)

    def _start(self, upstream: UpstreamSpec, protocol: str, lb: str | None,
               timeout: str | None, extra_args: Sequence[str], attempt: int) -> MeshProxy:
        port, admin_port = free_port(), free_port()
        argv = [sys.executable, "-m", "mesh", "proxy",
                "--listen", f"{LOOPBACK}:{port}", "--protocol", protocol,
                "--upstream", _upstream_arg(upstream), "--admin", f"{LOOPBACK}:{admin_port}"]
        if lb is not None:
            argv += ["--lb", lb]
        if timeout is not None:
            argv += ["--timeout", timeout]
        argv += list(extra_args)
        log = self.workdir / f"mesh-proxy-{len(self.started)}-{port}-{attempt}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with log.open("wb") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            # cwd outside the repository: import the installed package, as users do.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        proxy = MeshProxy(port=port, admin_port=admin_port, proc=proc, log=log, argv=argv)
        self.started.append(proxy)
        LIVE_LOGS[self._log_name(proxy)] = log
        return proxy

    @staticmethod
    def _log_name(proxy: MeshProxy) -> str:
        return f"mesh proxy pid {proxy.pid} port {proxy.port}"

    @staticmethod
    def _wait_ready(proxy: MeshProxy, ready_timeout: float) -> bool:
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if not proxy.alive():
                return False
            if port_accepts(proxy.port) and proxy.ready_status() == 200:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        for proxy in self.started:
            proxy.stop()
            LIVE_LOGS.pop(self._log_name(proxy), None)


# --------------------------------------------------------------------------------------------
# misbehaving upstreams


@dataclass
class Blackhole:
    """Accepts TCP connections, reads and discards what arrives, never answers."""

    sock: socket.socket
    host: str = LOOPBACK
    accepted: int = 0
    _conns: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def listen(cls) -> Blackhole:
        """Listen on a free 127.0.0.1 port and start accepting in a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOOPBACK, 0))
        sock.listen(128)
        hole = cls(sock)
        hole.start()
        return hole

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, max_lifetime: float = 900.0) -> None:
        self._thread = threading.Thread(target=self._run, args=(max_lifetime,), daemon=True)
        self._thread.start()

    def _run(self, max_lifetime: float) -> None:
        deadline = time.monotonic() + max_lifetime
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                readable, _, _ = select.select([self.sock, *self._conns], [], [], 0.2)
            except (OSError, ValueError):
                return
            for s in readable:
                if s is self.sock:
                    with contextlib.suppress(OSError):
                        conn, _ = self.sock.accept()
                        self._conns.append(conn)
                        self.accepted += 1
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._conns.remove(s)
                    s.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in self._conns:
            s.close()
        self.sock.close()
