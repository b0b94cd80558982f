"""Protocol detection: offer a connection's first bytes to every codec's ``match``.

The peek is bounded in size and time: a connection whose protocol no codec
can decide within ``max_bytes`` or ``timeout`` is closed, never held open.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import trio

from mesh.codec import AGAIN, MATCH, Codec, RemoteProtocolError
from mesh.net.connection import Connection

__all__ = ["SniffOutcome", "sniff"]


class SniffOutcome(enum.Enum):
    MATCHED = "matched"
    UNKNOWN = "unknown"  # every codec said FAIL
    UNDECIDED = "undecided"  # out of bytes or time while some codec said AGAIN
    CLOSED = "closed"  # the peer closed before anything was decided


def decide(codecs: Sequence[Codec], prefix: bytes) -> tuple[SniffOutcome | None, Codec | None]:
    """One pass over the candidates; (None, None) means: read more."""
    waiting = False
    for codec in codecs:
        try:
            answer = codec.match(prefix)
        except RemoteProtocolError:
            continue
        if answer is MATCH:
            return SniffOutcome.MATCHED, codec
        if answer is AGAIN:
            waiting = True
    return (None, None) if waiting else (SniffOutcome.UNKNOWN, None)


async def sniff(conn: Connection, codecs: Sequence[Codec], max_bytes: int,
                timeout: float) -> tuple[SniffOutcome, Codec | None, bytes]:
    """Read until one codec claims the bytes; returns them for that codec to parse."""
    prefix = b""
    with trio.move_on_after(timeout):
        while len(prefix) < max_bytes:
            data = await conn.recv(max_bytes - len(prefix))
            if not data:
                return SniffOutcome.CLOSED, None, prefix
            prefix += data
            outcome, codec = decide(codecs, prefix)
            if outcome is not None:
                return outcome, codec, prefix
    return SniffOutcome.UNDECIDED, None, prefix
