"""A running rpcmesh swaps in its config file again on SIGHUP (curl and nginx as the peers).

New connections see the new listeners, routes and clusters at once; a connection already
open finishes on the snapshot it began with; a bad file changes nothing.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .mesh_harness import (
    LOOPBACK,
    NginxUpstream,
    admin_status,
    free_port,
    http_get,
    port_accepts,
    stop_process,
    tail,
)

CONFIG = """\
listeners:
  - name: {name}
    address: 127.0.0.1:{port}
    protocol: http1
    routes:
      - {{name: only, match: {{path: {{prefix: "{prefix}"}}}}, cluster: web}}
{extra}clusters:
  - {{name: web, endpoints: ["{upstream}"]}}
admin: {{address: "127.0.0.1:{admin}"}}
"""


class Running:
    def __init__(self, tmp: Path, upstream: NginxUpstream) -> None:
        self.file = tmp / "mesh.yaml"
        self.log = tmp / "mesh.log"
        self.admin = free_port()
        self.upstream = upstream.address
        self.port = free_port()
        self.write(name="a", port=self.port, prefix="/hello")
        self.proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(self.file)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while admin_status(self.admin) != 200:
            assert self.proc.poll() is None and time.monotonic() < deadline, tail(self.log)
            time.sleep(0.05)

    def write(self, name: str, port: int, prefix: str, extra: str = "") -> None:
        self.file.write_text(CONFIG.format(name=name, port=port, prefix=prefix, extra=extra,
                                           upstream=self.upstream, admin=self.admin))

    def hangup_and_wait(self, text: bytes, timeout: float = 10.0) -> None:
        seen = self.log.read_bytes().count(text)
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.log.read_bytes().count(text) <= seen:
            assert time.monotonic() < deadline, tail(self.log)
            time.sleep(0.05)


@pytest.fixture
def running(tmp_path: Path, nginx_upstream: NginxUpstream) -> Iterator[Running]:
    run = Running(tmp_path, nginx_upstream)
    yield run
    stop_process(run.proc)


def test_routes_change_on_sighup(running: Running) -> None:
    assert http_get(running.port, "/hello")[0] == 200
    assert http_get(running.port, "/status/404")[0] == 404  # no route: rpcmesh's own 404
    running.write(name="a", port=running.port, prefix="/status/")
    running.hangup_and_wait(b"config_applied")
    status, headers, _ = http_get(running.port, "/status/404")
    assert status == 404 and "nginx" in headers.get("server", "")  # now nginx's own 404
    assert http_get(running.port, "/hello")[0] == 404  # the old route is gone


def test_listener_moves_and_open_connection_finishes(running: Running) -> None:
    before = http.client.HTTPConnection(LOOPBACK, running.port, timeout=5)
    before.request("GET", "/hello")
    assert before.getresponse().read() == b"hello world!\n"
    moved = free_port()
    running.write(name="b", port=moved, prefix="/")
    running.hangup_and_wait(b"config_applied")
    assert http_get(moved, "/hello")[0] == 200
    assert not port_accepts(running.port)  # the old listener stopped accepting...
    before.request("GET", "/hello")  # ...but its open connection still gets answers
    assert before.getresponse().read() == b"hello world!\n"
    before.close()


def test_bad_file_changes_nothing(running: Running) -> None:
    running.file.write_text("listeners: [{name: x, address: nowhere}]\n")
    running.hangup_and_wait(b"reload_failed")
    assert b"listeners[0]" in running.log.read_bytes()  # the error names the path in the file
    assert http_get(running.port, "/hello")[0] == 200
    with socket.socket() as squatter:  # a new listener that cannot bind: refused whole
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        running.write(name="a", port=running.port, prefix="/", extra=f"""\
  - name: second
    address: 127.0.0.1:{taken}
    routes: [{{cluster: web}}]
""")
        running.hangup_and_wait(b"reload_failed")
    assert b"cannot listen" in running.log.read_bytes()
    assert http_get(running.port, "/status/404")[0] == 404  # still the old route: rpcmesh's 404
    assert http_get(running.port, "/hello")[0] == 200
