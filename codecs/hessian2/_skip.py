"""Stepping over values without building them: the Dubbo proxy's path over call arguments.

Skipping still keeps the decoder's state as Hessian defines it, because a value read later
in the same body may use it: class definitions are parsed and stored, type names are
stored, and every list, map and instance takes a reference slot. The slot holds a
``Skipped`` marker with the offset to decode from, should a later ``read`` follow a
reference back into skipped bytes.

Text is not decoded or validated here, only measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._scalars import bad_tag, binary_end, int_at, string_end
from ._types import HessianError
from ._wire import (
    BINARY,
    BINARY_CHUNK,
    CLASS_DEF,
    END,
    FIXED_SIZE,
    LIST_VAR_TYPED,
    LIST_VAR_UNTYPED,
    OBJECT,
    REF,
    STRING,
    STRING_CHUNK,
    TYPED_MAP,
    UNTYPED_MAP,
)

if TYPE_CHECKING:
    from ._decoder import Decoder


class Skipped:
    """A reference slot whose value was skipped: where it starts and the state at that point."""

    __slots__ = ("classes", "offset", "types")

    def __init__(self, offset: int, classes: int, types: int) -> None:
        self.offset = offset
        self.classes = classes
        self.types = types


def skip_values(dec: Decoder, pos: int, count: int, depth: int) -> int:
    """Offset past ``count`` values from ``pos``; ``depth`` containers enclose them.

    Scalars whose size the tag gives and short ASCII strings (most of a Dubbo argument) are
    stepped over inline; everything else goes through ``_skip_other``. A value that runs
    past the end shows up as an IndexError at the next tag or as an end offset beyond the
    body, both checked by the caller.
    """
    data = dec._data
    fixed = FIXED_SIZE
    for _ in range(count):
        tag = data[pos]
        size = fixed[tag]
        if size:
            pos += size
            continue
        if tag < 0x20:
            end = pos + 1 + tag
            if data[pos + 1:end].isascii():
                pos = end
                continue
        pos = _skip_other(dec, pos, tag, depth)
    return pos


def _skip_other(dec: Decoder, pos: int, tag: int, depth: int) -> int:
    data = dec._data
    if 0x60 <= tag < 0x70 or tag == OBJECT:
        return _skip_instance(dec, pos, tag, depth)
    if tag < 0x20 or 0x30 <= tag < 0x34 or tag in (STRING, STRING_CHUNK):
        return string_end(data, pos, dec.max_length)
    if 0x55 <= tag < 0x59 or 0x70 <= tag < 0x80:
        return _skip_list(dec, pos, tag, depth)
    if tag in (UNTYPED_MAP, TYPED_MAP):
        depth = dec._enter(depth, pos, tag)
        refs = dec._refs
        refs.append(Skipped(pos, len(dec._classes), len(dec._types)))
        pos = dec._type_at(pos + 1)[1] if tag == TYPED_MAP else pos + 1
        while data[pos] != END:
            pos = skip_values(dec, pos, 2, depth)
        return pos + 1
    if tag == CLASS_DEF:
        while data[pos] == CLASS_DEF:
            pos = dec._class_def_at(pos)
        return skip_values(dec, pos, 1, depth)
    if 0x34 <= tag < 0x38 or tag in (BINARY, BINARY_CHUNK):
        return binary_end(data, pos, dec.max_length)
    if tag == REF:
        index, end = int_at(data, pos + 1)
        dec._check_ref(index, pos)
        return end
    raise bad_tag(pos, tag, "a value")


def _skip_list(dec: Decoder, pos: int, tag: int, depth: int) -> int:
    data = dec._data
    depth = dec._enter(depth, pos, tag)
    dec._refs.append(Skipped(pos, len(dec._classes), len(dec._types)))
    start = pos
    pos += 1
    if tag == LIST_VAR_TYPED or tag == 0x56 or 0x70 <= tag < 0x78:
        pos = dec._type_at(pos)[1]
    if tag in (LIST_VAR_TYPED, LIST_VAR_UNTYPED):
        while data[pos] != END:
            pos = skip_values(dec, pos, 1, depth)
        return pos + 1
    if tag >= 0x70:
        length = (tag - 0x70) & 7
    else:
        length, pos = int_at(data, pos)
        dec._check_count(length, start, tag, pos)
    return skip_values(dec, pos, length, depth)


def _skip_instance(dec: Decoder, pos: int, tag: int, depth: int) -> int:
    depth = dec._enter(depth, pos, tag)
    if tag == OBJECT:
        index, end = int_at(dec._data, pos + 1)
    else:
        index, end = tag - 0x60, pos + 1
    classes = dec._classes
    if not 0 <= index < len(classes):
        raise HessianError(f"hessian2: instance at offset {pos} (tag 0x{tag:02x}) names class "
                           f"definition {index}, but {len(classes)} are defined")
    dec._refs.append(Skipped(pos, len(classes), len(dec._types)))
    return skip_values(dec, end, len(classes[index][1]), depth)


def materialize(dec: Decoder, index: int, skipped: Skipped, depth: int) -> Any:
    """Build the value of reference slot ``index``, which ``skip`` stepped over.

    It is decoded again from its offset by a decoder holding the state of that moment (the
    slots, class definitions and types that preceded it); slots it builds on the way fill
    the skipped slots of ``dec`` too, so identity holds for later references.
    """
    replay = type(dec)(dec._data, skipped.offset, max_depth=dec.max_depth,
                       max_length=dec.max_length)
    replay._refs = dec._refs[:index]
    replay._classes = dec._classes[:skipped.classes]
    replay._types = dec._types[:skipped.types]
    value = replay._value(depth)
    refs = dec._refs
    for slot, built in enumerate(replay._refs[:len(refs)]):
        if type(refs[slot]) is Skipped and type(built) is not Skipped:
            refs[slot] = built
    return value
