"""Record real Dubbo 2 traffic as golden frames: both consumers against the Node provider.

    python scripts/capture_dubbo_frames.py [--out tests/golden/dubbo/frames.jsonl]

Starts tests/peers/dubbo_node/provider.js (sofa-rpc-node + dubbo-remoting, hessian2) on a
free 127.0.0.1 port and, for each scenario, one consumer (sofa-rpc-node's, or PyPI
dubbo-ssl-python's) on a fresh connection through mesh.conformance.capture.Recorder. Each
direction's byte stream is split into frames by the 16-byte Dubbo header (magic 0xdabb,
flags, status, 8-byte request id, 4-byte body length); a stream that does not split exactly
is an error. One JSON object per frame, in wire order per direction::

    {"scenario": "echo", "consumer": "node", "direction": "request", "from": "consumer",
     "seq": 0, "request_id": 1, "flags": "c2", "status": 0, "event": false,
     "two_way": true, "serialization": 2, "body_length": 219, "hex": "dabbc2..."}

``direction`` is the frame's request bit (0x80), ``from`` who sent it; the other fields
are read from the header only, to help the codec's golden tests pick frames. Needs node,
the npm packages (npm ci --prefix tests/peers/dubbo_node) and dubbo-ssl-python.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mesh.conformance.capture import Recorder  # noqa: E402

from tests.integration.dubbo_peers import (  # noqa: E402
    Call,
    java_long,
    mib_argument,
    node_peers_missing,
    python_consumer_missing,
    start_dubbo_consumer,
    start_dubbo_provider,
    user,
)

HEADER = struct.Struct(">HBBqi")
MAGIC = 0xDABB


@dataclass
class Scenario:
    name: str
    kinds: tuple[str, ...]
    calls: list[Call] = field(default_factory=list)
    # the python consumer cannot encode maps or 32768+ character strings: its own calls
    py_calls: list[Call] | None = None
    heartbeat_ms: int = 0
    version: str = "1.0.0"
    pause_after: float = 0.0  # wait for late responses before closing


BOTH = ("node", "python")
NODE = ("node",)

SCENARIOS: list[Scenario] = [
    Scenario("echo", BOTH, [Call("echo", ["hello"])]),
    Scenario("echo_empty", BOTH, [Call("echo", [""])]),
    Scenario("echo_unicode", BOTH, [Call("echo", ["h\u00e9llo \u4e2d\u6587 \u20ac"])]),
    Scenario("add", BOTH, [Call("add", [2, 3]), Call("add", [1, -1])]),
    Scenario("echo_bool_double", BOTH, [Call("echoBool", [False]), Call("echoDouble", [2.5])]),
    Scenario("echo_long", BOTH, [Call("echoLong", [java_long(2**53 + 1)]),
                                 Call("echoLong", [java_long(-(2**63))])]),
    Scenario("echo_pojo", BOTH, [Call("echoUser", [user("ann", 31, ["a", "b"], {"team": "mesh"})])],
             py_calls=[Call("echoUser", [user("ann", 31, ["a", "b"])])]),
    Scenario("echo_list", BOTH, [Call("echoList", [[1, "two", 3.5, True]])],
             py_calls=[Call("echoList", [["one", "two", "three"]])]),
    Scenario("echo_map", NODE, [Call("echoMap", [{"a": 1, "b": "x", "nested": {"c": [1, 2]}}])]),
    Scenario("arg_1mib", NODE, [Call("sizeOf", [mib_argument("node")], timeout_ms=15000)]),
    Scenario("arg_64kib_string_array", ("python",), py_calls=[
        Call("sizeOf", [mib_argument("python", 1 << 16)], timeout_ms=15000)]),
    Scenario("result_300k_chars", NODE, [Call("bigResult", [300_000], timeout_ms=15000)]),
    Scenario("result_32767_chars", ("python",), py_calls=[Call("bigResult", [32767])]),
    Scenario("business_exception", BOTH, [Call("fail", ["biz boom"])]),
    Scenario("server_error_80", BOTH, [Call("crash", ["server boom"])]),
    Scenario("service_not_found_80", BOTH, [Call("echo", ["hello"])], version="9.9.9"),
    Scenario("attachments", BOTH, [Call("attachments", [], {"x-trace-id": "abc123", "x-tenant": "t1"})]),
    Scenario("client_timeout_late_response", BOTH,
             [Call("sleep", [400], timeout_ms=100), Call("echo", ["after"])], pause_after=0.6),
    Scenario("concurrent_20", BOTH, [Call("echo", [f"call-{i}"]) for i in range(20)]),
    Scenario("heartbeat", BOTH, [Call("echo", ["hi"])], heartbeat_ms=300),
]


def split_frames(data: bytes, where: str) -> list[bytes]:
    frames = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER.size:
            raise ValueError(f"{where}: {len(data) - pos} bytes left, less than a header")
        magic, _flags, _status, _rid, length = HEADER.unpack_from(data, pos)
        if magic != MAGIC or length < 0:
            raise ValueError(f"{where}: no Dubbo header at byte {pos}: {data[pos:pos + 16].hex()}")
        end = pos + HEADER.size + length
        if end > len(data):
            raise ValueError(f"{where}: frame at byte {pos} needs {end - len(data)} more bytes")
        frames.append(data[pos:end])
        pos = end
    return frames


def describe(frame: bytes) -> dict[str, Any]:
    _magic, flags, status, rid, length = HEADER.unpack_from(frame)
    return {"request_id": rid, "flags": f"{flags:02x}", "status": status,
            "event": bool(flags & 0x20), "two_way": bool(flags & 0x40),
            "serialization": flags & 0x1F, "body_length": length}


def run(scenario: Scenario, kind: str, port: int, workdir: Path) -> None:
    calls = scenario.py_calls if kind == "python" and scenario.py_calls is not None else scenario.calls
    consumer = start_dubbo_consumer(workdir, kind, port, version=scenario.version,
                                    heartbeat_ms=scenario.heartbeat_ms)
    try:
        results = consumer.call_many(calls)
        if scenario.heartbeat_ms:
            stats = consumer.wait_heartbeat_acks(1, timeout=10)
            if stats["heartbeat_acks"] < 1:
                raise RuntimeError(f"{scenario.name}/{kind}: no heartbeat answered: {stats}")
        if scenario.pause_after:
            time.sleep(scenario.pause_after)
        summary = [r.value if r.ok else r.error for r in results]
        print(f"  {scenario.name:32} {kind:6} {json.dumps(summary, default=str)[:90]}")
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden" / "dubbo" / "frames.jsonl")
    args = parser.parse_args()
    for why in (node_peers_missing(), python_consumer_missing()):
        if why:
            print(f"capture_dubbo_frames: {why}", file=sys.stderr)
            return 2
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        provider = start_dubbo_provider(workdir, version="1.0.0")
        try:
            for scenario in SCENARIOS:
                for kind in scenario.kinds:
                    with Recorder(upstream_port=provider.port) as rec:
                        run(scenario, kind, rec.port, workdir)
                        (recording,) = rec.wait(1, timeout=15)
                    for who, chunks in (("consumer", recording.client), ("provider", recording.server)):
                        where = f"{scenario.name}/{kind} from {who}"
                        for seq, frame in enumerate(split_frames(b"".join(chunks), where)):
                            info = describe(frame)
                            records.append({
                                "scenario": scenario.name, "consumer": kind,
                                "direction": "request" if int(info["flags"], 16) & 0x80 else "response",
                                "from": who, "seq": seq, **info, "hex": frame.hex(),
                            })
        finally:
            provider.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    print(f"wrote {len(records)} frames to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
