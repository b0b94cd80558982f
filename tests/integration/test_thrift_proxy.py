"""Apache Thrift (code from Debian thrift-compiler) and thriftpy2 clients and servers through
``mesh run`` (protocol ``thrift``), in framed/buffered x binary/compact, plus a
TMultiplexedProtocol pair routed by service name to two upstreams, local replies
(TApplicationException) and garbage input. Servers run as their own processes
(tests/peers/thrift/peers.py), stopped by PID."""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mesh_harness import (
    IN_CI,
    LIVE_LOGS,
    LOOPBACK,
    free_port,
    port_accepts,
    require_tools,
    stop_process,
    tail,
)

if not IN_CI:
    pytest.importorskip("thrift", reason="Apache Thrift for Python (pip install thrift)")
    pytest.importorskip("thriftpy2", reason="thriftpy2 (pip install thriftpy2)")

PEERS = Path(__file__).resolve().parents[1] / "peers" / "thrift"
sys.path.insert(0, str(PEERS))
import peers  # noqa: E402

COMBOS = [(t, p) for t in ("framed", "buffered") for p in ("binary", "compact")]
LIBS = ("apache", "thriftpy2")
BIG = 2 * 1024 * 1024


@dataclass
class Fleet:
    gen: Path
    listeners: dict[str, int]  # "apache-framed-binary" -> proxy port; "mux", "dead", "slow"
    procs: list[subprocess.Popen[Any]]
    mesh: subprocess.Popen[Any]
    mesh_log: Path

    def client(self, lib: str, transport: str, protocol: str, listener: str, **kw: Any) -> Any:
        port = self.listeners[listener]
        if lib == "apache":
            return peers.apache_client(self.gen, transport, protocol, port, **kw)
        return peers.thriftpy2_client(transport, protocol, port, **kw)


