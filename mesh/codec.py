"""The codec contract: what a protocol plugin gives the proxy core.

A codec is sans-I/O (in the manner of h11): bytes in, events out; events in,
bytes out. It never touches sockets, clocks or logging. The core owns I/O,
timeouts, routing and pools; the codec owns framing and the protocol's
native way of saying "no".

A plugin registers an object satisfying :class:`Codec` (or a zero-argument
callable returning one) in the ``mesh.codecs`` entry-point group. The
conformance suite (``mesh conformance NAME``) checks a codec against this
module's contract before it carries traffic.

Events are the same in both directions and for every protocol:
:class:`Headers`, :class:`Data`, :class:`Trailers` and :class:`Reset`, each
keyed by ``stream_id``. The ``stream_id`` *is* the message's request id
(HTTP/2 stream, Dubbo request id, Thrift seqid, Redis position in the
pipeline): the proxy reads it, and rewrites it by assigning a new value before
``send``; the codec writes the new id into the bytes. What is specific to one
protocol rides in ``extensions``; a proxy forwards the event it received.

HTTP-like codecs put request/response pseudo-fields first in
``Headers.fields`` as HTTP/2 does (``:method``, ``:scheme``, ``:authority``,
``:path`` for a request; ``:status`` for a response), names in lower case, so
one router and one set of filters serve every HTTP version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AGAIN",
    "CLOSED",
    "FAIL",
    "MATCH",
    "NEED_DATA",
    "PAUSED",
    "Buffers",
    "Codec",
    "CodecConnection",
    "ConnectionOptions",
    "Data",
    "Event",
    "Headers",
    "HeaderKeys",
    "LocalProtocolError",
    "MatchResult",
    "NextEvent",
    "PoolMode",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestKeys",
    "Reset",
    "Role",
    "Status",
    "Trailers",
]


class PoolMode(enum.Enum):
    """How requests share one upstream connection."""

    #: One exchange at a time per connection (HTTP/1.1).
    PING_PONG = "ping_pong"
    #: Many exchanges in flight, replies matched by request id (HTTP/2, Dubbo, Thrift).
    MULTIPLEX = "multiplex"
    #: Many exchanges in flight, replies come back in request order (Redis).
    PIPELINE = "pipeline"


class MatchResult(enum.Enum):
    """Answer of :meth:`Codec.match` for a connection's first bytes."""

    MATCH = "match"
    AGAIN = "again"
    FAIL = "fail"


MATCH = MatchResult.MATCH
AGAIN = MatchResult.AGAIN
FAIL = MatchResult.FAIL


class Role(enum.Enum):
    """Which end of a connection a codec state machine plays."""

    #: Sends requests, receives responses (the proxy's upstream side).
    CLIENT = "client"
    #: Receives requests, sends responses (the proxy's downstream side).
    SERVER = "server"


class Status(enum.Enum):
    """Protocol-neutral reasons for a reply the proxy makes itself.

    Each codec maps them to its native error in ``local_reply``; for HTTP
    they are 404, 503, 504, 429, 400 and 500.
    """

    NO_ROUTE = "no_route"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    BAD_REQUEST = "bad_request"
    INTERNAL = "internal"


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``next_event`` needs more bytes from ``receive_data`` before it can go on.
NEED_DATA: Any = _Sentinel("NEED_DATA")
#: ``next_event`` holds further input back until the current exchange is
#: answered (HTTP/1.1 pipelining: the next request waits for this response).
PAUSED: Any = _Sentinel("PAUSED")
#: The peer closed its side and every event before the close was returned.
CLOSED: Any = _Sentinel("CLOSED")


def _no_extensions() -> dict[str, Any]:
    return {}


