"""Real Dubbo 2 peers for the integration tests: a provider and two independent consumers.

- provider: tests/peers/dubbo_node/provider.js, sofa-rpc-node's RpcServer with dubbo-remoting
  (hessian2), no registry, on 127.0.0.1. Service ``com.rpcmesh.test.EchoService``, a version
  and a group of your choice (two providers with versions 1.0.0 and 2.0.0 for canary routing).
- node consumer: tests/peers/dubbo_node/consumer.js, sofa-rpc-node's RpcClient, one
  connection to the port it is given.
- python consumer: tests/peers/dubbo_py/consumer.py, PyPI dubbo-ssl-python, one connection.

Both consumers speak the same JSON lines (see consumer.js), so :class:`DubboConsumer` drives
either: point it at the provider's port for a direct call, or at rpcmesh's port to go
through the proxy. Arguments use hessian.js's notation for Java types: :func:`java_long`,
:func:`pojo`, :func:`user`. Free ports, bounded waits, processes stopped by PID only.

Provider methods (``PROVIDER_METHODS``): echo(String), echoBool, echoDouble, add(int, int),
echoLong(long), echoUser(User), echoList(List), echoMap(Map), sizeOf(String | String[]),
bigResult(n) (= :func:`big_text`), fail(msg) (business exception: status 20, exception
result), crash(msg) (status 80 SERVER_ERROR), sleep(ms), peak() (most sleep() calls at once),
attachments(), attachment(key), whoami() ({interface, version, group, port, pid}).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .mesh_harness import IN_CI, LIVE_LOGS, LOOPBACK, find_tool, free_port, stop_process, tail

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "peers" / "dubbo_node"
PY_CONSUMER = REPO / "tests" / "peers" / "dubbo_py" / "consumer.py"
INTERFACE = "com.rpcmesh.test.EchoService"
USER_CLASS = "com.rpcmesh.test.User"
BIZ_EXCEPTION = "com.rpcmesh.test.BizException"
NODE_PACKAGES = ("sofa-rpc-node", "dubbo-remoting")
READY_TIMEOUT = 15.0
CALL_SLACK = 10.0  # seconds a consumer may take beyond a call's own timeout to answer

# bigResult(n) returns the first n characters of this, repeated (provider.js PATTERN).
BIG_PATTERN = "abcdefghijklmnopqrstuvwxyz0123456789\u00e9\u4e2d"
# dubbo-ssl-python writes one 16-bit string length and reads it signed.
PY_MAX_STRING = 32767

CONSUMER_KINDS = ("node", "python")


# --------------------------------------------------------------------------------------------
# what is installed


def node_peers_missing() -> str | None:
    """Why the Node peers cannot run here, or None."""
    if find_tool("node") is None:
        return "the Dubbo peers need node on PATH (Debian: apt-get install -y nodejs npm)"
    missing = [p for p in NODE_PACKAGES if not (NODE_DIR / "node_modules" / p / "package.json").exists()]
    if missing:
        return (f"the Dubbo peers need the npm packages {', '.join(missing)}: "
                f"npm ci --no-audit --no-fund --prefix {NODE_DIR.relative_to(REPO)}")
    return None


def python_consumer_missing() -> str | None:
    """Why the dubbo-ssl-python consumer cannot run here, or None (without importing it:
    its import starts two threads)."""
    if importlib.util.find_spec("dubbo_ssl") is None:
        return "the python Dubbo consumer needs PyPI dubbo-ssl-python (pip install -e '.[test]')"
    return None


def _skip_or_fail(why: str | None) -> None:
    if why is None:
        return
    if IN_CI:
        pytest.fail(f"{why}; CI=true, so a missing peer is an error, not a skip", pytrace=False)
    pytest.skip(why)


def require_node_peers() -> None:
    """Skip (fail under CI=true) unless node and the npm packages are installed."""
    _skip_or_fail(node_peers_missing())


def require_python_consumer() -> None:
    """Skip (fail under CI=true) unless dubbo-ssl-python is installed."""
    _skip_or_fail(python_consumer_missing())


def require_consumer(kind: str) -> None:
    if kind == "node":
        require_node_peers()
    elif kind == "python":
        require_python_consumer()
    else:
        raise ValueError(f"consumer kind is 'node' or 'python', not {kind!r}")


# --------------------------------------------------------------------------------------------
# argument helpers (hessian.js notation, understood by both consumers)


def java_long(value: int | str) -> dict[str, Any]:
    """A Java long argument, e.g. java_long(2**53 + 1) (JS numbers stop at 2^53)."""
    return {"$class": "long", "$": str(value)}


def java_int(value: int) -> dict[str, Any]:
    return {"$class": "int", "$": value}


def pojo(java_class: str, **fields: Any) -> dict[str, Any]:
    return {"$class": java_class, "$": fields}


def user(name: str, age: int, tags: Sequence[str] = (), attrs: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    """A com.rpcmesh.test.User{name, age, tags: List<String>, attrs: Map} argument. Leave
    attrs out for the python consumer (it cannot encode maps)."""
    fields: dict[str, Any] = {"name": name, "age": age, "tags": list(tags)}
    if attrs is not None:
        fields["attrs"] = attrs
    return pojo(USER_CLASS, **fields)


def big_text(n: int) -> str:
    """What bigResult(n) returns."""
    reps = -(-n // len(BIG_PATTERN))
    return (BIG_PATTERN * reps)[:n]


def mib_argument(kind: str, size: int = 1 << 20) -> str | list[str]:
    """A `size`-character ASCII argument for sizeOf: one string for node, a String[] of
    chunks for python (it cannot encode strings of 32768+ characters). sizeOf answers `size`."""
    text = "".join(chr(0x61 + i % 26) for i in range(26)) * (size // 26 + 1)
    text = text[:size]
    if kind == "python":
        return [text[i:i + PY_MAX_STRING] for i in range(0, size, PY_MAX_STRING)]
    return text


# --------------------------------------------------------------------------------------------
# processes


def _read_ready_line(proc: subprocess.Popen[str], lines: queue.Queue[str | None],
                     timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None and lines.empty():
                return None
            continue
        if line is None:
            return None
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and "ready" in obj:
                return obj
    return None


def _pump_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    lines.put(None)


def _spawn(argv: list[str], log: Path, cwd: Path) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    err = log.open("ab")
    err.write(f"$ {' '.join(argv)}\n".encode())
    err.flush()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                            text=True, encoding="utf-8", bufsize=1, cwd=cwd,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    err.close()
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump_lines, args=(proc.stdout, lines), daemon=True).start()
    return proc, lines


@dataclass
class DubboProvider:
    """A running provider.js: ``.port .address .version .group .pid .log``."""

    port: int
    version: str
    group: str
    proc: subprocess.Popen[str]
    log: Path
    host: str = LOOPBACK
    #: the provider URL it registered in ZooKeeper (``zk=``), else None
    registered: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return tail(self.log)

    def kill(self) -> None:
        """SIGKILL by PID: no deregistration, its ZooKeeper session just times out."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        LIVE_LOGS.pop(f"dubbo provider {self.version} port {self.port}", None)

    def stop(self) -> None:
        stop_process(self.proc)
        LIVE_LOGS.pop(f"dubbo provider {self.version} port {self.port}", None)


