"""HPACK (RFC 7541) for the lean engine: a decoder with a Huffman cache, a stateless encoder.

The ``hpack`` package spends most of a proxied exchange's header work in per-field
objects, logging calls and Huffman decoding in Python. Here:

- Decoding walks the block with integer indexes and keeps the dynamic table as a deque;
  Huffman-coded strings go through a bounded cache (the same paths, user agents and
  content types come back on every request), decoded by ``hpack``'s own Huffman table.
- Encoding never touches the dynamic table and never Huffman-codes: each field is a
  static-table index or a literal without indexing, so its bytes depend on the field
  alone and are cached per field. A few more bytes on the wire, no table churn, and the
  peer's decoder does less work too.
"""

from __future__ import annotations

from collections import deque

from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

__all__ = ["Decoder", "Encoder", "HpackError", "NeverIndexed"]

Field = tuple[bytes, bytes]


class NeverIndexed(tuple[bytes, bytes]):
    """A field its sender marked never-indexed (RFC 7541 6.2.3): re-encoded the same way."""

    __slots__ = ()

_STATIC: tuple[Field, ...] = HeaderTable.STATIC_TABLE
_STATIC_LEN = len(_STATIC)
_STATIC_FULL: dict[Field, int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _i, _field in enumerate(_STATIC, 1):
    _STATIC_FULL.setdefault(_field, _i)
    _STATIC_NAME.setdefault(_field[0], _i)

_CACHE_LIMIT = 4096


class HpackError(ValueError):
    """A header block that does not decode (a COMPRESSION_ERROR, RFC 9113 4.3)."""


def _integer(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    mask = (1 << prefix) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise HpackError("HPACK integer truncated or too large")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


class Decoder:
    """One connection's inbound HPACK state."""

    __slots__ = ("_table", "_size", "_max_size", "_settings_max", "max_list", "_huffman")

    def __init__(self, max_table_size: int = 4096, max_list_size: int = 65536) -> None:
        self._table: deque[Field] = deque()
        self._size = 0
        self._max_size = self._settings_max = max_table_size
        self.max_list = max_list_size
        self._huffman: dict[bytes, bytes] = {}

    def decode(self, data: bytes) -> list[Field]:
        out: list[Field] = []
        pos, end, total = 0, len(data), 0
        while pos < end:
            byte = data[pos]
            if byte & 0x80:  # indexed field (6.1)
                index, pos = _integer(data, pos, 7)
                field = self._get(index)
            elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                index, pos = _integer(data, pos, 6)
                field, pos = self._literal(data, pos, index)
                self._add(field)
            elif byte & 0x20:  # dynamic table size update (6.3)
                size, pos = _integer(data, pos, 5)
                if size > self._settings_max:
                    raise HpackError("table size update above SETTINGS_HEADER_TABLE_SIZE")
                self._max_size = size
                self._evict(0)
                continue
            else:  # literal without indexing / never indexed (6.2.2, 6.2.3)
                never = byte & 0x10
                index, pos = _integer(data, pos, 4)
                field, pos = self._literal(data, pos, index)
                if never:
                    field = NeverIndexed(field)
            total += len(field[0]) + len(field[1]) + 32
            if total > self.max_list:
                raise HpackError("header list larger than SETTINGS_MAX_HEADER_LIST_SIZE")
            out.append(field)
        return out

    def _get(self, index: int) -> Field:
        if 0 < index <= _STATIC_LEN:
            return _STATIC[index - 1]
        offset = index - _STATIC_LEN - 1
        if index == 0 or offset >= len(self._table):
            raise HpackError(f"HPACK index {index} out of range")
        return self._table[offset]

    def _literal(self, data: bytes, pos: int, index: int) -> tuple[Field, int]:
        if index:
            name = self._get(index)[0]
        else:
            name, pos = self._string(data, pos)
        value, pos = self._string(data, pos)
        return (name, value), pos

    def _string(self, data: bytes, pos: int) -> tuple[bytes, int]:
        if pos >= len(data):
            raise HpackError("HPACK string truncated")
        huffman = data[pos] & 0x80
        length, pos = _integer(data, pos, 7)
        end = pos + length
        if end > len(data):
            raise HpackError("HPACK string longer than the block")
        raw = data[pos:end]
        if not huffman:
            return raw, end
        cache = self._huffman
        text = cache.get(raw)
        if text is None:
            try:
                text = decode_huffman(raw)
            except Exception as exc:  # hpack raises its own HPACKDecodingError
                raise HpackError(f"bad Huffman string: {exc}") from None
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[raw] = text
        return text, end

    def _add(self, field: Field) -> None:
        size = len(field[0]) + len(field[1]) + 32
        if size > self._max_size:
            self._table.clear()
            self._size = 0
            return
        self._evict(size)
        self._table.appendleft(field)
        self._size += size

    def _evict(self, room: int) -> None:
        table = self._table
        while table and self._size + room > self._max_size:
            name, value = table.pop()
            self._size -= len(name) + len(value) + 32


def _encode_integer(value: int, prefix: int, flags: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes((flags | value,))
    out = bytearray((flags | mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_field(field: Field) -> bytes:
    index = _STATIC_FULL.get(field)
    if index is not None:
        return _encode_integer(index, 7, 0x80)
    name, value = field
    index = _STATIC_NAME.get(name, 0)
    head = _encode_integer(index, 4, 0x00)
    if not index:
        head += _encode_integer(len(name), 7, 0) + name
    return head + _encode_integer(len(value), 7, 0) + value


class Encoder:
    """Stateless HPACK encoding (no dynamic table, no Huffman), cached per field."""

    __slots__ = ("_cache", "_size_update")

    def __init__(self) -> None:
        self._cache: dict[Field, bytes] = {}
        self._size_update = False

    def table_size_changed(self) -> None:
        """The peer changed SETTINGS_HEADER_TABLE_SIZE: the next block starts with a size
        update (RFC 7541 4.2); 0, since this encoder never uses the table."""
        self._size_update = True

    def encode(self, fields: list[Field]) -> bytes:
        cache = self._cache
        parts = []
        if self._size_update:
            self._size_update = False
            parts.append(b"\x20")
        for field in fields:
            if type(field) is NeverIndexed:
                name, value = field
                index = _STATIC_NAME.get(name, 0)
                head = _encode_integer(index, 4, 0x10)
                if not index:
                    head += _encode_integer(len(name), 7, 0) + name
                parts.append(head + _encode_integer(len(value), 7, 0) + value)
                continue
            encoded = cache.get(field)
            if encoded is None:
                encoded = _encode_field((bytes(field[0]), bytes(field[1])))
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[field] = encoded
            parts.append(encoded)
        return b"".join(parts)
