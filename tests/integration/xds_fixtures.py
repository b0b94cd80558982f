"""xDS fixtures (imported by conftest.py): the test control plane, Envoy on ADS, rpcmesh on xds.

``ads_server`` (function) -> AdsServer
    tests/peers/xds/ads_server.py in the test process (grpcio + xds-protos, SotW) on a free
    127.0.0.1 port: ``.set_snapshot(type_url, version, resources)``, ``.requests(node_id)``,
    ``.wait_request(node_id, predicate, timeout)``, ``.wait_response(...)``, ``.stop()``.
``envoy_ads`` (function) -> EnvoyFactory
    ``envoy_ads(ads, node_id="envoy-test")`` starts real Envoy (``--concurrency 1``): node
    ``node_id``, ``dynamic_resources.ads_config`` -> static cluster ``xds`` (HTTP/2) -> the
    ADS server, a static HTTP listener routing everything to cluster ``echo`` of type EDS
    (``eds_config: {ads: {}}``). Returns once admin /ready is 200 and the listener accepts
    (so after Envoy took its first EDS response): ``.port .admin .log .get(path)``
    (curl through Envoy), ``.stat(name)``, ``.admin_get(path)``.
    ``envoy_ads.ads_only(ads, node_id=...)``: Envoy whose bootstrap has nothing but admin and
    ADS (``lds_config`` and ``cds_config`` over ADS, the static ``xds`` cluster): every
    listener, route and cluster comes from the server. Returns once admin /ready is 200
    (Envoy took its first CDS and LDS responses); ``.port`` is 0 (no listener of its own).
``xds_mesh`` (function) -> XdsMeshFactory
    ``xds_mesh(ads, node_id="rpcmesh-test")`` writes a YAML config (an http1 listener routing
    to cluster ``echo`` with ``discovery: {source: xds, config: {address, cluster_name: echo,
    node_id}}``, admin on a free port) and starts ``python -m mesh run`` on it:
    ``.port .admin .log .get(path)`` (curl through rpcmesh), ``.cluster()`` (its /clusters
    entry).
    ``xds_mesh.xds_only(ads, node_id=...)``: ``mesh run`` on a file with only
    ``xds: {address, node_id}`` and ``admin:``; returns once admin /ready is 200; ``.port``
    is 0 (every listener comes from the server).
``whoami_upstreams`` (module) -> dict[str, WhoamiUpstream]
    Two Debian nginx instances, ``alpha`` and ``beta``, answering every path with their own
    name (``.name .port .address``).
``whoami_path_upstreams`` (module) -> dict[str, WhoamiUpstream]
    The same, answering ``<name> <request URI>`` (``alpha /x?y``): which upstream, and the
    path it was sent.

Processes are stopped by PID (SIGTERM, SIGKILL after 5 s); their logs are attached to a
failing test's report (LIVE_LOGS).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .h2_fixtures import require_module
from .mesh_harness import (
    LIVE_LOGS,
    LOOPBACK,
    READY_TIMEOUT,
    admin_status,
    free_port,
    http_get,
    port_accepts,
    require_tools,
    start_nginx,
    stop_process,
    tail,
)

REPO = Path(__file__).resolve().parents[2]
CURL_TIMEOUT = 3.0


def _ads_module() -> Any:
    require_module("grpc", "grpcio")
    require_module("envoy.service.discovery.v3", "xds-protos")
    if str(REPO) not in sys.path:  # pytest's rootdir insertion normally did it already
        sys.path.insert(0, str(REPO))
    from tests.peers.xds import ads_server

    return ads_server


def curl_get(port: int, path: str, *, timeout: float = CURL_TIMEOUT) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path with curl on a fresh connection: (status, body);
    status 0 when curl itself failed (connection refused, timeout)."""
    curl = require_tools("curl")["curl"]
    done = subprocess.run(
        [curl, "-sS", "--noproxy", "*", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}",
         f"http://{LOOPBACK}:{port}{path}"],
        capture_output=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)
    body, _, code = done.stdout.rpartition(b"\n")
    return (int(code) if code.strip().isdigit() else 0), body


# --------------------------------------------------------------------------------------------
# the control plane


@pytest.fixture
def ads_server() -> Iterator[Any]:
    server = _ads_module().AdsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.errors, server.errors


# --------------------------------------------------------------------------------------------
# upstreams telling who they are

