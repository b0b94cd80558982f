"""Reply events <-> reply lines: the names and the encoding the server role uses.

A reply is ``Headers`` whose first field is ``reply``:

=============  =====================================================  ===================
``reply``      other fields                                           on the wire
=============  =====================================================  ===================
VALUE          key, flags, bytes, [cas]; one Data with the value      ``VALUE k f n [c]``,
                                                                      data, ``END``
END            (a get that found nothing)                             ``END``
NUMBER         value (incr/decr)                                      ``<value>``
VERSION        version                                                ``VERSION <version>``
STATS          one field per line: tag in lower case, rest of line    ``STAT ...`` ... ``END``
ERROR,         [message]                                              ``<word> <message>``
CLIENT_ERROR,
SERVER_ERROR
other words    (none)                                                 ``<word>``
=============  =====================================================  ===================

The ``bytes`` of a VALUE is what the client role read; when encoding, the
server role counts the Data it is given instead, so the line always matches
the data block that follows it.
"""

from __future__ import annotations

from mesh.codec import Headers, LocalProtocolError

from ._framing import CRLF, check_text, check_token, one_line
from ._protocol import ERRORS, REPLY

__all__ = [
    "END",
    "END_LINE",
    "MESSAGE",
    "NUMBER",
    "SINGLE",
    "STATS",
    "VALUE",
    "VERSION",
    "encode_reply",
    "reply_word",
    "value_line",
]

VALUE = b"VALUE"
END = b"END"
NUMBER = b"NUMBER"
STATS = b"STATS"
VERSION = b"VERSION"
MESSAGE = b"message"
END_LINE = b"END\r\n"
#: Replies that are one word alone on their line.
SINGLE: frozenset[bytes] = frozenset(
    {b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND", b"DELETED", b"TOUCHED", b"OK", b"RESET", END}
)


def reply_word(head: Headers) -> bytes:
    """The reply word of a reply head. Raises LocalProtocolError if it has none."""
    fields = head.fields
    if not fields or fields[0][0] != REPLY:
        raise LocalProtocolError(f"a memcached reply starts with the field 'reply', not {fields[:1]!r}")
    return fields[0][1]


def _field(fields: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for field_name, value in fields:
        if field_name == name:
            return value
    return None


def _needed(fields: list[tuple[bytes, bytes]], name: bytes, word: bytes) -> bytes:
    value = _field(fields, name)
    if value is None:
        raise LocalProtocolError(f"a {word.decode()} reply needs the field {name.decode()!r}")
    return value


def value_line(fields: list[tuple[bytes, bytes]], size: int) -> bytes:
    """``VALUE <key> <flags> <size> [<cas>]\\r\\n`` for a VALUE head and ``size`` bytes of data."""
    key = check_token(_needed(fields, b"key", VALUE), "key")
    flags = check_token(_needed(fields, b"flags", VALUE), "flags")
    cas = _field(fields, b"cas")
    tail = b"" if cas is None else b" " + check_token(cas, "cas")
    return b"VALUE %s %s %d%s\r\n" % (key, flags, size, tail)


def encode_reply(word: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    """The line (or STATS block) of any reply but VALUE."""
    if word in SINGLE:
        return word + CRLF
    if word in ERRORS:
        message = _field(fields, MESSAGE)
        return word + CRLF if message is None else word + b" " + one_line(message) + CRLF
    if word == NUMBER:
        return check_token(_needed(fields, b"value", word), "value") + CRLF
    if word == VERSION:
        return b"VERSION " + check_text(_needed(fields, b"version", word), "version") + CRLF
    if word == STATS:
        return _stats_block(fields)
    raise LocalProtocolError(f"{word!r} is not a memcached reply word")


def _stats_block(fields: list[tuple[bytes, bytes]]) -> bytes:
    lines = []
    for tag, rest in fields[1:]:
        lines.append(check_token(tag.upper(), "stats line tag"))
        lines.append(b" " + check_text(rest, "stats line") + CRLF if rest else CRLF)
    lines.append(END_LINE)
    return b"".join(lines)
