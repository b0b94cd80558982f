"""Checks that ConnectionOptions limits hold before an oversize input is buffered.

The oversize input is built with the codec's own ``send`` (a vector's head
with one field made huge; its body made huge), so the check needs no
knowledge of the protocol. It is fed in small chunks to a connection with
small limits, the way a slow hostile peer would send it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

from mesh.codec import ConnectionOptions, Data, Event, Headers, Trailers

from ._drive import encode, feed, flatten, take_control
from ._report import CheckSkipped, ConformanceError
from ._show import show_bytes, show_events
from ._subject import Subject
from .vectors import Vector

__all__ = ["CHUNK", "HEADER_LIMIT", "FRAME_LIMIT", "check_frame_limit", "check_header_limit"]

#: ``max_header_size`` given to the connection under test.
HEADER_LIMIT = 1024
#: ``max_frame_size`` given to the connection under test.
FRAME_LIMIT = 4096
#: Bytes per receive_data call: a slow peer.
CHUNK = 256
#: A limit must fire within this many times the limit (plus one chunk): a
#: codec may count loosely, but not buffer the whole input first.
SLACK = 4
_PAD = 32 * 1024
_BODY = 64 * 1024
_PADDING_FIELD = b"x-conformance-padding"


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def _padded(head: Headers) -> Iterator[Headers]:
    """The head with a huge new field; else with its last plain field's value made huge."""
    yield dataclasses.replace(head, fields=[*head.fields, (_PADDING_FIELD, b"a" * _PAD)])
    for i in range(len(head.fields) - 1, -1, -1):
        name, value = head.fields[i]
        if not name.startswith(b":"):
            fields = list(head.fields)
            fields[i] = (name, value + b"a" * _PAD)
            yield dataclasses.replace(head, fields=fields)
            return


def _oversize_head(subject: Subject, vector: Vector, head: Headers) -> bytes | None:
    try:
        plain = len(encode(subject.encoder(vector), [copy.deepcopy(head)], "head"))
    except ConformanceError:
        return None
    for candidate in _padded(head):
        try:
            out = encode(subject.encoder(vector), [copy.deepcopy(candidate)], "oversize head")
        except ConformanceError:
            continue  # send may refuse this way of padding; try the next
        # the padding must be in the bytes: a codec whose head is fixed-size (Dubbo's 16
        # bytes) ignores fields, and a large recorded body is not a large head
        if len(out) >= _PAD and len(out) - plain >= _PAD:
            return out
    return None


def check_header_limit(subject: Subject) -> str:
    """A head over max_header_size raises RemoteProtocolError within SLACK x the limit."""
    built = []
    for vector in subject.vectors:
        head = subject.first_headers(vector)
        if head is None or vector.heartbeat:
            continue
        data = _oversize_head(subject, vector, head)
        if data is None:
            continue
        options = ConnectionOptions(max_header_size=HEADER_LIMIT)
        conn = subject.decoder(vector, options)
        label = f"a {len(data)}-byte head built from {vector.name!r}, max_header_size={HEADER_LIMIT}"
        fed = feed(conn, _chunks(data), eof=False, label=label, allow_remote=True)
        _require_refusal(fed.error is not None, fed.fed, HEADER_LIMIT, data, label, fed.events)
        built.append(fed.fed)
    if not built:
        raise CheckSkipped("send() would not build a head over 32 KiB from any vector "
                           "(tried an extra field and a longer field value)")
    return (f"{len(built)} oversize heads refused after at most {max(built)} bytes "
            f"(max_header_size={HEADER_LIMIT})")


def _require_refusal(raised: bool, fed: int, limit: int, data: bytes, label: str,
                     events: list[Event]) -> None:
    if not raised:
        raise ConformanceError(f"no RemoteProtocolError for {label}\n  input: {show_bytes(data)}\n"
                               f"    events:\n{show_events(events)}")
    bound = SLACK * limit + CHUNK
    if fed > bound:
        raise ConformanceError(f"refused only after {fed} bytes of {label}; it must refuse within "
                               f"{bound}\n  input: {show_bytes(data, at=fed)}")


def _big_body(events: list[Event]) -> list[Event] | None:
    """The message's head and one huge Data, the content-length field updated to match."""
    head = next((e for e in events if isinstance(e, Headers)), None)
    if head is None or not any(isinstance(e, Data) for e in events):
        return None
    fields = [(n, b"%d" % _BODY if n == b"content-length" else v) for n, v in head.fields]
    head = dataclasses.replace(head, fields=fields, end_stream=False)
    body = Data(head.stream_id, b"b" * _BODY, True)
    if any(isinstance(e, Trailers) for e in events):
        body.end_stream = False
        return [head, body, Trailers(head.stream_id, [(b"x-conformance", b"1")])]
    return [head, body]