def _wait(port: int, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not port_accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"port {port} never opened:\n{tail(log)}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_tools("thrift")
    tmp = tmp_path_factory.mktemp("thrift")
    gen = peers.generate_apache(tmp / "gen")
    procs: list[tuple[int, subprocess.Popen[Any], Path]] = []
    clusters, listeners, ports = [], [], {}

    def server(name: str, *args: str) -> None:
        port = free_port()
        log = tmp / f"{name}.log"
        proc = subprocess.Popen([sys.executable, str(PEERS / "peers.py"), "--gen", str(gen),
                                 "--port", str(port), *args], stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append((port, proc, log))
        clusters.append({"name": name, "endpoints": [f"{LOOPBACK}:{port}"]})

    def listener(name: str, routes: list[dict[str, Any]]) -> None:
        ports[name] = free_port()
        listeners.append({"name": name, "address": f"{LOOPBACK}:{ports[name]}", "protocol": "thrift",
                          "routes": routes})

    for lib in LIBS:
        for transport, protocol in COMBOS:
            name = f"{lib}-{transport}-{protocol}"
            server(name, "--lib", lib, "--transport", transport, "--protocol", protocol)
            listener(name, [{"cluster": name, "timeout": "10s"}])
    server("mux-echo", "--lib", "apache", "--multiplex", "--service", "Echo")
    server("mux-other", "--lib", "thriftpy2", "--multiplex", "--service", "Other")
    listener("mux", [{"match": {"service": "Echo"}, "cluster": "mux-echo"},
                     {"match": {"service": "Other"}, "cluster": "mux-other"}])
    listener("slow", [{"cluster": "apache-framed-binary", "timeout": "300ms"}])
    clusters.append({"name": "dead", "endpoints": [f"{LOOPBACK}:{free_port()}"]})
    listener("dead", [{"cluster": "dead"}])
    config = tmp / "rpcmesh.json"
    admin = free_port()
    config.write_text(json.dumps({"listeners": listeners, "clusters": clusters,
                                  "admin": {"address": f"{LOOPBACK}:{admin}"},
                                  "logging": {"access_log": False}}))
    mesh_log = tmp / "mesh.log"
    mesh = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)], stdout=mesh_log.open("wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    LIVE_LOGS["mesh run (thrift)"] = mesh_log
    all_procs = [p for _, p, _ in procs] + [mesh]
    try:
        for port, proc, log in procs:
            _wait(port, proc, log)
        for port in ports.values():
            _wait(port, mesh, mesh_log)
        yield Fleet(gen, ports, [p for _, p, _ in procs], mesh, mesh_log)
    finally:
        LIVE_LOGS.pop("mesh run (thrift)", None)
        for proc in reversed(all_procs):
            stop_process(proc)


def _types(lib: str, fleet: Fleet) -> Any:
    return peers.apache_modules(fleet.gen).ttypes if lib == "apache" else peers.thriftpy2_module()


@pytest.mark.parametrize("server", LIBS)
@pytest.mark.parametrize("client_lib", LIBS)
@pytest.mark.parametrize(("transport", "protocol"), COMBOS, ids=[f"{t}-{p}" for t, p in COMBOS])
def test_calls(fleet: Fleet, server: str, client_lib: str, transport: str, protocol: str) -> None:
    t = _types(client_lib, fleet)
    c = fleet.client(client_lib, transport, protocol, f"{server}-{transport}-{protocol}")
    try:
        assert c.ping() is None
        assert c.echo("héllo ✓") == "héllo ✓"
        assert c.add(40, 2) == 42
        item = t.Item(id=7, name="seven", tags=["x", "y"], color=t.Color.BLUE, counts={"k": 9})
        assert c.item(item) == item
        items = c.items(50)
        assert len(items) == 50 and items[49].name == "item-49" and items[49].counts == {"x": 49}
        assert c.color(t.Color.GREEN) == t.Color.GREEN
        with pytest.raises(t.NotFound) as nf:
            c.find("missing")
        assert nf.value.code == 404
        with pytest.raises(Exception) as app:
            c.fail("on purpose")
        assert type(app.value).__name__ == "TApplicationException" and "on purpose" in str(app.value)
        blob = random.Random(1).randbytes(BIG)
        assert c.blob(blob) == blob[::-1]
        note = f"note-{random.random()}"
        assert c.note(note) is None  # oneway: no reply; the next call proves it arrived
        assert c.last_note() == note
        for i in range(100):
            assert c.add(i, 1) == i + 1
    finally:
        c.close()
    assert fleet.mesh.poll() is None


@pytest.mark.parametrize("client_lib", LIBS)
def test_client_timeout_then_fresh_connection(fleet: Fleet, client_lib: str) -> None:
    c = fleet.client(client_lib, "framed", "binary", "apache-framed-binary", timeout_ms=300)
    with pytest.raises(Exception) as timed_out:
        c.sleep(1000)
    text = f"{type(timed_out.value).__name__} {timed_out.value}".lower()
    assert "timed out" in text or "timeout" in text, text
    c.close()
    time.sleep(0.8)  # the late reply reaches the proxy, which drops it
    c = fleet.client(client_lib, "framed", "binary", "apache-framed-binary")
    try:
        assert c.echo("after") == "after"
    finally:
        c.close()


def test_route_timeout_and_dead_upstream_are_internal_error(fleet: Fleet) -> None:
    from thrift.Thrift import TApplicationException

    c = fleet.client("apache", "framed", "binary", "slow")
    try:
        with pytest.raises(TApplicationException) as exc:
            c.sleep(1000)
        assert exc.value.type == TApplicationException.INTERNAL_ERROR
        assert "TIMEOUT" in exc.value.message
        time.sleep(1.0)  # the server answers in order: let it finish the slow call first
        assert c.echo("still") == "still"  # the late reply was dropped, the connection lives on
    finally:
        c.close()
    for lib in LIBS:
        c = fleet.client(lib, "buffered", "compact", "dead")
        try:
            with pytest.raises(Exception) as dead:
                c.echo("x")
            assert type(dead.value).__name__ == "TApplicationException"
            assert "UNAVAILABLE" in str(dead.value)
        finally:
            c.close()


@pytest.mark.parametrize("client_lib", LIBS)
def test_multiplexed_services_routed_to_two_upstreams(fleet: Fleet, client_lib: str) -> None:
    echo = fleet.client(client_lib, "framed", "binary", "mux", service="Echo", multiplex=True)
    other = fleet.client(client_lib, "framed", "binary", "mux", service="Other", multiplex=True)
    try:
        for _ in range(3):
            assert echo.echo("to-echo") == "to-echo"
            assert other.whoami() == "thriftpy2-Other"  # only the second upstream serves Other
    finally:
        echo.close()
        other.close()
    nope = fleet.client(client_lib, "framed", "binary", "mux", multiplex=True, mux_name="Nope")
    try:
        with pytest.raises(Exception) as exc:
            nope.echo("x")
        assert type(exc.value).__name__ == "TApplicationException"
        assert getattr(exc.value, "type", None) == 1  # UNKNOWN_METHOD
        assert "NO_ROUTE" in str(exc.value)
    finally:
        nope.close()


def _recv_all(sock: socket.socket, limit: float = 3.0) -> bytes:
    sock.settimeout(limit)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except TimeoutError:
        return out + b"<timeout>"
    except ConnectionResetError:
        return out + b"<reset>"
    return out


def test_garbage_and_mutated_frames_close_cleanly(fleet: Fleet) -> None:
    port = fleet.listeners["apache-framed-binary"]
    name = b"echo"
    args = b"\x0b\x00\x01" + struct.pack(">i", 2) + b"hi\x00"
    good = struct.pack(">I", 0x80010001) + struct.pack(">i", len(name)) + name + struct.pack(">i", 0) + args
    framed = struct.pack(">I", len(good)) + good
    rng = random.Random(7)
    inputs = [b"\x80\x01\x00\x09garbage", b"\x00\x00\x00\x05\x80\x01\x00\x02\x00", rng.randbytes(200)]
    for _ in range(60):
        data = bytearray(framed)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        inputs.append(bytes(data[: rng.randint(1, len(data))]))
    for data in inputs:
        with socket.create_connection((LOOPBACK, port), timeout=3) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            _recv_all(sock)  # a reply (for a still-valid call), or a clean close; never a hang
    assert fleet.mesh.poll() is None
    c = fleet.client("apache", "framed", "binary", "apache-framed-binary")
    try:
        assert c.echo("alive") == "alive"
    finally:
        c.close()
    assert "Traceback" not in tail(fleet.mesh_log, 1 << 20)
