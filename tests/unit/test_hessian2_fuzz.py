"""Robustness: any bytes give a value or a HessianError, never another exception; round trips.

Inputs: random bytes, every golden vector cut at every offset (sampled offsets for the large
ones), single-byte mutations of golden vectors, hostile lengths and nesting.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mesh.codecs.hessian2 import (
    Decoder,
    HessianError,
    JavaList,
    JavaLong,
    JavaMap,
    JavaObject,
    decode,
    encode,
)

from .hessian2_vectors import checked_in_vectors

VECTORS = checked_in_vectors()
SMALL = [v for v in VECTORS if len(v["data"]) <= 600]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_or_error(data: bytes, max_length: int = 1 << 24) -> None:
    """Read and skip every value; only HessianError may escape."""
    for method in ("read", "skip"):
        decoder = Decoder(data, max_length=max_length)
        try:
            while not decoder.at_end():
                getattr(decoder, method)()
        except HessianError:
            pass


@FAST
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    read_or_error(data)


@FAST
@given(st.lists(st.sampled_from([0x43, 0x4D, 0x48, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57, 0x58, 0x5A,
                                 0x60, 0x4F, 0x70, 0x78, 0x90, 0x91, 0x00, 0x01, 0x41, 0xED, 0xC3]),
                max_size=60).map(bytes))
def test_random_structure_bytes(data: bytes) -> None:
    read_or_error(data)  # tags that open containers, classes and refs, densely


def _offsets(size: int) -> list[int]:
    if size <= 2048:
        return list(range(size))
    picks = set(range(0, 64)) | set(range(size - 64, size))
    picks |= {size * i // 40 for i in range(40)}
    for boundary in (0x8000, 0x10000, 8189):  # chunk boundaries
        picks |= set(range(max(0, boundary - 8), min(size, boundary + 8)))
    return sorted(picks)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_truncations(vector: dict[str, Any]) -> None:
    data = vector["data"]
    sequence = isinstance(vector["expect"], dict) and "seq" in vector["expect"]
    for cut in _offsets(len(data)):
        read_or_error(data[:cut])  # a sequence may end cleanly at a value boundary
        if not sequence:
            with pytest.raises(HessianError):  # Hessian is prefix-free: no cut is a whole value
                decode(data[:cut])


@FAST
@given(st.sampled_from(SMALL), st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_single_byte_mutations(vector: dict[str, Any], where: int, byte: int) -> None:
    data = bytearray(vector["data"])
    data[where % len(data)] = byte
    read_or_error(bytes(data))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_skip_ends_where_read_ends(vector: dict[str, Any]) -> None:
    reader, skipper = Decoder(vector["data"]), Decoder(vector["data"])
    while not reader.at_end():
        reader.read()
        skipper.skip()
        assert skipper.pos == reader.pos


@pytest.mark.parametrize("data", [
    b"\x58\x49\x7f\xff\xff\xff\x90",  # a list of 2**31-1 items in 7 bytes
    b"\x56\x04[int\x49\x7f\xff\xff\xff",  # the same, typed
    b"\x53\xff\xff" + b"a" * 10,  # a string of 65535 units in 13 bytes
    b"\x52\xff\xff" + b"a" * 10,  # a string chunk
    b"\x42\xff\xff" + b"a" * 10,  # binary
    b"\x43\x01C\x49\x7f\xff\xff\xff",  # a class of 2**31-1 fields
    b"\x4f\x49\x7f\xff\xff\xff",  # an instance of class 2**31-1
    b"\x51\x49\x7f\xff\xff\xff",  # reference 2**31-1
    b"\x55\x91\x5a",  # a type reference to type 1 of none
    b"\x58\x80",  # a negative length
    b"\x02\xf0\x9f\x98\x80",  # a 4-byte UTF-8 sequence
    b"\x5a", b"\x40", b"\x45", b"\x47", b"\x50",  # misplaced or unknown tags
    b"\x57" * 100 + b"\x5a" * 100,  # nesting deeper than max_depth
    b"\x43" * 5000,  # a run of class definitions
])
def test_hostile_inputs(data: bytes) -> None:
    with pytest.raises(HessianError) as info:
        decode(data)
    assert "offset" in str(info.value)
    with pytest.raises(HessianError):
        decoder = Decoder(data)
        decoder.skip()
        if not decoder.at_end():
            raise HessianError("left over")


@pytest.mark.parametrize("data", [
    b"\x4a\x7f\xff\xff\xff\xff\xff\xff\xff",  # a date Python cannot hold
    b"\x48\x79\x90\x90\x5a",  # a list as a map key
    b"\x02\xc3\x28",  # bad UTF-8
])
def test_content_errors_raise_on_read_but_skip_measures(data: bytes) -> None:
    with pytest.raises(HessianError) as info:
        decode(data)
    assert "offset" in str(info.value)
    decoder = Decoder(data)
    decoder.skip()  # skip measures, it does not validate text or build values
    assert decoder.at_end()


def test_max_length_applies_to_chunks_together() -> None:
    data = encode("x" * 70000)
    with pytest.raises(HessianError, match="max_length"):
        Decoder(data, max_length=65536).read()
    with pytest.raises(HessianError, match="max_length"):
        Decoder(data, max_length=65536).skip()


# -- round trip of random value trees ---------------------------------------------------------

_epoch = datetime(1970, 1, 1, tzinfo=UTC)
_names = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
_leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1).map(JavaLong),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(codec=None), max_size=40),  # lone surrogates included
    st.binary(max_size=40),
    st.integers(min_value=-(1 << 45), max_value=1 << 45).map(
        lambda ms: _epoch + timedelta(milliseconds=ms)),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Decimal(str(d))),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=10),
        st.builds(JavaList, st.sampled_from(["[int", "[object", "java.util.LinkedList"]),
                  st.lists(children, max_size=10)),
        st.builds(lambda items: JavaList(None, items, variable=True), st.lists(children, max_size=5)),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-100, 100)), children, max_size=6),
        st.builds(JavaMap, st.sampled_from(["java.util.TreeMap", "x.Y"]),
                  st.dictionaries(st.text(max_size=8), children, max_size=6)),
        st.builds(JavaObject, st.sampled_from(["com.a.P", "com.a.Q"]),
                  st.dictionaries(_names, children, max_size=5)),
    )


VALUES = st.recursive(_leaves, _containers, max_leaves=30)


@FAST
@given(VALUES)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data
    skipper = Decoder(data)
    skipper.skip()
    assert skipper.at_end()


@FAST
@given(st.floats())
def test_double_round_trip_is_bit_exact(value: float) -> None:
    back = decode(encode(value))
    if value == 0.0:  # -0.0 travels as 0x5b, as Caucho sends it
        assert back == 0.0
    else:
        assert struct.pack(">d", back) == struct.pack(">d", value)
