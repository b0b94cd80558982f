"""Hessian 2.0 decoder: Java semantics as Caucho's Hessian2Input reads them.

One Decoder reads one body (a Dubbo request or response): class definitions, type names and
reference slots live as long as it does, shared by every value read or skipped from it.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ._scalars import bad_tag, binary_at, double_at, int_at, long_at, string_at
from ._skip import Skipped, materialize, skip_values
from ._types import HessianError, JavaBinary, JavaEnum, JavaList, JavaLong, JavaMap, JavaObject
from ._wire import (
    CLASS_DEF,
    DATE_MS,
    DEFAULT_MAX_LENGTH,
    END,
    FALSE,
    I32,
    I64,
    INT_TAGS,
    LIST_VAR_TYPED,
    LIST_VAR_UNTYPED,
    NULL,
    OBJECT,
    REF,
    STRING_TAGS,
    TRUE,
    TYPED_MAP,
    UNTYPED_MAP,
    check_length,
    truncated,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Default cap on a declared string, binary, list or field count (elements or UTF-16 units).
_BIG_DECIMAL = "java.math.BigDecimal"
_MAP_TAGS = frozenset([UNTYPED_MAP, TYPED_MAP, REF])
_LONG_TAGS = frozenset([*range(0xD8, 0x100), *range(0x38, 0x40), 0x59, 0x4C])


class Decoder:
    """Reads Hessian 2.0 values from ``data`` starting at ``pos``; ``pos`` follows each read.

    Every method raises HessianError (a RemoteProtocolError) on bad input of any kind:
    truncation, an unknown tag, bad UTF-8, a reference or class index out of range, nesting
    deeper than ``max_depth``, a declared length above ``max_length`` or above the bytes
    left. After an error the decoder's position and state are unspecified.
    """

    __slots__ = ("_classes", "_data", "_refs", "_types", "max_depth", "max_length", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, *,
                 max_depth: int = 64, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if isinstance(data, memoryview):
            data = data.tobytes()  # one copy; bytes gives slicing, find and translate
        if not 0 <= pos <= len(data):
            raise ValueError(f"pos {pos} is outside the data (0..{len(data)})")
        self._data = data
        self.pos = pos
        self.max_depth = max_depth
        self.max_length = max_length
        self._refs: list[Any] = []
        self._classes: list[tuple[str, tuple[str, ...]]] = []
        self._types: list[str] = []

    # -- public API ---------------------------------------------------------------------------

    def read(self) -> Any:
        """The next value, built (see docs/hessian2.md for the Python types)."""
        start = self.pos
        try:
            return self._value(0)
        except (IndexError, struct.error):
            raise self._truncated(start) from None

    def skip(self) -> None:
        """Step over the next value without building it; class defs and refs are still kept."""
        start = self.pos
        try:
            end = skip_values(self, start, 1, 0)
        except (IndexError, struct.error):
            raise self._truncated(start) from None
        if end > len(self._data):
            raise self._truncated(start)
        self.pos = end

    def read_string(self) -> str | None:
        """The next value, which must be a string or null."""
        start = self.pos
        try:
            value, self.pos = string_at(self._data, start, self.max_length)
        except (IndexError, struct.error):
            raise self._truncated(start) from None
        return value

    def read_int(self) -> int:
        """The next value, which must be an int or a long (returned as a plain int)."""
        start = self.pos
        try:
            if self._data[start] in _LONG_TAGS:
                value, self.pos = long_at(self._data, start)
            else:
                value, self.pos = int_at(self._data, start)
        except (IndexError, struct.error):
            raise self._truncated(start) from None
        return value

    def read_map(self) -> dict[Any, Any]:
        """The next value, which must be a map (or a reference to one): Dubbo's attachments."""
        start = self.pos
        if start < len(self._data) and self._data[start] not in _MAP_TAGS:
            raise bad_tag(start, self._data[start], "a map")
        value = self.read()
        if not isinstance(value, dict):
            raise HessianError(f"hessian2: expected a map at offset {start}, found a reference "
                               f"to {type(value).__name__}")
        return value

    def at_end(self) -> bool:
        """True when every byte has been consumed."""
        return self.pos >= len(self._data)

    # -- state shared with the skipper --------------------------------------------------------

    def _truncated(self, start: int) -> HessianError:
        if start >= len(self._data):
            return HessianError(f"hessian2: no value at offset {start}: the body ends there")
        return truncated(start, self._data[start], len(self._data))

    def _enter(self, depth: int, pos: int, tag: int) -> int:
        if depth >= self.max_depth:
            raise HessianError(f"hessian2: container at offset {pos} (tag 0x{tag:02x}) is nested "
                               f"deeper than max_depth {self.max_depth}")
        return depth + 1

    def _check_count(self, count: int, start: int, tag: int, pos: int) -> None:
        if count < 0:
            raise HessianError(f"hessian2: value at offset {start} (tag 0x{tag:02x}) declares "
                               f"negative length {count}")
        check_length(count, start, tag, len(self._data) - pos, self.max_length)

    def _check_ref(self, index: int, pos: int) -> None:
        if not 0 <= index < len(self._refs):
            raise HessianError(f"hessian2: reference at offset {pos} (tag 0x51) to slot {index}, "
                               f"but only {len(self._refs)} objects precede it")

    def _type_at(self, pos: int) -> tuple[str, int]:
        """A type: a string (remembered) or an int naming an earlier one; and the offset past it."""
        data = self._data
        tag = data[pos]
        if tag in STRING_TAGS:
            name, end = string_at(data, pos, self.max_length)
            self._types.append(name or "")
            return name or "", end
        if tag in INT_TAGS:
            index, end = int_at(data, pos)
            if not 0 <= index < len(self._types):
                raise HessianError(f"hessian2: type reference at offset {pos} (tag 0x{tag:02x}) "
                                   f"to type {index}, but {len(self._types)} are defined")
            return self._types[index], end
        raise bad_tag(pos, tag, "a type name or type reference")

    def _class_def_at(self, pos: int) -> int:
        """Offset past a class definition ('C' name count field-names), which it stores."""
        data = self._data
        name, pos2 = string_at(data, pos + 1, self.max_length)
        count, pos2 = int_at(data, pos2)
        self._check_count(count, pos, CLASS_DEF, pos2)
        fields = []
        size = len(data)
        for _ in range(count):
            # Dubbo bodies resend their class definitions in every message: short ASCII field
            # names are taken inline, without a call per name.
            tag = data[pos2]
            if tag < 0x20:
                end = pos2 + 1 + tag
                raw = data[pos2 + 1:end]
                if end <= size and raw.isascii():
                    fields.append(raw.decode("ascii"))
                    pos2 = end
                    continue
            field, pos2 = string_at(data, pos2, self.max_length)
            if field is None:
                raise HessianError(f"hessian2: class definition at offset {pos} has a null "
                                   "field name")
            fields.append(field)
        if name is None:
            raise HessianError(f"hessian2: class definition at offset {pos} has a null name")
        self._classes.append((name, tuple(fields)))
        return pos2

    # -- values -------------------------------------------------------------------------------

    def _value(self, depth: int) -> Any:
        data = self._data
        pos = self.pos
        tag = data[pos]
        if tag >= 0x80:
            if tag < 0xD8:
                value, self.pos = int_at(data, pos)
                return value
            value, self.pos = long_at(data, pos)
            return JavaLong(value)
        return _READERS[tag](self, pos, tag, depth)

    def _string(self, pos: int, tag: int, depth: int) -> Any:
        value, self.pos = string_at(self._data, pos, self.max_length)
        return value

    def _binary(self, pos: int, tag: int, depth: int) -> Any:
        value, sizes, self.pos = binary_at(self._data, pos, self.max_length)
        return JavaBinary(value, sizes) if len(sizes) > 1 else value

    def _int(self, pos: int, tag: int, depth: int) -> Any:
        value, self.pos = int_at(self._data, pos)
        return value

    def _long(self, pos: int, tag: int, depth: int) -> Any:
        value, self.pos = long_at(self._data, pos)
        return JavaLong(value)

    def _double(self, pos: int, tag: int, depth: int) -> Any:
        value, self.pos = double_at(self._data, pos, tag)
        return value

    def _constant(self, pos: int, tag: int, depth: int) -> Any:
        self.pos = pos + 1
        return None if tag == NULL else tag == TRUE

    def _date(self, pos: int, tag: int, depth: int) -> Any:
        if tag == DATE_MS:
            millis = I64.unpack_from(self._data, pos + 1)[0]
            self.pos = pos + 9
        else:
            millis = I32.unpack_from(self._data, pos + 1)[0] * 60000
            self.pos = pos + 5
        try:
            return EPOCH + timedelta(milliseconds=millis)
        except OverflowError:
            raise HessianError(f"hessian2: date at offset {pos} (tag 0x{tag:02x}) is {millis} ms "
                               "from 1970, outside what Python's datetime holds") from None

    def _class_def(self, pos: int, tag: int, depth: int) -> Any:
        # Caucho reads a class definition as a prefix of the value that follows it.
        while self._data[pos] == CLASS_DEF:
            pos = self._class_def_at(pos)
        self.pos = pos
        return self._value(depth)

    def _ref(self, pos: int, tag: int, depth: int) -> Any:
        index, self.pos = int_at(self._data, pos + 1)
        self._check_ref(index, pos)
        value = self._refs[index]
        if type(value) is Skipped:
            value = materialize(self, index, value, depth)
        return value

    def _list(self, pos: int, tag: int, depth: int) -> Any:
        depth = self._enter(depth, pos, tag)
        data = self._data
        start = pos
        pos += 1
        type_name = None
        if tag == LIST_VAR_TYPED or tag == 0x56 or 0x70 <= tag < 0x78:
            type_name, pos = self._type_at(pos)
        variable = tag in (LIST_VAR_TYPED, LIST_VAR_UNTYPED)
        result: list[Any] = (JavaList(type_name, variable=variable)
                             if type_name is not None or variable else [])
        self._refs.append(result)
        if variable:
            self.pos = pos
            while data[self.pos] != END:
                result.append(self._value(depth))
            self.pos += 1
            return result
        if tag >= 0x70:
            length = (tag - 0x70) & 7
        else:
            length, pos = int_at(data, pos)
            self._check_count(length, start, tag, pos)
        self.pos = pos
        append = result.append
        value = self._value
        for _ in range(length):
            append(value(depth))
        return result

    def _map(self, pos: int, tag: int, depth: int) -> Any:
        depth = self._enter(depth, pos, tag)
        data = self._data
        result: dict[Any, Any]
        if tag == TYPED_MAP:
            type_name, pos = self._type_at(pos + 1)
            result = JavaMap(type_name)
        else:
            result = {}
            pos += 1
        self._refs.append(result)
        self.pos = pos
        value = self._value
        while data[self.pos] != END:
            key_at = self.pos
            key = value(depth)
            item = value(depth)
            try:
                result[key] = item
            except TypeError:
                raise HessianError(f"hessian2: map key at offset {key_at} is a "
                                   f"{type(key).__name__}, which Python cannot use as a dict "
                                   "key") from None
        self.pos += 1
        return result

    def _instance(self, pos: int, tag: int, depth: int) -> Any:
        depth = self._enter(depth, pos, tag)
        if tag == OBJECT:
            index, self.pos = int_at(self._data, pos + 1)
        else:
            index, self.pos = tag - 0x60, pos + 1
        classes = self._classes
        if not 0 <= index < len(classes):
            raise HessianError(f"hessian2: instance at offset {pos} (tag 0x{tag:02x}) names class "
                               f"definition {index}, but {len(classes)} are defined")
        name, fields = classes[index]
        # Caucho's EnumSerializer writes a class whose single field is the constant's name.
        obj = JavaEnum.__new__(JavaEnum) if fields == ("name",) else JavaObject.__new__(JavaObject)
        obj.class_name = name
        values: dict[str, Any] = {}
        obj.fields = values
        slot = len(self._refs)
        self._refs.append(obj)  # before the fields: a field may refer back to obj
        for field in fields:
            values[field] = self._value(depth)
        if name == _BIG_DECIMAL and fields == ("value",):
            return self._big_decimal(obj, slot)
        return obj

    def _big_decimal(self, obj: JavaObject, slot: int) -> Any:
        # Dubbo's form: java.math.BigDecimal{value: toString()}. Only an exact round trip of
        # the text becomes a Decimal, so re-encoding gives the same bytes.
        text = obj.fields["value"]
        if not isinstance(text, str):
            return obj
        try:
            number = Decimal(text)
        except InvalidOperation:
            return obj
        if str(number) != text:
            return obj
        self._refs[slot] = number
        return number

    def _bad(self, pos: int, tag: int, depth: int) -> Any:
        raise HessianError(f"hessian2: unknown or misplaced tag 0x{tag:02x} at offset {pos}")


