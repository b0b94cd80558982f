"""Starting and stopping the real peers of the tests: Debian memcached and ``mesh proxy``.

Every process runs on a free 127.0.0.1 port and is stopped by its PID
(SIGTERM, then SIGKILL after 5 s). ``need`` skips a test whose peer is
missing, except under CI=true, where it fails it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CI = os.environ.get("CI") == "true"


def need(ok: object, reason: str) -> None:
    """Skip the test for ``reason`` unless ``ok``; under CI=true fail instead."""
    if not ok:
        if CI:
            pytest.fail(f"{reason} (CI=true: the CI script installs it)", pytrace=False)
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{what} did not accept on port {port} within 10 s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Memcached:
    """One memcached process on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_memcached(binary: str, log: Path) -> Memcached:
    port = free_port()
    user = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses root without -u
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", *user],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, "memcached", log)
    return Memcached(proc, port, log)


@dataclass
class MeshProxy:
    """``python -m mesh proxy`` with the memcached codec."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_proxy(upstreams: list[str], log: Path, *extra: str) -> MeshProxy:
    port = free_port()
    argv = [sys.executable, "-m", "mesh", "proxy", "--listen", f"127.0.0.1:{port}",
            "--protocol", "memcached", "--upstream", ",".join(upstreams),
            "--lb", "ring_hash", "--hash-key", "header:key", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, "mesh proxy", log)
    return MeshProxy(proc, port, log)