class _NewDict:
    """Default of an event's ``extensions``: a new empty dict for each event.

    The events' ``__init__`` is written by hand, with this marker as the
    default: the one ``dataclass`` generates for ``default_factory`` costs a
    call more per event, and codecs make one or more events per message.
    ``dataclasses.fields()`` still reports the ``default_factory``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_NEW_DICT: Any = _NewDict()


@dataclass(slots=True, init=False)
class Headers:
    """The head of a request or response.

    ``fields`` are ``(name, value)`` byte pairs, names lower case, pseudo
    fields (``:method``...) first for HTTP-like protocols. ``end_stream``
    says no Data follows.

    A request that gets no reply at all (a Thrift ``oneway`` call) carries
    ``extensions["oneway"] = True`` (server role, on its only event): the
    multiplexed session writes it upstream and finishes the exchange at once,
    keeps nothing pending for it, and never answers it downstream, not even
    with a local reply.

    An upstream that announces it is going away (Dubbo's READONLY event, a
    heartbeat-like event of the client role) carries ``extensions["draining"]
    = True``: its connection takes no new exchanges and the endpoint is left
    out of balancing for its ejection time.
    """

    stream_id: int
    fields: list[tuple[bytes, bytes]]
    end_stream: bool = False
    extensions: dict[str, Any] = field(default_factory=_no_extensions)

    def __init__(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]],
        end_stream: bool = False,
        extensions: dict[str, Any] = _NEW_DICT,
    ) -> None:
        self.stream_id = stream_id
        self.fields = fields
        self.end_stream = end_stream
        self.extensions = {} if extensions is _NEW_DICT else extensions


@dataclass(slots=True, init=False)
class Data:
    """A piece of a message body; ``end_stream`` marks the last piece."""

    stream_id: int
    payload: bytes | bytearray | memoryview
    end_stream: bool = False
    extensions: dict[str, Any] = field(default_factory=_no_extensions)

    def __init__(
        self,
        stream_id: int,
        payload: bytes | bytearray | memoryview,
        end_stream: bool = False,
        extensions: dict[str, Any] = _NEW_DICT,
    ) -> None:
        self.stream_id = stream_id
        self.payload = payload
        self.end_stream = end_stream
        self.extensions = {} if extensions is _NEW_DICT else extensions


@dataclass(slots=True, init=False)
class Trailers:
    """Fields after the body; they always end the message."""

    stream_id: int
    fields: list[tuple[bytes, bytes]]
    extensions: dict[str, Any] = field(default_factory=_no_extensions)

    def __init__(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]],
        extensions: dict[str, Any] = _NEW_DICT,
    ) -> None:
        self.stream_id = stream_id
        self.fields = fields
        self.extensions = {} if extensions is _NEW_DICT else extensions

    @property
    def end_stream(self) -> bool:
        return True


@dataclass(slots=True, init=False)
class Reset:
    """One exchange was abandoned (HTTP/2 RST_STREAM, or a codec's equivalent)."""

    stream_id: int
    error_code: int = 0
    extensions: dict[str, Any] = field(default_factory=_no_extensions)

    def __init__(
        self, stream_id: int, error_code: int = 0, extensions: dict[str, Any] = _NEW_DICT
    ) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.extensions = {} if extensions is _NEW_DICT else extensions

    @property
    def end_stream(self) -> bool:
        return True


Event = Headers | Data | Trailers | Reset
#: What ``next_event`` returns: an event or one of the sentinels.
NextEvent = Headers | Data | Trailers | Reset | Any
#: What ``send`` returns: one bytes-like, or a list of them so that large
#: bodies pass through without being copied into one buffer.
Buffers = bytes | bytearray | memoryview | list[bytes | bytearray | memoryview]


class ProtocolError(Exception):
    """Base of every error a codec raises."""


class LocalProtocolError(ProtocolError):
    """We misused the codec (an event out of order, a missing field)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes the protocol does not allow.

    ``reply`` is what to send back before closing, already encoded in the
    protocol (an HTTP 400/431, a Dubbo BAD_REQUEST response); ``None`` when
    the protocol has no way to say it and the connection is just closed.
    """

    def __init__(self, message: str, reply: bytes | None = None) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Per-connection limits and settings handed to ``Codec.connection``.

    Limits are enforced before bytes are buffered: a header block or frame
    larger than the limit raises :class:`RemoteProtocolError` as soon as the
    codec can tell, never after holding it whole.
    """

    max_header_size: int = 64 * 1024
    max_frame_size: int = 16 * 1024 * 1024
    #: Codec-specific settings from the listener or cluster config.
    extra: dict[str, Any] = field(default_factory=_no_extensions)


# Routing keys live in mesh/_keys.py (they refer to Headers only for typing);
# mesh.codec stays the one public surface.
from mesh._keys import HeaderKeys, RequestKeys  # noqa: E402


@runtime_checkable
class CodecConnection(Protocol):
    """The state machine of one connection in one role.

    Feed bytes with ``receive_data`` (``b""`` means the peer closed), pull
    events with ``next_event`` until it returns ``NEED_DATA``, ``PAUSED`` or
    ``CLOSED``, and encode outgoing events with ``send``. Any bytes fed in
    yield events or raise :class:`RemoteProtocolError`, never another
    exception.
    """

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the peer; ``b""`` marks end of input."""

    def next_event(self) -> NextEvent:
        """The next event, or NEED_DATA / PAUSED / CLOSED.

        Raises RemoteProtocolError on bytes the protocol forbids.
        """

    def send(self, event: Event) -> Buffers:
        """Encode one outgoing event. Raises LocalProtocolError on misuse."""

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        """Events answering ``request`` with the native error for ``status``.

        Server role only. The events go through ``send`` like any other;
        the client side of the same codec decodes them to that status.
        """

    def is_heartbeat(self, event: Event) -> bool:
        """True for a keep-alive probe that the proxy answers itself."""

    def heartbeat_reply(self, event: Event) -> list[Event]:
        """The events that answer a heartbeat, byte-exact for the protocol."""

    @property
    def should_close(self) -> bool:
        """True once the protocol requires closing after the current output."""

    # Optional, for codecs with connection-level output and flow control (HTTP/2):
    #
    #     a heartbeat event with extensions["control"] = True: bytes the codec owes its
    #     peer outside any exchange (SETTINGS and PING acks, DATA a WINDOW_UPDATE released).
    #     Sessions answer it like any heartbeat; the conformance suite sends it and keeps
    #     its bytes for the connection's next output.
    #
    #     flow_controlled = True, and
    #     def acknowledge(self, stream_id: int, size: int) -> Buffers
    #
    # Received Data carries extensions["flow"] (its flow-controlled size); the proxy calls
    # acknowledge() once that data went on (WINDOW_UPDATE bytes come back), and sets
    # extensions["consumed"] on Data it hands to a codec: a flow_controlled codec calls it
    # with each part it frames; for other codecs the proxy calls it after send().
    # A Codec may set numbers_streams = True when its client role assigns wire stream ids
    # itself (HTTP/2), mapping the proxy's ids to them.
    #
    # Optional, not part of the Protocol (looked up with getattr by the
    # multiplexed session, server role only):
    #
    #     def local_answer(self, request: Headers) -> list[Event] | None
    #
    # The reply events when the proxy answers ``request`` itself without
    # routing it (Redis PING, HELLO, arity errors, refused commands), else
    # None. Checked before routing; the events keep the request's place in a
    # PIPELINE reply order.
    #
    # Optional plain lane of a PIPELINE codec (mesh/proxy/plain.py): the server role's
    # ``next_plain() -> (method, key, raw) | None`` consumes the next request when only
    # the shard of ``key`` decides where it goes and ``raw`` goes upstream unchanged
    # (Redis GET, SET...), else leaves it for ``next_event`` (raising as it would); the
    # client role's ``send_plain(stream_id, raw) -> Buffers`` sends it. Replies come back
    # as usual; failures get ``local_reply`` of a bare Headers(0, [], True, {}).


@runtime_checkable
class Codec(Protocol):
    """A protocol plugin, registered in the ``mesh.codecs`` entry-point group."""

    #: Short unique name used in config (``protocol: http1``).
    name: str
    #: How requests share upstream connections.
    pool_mode: PoolMode

    def match(self, prefix: bytes) -> MatchResult:
        """Do a connection's first bytes belong to this protocol?

        Pure and cheap: MATCH when sure, AGAIN when more bytes could decide,
        FAIL when they cannot be this protocol.
        """

    def connection(self, role: Role, options: ConnectionOptions) -> CodecConnection:
        """A new per-connection state machine for ``role``."""

    def request_keys(self, headers: Headers) -> RequestKeys:
        """Lazily computed routing keys of a request head."""