def start_dubbo_provider(workdir: Path, *, version: str = "1.0.0", group: str = "",
                         interface: str = INTERFACE, timeout: float = READY_TIMEOUT,
                         zk: str | None = None, zk_session_ms: int = 4000) -> DubboProvider:
    """Start provider.js on a free 127.0.0.1 port; return once it printed its ready line.

    ``zk="127.0.0.1:PORT"``: it also registers in that ZooKeeper (/dubbo/<interface>/providers)
    and is ready once it sees itself listed there; ``zk_session_ms`` is its session timeout."""
    require_node_peers()
    node = find_tool("node")
    assert node is not None
    last = ""
    for attempt in range(3):  # retry only when the port we picked was taken meanwhile
        port = free_port()
        log = workdir / f"dubbo-provider-{version}-{port}-{attempt}.log"
        argv = [node, str(NODE_DIR / "provider.js"), "--port", str(port), "--version", version,
                "--interface", interface]
        if group:
            argv += ["--group", group]
        if zk:
            argv += ["--zk", zk, "--zk-session-ms", str(zk_session_ms)]
        proc, lines = _spawn(argv, log, NODE_DIR)
        assert proc.stdin is not None
        proc.stdin.close()
        ready = _read_ready_line(proc, lines, timeout)
        if ready is not None and ready.get("ready") == port:
            provider = DubboProvider(port, version, group, proc, log,
                                     registered=ready.get("registered"))
            LIVE_LOGS[f"dubbo provider {version} port {port}"] = log
            return provider
        stop_process(proc)
        last = tail(log)
        if "EADDRINUSE" not in last:
            break
    pytest.fail(f"dubbo provider {version} did not start within {timeout:.0f} s\n--- log ---\n{last}",
                pytrace=False)


