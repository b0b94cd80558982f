"""Hop-by-hop header fields: they describe one connection and are never forwarded."""

from __future__ import annotations

__all__ = [
    "HOP_BY_HOP",
    "KEEP_ALIVE",
    "KEEP_ALIVE_SPELLINGS",
    "connection_tokens",
    "note_connection",
    "without_named",
]

#: RFC 9110 7.6.1 plus the legacy ``keep-alive`` and ``proxy-connection``.
#: ``transfer-encoding`` and ``upgrade`` are rebuilt by the codec from its own
#: framing decision and the ``upgrade`` extension.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"trailer",
    }
)

#: What a reader records for a lone ``Connection: keep-alive`` (nginx sends it
#: on every response, browsers on every request): compared by identity, it
#: says "nothing to drop, llhttp's keep-alive answer stands" without tokenizing.
KEEP_ALIVE = b"keep-alive"
KEEP_ALIVE_SPELLINGS = frozenset({b"keep-alive", b"Keep-Alive", b"Keep-alive"})

# Connection options that only steer this connection's persistence.
_PLAIN_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade", b""})


# The usual values, answered without splitting.
_USUAL = {v: frozenset({v.lower()}) for v in (b"keep-alive", b"Keep-Alive", b"close", b"Close")}


def note_connection(seen: bytes | None, value: bytes) -> bytes:
    """Fold one more Connection header value into what the head has so far."""
    if seen is None:
        return KEEP_ALIVE if value in KEEP_ALIVE_SPELLINGS else value
    return seen + b"," + value


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """The lower-case options listed in a Connection header value."""
    usual = _USUAL.get(value)
    if usual is not None:
        return usual
    return frozenset(token.strip(b" \t").lower() for token in value.split(b","))


def without_named(
    fields: list[tuple[bytes, bytes]], tokens: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """``fields`` minus the ones the Connection header named (RFC 9110 7.6.1).

    Rare (``Connection: keep-alive`` or ``close`` is the norm), so this copy is
    off the common path; it returns ``fields`` itself when nothing is named.
    """
    if tokens <= _PLAIN_OPTIONS:
        return fields
    named = tokens - _PLAIN_OPTIONS
    return [f for f in fields if f[0] not in named]
