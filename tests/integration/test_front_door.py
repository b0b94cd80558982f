"""The first five minutes of a user: `mesh run` with no file, `mesh validate`, `mesh plugins`.

Run: ``python -m pytest -q tests/integration/test_front_door.py`` (needs curl).
`mesh run` uses the fixed ports of the embedded default (10000, 10080, 9901); its tests skip
when one of them is already taken on this machine.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .mesh_harness import (
    LIVE_LOGS,
    LOOPBACK,
    READY_TIMEOUT,
    admin_status,
    port_accepts,
    require_tools,
    stop_process,
    tail,
)

pytestmark = pytest.mark.integration

DEFAULT_PORTS = {10000: "listener", 10080: "sample upstream", 9901: "admin"}
MeshCli = Callable[..., subprocess.CompletedProcess[str]]


def _port_busy(port: int) -> bool:
    if port_accepts(port):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


@pytest.fixture(scope="module")
def mesh_run_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m mesh run` with no FILE (the embedded default), ready on its fixed ports."""
    busy = [f"{port} ({what})" for port, what in DEFAULT_PORTS.items() if _port_busy(port)]
    if busy:
        pytest.skip(f"`mesh run` embedded default needs 127.0.0.1 ports {', '.join(busy)}, "
                    "which are in use on this machine")
    workdir = tmp_path_factory.mktemp("mesh-run")
    log = workdir / "mesh-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mesh", "run"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    name = f"mesh run pid {proc.pid}"
    LIVE_LOGS[name] = log
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if port_accepts(10000) and admin_status(9901) == 200:
                break
            time.sleep(0.05)
        else:
            code = proc.poll()
            why = (f"exited with code {code}" if code is not None else
                   f"not ready within {READY_TIMEOUT:.0f} s (127.0.0.1:10000 accepting, "
                   "admin 127.0.0.1:9901/ready == 200)")
            pytest.fail(f"`mesh run` {why}\n--- log ---\n{tail(log)}", pytrace=False)
        yield proc
    finally:
        stop_process(proc)
        LIVE_LOGS.pop(name, None)


def test_run_default_hello_through_listener(mesh_run_default: subprocess.Popen[bytes]) -> None:
    curl = require_tools("curl")["curl"]
    res = subprocess.run(
        [curl, "--silent", "--show-error", "--noproxy", "*", "--max-time", "10",
         "--write-out", "\n%{http_code}", "http://127.0.0.1:10000/"],
        capture_output=True, timeout=20,
    )
    body, _, code = res.stdout.rpartition(b"\n")
    assert code == b"200", res.stderr.decode()
    assert b"hello" in body.lower()
    assert mesh_run_default.poll() is None


@pytest.mark.parametrize("path", ["/ready", "/stats", "/clusters", "/config_dump"])
def test_run_default_admin_endpoints(path: str, mesh_run_default: subprocess.Popen[bytes]) -> None:
    assert admin_status(9901, path, timeout=5.0) == 200


BAD_CONFIGS = {
    "yaml_syntax": "listeners:\n  - address: \"127.0.0.1:10001\n    protocol: [http1\n",
    "wrong_types": "listeners: 42\nclusters: not-a-mapping\n",
}


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
def test_validate_bad_config_names_the_file(kind: str, tmp_path: Path, mesh_cli: MeshCli) -> None:
    bad = tmp_path / f"bad-{kind}.yaml"
    bad.write_text(BAD_CONFIGS[kind])
    res = mesh_cli("validate", str(bad))
    output = res.stdout + res.stderr
    assert res.returncode != 0, f"validate accepted a bad config:\n{output}"
    assert bad.name in output, f"the message does not name the file:\n{output}"
    assert "Traceback" not in output, f"a traceback instead of a message:\n{output}"


def test_validate_missing_file(tmp_path: Path, mesh_cli: MeshCli) -> None:
    missing = tmp_path / "no-such-config.yaml"
    res = mesh_cli("validate", str(missing))
    output = res.stdout + res.stderr
    assert res.returncode != 0
    assert missing.name in output
    assert "Traceback" not in output, output


def test_plugins_lists_http1(mesh_cli: MeshCli) -> None:
    res = mesh_cli("plugins")
    output = res.stdout + res.stderr
    assert res.returncode == 0, output
    assert re.search(r"\bhttp1\b", res.stdout), output