@dataclass
class CallResult:
    """One call's answer: ``ok`` and ``value``, or ``error`` = {kind, name, message, status,
    [java_class]} with kind one of exception (status 20 exception result), server_error
    (another status, e.g. 80), timeout, closed, client (refused before the wire)."""

    id: int
    ok: bool
    value: Any = None
    error: dict[str, Any] | None = None
    ms: int | None = None

    @property
    def kind(self) -> str | None:
        return None if self.error is None else self.error.get("kind")

    @property
    def status(self) -> int | None:
        return None if self.error is None else self.error.get("status")

    @property
    def message(self) -> str:
        return "" if self.error is None else str(self.error.get("message"))

    def unwrap(self) -> Any:
        """The value; AssertionError with the error when the call failed."""
        assert self.ok, f"call {self.id} failed: {self.error}"
        return self.value


@dataclass
class Call:
    """One call for :meth:`DubboConsumer.call_many`."""

    method: str
    args: Sequence[Any] = ()
    attachments: dict[str, str] | None = None
    timeout_ms: int | None = None


@dataclass
class DubboConsumer:
    """A running consumer (node or python) with one connection to ``port``."""

    kind: str
    port: int
    proc: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    log: Path
    timeout_ms: int
    local_port: int | None = None
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _early: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return tail(self.log)

    def call(self, method: str, *args: Any, attachments: dict[str, str] | None = None,
             timeout_ms: int | None = None) -> CallResult:
        """One call; waits for its answer (the call's timeout plus CALL_SLACK seconds)."""
        return self.call_many([Call(method, args, attachments, timeout_ms)])[0]

    def call_many(self, calls: Sequence[Call]) -> list[CallResult]:
        """Send every call at once (in flight together on the one connection); the results
        in the order of `calls`."""
        with self._lock:
            ids = []
            payload = []
            for c in calls:
                cid = next(self._ids)
                ids.append(cid)
                cmd: dict[str, Any] = {"id": cid, "method": c.method, "args": list(c.args),
                                       "timeout": c.timeout_ms or self.timeout_ms}
                if c.attachments is not None:
                    cmd["attachments"] = c.attachments
                payload.append(json.dumps(cmd))
            longest = max((c.timeout_ms or self.timeout_ms) for c in calls) / 1000
            answers = self._exchange(payload, ids, longest + CALL_SLACK)
        return [CallResult(id=a["id"], ok=a["ok"], value=a.get("value"), error=a.get("error"),
                           ms=a.get("ms")) for a in (answers[i] for i in ids)]

    def stats(self) -> dict[str, Any]:
        """{heartbeats_sent, heartbeat_acks, responses, statuses, connections, connected,
        local_port} as the consumer counted them."""
        with self._lock:
            cid = next(self._ids)
            answer = self._exchange([json.dumps({"id": cid, "op": "stats"})], [cid], CALL_SLACK)
        value: dict[str, Any] = answer[cid]["value"]
        return value

    def wait_heartbeat_acks(self, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Poll stats() until `count` heartbeat answers arrived; the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["heartbeat_acks"] >= count or time.monotonic() > deadline:
                return stats
            time.sleep(0.1)

    def _exchange(self, payload: list[str], ids: list[int], timeout: float) -> dict[int, dict[str, Any]]:
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            pytest.fail(f"{self.kind} consumer exited ({self.proc.returncode})\n{self.log_text()}",
                        pytrace=False)
        self.proc.stdin.write("".join(p + "\n" for p in payload))
        self.proc.stdin.flush()
        wanted = set(ids)
        got = {i: self._early.pop(i) for i in list(wanted) if i in self._early}
        deadline = time.monotonic() + timeout
        while len(got) < len(wanted):
            left = deadline - time.monotonic()
            line = None
            if left > 0:
                with contextlib.suppress(queue.Empty):
                    line = self.lines.get(timeout=left)
            if line is None:
                pytest.fail(f"{self.kind} consumer: {len(wanted) - len(got)} of {len(wanted)} "
                            f"answers missing after {timeout:.0f} s\n--- log ---\n{self.log_text()}",
                            pytrace=False)
            obj = json.loads(line)
            if obj.get("id") in wanted:
                got[obj["id"]] = obj
            elif isinstance(obj.get("id"), int):
                self._early[obj["id"]] = obj
        return got

    def close(self) -> None:
        """EOF on stdin (the consumer closes its connection and exits), then stop by PID."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
        LIVE_LOGS.pop(f"dubbo {self.kind} consumer pid {self.pid}", None)


def start_dubbo_consumer(workdir: Path, kind: str, port: int, *, version: str = "1.0.0",
                         group: str = "", timeout_ms: int = 3000, heartbeat_ms: int = 0,
                         interface: str = INTERFACE, ready_timeout: float = READY_TIMEOUT
                         ) -> DubboConsumer:
    """Start a `kind` ("node" or "python") consumer connected to 127.0.0.1:`port`."""
    require_consumer(kind)
    if kind == "node":
        node = find_tool("node")
        assert node is not None
        argv = [node, str(NODE_DIR / "consumer.js")]
    else:
        argv = [sys.executable, str(PY_CONSUMER)]
    argv += ["--port", str(port), "--version", version, "--timeout", str(timeout_ms),
             "--heartbeat-ms", str(heartbeat_ms), "--interface", interface]
    if group:
        argv += ["--group", group]
    log = workdir / f"dubbo-{kind}-consumer-{port}-{time.monotonic_ns()}.log"
    proc, lines = _spawn(argv, log, workdir)
    ready = _read_ready_line(proc, lines, ready_timeout)
    if ready is None or not ready.get("ready"):
        stop_process(proc)
        pytest.fail(f"{kind} dubbo consumer did not connect to {LOOPBACK}:{port} within "
                    f"{ready_timeout:.0f} s: {ready}\n--- log ---\n{tail(log)}", pytrace=False)
    consumer = DubboConsumer(kind, port, proc, lines, log, timeout_ms, ready.get("local_port"))
    LIVE_LOGS[f"dubbo {kind} consumer pid {proc.pid}"] = log
    return consumer


class DubboProviderFactory:
    """Callable fixture value: ``dubbo_provider(version="1.0.0", group="", zk=None)`` ->
    DubboProvider; ``zk="127.0.0.1:PORT"`` registers it in that ZooKeeper."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[DubboProvider] = []

    def __call__(self, *, version: str = "1.0.0", group: str = "",
                 interface: str = INTERFACE, zk: str | None = None,
                 zk_session_ms: int = 4000) -> DubboProvider:
        provider = start_dubbo_provider(self.workdir, version=version, group=group,
                                        interface=interface, zk=zk, zk_session_ms=zk_session_ms)
        self.started.append(provider)
        return provider

    def close(self) -> None:
        for provider in self.started:
            provider.stop()


class DubboConsumerFactory:
    """Callable fixture value: ``dubbo_consumer(kind, port, version="1.0.0", group="",
    timeout_ms=3000, heartbeat_ms=0)`` -> DubboConsumer; `port` is an int or anything with
    ``.port`` (a DubboProvider, a MeshProxy)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[DubboConsumer] = []

    def __call__(self, kind: str, port: Any, **options: Any) -> DubboConsumer:
        target = port if isinstance(port, int) else int(port.port)
        consumer = start_dubbo_consumer(self.workdir, kind, target, **options)
        self.started.append(consumer)
        return consumer

    def close(self) -> None:
        for consumer in self.started:
            consumer.close()
