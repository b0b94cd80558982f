"""Route rules from Nacos config: ``nacos_routes`` on the test Nacos, long-polled.

``python -m mesh run FILE`` with a gateway listener whose routes, after its own, come from a
Nacos config item of the test Nacos (tests/peers/registries/nacos_server.py in a thread of
the test, long-poll hold 0.5 s); nacos-sdk-python's ``NacosClient`` publishes the item; the
upstreams are real nginx processes, each answering ``<its name> <the request URI it saw>``;
curl asks through rpcmesh:

- the published routes serve; a changed item moves the traffic within 1 s;
- a broken item is refused (logged once) and the last good routes keep serving;
- a SIGHUP reload of the file keeps the Nacos routes;
- a deleted item removes the dynamic routes (rpcmesh's own 404);
- the test Nacos stopping keeps the routes (logged once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.registries.nacos_server import NacosServer

from .mesh_harness import LIVE_LOGS, LOOPBACK, admin_status, free_port, stop_process, tail
from .test_service_routes import answers, curl, until, upstreams  # noqa: F401 (a fixture)

try:
    import nacos  # nacos-sdk-python 2.x: the v1 (HTTP open API) NacosClient
except ImportError:
    nacos = None

pytestmark = [
    pytest.mark.skipif(nacos is None, reason="needs nacos-sdk-python>=2,<3: pip install -e '.[test]'"),
    pytest.mark.filterwarnings("ignore:ssl.*:DeprecationWarning"),
]

DATA_ID = "gateway-routes.yaml"
GROUP = "DEFAULT_GROUP"

CONFIG = """\
listeners:
  - name: gateway
    address: {host}:{port}
    protocol: http1
    routes:
      - {{name: own, match: {{path: {{prefix: /{own_path}}}}}, cluster: own}}
    nacos_routes: {{address: "{nacos}", data_id: {data_id}, group: {group}}}
clusters:
  - {{name: own, endpoints: ["{own}"]}}
  - {{name: a, endpoints: ["{a}"]}}
  - {{name: b, endpoints: ["{b}"]}}
admin: {{address: "{host}:{admin}"}}
logging: {{level: info, access_log: false}}
"""

ROUTES = """\
- name: svc
  match: {{path: {{prefix: /svc/}}}}
  prefix_rewrite: /
  cluster: {cluster}
"""


def test_nacos_routes_follow_the_config(tmp_path: Path, upstreams: Any) -> None:  # noqa: F811
    server = NacosServer(config_hold=0.5).start()
    client = nacos.NacosClient(server.address)
    files = tempfile.mkdtemp(prefix="rpcmesh-nacos-", dir=tmp_path)
    client.set_options(no_snapshot=True, failover_base=files, snapshot_base=files)
    mesh: subprocess.Popen[bytes] | None = None
    log = tmp_path / "mesh.log"

    def publish(content: str) -> None:
        assert client.publish_config(DATA_ID, GROUP, content)

    try:
        a, b, own = (upstreams(name) for name in ("svc-a", "svc-b", "own"))
        publish(ROUTES.format(cluster="a"))
        port, admin = free_port(), free_port()
        config = tmp_path / "gateway.yaml"

        def write(own_path: str) -> None:
            config.write_text(CONFIG.format(
                host=LOOPBACK, port=port, admin=admin, own=f"{LOOPBACK}:{own}",
                a=f"{LOOPBACK}:{a}", b=f"{LOOPBACK}:{b}", nacos=server.address,
                data_id=DATA_ID, group=GROUP, own_path=own_path))

        write("own")
        mesh = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                                stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, cwd=tmp_path)
        LIVE_LOGS[f"mesh run pid {mesh.pid}"] = log
        until(lambda: mesh.poll() is not None or admin_status(admin) == 200, "rpcmesh ready", log)
        assert mesh.poll() is None, tail(log)

        # the published routes, after the file's own
        until(answers(port, "/svc/x", "svc-a /x"), "the Nacos route to a", log)
        assert curl(port, "/own/1") == (200, "own /own/1")
        assert curl(port, "/other")[0] == 404

        # a changed item: the traffic moves within 1 s
        publish(ROUTES.format(cluster="b"))
        took = until(answers(port, "/svc/x", "svc-b /x"), "the Nacos route to b", log)
        assert took <= 1.0, f"the changed route took {took:.2f}s"
        print(f"the changed route served {took:.2f}s after the publish")

        # a broken item: refused, logged once, the last good routes keep serving
        publish(ROUTES.format(cluster="nowhere"))
        until(lambda: "nacos_routes_refused" in log.read_text(), "the refusal logged", log)
        publish("- {name: [\n")  # not YAML
        until(lambda: log.read_text().count("nacos_routes_refused") == 2, "the 2nd refusal", log)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert curl(port, "/svc/x") == (200, "svc-b /x")
            time.sleep(0.2)
        text = log.read_text()
        assert text.count("nacos_routes_refused") == 2
        assert "no cluster named 'nowhere'" in text and f"nacos {GROUP}/{DATA_ID}" in text

        # SIGHUP: the file read again, with the Nacos routes kept
        write("mine")
        os.kill(mesh.pid, signal.SIGHUP)
        until(answers(port, "/mine/1", "own /mine/1"), "the reloaded file's route", log)
        assert curl(port, "/svc/x") == (200, "svc-b /x")

        # a deleted item: the dynamic routes go
        assert client.remove_config(DATA_ID, GROUP)
        until(lambda: curl(port, "/svc/x")[0] == 404, "the Nacos route removed", log)
        assert "nacos_routes_removed" in log.read_text()
        assert curl(port, "/mine/1") == (200, "own /mine/1")

        # the test Nacos stops: the routes keep serving, the outage is logged once
        publish(ROUTES.format(cluster="a"))
        until(answers(port, "/svc/x", "svc-a /x"), "the Nacos route back", log)
        server.stop()
        until(lambda: "nacos_config_failed" in log.read_text(), "the outage logged", log)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert curl(port, "/svc/x") == (200, "svc-a /x")
            time.sleep(0.2)
        assert log.read_text().count("nacos_config_failed") == 1
        assert mesh.poll() is None
    finally:
        if mesh is not None:
            stop_process(mesh)
            LIVE_LOGS.pop(f"mesh run pid {mesh.pid}", None)
        server.stop()
