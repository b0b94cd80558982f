"""Spring Cloud style routes: /<service>/** to that service with the prefix stripped (nginx as the upstream)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .mesh_harness import NginxUpstream, admin_status, free_port, http_get, stop_process, tail

CONFIG = """\
listeners:
  - name: gateway
    address: 127.0.0.1:{port}
    protocol: http1
    routes:
      - {{match: {{path: {{prefix: /hello-service/}}}}, prefix_rewrite: /, cluster: hello}}
      - {{match: {{path: {{prefix: /codes/}}}}, prefix_rewrite: /status/, cluster: hello}}
clusters:
  - {{name: hello, endpoints: ["{upstream}"]}}
admin: {{address: "127.0.0.1:{admin}"}}
"""


def test_prefix_is_rewritten(tmp_path: Path, nginx_upstream: NginxUpstream) -> None:
    port, admin = free_port(), free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.format(port=port, admin=admin, upstream=nginx_upstream.address))
    log = tmp_path / "mesh.log"
    proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while admin_status(admin) != 200:
            assert proc.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(0.05)
        status, _, body = http_get(port, "/hello-service/hello?x=1")
        assert (status, body) == (200, b"hello world!\n")  # nginx saw /hello?x=1
        status, headers, _ = http_get(port, "/codes/404")
        assert status == 404 and "nginx" in headers.get("server", "")  # nginx saw /status/404
        assert http_get(port, "/hello")[0] == 404  # no route: rpcmesh's own 404
    finally:
        stop_process(proc)


def test_prefix_rewrite_needs_a_prefix_match(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("listeners: [{name: g, address: '127.0.0.1:1', "
                      "routes: [{prefix_rewrite: /, cluster: c}]}]\n"
                      "clusters: [{name: c, endpoints: ['127.0.0.1:2']}]\n")
    out = subprocess.run([sys.executable, "-m", "mesh", "validate", str(config)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "listeners[0].routes[0].prefix_rewrite" in out.stderr and "Fix:" in out.stderr
