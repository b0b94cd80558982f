"""What both HTTP/2 engines share: control events, heartbeats, local replies."""

from __future__ import annotations

from mesh.codec import Data, Event, Headers, Status

from ._grpc import local_reply
from ._headers import request_fields

__all__ = ["Http2Common", "control_event", "upgraded_events"]


def control_event() -> Headers:
    """The event standing for connection-level output: a heartbeat the session answers by
    sending it; ``send`` turns it into the bytes the connection owes its peer."""
    return Headers(0, [], False, {"control": True})


def upgraded_events(request: Headers, body: bytes) -> list[Event]:
    """An h2c upgrade's HTTP/1.1 request as stream 1's events (RFC 7540 3.2); its body came
    in HTTP/1.1, outside any HTTP/2 window, so its Data has no "flow"."""
    events: list[Event] = [Headers(1, request_fields(request.fields), not body,
                                   {"http_version": "2", "upgraded": True})]
    if body:
        events.append(Data(1, body, True))
    return events


class Http2Common:
    """The capabilities the proxy looks for, and the heartbeat and reply methods."""

    #: the proxy calls ``acknowledge`` for received Data and leaves ``consumed`` callbacks
    #: of sent Data to this codec (mesh/proxy: flow-controlled codecs)
    flow_controlled = True
    #: a Reset event can end one exchange without closing the connection
    resets_streams = True

    def is_heartbeat(self, event: Event) -> bool:
        return type(event) is Headers and event.stream_id == 0 and bool(event.extensions.get("control"))

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return [event]

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        return local_reply(request, status, message)
