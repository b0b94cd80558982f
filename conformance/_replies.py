"""Checks on the replies a codec makes for the proxy: heartbeats and local replies."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

from mesh.codec import Event, Headers, Role, Status

from ._drive import OPPOSITE, encode, feed
from ._report import CheckSkipped, ConformanceError
from ._show import show_bytes, show_event, show_events
from ._subject import Subject
from .vectors import Vector

__all__ = ["HTTP_STATUS", "LOCAL_REPLY_MESSAGE", "check_heartbeat", "check_local_reply"]

#: ``Status`` -> HTTP status, as ``mesh.codec.Status`` documents; checked when
#: the client side decodes a ``:status`` field.
HTTP_STATUS: dict[Status, bytes] = {
    Status.NO_ROUTE: b"404",
    Status.UNAVAILABLE: b"503",
    Status.TIMEOUT: b"504",
    Status.OVERLOADED: b"429",
    Status.BAD_REQUEST: b"400",
    Status.INTERNAL: b"500",
}
#: A message like the proxy's own (``NO_ROUTE: no route``), spaces included.
LOCAL_REPLY_MESSAGE = "NO_ROUTE: conformance check, no route for this request"

T = TypeVar("T")


def _call(what: str, fn: Callable[..., T], *args: object) -> T:
    try:
        return fn(*args)
    except Exception as exc:
        raise ConformanceError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def _events(value: object, what: str) -> list[Event]:
    if not isinstance(value, list) or not all(isinstance(e, Event) for e in value):
        raise ConformanceError(f"{what} returned {value!r}, not a list of events")
    return value


# -- heartbeats ---------------------------------------------------------------------


def _not_heartbeats(subject: Subject, vector: Vector) -> None:
    conn = subject.decoder(vector)
    events = feed(conn, [vector.data], eof=vector.eof, label=f"vector {vector.name!r}").events
    for event in events:
        if _call("is_heartbeat()", conn.is_heartbeat, event):
            raise ConformanceError(f"is_heartbeat() is True on an event of {vector.name!r}, which is "
                                   f"not marked heartbeat; the proxy would swallow it\n"
                                   f"      {show_event(event)}")


def _heartbeat(subject: Subject, vector: Vector) -> None:
    conn = subject.decoder(vector)
    events = feed(conn, [vector.data], eof=False, label=f"heartbeat {vector.name!r}").events
    if not events or not _call("is_heartbeat()", conn.is_heartbeat, events[0]):
        raise ConformanceError(f"is_heartbeat() is False on heartbeat vector {vector.name!r}\n"
                               f"{show_events(events)}")
    probe = events[0]
    reply = _events(_call("heartbeat_reply()", conn.heartbeat_reply, probe), "heartbeat_reply()")
    if not reply:
        raise ConformanceError(f"heartbeat_reply() is empty for {vector.name!r}; the probe goes unanswered")
    out = encode(conn, reply, f"heartbeat reply to {vector.name!r}")
    peer = subject.connection(OPPOSITE[vector.role])
    encode(peer, copy.deepcopy(events), f"sending heartbeat {vector.name!r} from the peer's role")
    got = feed(peer, [out], eof=False, label=f"the peer decoding the heartbeat reply to {vector.name!r}")
    if not got.events or got.events[0].stream_id != probe.stream_id:
        raise ConformanceError(f"the heartbeat reply to {vector.name!r} does not decode to an answer "
                               f"on stream {probe.stream_id}\n  reply: {show_bytes(out)}\n"
                               f"{show_events(got.events)}")


def check_heartbeat(subject: Subject) -> str:
    """Heartbeat vectors are recognised and answered; no other message is taken for one."""
    if not subject.vectors:
        raise CheckSkipped("no vectors (docs/plugins.md)")
    beats = [v for v in subject.vectors if v.heartbeat]
    for vector in subject.vectors:
        if not vector.heartbeat:
            _not_heartbeats(subject, vector)
    for vector in beats:
        _heartbeat(subject, vector)
    others = len(subject.vectors) - len(beats)
    if not beats:
        return f"no vector is marked heartbeat; is_heartbeat() is False on all {others} vectors"
    return (f"{len(beats)} heartbeats answered and decoded by the peer; "
            f"{others} other vectors are not heartbeats")


# -- local replies --------------------------------------------------------------------


def _local_reply(subject: Subject, vector: Vector, status: Status) -> bool:
    """Check one reply; True when its ``:status`` was compared with HTTP_STATUS."""
    label = f"local_reply({status.name}) to {vector.name!r}"
    server = subject.connection(Role.SERVER)
    request_events = feed(server, [vector.data], eof=False, label=f"request {vector.name!r}").events
    request = next((e for e in request_events if isinstance(e, Headers)), None)
    if request is None:
        raise CheckSkipped(f"request {vector.name!r} decodes to no Headers")
    reply = _events(_call(label, server.local_reply, copy.deepcopy(request), status,
                          LOCAL_REPLY_MESSAGE), label)
    if not reply:
        raise ConformanceError(f"{label} is empty; the client would get no answer")
    out = encode(server, reply, label)
    got = _client_decodes(subject, request_events, out, server.should_close, vector, label)
    problem = _reply_problem(got, request.stream_id, status)
    if problem:
        raise ConformanceError(f"{label}: {problem}\n  reply bytes: {show_bytes(out)}\n"
                               f"    sent:\n{show_events(reply)}\n    decoded:\n{show_events(got)}")
    first = next((e for e in got if isinstance(e, Headers)), None)
    return first is not None and any(n == b":status" for n, _ in first.fields)


def _client_decodes(subject: Subject, request_events: list[Event], reply: bytes, eof: bool,
                    vector: Vector, label: str) -> list[Event]:
    """The events a client role that sent the request makes of the reply bytes."""
    client = subject.connection(Role.CLIENT)
    encode(client, copy.deepcopy(request_events), f"sending request {vector.name!r} through the client role")
    return feed(client, [reply], eof=eof,
                label=f"the client role decoding {label}, its own server role's reply").events


def _reply_problem(got: list[Event], stream_id: int, status: Status) -> str:
    if not got:
        return "the client role decodes no events from it"
    strays = [e for e in got if e.stream_id != stream_id]
    if strays:
        return f"decoded events for stream {strays[0].stream_id}, not the request's {stream_id}"
    if not got[-1].end_stream:
        return "the decoded reply never ends (no end_stream)"
    first = next((e for e in got if isinstance(e, Headers)), None)
    codes = [v for n, v in (first.fields if first else []) if n == b":status"]
    grpc = any(n == b"grpc-status" for n, _ in (first.fields if first else []))
    if codes and codes[0] != HTTP_STATUS[status] and not grpc:  # gRPC: 200 + grpc-status
        return (f":status {codes[0].decode('latin-1')}, but {status.name} is "
                f"{HTTP_STATUS[status].decode()} (mesh.codec.Status)")
    return ""


def check_local_reply(subject: Subject) -> str:
    """Every Status: server role encodes it, client role decodes it for that request."""
    requests = [v for v in subject.vectors
                if v.direction == "request" and v.role is Role.SERVER and not v.heartbeat]
    if not requests:
        raise CheckSkipped("no request vector to answer (docs/plugins.md)")
    http_like = False
    for vector in requests:
        for status in Status:
            http_like = _local_reply(subject, vector, status) or http_like
    how = ", :status as documented" if http_like else ""
    return f"{len(Status)} statuses x {len(requests)} requests decode on the client side{how}"
