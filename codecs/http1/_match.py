"""Protocol sniffing: does a connection open with an HTTP/1 request line?"""

from __future__ import annotations

from mesh.codec import AGAIN, FAIL, MATCH, MatchResult

__all__ = ["METHODS", "match"]

#: Request methods llhttp accepts in HTTP mode (RFC 9110, WebDAV, CalDAV, UPnP,
#: cache purging). ``match`` and the parser agree on this set, so a connection
#: the sniffer hands to us never fails on its first token. ``PRI`` is absent on
#: purpose: ``PRI * HTTP/2.0`` opens the HTTP/2 preface and belongs to http2.
METHODS: frozenset[bytes] = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH "
    b"PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK SEARCH "
    b"BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)

_LONGEST = max(len(m) for m in METHODS) + 1
_TOKENS = frozenset(m + b" " for m in METHODS)
# Every proper prefix of some b"METHOD ", so an undecided prefix is one set lookup.
_PARTIAL = frozenset(t[:i] for t in _TOKENS for i in range(len(t)))


def match(prefix: bytes) -> MatchResult:
    """MATCH for ``METHOD `` with a known method, AGAIN while undecided, else FAIL."""
    head = bytes(prefix[:_LONGEST])  # a sniffer may hand us a bytearray; sets need bytes
    space = head.find(b" ")
    if space >= 0:
        return MATCH if head[: space + 1] in _TOKENS else FAIL
    return AGAIN if head in _PARTIAL else FAIL
