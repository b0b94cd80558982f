"""A real ZooKeeper 3.8 (Debian package ``zookeeper``) for the registry tests.

``zookeeper_server`` (function) -> ZooKeeperServer
    A standalone server on a free 127.0.0.1 port, its own zoo.cfg and a temp data dir, started
    with ``java -cp <conf>:/usr/share/java/zookeeper.jar QuorumPeerMain zoo.cfg`` (the jar's
    manifest lists its dependencies in /usr/share/java). ``.port .address .pid .data_dir .log``,
    ``.stop()`` (SIGTERM by PID, SIGKILL after 5 s), ``.start()`` (again: same port, same data
    dir, so sessions and their ephemeral nodes survive a short restart), ``.restart()``,
    ``.ruok()``, ``.wipe()`` (stopped: forget every session and node), ``.delete(path)``, ``.children(path)``
    (kazoo, a fresh session each time).

tickTime is 500 ms, so sessions may be as short as 1 s (minSessionTimeout = 2 ticks): a
SIGKILLed provider's ephemeral node goes away within its short session timeout.

Skipped when java or the zookeeper jar is missing; under CI=true that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .mesh_harness import IN_CI, LIVE_LOGS, LOOPBACK, find_tool, free_port, stop_process, tail

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
# a logging binding for slf4j (without one ZooKeeper logs nothing); optional
SLF4J_SIMPLE = Path("/usr/share/java/slf4j-simple.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
READY_TIMEOUT = 30.0

ZOO_CFG = """\
tickTime=500
initLimit=10
syncLimit=5
dataDir={data_dir}
clientPort={port}
clientPortAddress={host}
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=*
"""


def zookeeper_missing() -> str | None:
    """Why a ZooKeeper server cannot run here, or None."""
    if find_tool("java") is None:
        return "the ZooKeeper tests need java (Debian: apt-get install -y zookeeper)"
    if not ZOOKEEPER_JAR.exists():
        return f"the ZooKeeper tests need {ZOOKEEPER_JAR} (Debian: apt-get install -y zookeeper)"
    return None


def require_zookeeper() -> None:
    """Skip (fail under CI=true) unless java and the Debian zookeeper jars are installed."""
    why = zookeeper_missing()
    if why is None:
        return
    if IN_CI:
        pytest.fail(f"{why}; CI=true, so a missing peer is an error, not a skip", pytrace=False)
    pytest.skip(why)


def four_letter(port: int, word: bytes, host: str = LOOPBACK, timeout: float = 1.0) -> bytes:
    """Send a four-letter word (ruok, mntr, cons...) and read the whole answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


class ZooKeeperServer:
    """One standalone server; ``start``/``stop`` may be called again (same port and data)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        require_zookeeper()
        self.workdir = workdir
        self.host = LOOPBACK
        self.port = port or free_port()
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_dir = workdir / "conf"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = self.conf_dir / "zoo.cfg"
        self.cfg.write_text(ZOO_CFG.format(data_dir=self.data_dir, port=self.port, host=self.host))
        self.log = workdir / "zookeeper.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ruok(self) -> bool:
        try:
            return four_letter(self.port, b"ruok") == b"imok"
        except OSError:
            return False

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the server; return once it answers ``ruok`` and serves requests (``srvr``)."""
        assert not self.alive(), "already running"
        java = find_tool("java")
        assert java is not None
        classpath = [str(self.conf_dir), str(ZOOKEEPER_JAR)]
        if SLF4J_SIMPLE.exists():
            classpath.append(str(SLF4J_SIMPLE))
        argv = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dzookeeper.jmx.log4j.disable=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                f"-Dzookeeper.log.dir={self.workdir}", "-cp", os.pathsep.join(classpath),
                MAIN_CLASS, str(self.cfg)]
        out = self.log.open("ab")
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        out.close()
        self.starts += 1
        LIVE_LOGS["zookeeper"] = self.log
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                # "imok" comes before the data tree is loaded; srvr answers once it serves
                if self.ruok() and b"Mode: standalone" in four_letter(self.port, b"srvr"):
                    return
            time.sleep(0.1)
        code = self.proc.poll()
        self.stop()
        pytest.fail(f"ZooKeeper did not start on {self.address} within {timeout:.0f} s "
                    f"(exit code {code})\n--- log ---\n{tail(self.log)}", pytrace=False)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL after 5 s); the port stops accepting."""
        if self.proc is not None:
            stop_process(self.proc)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def wipe(self) -> None:
        """Delete the data dir's contents (stopped server only): every session and node is lost."""
        assert not self.alive(), "stop the server first"
        import shutil

        shutil.rmtree(self.data_dir)
        self.data_dir.mkdir()

    def delete(self, path: str, timeout: float = 5.0) -> None:
        """Delete ``path`` and everything under it (kazoo, a fresh session)."""
        from kazoo.client import KazooClient

        client = KazooClient(hosts=self.address, timeout=timeout)
        client.start(timeout=timeout)
        try:
            client.delete(path, recursive=True)
        finally:
            client.stop()
            client.close()

    def children(self, path: str, timeout: float = 5.0) -> list[str]:
        """The children of ``path`` (as stored: URL-encoded), read with a fresh kazoo session."""
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoNodeError

        client = KazooClient(hosts=self.address, timeout=timeout)
        client.start(timeout=timeout)
        try:
            return sorted(client.get_children(path))
        except NoNodeError:
            return []
        finally:
            client.stop()
            client.close()

    def close(self) -> None:
        self.stop()
        LIVE_LOGS.pop("zookeeper", None)


@pytest.fixture
def zookeeper_server(tmp_path: Path) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(tmp_path / "zookeeper")
    try:
        server.start()
        yield server
    finally:
        server.close()
