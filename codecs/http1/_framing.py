"""Outgoing framing: head encoding and the body of one message.

The framing of a message is decided once, when its head is sent (RFC 9112
6.3), and a :class:`BodyWriter` then frames every body event the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from mesh.codec import Buffers, LocalProtocolError

from ._hop import HOP_BY_HOP

__all__ = [
    "CHUNKED",
    "CLOSE",
    "LAST_CHUNK",
    "LENGTH",
    "NONE",
    "BodyWriter",
    "content_length",
    "finish_head",
    "forwardable",
]

#: The message has no body (HEAD, 1xx, 204, 304, ``end_stream`` on the head).
NONE = 0
#: ``content-length`` framing.
LENGTH = 1
#: ``transfer-encoding: chunked`` framing.
CHUNKED = 2
#: The body ends when the connection closes (an HTTP/1.0 response).
CLOSE = 3

LAST_CHUNK = b"0\r\n\r\n"

#: Fields the encoders never copy blindly: pseudo fields become the start line,
#: hop-by-hop ones are rebuilt from the framing decision, and the length is read.
PSEUDO: frozenset[bytes] = frozenset(
    {b":status", b":method", b":path", b":scheme", b":authority", b":protocol"}
)
SPECIAL: frozenset[bytes] = PSEUDO | HOP_BY_HOP | {b"content-length", b"host"}


def forwardable(
    fields: Iterable[tuple[bytes, bytes]], lines: list[bytes]
) -> list[tuple[bytes, bytes]]:
    """Append ``name: value`` for plain fields to ``lines``; return the special ones."""
    special = []
    for field in fields:
        if field[0] in SPECIAL:
            special.append(field)
        else:
            lines.append(b": ".join(field))
    return special


def content_length(value: bytes, seen: bytes | None) -> bytes:
    """The one content-length of an outgoing head (repeats must agree)."""
    if seen is not None and value != seen:
        raise LocalProtocolError(f"conflicting content-length fields {seen!r} and {value!r}")
    if not value.isdigit():
        raise LocalProtocolError(f"content-length must be digits, not {value!r}")
    return value


def finish_head(lines: list[bytes]) -> bytes:
    """Join a head's lines; refuse a CR or LF hidden inside a name or value."""
    # Every CR and LF must be one we put there: a stray one in a field (from a
    # filter, or forwarded) would let it split the head (RFC 9112 2.2). The
    # lines joined bare, then ``int in bytes`` (memchr): cheaper than one
    # translate() pass over the head, which builds a 256-entry table per call.
    bare = b"".join(lines)
    if 13 in bare or 10 in bare:
        raise LocalProtocolError("a header name or value contains CR or LF")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


class BodyWriter:
    """Frames the body events of one outgoing message as its head announced."""

    __slots__ = ("mode", "remaining")

    def __init__(self, mode: int, remaining: int = 0) -> None:
        self.mode = mode
        self.remaining = remaining

    def data(self, payload: bytes | bytearray | memoryview, end: bool) -> Buffers:
        """Bytes for one body piece; a list so a large payload is never copied."""
        mode = self.mode
        if mode == CHUNKED:
            if payload:
                chunk: list[bytes | bytearray | memoryview] = [
                    b"%x\r\n" % len(payload), payload, b"\r\n"
                ]
                if end:
                    chunk.append(LAST_CHUNK)
                return chunk
            return LAST_CHUNK if end else b""
        if mode == LENGTH:
            self.remaining -= len(payload)
            if self.remaining < 0 or (end and self.remaining):
                raise self.mismatch()
            return payload
        return payload if mode == CLOSE else b""

    def trailers(self, fields: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The end of the body; trailer fields survive only chunked framing."""
        if self.mode == CHUNKED:
            lines = [b"0"]
            forwardable(fields, lines)  # framing and hop-by-hop fields never trail
            return finish_head(lines)
        self.finish()
        return b""

    def finish(self) -> None:
        """Check that the body ended where its content-length said."""
        if self.mode == LENGTH and self.remaining:
            raise self.mismatch()

    def mismatch(self) -> LocalProtocolError:
        """The error for a body that does not match its content-length."""
        return LocalProtocolError(
            f"body does not match its content-length ({-self.remaining} bytes over)"
            if self.remaining < 0
            else f"body ended {self.remaining} bytes short of its content-length"
        )
