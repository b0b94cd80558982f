"""Hessian 2.0 encoder that picks the forms Caucho's Hessian2Output picks.

Every choice (compact int ranges, the double forms, minute dates, string chunking, class
definitions inline before the first instance, type names becoming numbers after first use,
a reference for any container met again) follows Hessian2Output 4.0.38, so a value decoded
from Caucho's bytes encodes back to the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ._decoder import EPOCH
from ._types import (
    HessianEncodeError,
    JavaBinary,
    JavaEnum,
    JavaList,
    JavaLong,
    JavaMap,
    JavaObject,
)
from ._wire import CHUNK_UNITS, F64, I16, I32, I64, U16, d2i, java_units

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


class Encoder:
    """Writes values into one body; class definitions, types and references span all writes.

    Raises HessianEncodeError (a LocalProtocolError) for a value with no Hessian form.
    """

    __slots__ = ("_classes", "_out", "_refs", "_types")

    def __init__(self) -> None:
        self._out = bytearray()
        self._refs: dict[int, tuple[int, object]] = {}  # id -> (slot, the object kept alive)
        self._classes: dict[tuple[str, tuple[str, ...]], int] = {}
        self._types: dict[str, int] = {}

    def getvalue(self) -> bytes:
        return bytes(self._out)

    def write(self, value: object) -> None:
        """Write any supported value (see docs/hessian2.md for the mapping)."""
        writer = _WRITERS.get(type(value))
        if writer is None:
            writer = _writer_by_isinstance(value)
        writer(self, value)

    def write_null(self) -> None:
        self._out.append(0x4E)

    def write_int(self, value: int) -> None:
        """A Java int in its shortest form; HessianEncodeError outside 32 bits."""
        out = self._out
        if -16 <= value <= 47:
            out.append(0x90 + value)
        elif -2048 <= value <= 2047:
            out += bytes((0xC8 + (value >> 8), value & 0xFF))
        elif -262144 <= value <= 262143:
            out += bytes((0xD4 + (value >> 16), (value >> 8) & 0xFF, value & 0xFF))
        elif _INT_MIN <= value <= _INT_MAX:
            out.append(0x49)
            out += I32.pack(value)
        else:
            raise HessianEncodeError(f"hessian2: {value} does not fit a Java int")

    def write_long(self, value: int) -> None:
        """A Java long in its shortest form; HessianEncodeError outside 64 bits."""
        out = self._out
        if -8 <= value <= 15:
            out.append(0xE0 + value)
        elif -2048 <= value <= 2047:
            out += bytes((0xF8 + (value >> 8), value & 0xFF))
        elif -262144 <= value <= 262143:
            out += bytes((0x3C + (value >> 16), (value >> 8) & 0xFF, value & 0xFF))
        elif _INT_MIN <= value <= _INT_MAX:
            out.append(0x59)
            out += I32.pack(value)
        elif _LONG_MIN <= value <= _LONG_MAX:
            out.append(0x4C)
            out += I64.pack(value)
        else:
            raise HessianEncodeError(f"hessian2: {value} does not fit a Java long")

    def write_string(self, value: str | None) -> None:
        """A string (or null), cut into 32768-unit chunks that never end on a high surrogate."""
        out = self._out
        if value is None:
            out.append(0x4E)
            return
        if len(value) < 0x20 and value.isascii():
            out.append(len(value))
            out += value.encode("ascii")
            return
        units = java_units(value)
        start, left = 0, len(units)
        while left > CHUNK_UNITS:
            size = CHUNK_UNITS
            if 0xD800 <= ord(units[start + size - 1]) <= 0xDBFF:
                size -= 1
            out.append(0x52)
            out += U16.pack(size)
            out += units[start:start + size].encode("utf-8", "surrogatepass")
            start += size
            left -= size
        if left < 0x20:
            out.append(left)
        elif left < 0x400:
            out += bytes((0x30 + (left >> 8), left & 0xFF))
        else:
            out.append(0x53)
            out += U16.pack(left)
        out += units[start:].encode("utf-8", "surrogatepass")

    def write_double(self, value: float) -> None:
        """A double, in the form Hessian2Output.writeDouble picks for it."""
        out = self._out
        whole = d2i(value)
        if whole == value:
            if whole == 0:  # -0.0 too, as Caucho does
                out.append(0x5B)
                return
            if whole == 1:
                out.append(0x5C)
                return
            if -0x80 <= whole < 0x80:
                out += bytes((0x5D, whole & 0xFF))
                return
            if -0x8000 <= whole < 0x8000:
                out.append(0x5E)
                out += I16.pack(whole)
                return
        millis = d2i(value * 1000)
        if 0.001 * millis == value:
            out.append(0x5F)
            out += I32.pack(millis)
            return
        out.append(0x44)
        out += F64.pack(value)

    def write_binary(self, value: bytes | bytearray | memoryview) -> None:
        """Binary; a JavaBinary is cut where it was cut when it arrived, anything else in 32 KiB."""
        data = bytes(value)
        chunks = getattr(value, "chunks", ())
        if sum(chunks) != len(data) or not chunks or max(chunks) > 0xFFFF:
            chunks = [CHUNK_UNITS] * ((len(data) - 1) // CHUNK_UNITS) if data else []
            chunks.append(len(data) - sum(chunks))
        out = self._out
        at = 0
        for size in chunks[:-1]:
            out.append(0x41)
            out += U16.pack(size)
            out += data[at:at + size]
            at += size
        last = chunks[-1]
        if last < 0x10:
            out.append(0x20 + last)
        elif last < 0x400:
            out += bytes((0x34 + (last >> 8), last & 0xFF))
        else:
            out.append(0x42)
            out += U16.pack(last)
        out += data[at:]

    def write_date(self, value: datetime) -> None:
        """A date (a naive datetime is taken as UTC); minutes form when it is a whole minute."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - EPOCH
        millis = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
        if millis % 60000 == 0 and _INT_MIN <= millis // 60000 <= _INT_MAX:
            self._out.append(0x4B)
            self._out += I32.pack(millis // 60000)
        else:
            self._out.append(0x4A)
            self._out += I64.pack(millis)

    def write_list(self, value: list[Any] | tuple[Any, ...], type_name: str | None = None,
                   variable: bool = False) -> None:
        if self._ref(value):
            return
        out = self._out
        n = len(value)
        typed = type_name is not None
        if variable:
            out.append(0x55 if typed else 0x57)
        elif n <= 7:
            out.append((0x70 if typed else 0x78) + n)
        else:
            out.append(0x56 if typed else 0x58)
        if type_name is not None:
            self._write_type(type_name)
        if not variable and n > 7:
            self.write_int(n)
        write = self.write
        for item in value:
            write(item)
        if variable:
            out.append(0x5A)

    def write_map(self, value: dict[Any, Any], type_name: str | None = None) -> None:
        if self._ref(value):
            return
        if type_name is None:
            self._out.append(0x48)
        else:
            self._out.append(0x4D)
            self._write_type(type_name)
        write = self.write
        for key, item in value.items():
            write(key)
            write(item)
        self._out.append(0x5A)

    def write_object(self, value: JavaObject) -> None:
        if not self._ref(value):
            self._write_instance(value.class_name, value.fields)

    def _write_decimal(self, value: Decimal) -> None:
        if not self._ref(value):  # Dubbo's BigDecimal: an object with its toString as `value`
            self._write_instance("java.math.BigDecimal", {"value": str(value)})

    def _write_instance(self, class_name: str, fields: dict[str, Any]) -> None:
        key = (class_name, tuple(fields))
        index = self._classes.get(key)
        if index is None:
            index = self._classes[key] = len(self._classes)
            self._out.append(0x43)
            self.write_string(class_name)
            self.write_int(len(fields))
            for name in fields:
                self.write_string(name)
        if index < 0x10:
            self._out.append(0x60 + index)
        else:
            self._out.append(0x4F)
            self.write_int(index)
        write = self.write
        for item in fields.values():
            write(item)

    def _write_type(self, name: str) -> None:
        index = self._types.get(name)
        if index is None:
            self._types[name] = len(self._types)
            self.write_string(name)
        else:
            self.write_int(index)

    def _ref(self, value: object) -> bool:
        """Write a back-reference if ``value`` was written before; else give it the next slot."""
        entry = self._refs.get(id(value))
        if entry is not None:
            self._out.append(0x51)
            self.write_int(entry[0])
            return True
        self._refs[id(value)] = (len(self._refs), value)
        return False


_Writer = Callable[[Encoder, Any], None]


def _write_bool(enc: Encoder, value: bool) -> None:
    enc._out.append(0x54 if value else 0x46)


def _write_plain_int(enc: Encoder, value: int) -> None:
    if _INT_MIN <= value <= _INT_MAX:
        enc.write_int(value)
    else:  # what a Java peer needs to hold it
        enc.write_long(value)


_WRITERS: dict[type, _Writer] = {
    type(None): lambda enc, value: enc.write_null(),
    bool: _write_bool,
    int: _write_plain_int,
    JavaLong: Encoder.write_long,
    float: Encoder.write_double,
    str: Encoder.write_string,
    bytes: Encoder.write_binary,
    bytearray: Encoder.write_binary,
    memoryview: Encoder.write_binary,
    JavaBinary: Encoder.write_binary,
    datetime: Encoder.write_date,
    list: Encoder.write_list,
    tuple: Encoder.write_list,
    JavaList: lambda enc, value: enc.write_list(value, value.type_name, value.variable),
    dict: Encoder.write_map,
    JavaMap: lambda enc, value: enc.write_map(value, value.type_name),
    Decimal: Encoder._write_decimal,
    JavaObject: Encoder.write_object,
    JavaEnum: Encoder.write_object,
}


def _writer_by_isinstance(value: object) -> _Writer:
    """Subclasses of the supported types, most specific first."""
    for cls, writer in (
        (JavaObject, Encoder.write_object), (bool, _write_bool), (JavaLong, Encoder.write_long),
        (int, _write_plain_int), (float, Encoder.write_double), (str, Encoder.write_string),
        (JavaBinary, Encoder.write_binary), (bytes, Encoder.write_binary),
        (JavaList, _WRITERS[JavaList]), (list, Encoder.write_list), (tuple, Encoder.write_list),
        (JavaMap, _WRITERS[JavaMap]), (dict, Encoder.write_map), (datetime, Encoder.write_date),
        (Decimal, Encoder._write_decimal),
    ):
        if isinstance(value, cls):
            return writer
    raise HessianEncodeError(f"hessian2: no Hessian form for a {type(value).__name__} "
                             f"({value!r:.60})")


def encode(value: object) -> bytes:
    """``value`` as one Hessian 2.0 value."""
    encoder = Encoder()
    encoder.write(value)
    return encoder.getvalue()
