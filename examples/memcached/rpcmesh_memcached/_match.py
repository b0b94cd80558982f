"""Protocol sniffing: does a connection open with a memcached command?"""

from __future__ import annotations

from mesh.codec import AGAIN, FAIL, MATCH, MatchResult

from ._protocol import WORDS

__all__ = ["match"]

# A command word counts once the byte after it says it is a whole word: a space
# before its arguments, or CRLF for the commands that take none. Commands are
# lower case on the wire, which is what tells them from HTTP's GET and from
# Redis' inline commands... almost: an inline "get k\r\n" to Redis reads the same.
_TOKENS: tuple[bytes, ...] = tuple(sorted({w + b" " for w in WORDS} | {w + b"\r\n" for w in WORDS}))
_LONGEST = max(len(t) for t in _TOKENS)
# Every proper prefix of a token (the empty one included), so an undecided
# prefix is one set lookup.
_PARTIAL = frozenset(t[:i] for t in _TOKENS for i in range(len(t)))


def match(prefix: bytes | bytearray | memoryview) -> MatchResult:
    """MATCH on a known command word then a space or CRLF, AGAIN on a prefix of one, else FAIL."""
    head = bytes(prefix[:_LONGEST])  # a sniffer may hand us a bytearray; sets need bytes
    for token in _TOKENS:
        if head.startswith(token):
            return MATCH
    return AGAIN if head in _PARTIAL else FAIL
