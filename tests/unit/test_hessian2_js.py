"""Cross-check with hessian.js 2.x, an independent Hessian 2.0 implementation, both ways.

hessian.js's bytes decode to the values it was given; our bytes decode in hessian.js to the
values we wrote. hessian.js cannot decode variable-length lists (0x55/0x57), so none are
sent. Skipped when node or tests/peers/hessian_js/node_modules is missing (`npm ci` there),
failed under CI=true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from mesh.codecs.hessian2 import Decoder, JavaEnum, JavaList, JavaLong, JavaMap, JavaObject, encode

from .hessian2_vectors import skip_or_fail

PEER = Path(__file__).resolve().parents[1] / "peers" / "hessian_js"

# What each value peer.js encodes must decode to (names as in peer.js VALUES).
FROM_JS: dict[str, Any] = {
    "null": None, "true": True, "int 0": 0, "int -16": -16, "int 47": 47, "int 2047": 2047,
    "int -262144": -262144, "int max": 2147483647, "long 5": JavaLong(5),
    "long 2^40": JavaLong(1 << 40), "double 1.5": 1.5, "double 0.0": 0.0, "double 12.25": 12.25,
    "double 1e300": 1e300, "string empty": "", "string ascii": "hello", "string 1024": "x" * 1024,
    "string emoji": "smile \U0001f600 caf\u00e9 \u4e2d", "string 40000": "ab" * 20000,
    "binary": bytes([0, 1, 2, 254, 255]),
    "date": datetime(2020, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
    "date minute": datetime(2020, 1, 1, tzinfo=UTC),
    "list": [1, "two", None], "typed list": JavaList("[int", [1, 2, 3]),
    "map": {"a": 1, "b": "c"}, "object": JavaObject("com.example.Point", {"x": 1, "y": 2}),
    "objects sharing a class": [JavaObject("com.example.Point", {"x": 1, "y": 2}),
                                JavaObject("com.example.Point", {"x": 3, "y": 4})],
}

_shared = [1, 2]
# What we encode, and the JSON hessian.js's decode of it must give (peer.js `plain`).
TO_JS: dict[str, tuple[Any, Any]] = {
    "scalars": ([1, "two", None, JavaLong(5), 1.5, True, -300000, JavaLong(1 << 40), 0.001],
                [1, "two", None, 5, 1.5, True, -300000, 1 << 40, 0.001]),
    "map": ({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}),
    "typed map": (JavaMap("java.util.TreeMap", {"k": "v"}), {"k": "v"}),
    "object": (JavaObject("com.example.Point", {"x": 1, "y": "z"}), {"x": 1, "y": "z"}),
    "class twice": ([JavaObject("P", {"x": 1}), JavaObject("P", {"x": 2})], [{"x": 1}, {"x": 2}]),
    "typed list": (JavaList("[int", [1, 2]), [1, 2]),
    "long string": ("x" * 40000 + "\U0001f600", "x" * 40000 + "\U0001f600"),
    "chunk after high surrogate": ("a" * 32767 + "\U0001f600", "a" * 32767 + "\U0001f600"),
    "emoji": ("caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600"),
    "date": (datetime(2020, 1, 1, tzinfo=UTC), {"date": 1577836800000}),
    "date ms": (datetime(2020, 1, 1, 0, 0, 0, 5000, tzinfo=UTC), {"date": 1577836800005}),
    "binary": (b"\x00\x01" * 20000, {"binary": "0001" * 20000}),
    "decimal": (Decimal("1.50"), {"value": "1.50"}),
    "enum": (JavaEnum("com.example.Color", "RED"), {"name": "RED"}),
    "back-reference": ([_shared, _shared], [[1, 2], [1, 2]]),
}


def run_peer(mode: str, stdin: str = "") -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (PEER / "node_modules" / "hessian.js").is_dir():
        skip_or_fail("the hessian.js cross-check needs node and tests/peers/hessian_js/node_modules "
                     "(apt-get install -y nodejs npm; npm ci --prefix tests/peers/hessian_js)")
    assert node is not None
    done = subprocess.run([node, str(PEER / "peer.js"), mode], input=stdin.encode(),
                          capture_output=True, check=True, timeout=60)
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def test_hessian_js_bytes_decode_to_its_values() -> None:
    produced = {row["name"]: bytes.fromhex(row["hex"]) for row in run_peer("encode")}
    assert set(produced) == set(FROM_JS)
    for name, data in produced.items():
        decoder = Decoder(data)
        assert decoder.read() == FROM_JS[name], name
        assert decoder.at_end(), name
        skipper = Decoder(data)
        skipper.skip()
        assert skipper.pos == len(data), name


def test_our_bytes_decode_in_hessian_js() -> None:
    lines = "".join(json.dumps({"name": name, "hex": encode(value).hex()}) + "\n"
                    for name, (value, _) in TO_JS.items())
    results = {row["name"]: row for row in run_peer("decode", lines)}
    assert set(results) == set(TO_JS)
    for name, (_, expected) in TO_JS.items():
        assert "error" not in results[name], f"{name}: hessian.js: {results[name].get('error')}"
        assert results[name]["value"] == expected, name
