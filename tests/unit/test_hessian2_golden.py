"""Caucho Hessian 4.0.38's bytes: decoded as `expect` says, skipped, and re-encoded identically.

Two sources: the checked-in tests/golden/hessian2/vectors.jsonl (always), and the same
generator run live against /usr/share/java/hessian.jar (skipped without Java, failed under
CI=true), which also proves the checked-in file is current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mesh.codecs.hessian2 import Decoder, Encoder

from .hessian2_vectors import check, checked_in_vectors, parse_lines, run_java_generator

CHECKED_IN = checked_in_vectors()


def decode_all(data: bytes) -> list[Any]:
    decoder = Decoder(data)
    values = []
    while not decoder.at_end():
        values.append(decoder.read())
    return values


def assert_vector(vector: dict[str, Any]) -> None:
    data, expect = vector["data"], vector["expect"]
    values = decode_all(data)
    if isinstance(expect, dict) and "seq" in expect:
        check(expect, values, [])
    else:
        assert len(values) == 1, f"{len(values)} values in a one-value vector"
        check(expect, values[0], [])
    encoder = Encoder()
    for value in values:
        encoder.write(value)
    again = encoder.getvalue()
    assert again == data, f"re-encoding differs at byte {_first_difference(again, data)}"
    skipper = Decoder(data)
    for _ in values:
        skipper.skip()
    assert skipper.at_end()


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


@pytest.mark.parametrize("vector", CHECKED_IN, ids=[v["name"] for v in CHECKED_IN])
def test_checked_in_vector(vector: dict[str, Any]) -> None:
    assert_vector(vector)


@pytest.fixture(scope="session")
def live_vectors(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("hessian_vectors")
    return parse_lines(run_java_generator(workdir))


def test_live_caucho_vectors(live_vectors: list[dict[str, Any]]) -> None:
    failures = []
    for vector in live_vectors:
        try:
            assert_vector(vector)
        except AssertionError as exc:
            failures.append(f"{vector['name']}: {exc}")
    assert not failures, "\n".join(failures)


def test_checked_in_file_is_current(live_vectors: list[dict[str, Any]]) -> None:
    live = [(v["name"], v["hex"], v["expect"]) for v in live_vectors]
    stored = [(v["name"], v["hex"], v["expect"]) for v in CHECKED_IN]
    assert live == stored, ("tests/golden/hessian2/vectors.jsonl is stale: regenerate it "
                            "(docs/hessian2.md, 'Golden vectors')")
