"""Golden Hessian 2.0 vectors (tests/golden/hessian2) and the checker of their `expect` form.

The `expect` language is described at the top of tests/golden/hessian2/HessianVectors.java.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mesh.codecs.hessian2 import JavaEnum, JavaList, JavaLong, JavaMap, JavaObject

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "hessian2"
VECTORS = GOLDEN / "vectors.jsonl"
JAVA_SOURCE = GOLDEN / "HessianVectors.java"
HESSIAN_JAR = Path("/usr/share/java/hessian.jar")
IN_CI = os.environ.get("CI") == "true"
# Caucho 4.0.38 reflects into java.base, which JDK 17 keeps closed unless opened.
JAVA_OPENS = ["--add-opens", "java.base/java.lang=ALL-UNNAMED",
              "--add-opens", "java.base/java.util=ALL-UNNAMED"]


def skip_or_fail(msg: str) -> None:
    """Skip; under CI=true a missing peer is an error instead (as tests/integration do)."""
    if IN_CI:
        pytest.fail(f"{msg}; CI=true, so a missing peer is an error, not a skip", pytrace=False)
    pytest.skip(msg)


def parse_lines(text: str) -> list[dict[str, Any]]:
    vectors = []
    for line in text.splitlines():
        if line.strip():
            vector = json.loads(line)
            vector["data"] = bytes.fromhex(vector["hex"])
            vectors.append(vector)
    return vectors


def checked_in_vectors() -> list[dict[str, Any]]:
    return parse_lines(VECTORS.read_text())


def run_java_generator(workdir: Path) -> str:
    """Compile and run HessianVectors.java against Caucho's jar; its stdout (JSON lines)."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None or not HESSIAN_JAR.exists():
        skip_or_fail("golden vectors need javac, java and /usr/share/java/hessian.jar "
                     "(Debian: apt-get install -y default-jdk-headless libhessian-java)")
    assert javac is not None and java is not None
    subprocess.run([javac, "-nowarn", "-cp", str(HESSIAN_JAR), "-d", str(workdir),
                    str(JAVA_SOURCE)], check=True, capture_output=True, timeout=120)
    done = subprocess.run([java, *JAVA_OPENS, "-cp", f"{HESSIAN_JAR}:{workdir}", "HessianVectors"],
                          check=True, capture_output=True, timeout=120)
    return done.stdout.decode()


def check(expect: Any, value: Any, slots: list[Any], path: str = "$") -> None:
    """Assert that ``value`` is what ``expect`` describes; ``slots`` are the reference slots."""
    if expect is None or isinstance(expect, bool):
        assert value is expect, f"{path}: {value!r} is not {expect!r}"
        return
    ((kind, body), *rest) = expect.items()
    if kind == "ref":
        assert value is slots[body], f"{path}: not the object of slot {body}: {value!r:.80}"
    elif kind == "int":
        assert type(value) is int and value == body, f"{path}: {value!r} != int {body}"
    elif kind == "long":
        assert type(value) is JavaLong and value == body, f"{path}: {value!r} != long {body}"
    elif kind == "double":
        assert type(value) is float, f"{path}: {value!r} is not a float"
        bits = struct.unpack(">Q", struct.pack(">d", value))[0]
        assert bits == int(body, 16), f"{path}: {value!r} has bits {bits:x}, expected {body}"
    elif kind == "string":
        assert value == body, f"{path}: string differs ({len(value)} vs {len(body)} chars)"
    elif kind == "binary":
        assert isinstance(value, bytes) and value == bytes.fromhex(body), f"{path}: binary differs"
    elif kind == "date":
        assert isinstance(value, datetime), f"{path}: {value!r} is not a datetime"
        from mesh.codecs.hessian2._decoder import EPOCH

        delta = value - EPOCH
        millis = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
        assert millis == body, f"{path}: {value} is {millis} ms, expected {body}"
    elif kind == "seq":
        assert isinstance(value, list) and len(value) == len(body), f"{path}: sequence length"
        for i, (e, v) in enumerate(zip(body, value, strict=True)):
            check(e, v, slots, f"{path}[{i}]")
    else:
        slots.append(value)
        _check_container(kind, body, dict(rest), value, slots, path)


def _check_container(kind: str, body: Any, extra: dict[str, Any], value: Any, slots: list[Any],
                     path: str) -> None:
    if kind == "decimal":
        assert type(value) is Decimal and str(value) == body, f"{path}: {value!r} != {body}"
    elif kind == "enum":
        assert type(value) is JavaEnum, f"{path}: {value!r} is not a JavaEnum"
        assert (value.class_name, value.name) == (body, extra["name"]), f"{path}: {value!r}"
    elif kind == "object":
        assert type(value) is JavaObject, f"{path}: {value!r:.80} is not a JavaObject"
        assert value.class_name == body, f"{path}: class {value.class_name} != {body}"
        names = [name for name, _ in extra["fields"]]
        assert list(value.fields) == names, f"{path}: fields {list(value.fields)} != {names}"
        for name, e in extra["fields"]:
            check(e, value.fields[name], slots, f"{path}.{name}")
    elif kind == "list":
        type_name, variable = extra["type"], extra.get("variable", False)
        if type_name is None and not variable:
            assert type(value) is list, f"{path}: {value!r:.80} is not a plain list"
        else:
            assert type(value) is JavaList, f"{path}: {value!r:.80} is not a JavaList"
            assert (value.type_name, value.variable) == (type_name, variable), f"{path}: {value!r:.80}"
        assert len(value) == len(body), f"{path}: {len(value)} items, expected {len(body)}"
        for i, (e, v) in enumerate(zip(body, value, strict=True)):
            check(e, v, slots, f"{path}[{i}]")
    elif kind == "map":
        if extra["type"] is None:
            assert type(value) is dict, f"{path}: {value!r:.80} is not a plain dict"
        else:
            assert type(value) is JavaMap and value.type_name == extra["type"], f"{path}: {value!r:.80}"
        assert len(value) == len(body), f"{path}: {len(value)} entries, expected {len(body)}"
        for (ek, ev), (k, v) in zip(body, value.items(), strict=True):
            check(ek, k, slots, f"{path} key")
            check(ev, v, slots, f"{path}[{k!r}]")
    else:
        raise AssertionError(f"{path}: unknown expect kind {kind!r}")
