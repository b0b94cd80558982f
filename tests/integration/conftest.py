"""Real-peer fixtures for the integration tests (helpers live in mesh_harness.py).

Everything here runs real third-party programs on free 127.0.0.1 ports, never our own code on
both ends of the wire:

``nginx_upstream`` (session) -> NginxUpstream
    Debian nginx, one process (``master_process off``), all paths in a tmp dir. Endpoints:
    /hello, /big (32 MiB, ``.big_sha256``), /chunked (``.chunked_body``), PUT+GET
    /upload/<name> (``.upload_sha256(name)``), /status/404|204|503, /headers (request header
    x-big echoed as response header x-echo). ``.host .port .address .url(path) .pid``,
    ``.get(path)``, ``.access_log(since=.access_log_mark())`` (connection ids per request).
``mesh_proxy`` (function) / ``mesh_proxy_module`` (module) -> MeshProxyFactory
    ``mesh_proxy(upstream, protocol="http1", lb=None, timeout=None, extra_args=())`` starts
    ``python -m mesh proxy --listen ... --upstream ... --admin ...`` and returns a MeshProxy
    once the listen port accepts and admin /ready answers 200 (10 s bound): ``.port
    .admin_port .pid .log .url(path) .open_fds() .alive() .ready_status() .admin_get(path)``.
    ``upstream`` is "host:port", a port, anything with ``.address``, or a list of those.
``nginx_proxy`` (module) -> MeshProxy
    rpcmesh with ``--protocol http1`` in front of ``nginx_upstream``.
``blackhole_upstream`` (function) -> Blackhole
    Accepts connections in the test process and never answers (``.port .address .accepted``).
``dead_port`` (function) -> int
    A free 127.0.0.1 port with nothing listening.
``upload_file`` (session) -> (Path, sha256)
    A 20 MiB random file.
``mesh_cli`` (session)
    ``mesh_cli("validate", path)`` runs ``python -m mesh ...`` (30 s bound) -> CompletedProcess.

Every process is stopped by PID (SIGTERM, then SIGKILL after 5 s). When a test fails, the
tails of the logs of the live proxies and of nginx are attached to its report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .dubbo_fixtures import dubbo_consumer, dubbo_provider, dubbo_provider_module  # noqa: F401
from .h2_fixtures import grpc_echo, h2c_upstream  # noqa: F401
from .mesh_harness import (
    BIG_SIZE,
    LIVE_LOGS,
    LOOPBACK,
    NGINX_UPSTREAM_CONF,
    UPLOAD_SIZE,
    Blackhole,
    MeshProxy,
    MeshProxyFactory,
    NginxUpstream,
    free_port,
    port_accepts,
    require_tools,
    start_nginx,
    stop_process,
    tail,
    write_random_file,
)
from .xds_fixtures import ads_server, envoy_ads, whoami_upstreams, xds_mesh  # noqa: F401


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for name, path in list(LIVE_LOGS.items()):
            text = tail(path)
            if text.strip():
                report.sections.append((f"log: {name}", text))


@pytest.fixture(scope="session")
def nginx_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxUpstream]:
    require_tools("nginx")
    prefix = tmp_path_factory.mktemp("nginx-upstream")
    www = prefix / "www"
    (www / "upload").mkdir(parents=True)
    big_sha = write_random_file(www / "big", BIG_SIZE)
    chunked_src = "".join(f"line {i:05d} foo\n" for i in range(20_000)).encode()
    (www / "chunked.txt").write_bytes(chunked_src)
    port = free_port()
    conf = NGINX_UPSTREAM_CONF.format(d=prefix, host=LOOPBACK, port=port)
    proc = start_nginx(prefix, conf, port, name="nginx upstream")
    upstream = NginxUpstream(
        host=LOOPBACK, port=port, prefix=prefix, proc=proc, big_sha256=big_sha,
        big_size=BIG_SIZE, chunked_body=chunked_src.replace(b"foo", b"bar"),
    )
    LIVE_LOGS["nginx upstream error.log"] = upstream.error_log_path
    try:
        yield upstream
    finally:
        LIVE_LOGS.pop("nginx upstream error.log", None)
        stop_process(proc)


@pytest.fixture(scope="session")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(path, sha256) of a 20 MiB random file to upload."""
    path = tmp_path_factory.mktemp("upload") / "upload.bin"
    return path, write_random_file(path, UPLOAD_SIZE)


@pytest.fixture
def mesh_proxy(tmp_path: Path) -> Iterator[MeshProxyFactory]:
    factory = MeshProxyFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def mesh_proxy_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshProxyFactory]:
    factory = MeshProxyFactory(tmp_path_factory.mktemp("mesh-proxy"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def nginx_proxy(mesh_proxy_module: MeshProxyFactory,
                nginx_upstream: NginxUpstream) -> MeshProxy:
    """rpcmesh (`--protocol http1`) in front of `nginx_upstream`, shared by a module."""
    return mesh_proxy_module(nginx_upstream, protocol="http1")


@pytest.fixture
def blackhole_upstream() -> Iterator[Blackhole]:
    hole = Blackhole.listen()
    try:
        yield hole
    finally:
        hole.close()


@pytest.fixture
def dead_port() -> int:
    """A free 127.0.0.1 port with nothing listening on it."""
    port = free_port()
    assert not port_accepts(port)
    return port


@pytest.fixture(scope="session")
def mesh_cli(tmp_path_factory: pytest.TempPathFactory
             ) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``mesh_cli("validate", path)`` runs ``python -m mesh ARGS`` (30 s bound)."""
    cwd = tmp_path_factory.mktemp("mesh-cli")

    def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mesh", *args], capture_output=True, text=True,
            timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    return run