WHOAMI_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/logs/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {host}:{port};
        location / {{ default_type text/plain; return 200 "{name}\\n"; }}
    }}
}}
"""


@dataclass
class WhoamiUpstream:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    host: str = LOOPBACK

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@pytest.fixture(scope="module")
def whoami_upstreams(tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[dict[str, WhoamiUpstream]]:
    require_tools("nginx")
    started: dict[str, WhoamiUpstream] = {}
    try:
        for name in ("alpha", "beta"):
            prefix = tmp_path_factory.mktemp(f"nginx-{name}")
            port = free_port()
            conf = WHOAMI_NGINX_CONF.format(d=prefix, host=LOOPBACK, port=port, name=name)
            proc = start_nginx(prefix, conf, port, name=f"nginx {name}")
            started[name] = WhoamiUpstream(name, port, proc)
        yield started
    finally:
        for upstream in started.values():
            stop_process(upstream.proc)


@pytest.fixture(scope="module")
def whoami_path_upstreams(tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[dict[str, WhoamiUpstream]]:
    require_tools("nginx")
    started: dict[str, WhoamiUpstream] = {}
    try:
        for name in ("alpha", "beta"):
            prefix = tmp_path_factory.mktemp(f"nginx-path-{name}")
            port = free_port()
            conf = WHOAMI_NGINX_CONF.format(d=prefix, host=LOOPBACK, port=port,
                                            name=f"{name} $request_uri")
            proc = start_nginx(prefix, conf, port, name=f"nginx {name} (path)")
            started[name] = WhoamiUpstream(name, port, proc)
        yield started
    finally:
        for upstream in started.values():
            stop_process(upstream.proc)


# --------------------------------------------------------------------------------------------
# Envoy on ADS

ENVOY_BOOTSTRAP = """\
node: {{id: {node_id}, cluster: rpcmesh-tests}}
admin:
  address: {{socket_address: {{address: {host}, port_value: {admin}}}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds}}
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: {host}, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: {cluster}, timeout: 3s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {host}, port_value: {ads_port}}}}}
  - name: {cluster}
    type: EDS
    connect_timeout: 1s
    eds_cluster_config:
      eds_config: {{ads: {{}}, resource_api_version: V3}}
"""


ENVOY_ADS_ONLY_BOOTSTRAP = """\
node: {{id: {node_id}, cluster: rpcmesh-tests}}
admin:
  address: {{socket_address: {{address: {host}, port_value: {admin}}}}}
dynamic_resources:
  lds_config: {{ads: {{}}, resource_api_version: V3}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {host}, port_value: {ads_port}}}}}
"""


@dataclass
class EnvoyProcess:
    node_id: str
    port: int
    admin: int
    proc: subprocess.Popen[bytes]
    log: Path
    config: Path

    def get(self, path: str) -> tuple[int, bytes]:
        """curl through Envoy's listener: (status, body)."""
        return curl_get(self.port, path)

    def admin_get(self, path: str) -> tuple[int, bytes]:
        status, _, body = http_get(self.admin, path, timeout=5.0)
        return status, body

    def stat(self, name: str) -> int | None:
        """One counter or gauge from the admin /stats page (None if Envoy has no such stat)."""
        status, body = self.admin_get(f"/stats?filter=^{name}$")
        assert status == 200, body
        for line in body.decode().splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return None

    def stop(self) -> None:
        stop_process(self.proc)


class EnvoyFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[EnvoyProcess] = []

    def __call__(self, ads: Any, *, node_id: str = "envoy-test", cluster: str = "echo",
                 ready_timeout: float = READY_TIMEOUT) -> EnvoyProcess:
        envoy = require_tools("envoy")["envoy"]
        port, admin = free_port(), free_port()
        d = self.workdir / f"envoy-{len(self.started)}"
        d.mkdir()
        config = d / "envoy.yaml"
        config.write_text(ENVOY_BOOTSTRAP.format(node_id=node_id, host=LOOPBACK, admin=admin,
                                                 port=port, cluster=cluster, ads_port=ads.port))
        log = d / "envoy.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                 "-l", "info", "--component-log-level", "config:debug,upstream:debug"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=d)
        process = EnvoyProcess(node_id, port, admin, proc, log, config)
        self.started.append(process)
        LIVE_LOGS[f"envoy {node_id} pid {proc.pid}"] = log
        self._wait_ready(process, ads, ready_timeout)
        return process

    def ads_only(self, ads: Any, *, node_id: str = "envoy-test",
                 ready_timeout: float = READY_TIMEOUT) -> EnvoyProcess:
        """Envoy with listeners and clusters from ADS only (see the module docstring)."""
        envoy = require_tools("envoy")["envoy"]
        admin = free_port()
        d = self.workdir / f"envoy-{len(self.started)}"
        d.mkdir()
        config = d / "envoy.yaml"
        config.write_text(ENVOY_ADS_ONLY_BOOTSTRAP.format(node_id=node_id, host=LOOPBACK,
                                                          admin=admin, ads_port=ads.port))
        log = d / "envoy.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                 "-l", "info", "--component-log-level", "config:debug,upstream:debug"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=d)
        process = EnvoyProcess(node_id, 0, admin, proc, log, config)
        self.started.append(process)
        LIVE_LOGS[f"envoy {node_id} pid {proc.pid}"] = log
        self._wait_ready(process, ads, ready_timeout)
        return process

    @staticmethod
    def _wait_ready(process: EnvoyProcess, ads: Any, ready_timeout: float) -> None:
        """admin /ready 200 and, when it has one of its own, the listener accepts."""
        proc, admin, port, log = process.proc, process.admin, process.port, process.log
        node_id = process.node_id
        deadline = time.monotonic() + ready_timeout
        while not (admin_status(admin) == 200 and (not port or port_accepts(port))):
            if proc.poll() is not None or time.monotonic() > deadline:
                process.stop()
                pytest.fail(f"envoy did not get ready within {ready_timeout:.0f} s (exit code "
                            f"{proc.returncode}; ADS requests from {node_id}: "
                            f"{ads.requests(node_id)})\n{tail(log)}", pytrace=False)
            time.sleep(0.05)

    def close(self) -> None:
        for process in self.started:
            process.stop()
            LIVE_LOGS.pop(f"envoy {process.node_id} pid {process.proc.pid}", None)


