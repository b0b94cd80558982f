"""Fuzzing the dubbo codec: whatever bytes come, in whatever reads, both roles hand out
events, NEED_DATA / CLOSED, or raise RemoteProtocolError, and nothing else escapes; routing
keys, heartbeat replies, local replies and ``send`` (with and without an attachments rewrite)
never raise anything but the contract's errors on any event decoded.

Inputs: random bytes (bare, or behind a plausible header), and the real frames of
tests/golden/dubbo/frames.jsonl mutated inside a frame's body with its length fixed up (so
the hessian2 reader is reached), in its header (flags, status, length), and anywhere in the
byte stream. ``exercise`` is shared with scripts/fuzz_dubbo.py, the long soak.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mesh.codecs.dubbo import codec
from mesh.codecs.hessian2 import Encoder

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    ConnectionOptions,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Role,
    Status,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dubbo" / "frames.jsonl"
HEAD = struct.Struct(">2sBBqI")
#: the limit fuzzed connections run with: small, so hostile lengths trip it too
MAX_FRAME = 64 * 1024
KEY_NAMES = ("group", "version", "path", "x-trace-id", "interface", "dubbo", "timeout")
CHANGES: dict[str, str | None] = {"x-tenant": "t9", "path": None, "group": "g"}


def _build(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    return HEAD.pack(b"\xda\xbb", flags, status, request_id, len(body)) + body


def _generic_call() -> bytes:
    out = Encoder()
    for text in ("2.0.2", "com.example.GreetService", "1.0.0", "$invoke",
                 "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;", "sayHello"):
        out.write_string(text)
    out.write_list(["java.lang.String"], "[string")
    out.write_list(["world"], "[object")
    out.write_map({"group": "g1", "path": "com.example.GreetService"})
    return _build(0xC2, 0, 5, out.getvalue())


def _seeds() -> list[tuple[Role, tuple[bytes, ...]]]:
    """(role, frames of one connection): the recorded streams up to 8 KiB, and a few more."""
    streams: dict[tuple[str, str, str], list[bytes]] = {}
    for line in GOLDEN.read_text().splitlines():
        record = json.loads(line)
        key = (record["scenario"], record["consumer"], record["from"])
        streams.setdefault(key, []).append(bytes.fromhex(record["hex"]))
    seeds = []
    for (_scenario, _consumer, who), frames in sorted(streams.items()):
        if sum(map(len, frames)) <= 8192:
            role = Role.SERVER if who == "consumer" else Role.CLIENT
            seeds.append((role, tuple(frames[:6])))
    seeds += [
        (Role.SERVER, (_generic_call(),)),
        (Role.SERVER, (_build(0xC6, 0, 3, b'"2.0.2"\n"com.x.S"\n"1.0"\n"m"\n""\n{}\n'),)),
        (Role.CLIENT, (_build(0xA2, 0, 1, b"\x01R"), _build(0xE2, 0, 2, b"N"))),
        (Role.CLIENT, (_build(0x02, 70, 9, b"\x05oops!"),)),
    ]
    return seeds


SEEDS = _seeds()


def _touch(conn: Any, role: Role, event: Headers) -> None:
    """Everything the proxy may do with a decoded event; only the contract's errors allowed."""
    keys = codec.request_keys(event)
    for value in (keys.service, keys.method, keys.version, keys.group,
                  *(keys.get(name) for name in KEY_NAMES)):
        assert value is None or isinstance(value, str)
    peer = codec.connection(Role.CLIENT if role is Role.SERVER else Role.SERVER, ConnectionOptions())
    if conn.is_heartbeat(event):
        for reply in conn.heartbeat_reply(event):
            conn.send(reply)
    out = peer.send(event)
    assert isinstance(out, bytes | bytearray | memoryview | list)
    event.stream_id = 0x7FFF0001
    peer.send(event)
    if role is Role.SERVER and not conn.is_heartbeat(event):
        for status in (Status.NO_ROUTE, Status.BAD_REQUEST):
            for reply in conn.local_reply(event, status, "fuzz \u00e9 \x00 message"):
                conn.send(reply)
        event.extensions["set_attachments"] = CHANGES
        try:
            peer.send(event)
        except LocalProtocolError:
            pass  # attachments that cannot be stepped over or re-encoded: refused, not crashed


def exercise(role: Role, data: bytes, cuts: list[int], eof: bool) -> int:
    """Feed ``data`` cut at ``cuts``; the number of events (RemoteProtocolError ends it)."""
    conn = codec.connection(role, ConnectionOptions(max_frame_size=MAX_FRAME))
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    if eof:
        chunks.append(b"")
    count = 0
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is NEED_DATA or event is CLOSED:
                    break
                assert type(event) is Headers and event.end_stream
                count += 1
                assert count * 16 <= len(data)  # a frame is 16 bytes at least
                _touch(conn, role, event)
    except RemoteProtocolError as exc:
        assert exc.reply is None or isinstance(exc.reply, bytes)
        if exc.reply is not None and exc.reply[:2] == b"\xda\xbb":
            assert HEAD.unpack_from(exc.reply)[4] == len(exc.reply) - 16
    return count