def _feed_body(subject: Subject, vector: Vector, head_len: int, data: bytes,
               label: str) -> tuple[str, int]:
    """("refused", body bytes fed) or ("streamed", most body bytes held at once)."""
    conn = subject.decoder(vector, ConnectionOptions(max_frame_size=FRAME_LIMIT))
    fed = delivered = held = 0
    bound = SLACK * FRAME_LIMIT + CHUNK
    events: list[Event] = []
    for chunk in _chunks(data):
        step = feed(conn, [chunk], eof=False, label=label, allow_remote=True)
        fed += step.fed
        events += step.events
        delivered += sum(len(e.payload) for e in step.events if isinstance(e, Data))
        if step.error is not None:
            _require_refusal(True, fed - head_len, FRAME_LIMIT, data, label, events)
            return "refused", fed - head_len
        held = max(held, fed - head_len - delivered)
        if held > bound:
            raise ConformanceError(f"{label}: {held} body bytes held without an event or an error "
                                   f"(bound {bound})\n  input: {show_bytes(data, at=fed)}")
    if delivered != _BODY:
        raise ConformanceError(f"{label}: {delivered} of {_BODY} body bytes came out as Data\n"
                               f"  input: {show_bytes(data)}")
    return "streamed", held


def _flow_controlled_body(subject: Subject, vector: Vector, message: list[Event],
                          label: str) -> tuple[str, int]:
    """A flow-controlled codec (HTTP/2) frames only what the peer's windows allow, so the
    body goes through as between two peers: the decoder credits what it delivered
    (``acknowledge``), its output goes back to the encoder, whose released output goes on to
    the decoder, until the whole body is through. ("streamed", most body bytes held at once)."""
    encoder = subject.encoder(vector)
    decoder = subject.decoder(vector, ConnectionOptions(max_frame_size=FRAME_LIMIT))
    head = encode(encoder, message[:1], f"head of {label}")
    head_len = len(head)
    pending = head + encode(encoder, message[1:], label)
    fed = delivered = held = 0
    bound = SLACK * FRAME_LIMIT + CHUNK
    for _ in range(10_000):  # rounds of window updates: bounded
        back = bytearray()
        for chunk in _chunks(pending):
            step = feed(decoder, [chunk], eof=False, label=label, allow_remote=True)
            fed += step.fed
            if step.error is not None:
                _require_refusal(True, fed - head_len, FRAME_LIMIT, pending, label, step.events)
                return "refused", fed - head_len
            for event in step.events:
                if isinstance(event, Data):
                    delivered += len(event.payload)
                    size = event.extensions.get("flow", len(event.payload))
                    back += flatten(decoder.acknowledge(event.stream_id, size))  # type: ignore[attr-defined]
            held = max(held, fed - head_len - delivered)
            if held > bound:
                raise ConformanceError(f"{label}: {held} body bytes held without an event or an "
                                       f"error (bound {bound})")
        back += take_control(decoder)
        if delivered >= _BODY or not back:
            break
        feed(encoder, [bytes(back)], eof=False, label=f"{label}: the peer's window updates")
        pending = take_control(encoder)
    if delivered != _BODY:
        raise ConformanceError(f"{label}: {delivered} of {_BODY} body bytes came out as Data "
                               "(flow control: window updates went back and forth)")
    return "streamed", held


def check_frame_limit(subject: Subject) -> str:
    """A body over max_frame_size is refused early or streamed, never held whole."""
    outcomes: list[tuple[str, int]] = []
    for vector in subject.vectors:
        message = _big_body(subject.decoded(vector))
        if message is None:
            continue
        encoder = subject.encoder(vector)
        if getattr(encoder, "flow_controlled", False) and hasattr(encoder, "acknowledge"):
            label = f"a {_BODY}-byte body built from {vector.name!r}, max_frame_size={FRAME_LIMIT}"
            outcomes.append(_flow_controlled_body(subject, vector, message, label))
            continue
        head_bytes = encode(encoder, message[:1], f"head of the big body built from {vector.name!r}")
        body_bytes = encode(encoder, message[1:], f"big body built from {vector.name!r}")
        label = f"a {len(body_bytes)}-byte body built from {vector.name!r}, max_frame_size={FRAME_LIMIT}"
        outcomes.append(_feed_body(subject, vector, len(head_bytes), head_bytes + body_bytes, label))
    if not outcomes:
        raise CheckSkipped("no vector carries a body (Data events) to make larger")
    streamed = [n for how, n in outcomes if how == "streamed"]
    refused = [n for how, n in outcomes if how == "refused"]
    parts = []
    if streamed:
        parts.append(f"{len(streamed)} streamed holding at most {max(streamed)} bytes")
    if refused:
        parts.append(f"{len(refused)} refused within {max(refused)} body bytes")
    return f"{_BODY // 1024} KiB bodies (max_frame_size={FRAME_LIMIT}): " + ", ".join(parts)