def _readers() -> list[Any]:
    table: list[Any] = [Decoder._bad] * 0x80
    spans = [
        (Decoder._string, [*range(0x00, 0x20), *range(0x30, 0x34), 0x52, 0x53]),
        (Decoder._binary, [*range(0x20, 0x30), *range(0x34, 0x38), 0x41, 0x42]),
        (Decoder._long, [*range(0x38, 0x40), 0x59, 0x4C]),
        (Decoder._int, [0x49]),
        (Decoder._double, [0x44, *range(0x5B, 0x60)]),
        (Decoder._date, [0x4A, 0x4B]),
        (Decoder._constant, [NULL, TRUE, FALSE]),
        (Decoder._class_def, [CLASS_DEF]),
        (Decoder._instance, [OBJECT, *range(0x60, 0x70)]),
        (Decoder._ref, [REF]),
        (Decoder._map, [UNTYPED_MAP, TYPED_MAP]),
        (Decoder._list, [*range(0x55, 0x59), *range(0x70, 0x80)]),
    ]
    for reader, tags in spans:
        for tag in tags:
            table[tag] = reader
    return table


#: Reader per tag below 0x80 (0x80 and above are numbers, handled inline in ``_value``).
_READERS = _readers()


def decode(data: bytes | bytearray | memoryview) -> Any:
    """The one value ``data`` holds; HessianError if it is bad or bytes are left over."""
    decoder = Decoder(data)
    value = decoder.read()
    if not decoder.at_end():
        raise HessianError(f"hessian2: {len(decoder._data) - decoder.pos} bytes left over after "
                           f"the value, at offset {decoder.pos}")
    return value
