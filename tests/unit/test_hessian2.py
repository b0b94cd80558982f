"""Unit tests of mesh.codecs.hessian2 by tag family, offsets and decoder state."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import mesh.codecs.hessian2 as hessian2
import pytest
from mesh.codecs.hessian2 import (
    Decoder,
    Encoder,
    HessianEncodeError,
    HessianError,
    JavaBinary,
    JavaEnum,
    JavaList,
    JavaLong,
    JavaMap,
    JavaObject,
    decode,
    encode,
)

from mesh.codec import LocalProtocolError, RemoteProtocolError


def test_exports() -> None:
    assert set(hessian2.__all__) == {
        "DEFAULT_MAX_LENGTH", "Decoder", "Encoder", "HessianEncodeError", "HessianError",
        "JavaBinary", "JavaEnum", "JavaList", "JavaLong", "JavaMap", "JavaObject", "decode", "encode",
        "read_strings"}
    assert issubclass(HessianError, RemoteProtocolError)
    assert issubclass(HessianEncodeError, LocalProtocolError)


@pytest.mark.parametrize(("value", "hex_"), [
    (0, "90"), (-16, "80"), (47, "bf"), (48, "c830"), (-2048, "c000"), (2047, "cfff"),
    (2048, "d40800"), (-262144, "d00000"), (262144, "4900040000"), (1 << 31, "4c0000000080000000"),
    (JavaLong(0), "e0"), (JavaLong(-8), "d8"), (JavaLong(16), "f810"), (JavaLong(2048), "3c0800"),
    (JavaLong(262144), "5900040000"), (JavaLong(1 << 40), "4c0000010000000000"),
])
def test_ints_and_longs(value: int, hex_: str) -> None:
    assert encode(value).hex() == hex_
    back = decode(bytes.fromhex(hex_))
    assert back == value
    assert type(back) is (JavaLong if isinstance(value, JavaLong) or value >= 1 << 31 else int)


@pytest.mark.parametrize(("value", "hex_"), [
    (0.0, "5b"), (-0.0, "5b"), (1.0, "5c"), (-128.0, "5d80"), (128.0, "5e0080"),
    (0.5, "5f000001f4"), (2147483.647, "5f7fffffff"), (0.1, "5f00000064"), (1e300, "447e37e43c8800759c"),
])
def test_doubles(value: float, hex_: str) -> None:
    assert encode(value).hex() == hex_
    assert decode(bytes.fromhex(hex_)) == value


def test_dates() -> None:
    minute = datetime(2020, 1, 1, tzinfo=UTC)
    assert encode(minute).hex() == "4b019143c0"
    assert decode(bytes.fromhex("4b019143c0")) == minute
    precise = datetime(2020, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert encode(precise).hex() == "4a0000016f5e66e87b"
    assert decode(encode(precise)) == precise
    assert decode(encode(datetime(2020, 1, 1))) == minute  # naive is taken as UTC


def test_strings() -> None:
    assert encode("").hex() == "00"
    assert encode("\U0001f600").hex() == "02eda0bdedb880"  # two units, one 3-byte sequence each
    assert decode(bytes.fromhex("02eda0bdedb880")) == "\U0001f600"
    assert decode(encode("x\ud800y")) == "x\ud800y"  # a lone surrogate survives
    assert encode("a" * 32).hex()[:4] == "3020"
    assert encode("a" * 1024).hex()[:6] == "530400"
    chunked = encode("a" * 32767 + "\U0001f600")
    assert chunked[:3] == b"\x52\x7f\xff"  # the chunk stops before the high surrogate
    assert decode(chunked) == "a" * 32767 + "\U0001f600"


def test_binary() -> None:
    assert encode(b"").hex() == "20"
    assert encode(b"\x01" * 16).hex()[:4] == "3410"
    big = bytes(range(256)) * 200
    assert decode(encode(big)) == big
    chunked = JavaBinary(big, [8189, len(big) - 8189])
    data = encode(chunked)
    assert data[:3] == b"\x41\x1f\xfd"
    back = decode(data)
    assert type(back) is JavaBinary and back.chunks == (8189, len(big) - 8189)
    assert encode(back) == data


def test_lists_maps_objects() -> None:
    assert encode([1, 2]).hex() == "7a9192"
    assert encode(JavaList("[int", [1])).hex() == "71045b696e7491"
    assert encode(JavaList(None, [1], variable=True)).hex() == "57915a"
    assert encode(JavaList("t", [1], variable=True)).hex() == "550174915a"
    assert decode(bytes.fromhex("57915a")) == JavaList(None, [1], variable=True)
    assert encode({"a": 1}).hex() == "480161915a"
    assert decode(encode(JavaMap("java.util.TreeMap", {"a": 1}))) == JavaMap("java.util.TreeMap", {"a": 1})
    point = JavaObject("P", {"x": 1, "y": 2})
    assert encode([point, JavaObject("P", {"x": 3, "y": 4})]).hex() == "7a4301509201780179609192609394"
    assert decode(encode(point)) == point
    assert decode(encode(JavaEnum("Color", "RED"))) == JavaEnum("Color", "RED")
    assert decode(encode(Decimal("1.50"))) == Decimal("1.50")
    assert type(decode(encode(JavaObject("java.math.BigDecimal", {"value": "junk"})))) is JavaObject


def test_cycles_and_back_references() -> None:
    loop: list[object] = []
    loop.append(loop)
    back = decode(encode(loop))
    assert back[0] is back
    node = JavaObject("Node", {"next": None})
    node.fields["next"] = node
    again = decode(encode(node))
    assert again.fields["next"] is again
    shared = [1]
    pair = decode(encode([shared, shared]))
    assert pair[0] is pair[1]


def test_decoding_at_an_offset() -> None:
    data = b"\xff\xff" + encode("hello") + encode(5)
    decoder = Decoder(data, 2)
    assert decoder.read_string() == "hello"
    assert decoder.pos == 8
    assert decoder.read_int() == 5
    assert decoder.at_end()
    with pytest.raises(ValueError):
        Decoder(data, len(data) + 1)


def test_values_in_sequence_share_class_defs_and_refs() -> None:
    encoder = Encoder()
    shared = {"k": "v"}
    for value in ("2.0.2", JavaObject("P", {"x": 1}), shared, JavaObject("P", {"x": 2}), shared):
        encoder.write(value)
    data = encoder.getvalue()
    decoder = Decoder(data)
    assert decoder.read_string() == "2.0.2"
    decoder.skip()  # defines class P and takes slot 0
    first_map = decoder.read_map()
    second = decoder.read()
    assert second == JavaObject("P", {"x": 2})  # 0x60: the class defined inside the skipped value
    assert decoder.read_map() is first_map  # the reference counts the skipped slot
    assert decoder.at_end()


def test_reference_into_skipped_bytes_is_built_on_demand() -> None:
    encoder = Encoder()
    shared = [JavaObject("P", {"x": 1})]
    encoder.write(shared)
    encoder.write(shared)
    decoder = Decoder(encoder.getvalue())
    decoder.skip()
    assert decoder.read() == [JavaObject("P", {"x": 1})]


def test_read_helpers_refuse_other_tags() -> None:
    with pytest.raises(HessianError, match="expected a string at offset 0, found tag 0x90"):
        Decoder(encode(0)).read_string()
    assert Decoder(b"N").read_string() is None
    with pytest.raises(HessianError, match="an int"):
        Decoder(encode("x")).read_int()
    assert Decoder(encode(JavaLong(7))).read_int() == 7
    with pytest.raises(HessianError, match="a map"):
        Decoder(encode([1])).read_map()


def test_errors_name_offset_and_tag() -> None:
    with pytest.raises(HessianError, match=r"offset 0 \(tag 0x49\) is truncated"):
        decode(b"\x49\x00")
    with pytest.raises(HessianError, match="no value at offset 0"):
        Decoder(b"").read()
    with pytest.raises(HessianError, match="left over"):
        decode(b"\x90\x90")


def test_encoder_refuses_what_java_cannot_hold() -> None:
    with pytest.raises(HessianEncodeError):
        encode(1 << 64)
    with pytest.raises(HessianEncodeError):
        encode(object())
    with pytest.raises(HessianEncodeError):
        Encoder().write_int(1 << 31)
    encoder = Encoder()
    encoder.write_null()
    encoder.write_long(1)
    encoder.write_string(None)
    assert encoder.getvalue() == b"N\xe1N"


def test_read_strings_reads_a_run_of_strings_and_refuses_truncation() -> None:
    body = hessian2.encode("2.0.2") + hessian2.encode(None) + hessian2.encode("\u4e2d" * 40)
    values, end = hessian2.read_strings(body, 0, 3)
    assert values == ["2.0.2", None, "\u4e2d" * 40] and end == len(body)
    with pytest.raises(HessianError, match="truncated|ends there"):
        hessian2.read_strings(body[:-3], 0, 3)
    with pytest.raises(HessianError, match="ends there"):
        hessian2.read_strings(body, 0, 4)
    with pytest.raises(HessianError):
        hessian2.read_strings(hessian2.encode(5), 0, 1)