@pytest.fixture
def envoy_ads(tmp_path: Path) -> Iterator[EnvoyFactory]:
    factory = EnvoyFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


# --------------------------------------------------------------------------------------------
# rpcmesh on xds

MESH_XDS_CONFIG = """\
listeners:
  - name: http
    address: {host}:{port}
    protocol: http1
    routes:
      - match: {{path: {{prefix: /}}}}
        cluster: {cluster}
        timeout: 3s
clusters:
  - name: {cluster}
    connect_timeout: 500ms
    discovery:
      source: xds
      config: {{address: "{ads_address}", cluster_name: {cluster}, node_id: {node_id}}}
admin: {{address: {host}:{admin}}}
"""

MESH_XDS_ONLY_CONFIG = """\
xds: {{address: "{ads_address}", node_id: {node_id}}}
admin: {{address: {host}:{admin}}}
"""


@dataclass
class XdsMesh:
    node_id: str
    port: int
    admin: int
    proc: subprocess.Popen[bytes]
    log: Path
    config: Path
    cluster_name: str = "echo"

    def get(self, path: str) -> tuple[int, bytes]:
        """curl through rpcmesh's listener: (status, body)."""
        return curl_get(self.port, path)

    def cluster(self) -> dict[str, Any]:
        """The cluster's entry on the admin /clusters page."""
        status, _, body = http_get(self.admin, "/clusters", timeout=5.0)
        assert status == 200, body
        return {c["name"]: c for c in json.loads(body)}[self.cluster_name]  # type: ignore[no-any-return]

    def endpoints(self) -> set[str]:
        return {e["address"] for e in self.cluster()["endpoints"]}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


class XdsMeshFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[XdsMesh] = []

    def __call__(self, ads: Any, *, node_id: str = "rpcmesh-test", cluster: str = "echo",
                 ready_timeout: float = 15.0) -> XdsMesh:
        port, admin = free_port(), free_port()
        d = self.workdir / f"mesh-{len(self.started)}"
        d.mkdir()
        config = d / "mesh.yaml"
        config.write_text(MESH_XDS_CONFIG.format(host=LOOPBACK, port=port, admin=admin,
                                                 cluster=cluster, node_id=node_id,
                                                 ads_address=ads.address))
        log = d / "mesh.log"
        with log.open("wb") as out:
            # cwd outside the repository: the installed package, as users run it
            proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=d)
        mesh = XdsMesh(node_id, port, admin, proc, log, config, cluster)
        self.started.append(mesh)
        LIVE_LOGS[f"mesh run (xds) pid {proc.pid}"] = log
        self._wait_ready(mesh, ready_timeout)
        return mesh

    def xds_only(self, ads: Any, *, node_id: str = "rpcmesh-test",
                 ready_timeout: float = 15.0) -> XdsMesh:
        """``mesh run`` on a file with only ``xds:`` and ``admin:`` (module docstring)."""
        admin = free_port()
        d = self.workdir / f"mesh-{len(self.started)}"
        d.mkdir()
        config = d / "mesh.yaml"
        config.write_text(MESH_XDS_ONLY_CONFIG.format(host=LOOPBACK, admin=admin,
                                                      node_id=node_id,
                                                      ads_address=ads.address))
        log = d / "mesh.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=d)
        mesh = XdsMesh(node_id, 0, admin, proc, log, config, "")
        self.started.append(mesh)
        LIVE_LOGS[f"mesh run (xds) pid {proc.pid}"] = log
        self._wait_ready(mesh, ready_timeout)
        return mesh

    @staticmethod
    def _wait_ready(mesh: XdsMesh, ready_timeout: float) -> None:
        """admin /ready 200 and, when it has one of its own, the listener accepts."""
        proc, port, admin, config, log = mesh.proc, mesh.port, mesh.admin, mesh.config, mesh.log
        deadline = time.monotonic() + ready_timeout
        while not ((not port or port_accepts(port)) and admin_status(admin) == 200):
            if proc.poll() is not None or time.monotonic() > deadline:
                mesh.stop()
                pytest.fail(f"mesh run did not start (exit code {proc.returncode}); config "
                            f"{config}:\n{config.read_text()}\n--- log {log} ---\n{tail(log)}",
                            pytrace=False)
            time.sleep(0.05)

    def close(self) -> None:
        for mesh in self.started:
            mesh.stop()
            LIVE_LOGS.pop(f"mesh run (xds) pid {mesh.proc.pid}", None)


@pytest.fixture
def xds_mesh(tmp_path: Path) -> Iterator[XdsMeshFactory]:
    factory = XdsMeshFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()
