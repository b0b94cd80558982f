"""Spring Cloud Gateway's discovery locator: ``service_routes`` on a Eureka registry.

``python -m mesh run FILE`` with a gateway listener whose routes come from the test Eureka
(tests/peers/registries/eureka_server.py, in a thread of the test); py-eureka-client (the
official Python client) registers services whose instances are real nginx processes, each
answering ``<its name> <the request URI it saw>``; curl asks through rpcmesh:

- ``/svc-a/x`` reaches A as ``/x``, ``/svc-b/...`` reaches B, ``/svc-a`` reaches A as ``/``;
- a service registered later gets its route within refresh + 1 s (refresh is 1 s here);
- a deregistered service's route goes (rpcmesh's own 404);
- the registry stopped: every route keeps serving, the outage is logged once; back, it
  changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.registries.eureka_server import EurekaServer
from tests.peers.registries.harness import AsyncioThread

from .mesh_harness import (
    LIVE_LOGS,
    LOOPBACK,
    admin_status,
    free_port,
    require_tools,
    start_nginx,
    stop_process,
    tail,
)

try:
    from py_eureka_client import eureka_client
except ImportError:
    eureka_client = None

pytestmark = [
    pytest.mark.skipif(eureka_client is None,
                       reason="needs py-eureka-client: pip install -e '.[test]'"),
    # py-eureka-client's own logging calls (a deregistration after the registry stopped)
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]

REFRESH = 1.0
#: the hang guard of every wait (a step takes ~0.1-1.5 s)
GUARD = 10.0

NAMED_NGINX = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/logs/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {host}:{port};
        default_type text/plain;
        location / {{ return 200 "{name} $request_uri\\n"; }}
    }}
}}
"""

CONFIG = """\
listeners:
  - name: gateway
    address: {host}:{port}
    protocol: http1
    routes:
      - {{name: own, match: {{path: /own}}, cluster: own}}
    service_routes:
      source: eureka
      config: {{url: "http://{registry}/eureka/", refresh: 300ms, retry: 200ms, timeout: 1s}}
      refresh: {refresh}s
      lower_case: true
clusters:
  - {{name: own, endpoints: ["{own}"]}}
admin: {{address: "{host}:{admin}"}}
logging: {{level: info, access_log: false}}
"""