# -- mutations -------------------------------------------------------------------------------

Draw = Callable[[Any], Any]


def mutate_body(draw: Draw, frame: bytes) -> bytes:
    """One change inside the body, the length field fixed up to match."""
    head, body = frame[:16], frame[16:]
    kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
    at = draw(st.integers(0, len(body)))
    if kind == "flip" and body:
        at %= len(body)
        body = body[:at] + bytes([body[at] ^ (1 << draw(st.integers(0, 7)))]) + body[at + 1:]
    elif kind == "set" and body:
        at %= len(body)
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1:]
    elif kind == "insert":
        body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    elif kind == "delete":
        body = body[:at] + body[at + draw(st.integers(1, 16)):]
    elif kind == "truncate":
        body = body[:at]
    elif kind == "extend":
        body = body + draw(st.binary(max_size=16))
    return head[:12] + struct.pack(">I", len(body)) + body


def mutate_head(draw: Draw, frame: bytes) -> bytes:
    """Flags (request / two-way / event bits, serialization), status or length."""
    which = draw(st.sampled_from([2, 2, 3, 12]))
    if which == 12:
        length = draw(st.sampled_from([0, 1, len(frame) - 17, len(frame) - 15, MAX_FRAME,
                                       MAX_FRAME + 1, 0x7FFFFFFF, 0xFFFFFFFF]))
        return frame[:12] + struct.pack(">I", max(length, 0)) + frame[16:]
    value = draw(st.integers(0, 255))
    return frame[:which] + bytes([value]) + frame[which + 1:]


def mutate_stream(draw: Draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
    at = draw(st.integers(0, len(data)))
    if kind == "flip" and data:
        at %= len(data)
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 32)):]
    if kind == "truncate":
        return data[:at]
    return data[:at] + data[at:at + draw(st.integers(1, 64))] + data[at:]


@st.composite
def mutated(draw: Draw) -> tuple[Role, bytes]:
    role, frames = draw(st.sampled_from(SEEDS))
    frames_list = list(frames)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(frames_list) - 1))
        frames_list[i] = mutate_body(draw, frames_list[i])
    if draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(frames_list) - 1))
        frames_list[i] = mutate_head(draw, frames_list[i])
    data = b"".join(frames_list)
    for _ in range(draw(st.integers(0, 2))):
        data = mutate_stream(draw, data)
    if draw(st.booleans()):
        role = Role.CLIENT if role is Role.SERVER else Role.SERVER  # the wrong role, too
    return role, data


@st.composite
def random_input(draw: Draw) -> bytes:
    tail = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        return tail
    head = HEAD.pack(b"\xda\xbb", draw(st.integers(0, 255)), draw(st.integers(0, 255)),
                     draw(st.integers(-(2**63), 2**63 - 1)), len(tail))
    return head + tail


ROLES = st.sampled_from([Role.SERVER, Role.CLIENT])
CUTS = st.lists(st.integers(0, 1 << 16), max_size=8)


def fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fast(400)
@given(role=ROLES, data=random_input(), cuts=CUTS, eof=st.booleans())
def test_random_bytes(role: Role, data: bytes, cuts: list[int], eof: bool) -> None:
    exercise(role, data, cuts, eof)


@fast(900)
@given(case=mutated(), cuts=CUTS, eof=st.booleans())
def test_mutated_real_frames(case: tuple[Role, bytes], cuts: list[int], eof: bool) -> None:
    role, data = case
    exercise(role, data, cuts, eof)


def test_every_byte_of_real_frames_changed_and_every_body_cut() -> None:
    """Deterministic sweep over a few frames rich in hessian2 (objects, class defs, maps,
    lists, exceptions): each byte changed two ways, each body truncation with its length
    fixed, each whole-stream truncation."""
    picks = [(r, f) for r, frames in SEEDS for f in frames[:1]
             if len(f) <= 600 and f[16:17] not in (b"", b"N")][:40]
    assert len(picks) >= 20
    for role, frame in picks:
        for at in range(len(frame)):
            for value in (frame[at] ^ 0xFF, (frame[at] + 1) & 0xFF):
                exercise(role, frame[:at] + bytes([value]) + frame[at + 1:], [], True)
            exercise(role, frame[:at], [], True)
        for at in range(16, len(frame)):
            body = frame[16:at]
            exercise(role, frame[:12] + struct.pack(">I", len(body)) + body, [], True)
