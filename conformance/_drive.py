"""Driving a codec connection: feed chunks, pull events, encode events.

Every call into the codec goes through here, so that whatever a codec
raises is turned into a ConformanceError that names the call, the input and
the offset reached, instead of a bare traceback from inside the suite.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Buffers,
    CodecConnection,
    Data,
    Event,
    Headers,
    RemoteProtocolError,
    Reset,
    Role,
    Trailers,
)

from ._report import ConformanceError
from ._show import show_bytes, show_event, show_events

__all__ = ["Fed", "OPPOSITE", "encode", "feed", "flatten", "is_control", "pull", "take_control"]

OPPOSITE = {Role.SERVER: Role.CLIENT, Role.CLIENT: Role.SERVER}
_SENTINELS = (NEED_DATA, PAUSED, CLOSED)
_EVENT_TYPES = (Headers, Data, Trailers, Reset)


@dataclass(slots=True)
class Fed:
    """What feeding some input gave: events, how it ended, how far it got."""

    events: list[Event] = field(default_factory=list)
    #: NEED_DATA, PAUSED or CLOSED after the last pull, or None if it raised.
    end: object = None
    #: The RemoteProtocolError raised, when the caller allowed one.
    error: RemoteProtocolError | None = None
    #: Bytes handed to receive_data before it ended or raised.
    fed: int = 0


def flatten(buffers: Buffers) -> bytes:
    """The bytes ``send`` returned, whether one buffer or a list of them."""
    if isinstance(buffers, list):
        return b"".join(bytes(b) for b in buffers)
    return bytes(buffers)


#: Control output (see ``pull``) per connection, not yet put on the wire: it goes in front
#: of the connection's next encoded bytes, as a session writes it before what follows.
#: Weakly keyed, so a connection's leftovers never reach another one.
_CONTROL: weakref.WeakKeyDictionary[Any, bytearray] = weakref.WeakKeyDictionary()


def take_control(conn: CodecConnection) -> bytes:
    """The control bytes ``conn`` produced and nobody has sent yet."""
    try:
        return bytes(_CONTROL.pop(conn, b""))
    except TypeError:  # a connection that cannot be weakly referenced made no control events
        return b""


def encode(conn: CodecConnection, events: Iterable[Event], label: str) -> bytes:
    """``send`` every event and join the output; any exception is a ConformanceError."""
    out = [take_control(conn)]
    for event in events:
        try:
            buffers = conn.send(event)
            out.append(flatten(buffers))
        except Exception as exc:
            raise ConformanceError(
                f"send() raised {type(exc).__name__}: {exc} ({label})\n"
                f"  event: {show_event(event)}\n  encoded before it: {show_bytes(b''.join(out))}"
            ) from exc
    return b"".join(out)


def is_control(conn: CodecConnection, event: object) -> bool:
    """Connection-level output the codec owes its peer (HTTP/2 SETTINGS and PING acks):
    a heartbeat event with ``extensions["control"]``, sent as a session sends it."""
    return (isinstance(event, Headers) and bool(event.extensions.get("control"))
            and conn.is_heartbeat(event))


def pull(conn: CodecConnection, sink: list[Event], budget: int) -> object:
    """Call ``next_event`` until a sentinel; at most ``budget`` events in ``sink`` in all.

    Control events are answered (``send``) as a session answers them, and not collected:
    they are no message. What they encode is kept for the connection's next ``encode``
    (``take_control``), so its peer gets it first.
    """
    while True:
        event = conn.next_event()
        if any(event is s for s in _SENTINELS):
            return event
        if not isinstance(event, _EVENT_TYPES):
            raise ConformanceError(f"next_event() returned {event!r}, which is neither an event "
                                   "nor NEED_DATA / PAUSED / CLOSED")
        if is_control(conn, event):
            pending = _CONTROL.setdefault(conn, bytearray())
            for reply in conn.heartbeat_reply(event):
                pending += flatten(conn.send(reply))
            continue
        sink.append(event)
        if len(sink) > budget:
            raise ConformanceError(f"next_event() gave more than {budget} events without asking "
                                   f"for data; the last: {show_event(event)}")


def _budget(data_len: int) -> int:
    # A message costs at least a byte on the wire; twice the input (plus an
    # end marker per message) is generous and still catches an endless stream.
    return 2 * data_len + 16


def feed(conn: CodecConnection, chunks: Sequence[bytes], *, eof: bool, label: str,
         allow_remote: bool = False) -> Fed:
    """Feed ``chunks`` (then EOF if asked), pulling events after each one.

    RemoteProtocolError ends the run and is returned when ``allow_remote``,
    else it is a ConformanceError (valid traffic was refused). Any other
    exception always is one.
    """
    result = Fed()
    data = b"".join(chunks)
    stage = ["receive_data"]  # which call was running, for the message
    try:
        _steps(conn, [*chunks, b""] if eof else chunks, result, _budget(len(data)), stage)
    except RemoteProtocolError as exc:
        if not allow_remote:
            raise _refused(exc, stage[0], data, result, label) from exc
        result.error = exc
    except ConformanceError as exc:
        raise ConformanceError(f"{exc} ({label})\n  input: {show_bytes(data, at=result.fed)}") from exc
    except Exception as exc:
        raise ConformanceError(
            f"{stage[0]}() raised {type(exc).__name__}: {exc} after {result.fed} of {len(data)} bytes "
            f"({label}); only RemoteProtocolError may escape\n"
            f"  input: {show_bytes(data, at=result.fed)}"
        ) from exc
    return result


def _steps(conn: CodecConnection, steps: Sequence[bytes], result: Fed, budget: int,
           stage: list[str]) -> None:
    for chunk in steps:
        stage[0] = "receive_data"
        conn.receive_data(chunk)
        result.fed += len(chunk)
        stage[0] = "next_event"
        result.end = pull(conn, result.events, budget)


def _refused(exc: RemoteProtocolError, call: str, data: bytes, result: Fed,
             label: str) -> ConformanceError:
    return ConformanceError(
        f"{call}() raised RemoteProtocolError({exc}) on bytes it must accept, after {result.fed} "
        f"of {len(data)} bytes ({label})\n  input: {show_bytes(data, at=result.fed)}\n"
        f"    events before it:\n{show_events(result.events)}"
    )