def curl(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET through rpcmesh with curl."""
    out = subprocess.run(
        ["curl", "-s", "--max-time", "3", "-w", "\n%{http_code}", f"http://{LOOPBACK}:{port}{path}"],
        capture_output=True, text=True, timeout=10)
    body, _, status = out.stdout.rpartition("\n")
    return int(status or 0), body.strip()


def until(check: Callable[[], bool], what: str, log: Path, guard: float = GUARD) -> float:
    """Seconds until ``check()`` holds (polled every 50 ms), failing after ``guard``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > guard:
            pytest.fail(f"never happened within {guard:g}s: {what}\n--- rpcmesh log ---\n"
                        f"{tail(log)}", pytrace=False)
        time.sleep(0.05)
    return time.monotonic() - start


def answers(port: int, path: str, expected: str) -> Callable[[], bool]:
    return lambda: curl(port, path) == (200, expected)


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """``start(name)``: an nginx answering ``<name> <request URI>``; its port."""
    require_tools("nginx", "curl")
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> int:
        port = free_port()
        prefix = tmp_path / f"nginx-{name}"
        conf = NAMED_NGINX.format(d=prefix, host=LOOPBACK, port=port, name=name)
        started.append(start_nginx(prefix, conf, port, name=f"nginx {name}"))
        return port

    try:
        yield start
    finally:
        for proc in started:
            stop_process(proc)


def test_service_routes_follow_the_registry(tmp_path: Path,
                                            upstreams: Callable[[str], int]) -> None:
    registry = EurekaServer().start()
    loop = AsyncioThread()
    clients: dict[str, Any] = {}
    mesh: subprocess.Popen[bytes] | None = None
    log = tmp_path / "mesh.log"

    def register(name: str, port: int) -> None:
        client = eureka_client.EurekaClient(
            eureka_server=f"http://{registry.address}/eureka", app_name=name,
            instance_ip=LOOPBACK, instance_host=LOOPBACK, instance_port=port,
            should_discover=False)
        loop.run(client.start())
        clients[name] = client

    try:
        a, b, c, own = (upstreams(name) for name in ("svc-a", "svc-b", "svc-c", "own"))
        register("svc-a", a)
        register("svc-b", b)

        port, admin = free_port(), free_port()
        config = tmp_path / "gateway.yaml"
        config.write_text(CONFIG.format(host=LOOPBACK, port=port, admin=admin, own=f"{LOOPBACK}:{own}",
                                        registry=registry.address, refresh=REFRESH))
        mesh = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                                stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, cwd=tmp_path)
        LIVE_LOGS[f"mesh run pid {mesh.pid}"] = log
        until(lambda: mesh.poll() is not None or admin_status(admin) == 200, "rpcmesh ready", log)
        assert mesh.poll() is None, tail(log)

        # the registered services: /<service>/** with the prefix stripped, and /<service> itself
        until(answers(port, "/svc-a/x", "svc-a /x"), "the route of svc-a", log)
        until(answers(port, "/svc-b/deep/path?q=1", "svc-b /deep/path?q=1"), "the route of svc-b",
              log)
        assert curl(port, "/svc-a") == (200, "svc-a /")
        assert curl(port, "/svc-a?x=1") == (200, "svc-a /?x=1")
        assert curl(port, "/own") == (200, "own /own")  # the file's own route comes first
        assert curl(port, "/svc-ab/x")[0] == 404  # no such service: rpcmesh's own 404
        assert curl(port, "/svc-c/x")[0] == 404
        clusters = json.loads(subprocess.run(
            ["curl", "-s", f"http://{LOOPBACK}:{admin}/config_dump"], capture_output=True,
            timeout=10).stdout)["clusters"]
        assert {"gateway/SVC-A", "gateway/SVC-B"} <= {cluster["name"] for cluster in clusters}

        # a service registered later: its route within refresh + 1 s
        register("svc-c", c)
        took = until(answers(port, "/svc-c/x", "svc-c /x"), "the route of svc-c", log)
        assert took <= REFRESH + 1.0, f"svc-c's route took {took:.2f}s"
        print(f"svc-c's route came {took:.2f}s after it registered")

        # a deregistered service: its route goes (the others stay)
        loop.run(clients.pop("svc-b").stop())
        took = until(lambda: curl(port, "/svc-b/x")[0] == 404, "svc-b's route gone", log)
        assert took <= REFRESH + 1.0, f"svc-b's route took {took:.2f}s to go"
        print(f"svc-b's route went {took:.2f}s after it deregistered")
        assert curl(port, "/svc-a/x") == (200, "svc-a /x")

        # the registry stops: every route keeps serving, the outage is logged once
        registry.stop()
        until(lambda: "service_catalog_failed" in log.read_text(), "the outage logged", log)
        deadline = time.monotonic() + 3 * REFRESH
        while time.monotonic() < deadline:
            assert curl(port, "/svc-a/x") == (200, "svc-a /x")
            assert curl(port, "/svc-c/y") == (200, "svc-c /y")
            time.sleep(0.2)
        assert log.read_text().count("service_catalog_failed") == 1

        # back (with its registrations): the same routes, nothing swapped
        swaps = log.read_text().count("config_applied")
        registry.start()
        until(lambda: "service_catalog_recovered" in log.read_text(), "the recovery logged", log)
        assert curl(port, "/svc-a/x") == (200, "svc-a /x")
        assert log.read_text().count("config_applied") == swaps
        assert mesh.poll() is None
    finally:
        if mesh is not None:
            stop_process(mesh)
            LIVE_LOGS.pop(f"mesh run pid {mesh.pid}", None)
        for client in clients.values():
            try:
                loop.run(client.stop())
            except Exception:  # the registry may be down (a failed test): nothing to deregister
                pass
        registry.stop()
        loop.close()
