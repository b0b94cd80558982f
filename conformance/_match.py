"""Checks on ``Codec.match``, what the sniffer asks every codec about a new connection."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from mesh.codec import AGAIN, FAIL, MATCH, MatchResult, RemoteProtocolError, Role

from ._report import CheckSkipped, ConformanceError
from ._show import show_bytes
from ._subject import Subject
from .vectors import VectorError, for_codec

__all__ = ["AGAIN_BOUND", "FOREIGN_SAMPLES", "SNIFF_LIMIT", "ForeignSample", "check_match_foreign",
           "check_match_prefixes", "check_match_pure", "foreign_samples"]

#: The listener's default ``sniff_max_bytes``: match never sees a longer prefix.
SNIFF_LIMIT = 4096
#: On another protocol's traffic a codec may answer AGAIN only this far; past it
#: every connection of that protocol would wait on this codec until the sniff timeout.
AGAIN_BOUND = 64


@dataclass(frozen=True, slots=True)
class ForeignSample:
    """The opening bytes of some protocol, and the codec names that protocol goes by."""

    protocol: str
    data: bytes
    names: frozenset[str]


def _sample(protocol: str, data: bytes, *aliases: str) -> ForeignSample:
    return ForeignSample(protocol, data, frozenset({protocol, *aliases}))


def _thrift_call() -> bytes:
    name = b"getUser"
    body = struct.pack(">I", 0x80010001) + struct.pack(">I", len(name)) + name + struct.pack(">i", 7)
    body += b"\x08\x00\x01" + struct.pack(">i", 42) + b"\x00"
    return struct.pack(">I", len(body)) + body


def _dubbo_call() -> bytes:
    body = b'\x052.0.2\x30\x1ecom.example.UserService\x050.0.0\x07getUser\x01I\xd4\x00\x2aH\x00Z'
    return b"\xda\xbb\xc2\x00" + struct.pack(">qI", 7, len(body)) + body


def _postgres_startup() -> bytes:
    body = struct.pack(">I", 196608) + b"user\x00postgres\x00database\x00app\x00\x00"
    return struct.pack(">I", len(body) + 4) + body


#: Openings of well-known protocols every codec must tell apart from its own.
FOREIGN_SAMPLES: tuple[ForeignSample, ...] = (
    _sample("http1", b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n"
            b"Accept: */*\r\n\r\n", "http", "http11", "h1"),
    _sample("http2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00", "h2", "grpc"),
    _sample("tls", b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + bytes(range(32))
            + b"\x00\x00\x02\x13\x01", "https", "ssl"),
    _sample("redis", b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", "resp"),
    _sample("dubbo", _dubbo_call()),
    _sample("thrift", _thrift_call()),
    _sample("ssh", b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
    _sample("postgres", _postgres_startup(), "postgresql", "pg"),
    _sample("zeros", bytes(64)),
    _sample("random", random.Random(0x6D657368).randbytes(256)),
)


def answer(subject: Subject, prefix: bytes) -> MatchResult:
    """``match(prefix)``; RemoteProtocolError counts as FAIL (the sniffer treats it so)."""
    try:
        result = subject.codec.match(prefix)
    except RemoteProtocolError:
        return FAIL
    except Exception as exc:
        raise ConformanceError(
            f"match() raised {type(exc).__name__}: {exc}; the sniffer would crash\n"
            f"  prefix: {show_bytes(prefix)}") from exc
    if not isinstance(result, MatchResult):
        raise ConformanceError(f"match() returned {result!r}, not MATCH / AGAIN / FAIL\n"
                               f"  prefix: {show_bytes(prefix)}")
    return result


def _prefixes(data: bytes) -> Iterator[bytes]:
    for n in range(1, min(len(data), SNIFF_LIMIT) + 1):
        yield data[:n]


def foreign_samples(subject: Subject) -> list[tuple[str, bytes]]:
    """Built-in samples and other installed codecs' request vectors, minus the codec's own."""
    own = subject.name.lower()
    found = [(s.protocol, s.data) for s in FOREIGN_SAMPLES if own not in s.names]
    try:
        from mesh.registry import PluginError, load_registry

        codecs = load_registry().codecs
    except (ImportError, PluginError):  # a broken plugin elsewhere must not fail this codec
        return found
    for name, plugin in sorted(codecs.items()):
        if name.lower() == own or plugin.obj is subject.codec:
            continue
        try:
            vectors = for_codec(plugin.obj)
        except VectorError:
            continue
        found += [(f"{name}:{v.name}", v.data) for v in vectors
                  if v.direction == "request" and v.role is Role.SERVER]
    return found


def check_match_pure(subject: Subject) -> str:
    """Same answer twice, in any order: match keeps no state between calls."""
    inputs = [v.data for v in subject.openers] + [data for _, data in foreign_samples(subject)]
    state = dict(getattr(subject.codec, "__dict__", {}))
    first: list[MatchResult] = []
    for data in inputs:
        for prefix in _prefixes(data):
            once, twice = answer(subject, prefix), answer(subject, prefix)
            if once is not twice:
                raise ConformanceError(f"match() answered {once.name} then {twice.name} on the same "
                                       f"prefix\n  prefix: {show_bytes(prefix)}")
            first.append(once)
    again = [answer(subject, p) for data in reversed(inputs) for p in reversed(list(_prefixes(data)))]
    again.reverse()
    for i, (a, b) in enumerate(zip(first, again, strict=True)):
        if a is not b:
            raise ConformanceError(f"match() depends on earlier calls: {a.name} in order, {b.name} "
                                   f"when called in reverse order (call {i})")
    if dict(getattr(subject.codec, "__dict__", {})) != state:
        raise ConformanceError("match() changed attributes of the codec object; it must be pure")
    return f"{len(first)} prefixes answered the same twice and in reverse order"


def check_match_prefixes(subject: Subject) -> str:
    """Every prefix of valid traffic: never FAIL, MATCH stays MATCH, MATCH by the whole message."""
    openers = subject.openers
    if not openers:
        raise CheckSkipped("no request vector to sniff (docs/plugins.md: vectors)")
    first = [_matched_at(subject, vector.name, vector.data) for vector in openers]
    return f"{len(openers)} request vectors: MATCH from {min(first)}-{max(first)} bytes on, never FAIL"


def _matched_at(subject: Subject, name: str, data: bytes) -> int:
    """The prefix length from which match says MATCH; ConformanceError if it never does."""
    matched_at = 0
    for prefix in _prefixes(data):
        result = answer(subject, prefix)
        if result is FAIL:
            raise ConformanceError(f"FAIL on the first {len(prefix)} bytes of valid request "
                                   f"{name!r}\n  prefix: {show_bytes(prefix)}")
        if matched_at and result is not MATCH:
            raise ConformanceError(f"MATCH at {matched_at} bytes, then {result.name} at {len(prefix)} "
                                   f"bytes of {name!r}\n  prefix: {show_bytes(prefix)}")
        if result is MATCH and not matched_at:
            matched_at = len(prefix)
    if not matched_at:
        seen = min(len(data), SNIFF_LIMIT)
        raise ConformanceError(f"still AGAIN after {seen} bytes of {name!r}; the sniffer would never "
                               f"pick this codec\n  input: {show_bytes(data[:seen])}")
    return matched_at


def check_match_foreign(subject: Subject) -> str:
    """Other protocols' openings: FAIL, or AGAIN only within AGAIN_BOUND bytes.

    Every prefix is asked, not just up to the first FAIL: the sniffer asks
    every codec again each time more bytes arrive.
    """
    samples = foreign_samples(subject)
    for protocol, data in samples:
        for prefix in _prefixes(data):
            result = answer(subject, prefix)
            if result is MATCH:
                raise ConformanceError(f"MATCH on {len(prefix)} bytes of {protocol} traffic; this codec "
                                       f"would steal {protocol} connections\n  prefix: {show_bytes(prefix)}")
            if result is AGAIN and len(prefix) > AGAIN_BOUND:
                raise ConformanceError(
                    f"still AGAIN after {len(prefix)} bytes of {protocol} traffic (bound: {AGAIN_BOUND}); "
                    f"{protocol} connections would wait for this codec\n  prefix: {show_bytes(prefix)}")
    names = sorted({p.partition(":")[0] for p, _ in samples})
    return f"FAIL (or AGAIN within {AGAIN_BOUND} bytes) on {len(samples)} samples of {', '.join(names)}"
