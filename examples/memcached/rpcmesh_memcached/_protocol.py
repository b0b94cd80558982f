"""memcached's text protocol as data: commands, their arguments, the replies each may get.

The source is memcached's ``doc/protocol.txt`` (Debian ships it as
``/usr/share/doc/memcached/protocol.txt.gz``). Both roles read these tables,
so what the server role accepts and what the client role writes cannot drift
apart.

Events (docs/plugins.md, "Writing a codec plugin, step by step", has the
full picture):

- a command is ``Headers`` with ``command`` first, then its arguments by the
  names protocol.txt gives them (``key``, ``flags``, ``exptime``, ``bytes``,
  ``cas``, ``value``, ``time``, ``delay``, ``args``); a data block follows as
  one ``Data`` event;
- a reply is ``Headers`` with ``reply`` first: a wire word (``STORED``,
  ``END``, ``VALUE``...) or one of two names for replies that have no word of
  their own, ``NUMBER`` (incr/decr) and ``STATS`` (a block of lines up to
  ``END``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "BLOCK_TAGS",
    "COMMAND",
    "COMMANDS",
    "Command",
    "ERRORS",
    "Family",
    "MAX_KEY",
    "REPLIES",
    "REPLY",
    "WORDS",
]

#: The field naming the command of a request, and the reply word of a reply (always first).
COMMAND = b"command"
REPLY = b"reply"
#: Longest key memcached accepts (KEY_MAX_LENGTH).
MAX_KEY = 250


class Family(enum.Enum):
    """The shape of reply a command gets."""

    RETRIEVAL = "get"  # VALUE <key> <flags> <bytes> [<cas>], data, END; or END alone
    STORAGE = "store"  # STORED / NOT_STORED / EXISTS / NOT_FOUND
    DELETE = "delete"  # DELETED / NOT_FOUND
    ARITHMETIC = "incr"  # <number> / NOT_FOUND
    TOUCH = "touch"  # TOUCHED / NOT_FOUND
    VERSION = "version"  # VERSION <text>
    FLUSH = "flush"  # OK
    STATS = "stats"  # STAT lines up to END; RESET or OK for some arguments


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its word, reply family and arguments (protocol.txt's names)."""

    name: bytes
    family: Family
    #: Required arguments after the command word, in wire order.
    args: tuple[bytes, ...] = ()
    #: Optional arguments after those (before ``noreply``).
    optional: tuple[bytes, ...] = ()
    #: A data block of ``bytes`` bytes and CRLF follows the line.
    data: bool = False
    #: ``noreply`` may end the line.
    noreply: bool = False

    @property
    def usage(self) -> str:
        """The command's line as protocol.txt writes it, for error messages."""
        parts = [self.name.decode(), *(f"<{a.decode()}>" for a in self.args)]
        parts += [f"[<{a.decode()}>]" for a in self.optional]
        if self.family is Family.RETRIEVAL:
            parts.append("<key>*")
        elif self.family is Family.STATS:
            parts.append("[<args>]")
        if self.noreply:
            parts.append("[noreply]")
        return " ".join(parts)


_STORE = (b"key", b"flags", b"exptime", b"bytes")

#: Every command the codec carries. get/gets take any number of keys (the
#: server role hands out one request per key); stats keeps its arguments in
#: one ``args`` field. ``quit`` is not here: it ends the connection and is
#: never forwarded (a shared upstream connection must not be closed by one client).
COMMANDS: dict[bytes, Command] = {
    c.name: c
    for c in (
        Command(b"get", Family.RETRIEVAL, (b"key",)),
        Command(b"gets", Family.RETRIEVAL, (b"key",)),
        Command(b"set", Family.STORAGE, _STORE, data=True, noreply=True),
        Command(b"add", Family.STORAGE, _STORE, data=True, noreply=True),
        Command(b"replace", Family.STORAGE, _STORE, data=True, noreply=True),
        Command(b"append", Family.STORAGE, _STORE, data=True, noreply=True),
        Command(b"prepend", Family.STORAGE, _STORE, data=True, noreply=True),
        Command(b"cas", Family.STORAGE, (*_STORE, b"cas"), data=True, noreply=True),
        Command(b"delete", Family.DELETE, (b"key",), (b"time",), noreply=True),
        Command(b"incr", Family.ARITHMETIC, (b"key", b"value"), noreply=True),
        Command(b"decr", Family.ARITHMETIC, (b"key", b"value"), noreply=True),
        Command(b"touch", Family.TOUCH, (b"key", b"exptime"), noreply=True),
        Command(b"version", Family.VERSION),
        Command(b"flush_all", Family.FLUSH, (), (b"delay",), noreply=True),
        Command(b"stats", Family.STATS),
    )
}
QUIT = b"quit"
#: Every command word ``match`` recognises.
WORDS: frozenset[bytes] = frozenset([*COMMANDS, QUIT])

#: Error replies any command may get; the text after the word rides in ``message``.
ERRORS: frozenset[bytes] = frozenset({b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"})
#: Line tags inside a stats block (STAT for most, ITEM for cachedump, PREFIX for detail dump).
BLOCK_TAGS: frozenset[bytes] = frozenset({b"STAT", b"ITEM", b"PREFIX"})

#: The reply words each family may get besides ERRORS: the client role refuses
#: anything else (a reply to another command means the stream is out of step).
REPLIES: dict[Family, frozenset[bytes]] = {
    Family.RETRIEVAL: frozenset({b"VALUE", b"END"}),
    Family.STORAGE: frozenset({b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND"}),
    Family.DELETE: frozenset({b"DELETED", b"NOT_FOUND"}),
    Family.ARITHMETIC: frozenset({b"NUMBER", b"NOT_FOUND"}),
    Family.TOUCH: frozenset({b"TOUCHED", b"NOT_FOUND"}),
    Family.VERSION: frozenset({b"VERSION"}),
    Family.FLUSH: frozenset({b"OK"}),
    Family.STATS: frozenset({b"STATS", b"RESET", b"OK"}),
}
