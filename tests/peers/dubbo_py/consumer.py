"""A second, independent Dubbo 2 consumer: PyPI dubbo-ssl-python, driven over JSON lines.

The same command-line interface as tests/peers/dubbo_node/consumer.js, so the test harness
(tests/integration/dubbo_peers.py) drives both alike::

    python consumer.py --port 20880 [--version 1.0.0] [--group G] [--timeout 3000]
                       [--heartbeat-ms 500] [--interface com.rpcmesh.test.EchoService]

stdin: ``{"id": 1, "method": "echo", "args": ["hi"], "attachments": {"k": "v"}, "timeout": 3000}``
or ``{"id": 2, "op": "stats"}``, one a line, run concurrently on the library's one connection.
Arguments use hessian.js's notation (``{"$class": "long", "$": "9007199254740993"}``,
``{"$class": "com.rpcmesh.test.User", "$": {...}}``), converted to what the library encodes.
stdout: ``{"ready": true, ...}`` once connected, then one answer a line (see consumer.js).

What is patched in the library, and why (each is observation or a guard, none changes bytes
on the wire):

- ``get_ip()`` returns 127.0.0.1: the original connects a UDP socket to 8.8.8.8.
- a timed-out call no longer wedges the connection: the library deletes the call's wait
  event on timeout, and the late response then raises KeyError inside the reader *before*
  the read buffer advances, so every later read replays it. Here the missing event is a
  throwaway one and the late result is dropped.
- ``client_heartbeats[host]`` starts at 0 for each new connection: the library never sets
  it, so its heartbeat thread raises KeyError (logged every 30 ms) instead of sending
  heartbeats. ``--heartbeat-ms`` also lowers its idle threshold (TIMEOUT_IDLE, 60 s).
- response heads are observed to report the status byte and count heartbeat answers.

Limits of the library, refused here with a clear error instead of sending garbage:
strings of 32768+ characters (it writes one 16-bit length), maps as arguments (no encoder),
empty lists (it writes null). It cannot decode strings of 32768+ characters either (signed
16-bit length, and its chunk test compares a byte with the str "R").
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dubbo_ssl.common.util as dubbo_util

# before anything else of the library looks it up
dubbo_util.ip = "127.0.0.1"
dubbo_util.get_ip = lambda: "127.0.0.1"

import dubbo_ssl.client as dubbo_client  # noqa: E402  (starts the pool's threads)
import dubbo_ssl.codec.encoder as dubbo_encoder  # noqa: E402
import dubbo_ssl.connection.connections as dubbo_connections  # noqa: E402
from dubbo_ssl.common.exceptions import (  # noqa: E402
    DubboRequestTimeoutException,
    DubboResponseException,
    HessianTypeError,
)

dubbo_client.get_ip = dubbo_util.get_ip

MAX_STRING = 32767
POOL = dubbo_connections.connection_pool
STATS: dict[str, Any] = {"heartbeats_sent": 0, "heartbeat_acks": 0, "responses": 0, "statuses": {}}
_STATUS_BY_ID: dict[int, int] = {}
_CALL = threading.local()
_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------
# library patches (see the module docstring)


class _Events(dict[int, threading.Event]):
    """The pool's wait events; a response whose caller gave up finds a throwaway one."""

    def __missing__(self, invoke_id: int) -> threading.Event:
        POOL.results.pop(invoke_id, None)
        return threading.Event()


def _patch_pool() -> None:
    POOL.conn_events = _Events()
    orig_parse_head = POOL._parse_head
    orig_new_connection = POOL._new_connection
    orig_write = dubbo_connections.Connection.write
    orig_invoke_id = dubbo_encoder.get_invoke_id

    def parse_head(data: bytearray, conn: Any) -> Any:
        flag, status = data[2], data[3]
        invoke_id = int.from_bytes(data[4:12], "big", signed=True)
        with _LOCK:
            if flag & 0x20 and not flag & 0x80:
                STATS["heartbeat_acks"] += 1
            elif not flag & 0x80:
                STATS["responses"] += 1
                STATS["statuses"][str(status)] = STATS["statuses"].get(str(status), 0) + 1
                _STATUS_BY_ID[invoke_id] = status
        return orig_parse_head(data, conn)

    def new_connection(host: str, verify: Any) -> None:
        POOL.client_heartbeats[host] = 0  # before: the heartbeat thread sees the host at once
        orig_new_connection(host, verify)

    def write(conn: Any, data: bytearray) -> None:
        if data[:3] == b"\xda\xbb\xe2":  # request | two-way | event, hessian2: a heartbeat
            with _LOCK:
                STATS["heartbeats_sent"] += 1
        orig_write(conn, data)

    def get_invoke_id() -> int:
        invoke_id: int = orig_invoke_id()
        _CALL.invoke_id = invoke_id
        return invoke_id

    POOL._parse_head = parse_head
    POOL._new_connection = new_connection
    dubbo_connections.Connection.write = write
    dubbo_encoder.get_invoke_id = get_invoke_id


# ------------------------------------------------------------------------------------------
# arguments: hessian.js notation -> what dubbo-ssl-python encodes


class Unsupported(Exception):
    """An argument this library cannot put on the wire."""


def convert(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise Unsupported(f"dubbo-ssl-python cannot encode strings of {MAX_STRING + 1}+ "
                              f"characters (got {len(value)}): it writes one 16-bit length")
        return value
    if isinstance(value, list):
        if not value:
            raise Unsupported("dubbo-ssl-python writes an empty list as null")
        return [convert(v) for v in value]
    if isinstance(value, dict):
        cls, inner = value.get("$class"), value.get("$")
        if cls is None:
            raise Unsupported("dubbo-ssl-python cannot encode maps (java.util.Map) as arguments")
        if cls in ("long", "java.lang.Long", "int", "java.lang.Integer"):
            return int(inner)
        if cls in ("double", "java.lang.Double"):
            return float(inner)
        if isinstance(inner, list):
            return convert(inner)
        if isinstance(inner, dict):
            return dubbo_encoder.Object(cls, {k: convert(v) for k, v in inner.items()})
        return convert(inner)
    return value


# ------------------------------------------------------------------------------------------


def _error(kind: str, name: str, message: str, status: int | None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, "message": message, "status": status, **extra}


def describe(exc: BaseException, status: int | None) -> dict[str, Any]:
    name = type(exc).__name__
    if isinstance(exc, DubboRequestTimeoutException):
        return _error("timeout", name, str(exc), None)
    if isinstance(exc, DubboResponseException) and status == 20:
        # the library formats "\n<exception class>: <detailMessage>\n\tat ..."
        head = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        java_class, _, message = head.partition(": ")
        return _error("exception", name, message, status, java_class=java_class, text=str(exc))
    if isinstance(exc, DubboResponseException) and status is not None:
        return _error("server_error", name, str(exc).strip(), status)
    if isinstance(exc, (Unsupported, HessianTypeError)):
        return _error("client", name, str(exc), status)
    if isinstance(exc, OSError):
        return _error("closed", name, str(exc), status)
    return _error("client", name, repr(exc), status)


class Consumer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.host = f"127.0.0.1:{args.port}"
        self.client = dubbo_client.DubboClient(args.interface, args.group, version=args.version,
                                               host=self.host)

    def connect(self) -> int:
        conn = POOL._get_connection(self.host, None)
        port: int = conn._Connection__sock.getsockname()[1]
        return port

    def stats(self) -> dict[str, Any]:
        conn = POOL._connection_pool.get(self.host)
        local_port = None
        if conn is not None:
            try:
                local_port = conn._Connection__sock.getsockname()[1]
            except OSError:
                pass
        with _LOCK:
            return dict(STATS, statuses=dict(STATS["statuses"]), connections=len(POOL._connection_pool),
                        connected=conn is not None, local_port=local_port)

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd.get("op") == "stats":
            return {"id": cmd.get("id"), "ok": True, "value": self.stats()}
        started = time.monotonic()
        _CALL.invoke_id = None
        timeout = (cmd.get("timeout") or self.args.timeout) / 1000
        try:
            args = [convert(a) for a in cmd.get("args") or []]
            attachments = cmd.get("attachments")
            if attachments is not None:
                attachments = {str(k): convert(v) for k, v in attachments.items()}
            value = self.client.call(cmd["method"], args, context=attachments, timeout=timeout)
            out: dict[str, Any] = {"id": cmd.get("id"), "ok": True, "value": value}
        except Exception as exc:
            status = _STATUS_BY_ID.pop(_CALL.invoke_id, None) if _CALL.invoke_id is not None else None
            out = {"id": cmd.get("id"), "ok": False, "error": describe(exc, status)}
        if _CALL.invoke_id is not None:
            _STATUS_BY_ID.pop(_CALL.invoke_id, None)
        out["ms"] = round((time.monotonic() - started) * 1000)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--group", default="")
    parser.add_argument("--interface", default="com.rpcmesh.test.EchoService")
    parser.add_argument("--timeout", type=int, default=3000, help="per-call timeout, ms")
    parser.add_argument("--heartbeat-ms", type=int, default=0,
                        help="send a heartbeat after this much idle time (library: 60 s)")
    args = parser.parse_args(argv)
    if args.heartbeat_ms > 0:
        dubbo_connections.TIMEOUT_IDLE = args.heartbeat_ms / 1000
    _patch_pool()

    out_lock = threading.Lock()

    def write(obj: dict[str, Any]) -> None:
        line = json.dumps(obj, default=str)
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    consumer = Consumer(args)
    try:
        local_port = consumer.connect()
    except OSError as exc:
        write({"ready": False, "error": f"cannot connect to {consumer.host}: {exc}"})
        return 1
    write({"ready": True, "port": args.port, "local_port": local_port})

    def run(cmd: dict[str, Any]) -> None:
        try:
            write(consumer.handle(cmd))
        except Exception as exc:  # never lose an answer
            write({"id": cmd.get("id"), "ok": False, "error": describe(exc, None)})

    with ThreadPoolExecutor(max_workers=32) as pool:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
            except ValueError as exc:
                write({"id": None, "ok": False, "error": _error("client", "BadCommand", str(exc), None)})
                continue
            pool.submit(run, cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
