"""The http2 codec against the conformance suite (``mesh conformance http2``), on the vectors
recorded from curl, h2load and hypercorn, and from a grpcio client and server
(scripts/record_http2_vectors.py -> codecs/http2/vectors/).

Three runs, the suite itself unchanged:

1. ``test_conformance``: the codec as shipped. Every check that feeds bytes fails before it
   looks at anything: ``next_event()`` returns the pending *control* event (our SETTINGS,
   acks) again and again until it is sent, and the suite's ``feed()`` only pulls events, so
   it runs out of its event budget. That is the codec's design (docs/http2.md), not
   something the suite can see past; each such check is a strict xfail.
2. ``test_conformance_sessionlike``: the same codec (lean engine) behind ``SessionLike``,
   which does with control events what every session does: sends them at once and keeps
   their bytes, in order, in front of the next ``send()`` output. What still fails is either
   a bug (xfail, reason given) or a check whose expectation HTTP/2 cannot meet by design.
3. ``test_conformance_h2_engine``: the same for ``engine: h2``, on the checks that differ
   between engines; its fields are also turned into plain tuples (h2 gives
   ``hpack.HeaderTuple``, which ``copy.deepcopy`` breaks: see test_http2_codec.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mesh.codecs.http2 import codec as http2
from mesh.conformance.pytest import codec_conformance_tests
from mesh.conformance.vectors import Vector, for_codec, load

from mesh.codec import ConnectionOptions, Event, Headers, MatchResult, Role, Status, Trailers

VECTORS_DIR = Path(__file__).parents[2] / "codecs" / "http2" / "vectors"

CONTROL_LOOP = ("next_event() returns the pending control event (Headers(0, [], "
                "extensions={'control': True})) on every call until send() takes its bytes; the "
                "suite's feed() never sends, so it exceeds its event budget on the first vector "
                "(design: control events, docs/http2.md)")

test_conformance = codec_conformance_tests("http2", xfail={
    name: CONTROL_LOOP for name in (
        "vectors.decode", "decode.splits", "encode.passthrough", "request_id.rewrite", "heartbeat",
        "local_reply", "limits.header", "limits.frame", "robustness.fuzz")})


def _flat(buffers: Any) -> bytes:
    return b"".join(bytes(b) for b in buffers) if isinstance(buffers, list) else bytes(buffers)


class _SessionLikeConnection:
    """A codec connection whose control events are sent as a session sends them."""

    def __init__(self, cc: Any, plain_fields: bool) -> None:
        self._cc = cc
        self._plain = plain_fields
        self._pending = bytearray()  # control output, written before what send() returns next

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._cc.receive_data(data)

    def next_event(self) -> Any:
        while True:
            event = self._cc.next_event()
            if type(event) is Headers and self._cc.is_heartbeat(event):
                self._pending += _flat(self._cc.send(event))
                continue
            if self._plain and type(event) in (Headers, Trailers):
                event.fields = [(bytes(n), bytes(v)) for n, v in event.fields]
            return event

    def send(self, event: Event) -> bytes:
        out = bytes(self._pending) + _flat(self._cc.send(event))
        self._pending.clear()
        return out

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        events: list[Event] = self._cc.local_reply(request, status, message)
        return events

    def is_heartbeat(self, event: Event) -> bool:
        return bool(self._cc.is_heartbeat(event))

    def heartbeat_reply(self, event: Event) -> list[Event]:
        events: list[Event] = self._cc.heartbeat_reply(event)
        return events

    @property
    def should_close(self) -> bool:
        return bool(self._cc.should_close)


class SessionLike:
    """The http2 codec with an engine chosen, its connections wrapped as above."""

    name = http2.name
    pool_mode = http2.pool_mode

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def match(self, prefix: bytes) -> MatchResult:
        return http2.match(prefix)

    def connection(self, role: Role, options: ConnectionOptions) -> _SessionLikeConnection:
        options = ConnectionOptions(options.max_header_size, options.max_frame_size,
                                    {**options.extra, "engine": self.engine})
        return _SessionLikeConnection(http2.connection(role, options), self.engine == "h2")

    def request_keys(self, headers: Headers) -> Any:
        return http2.request_keys(headers)


def _exchanges(*names: str) -> list[Vector]:
    """The shipped vectors of these exchanges (request and response), in file order."""
    return [v for v in for_codec(http2) if v.name.rpartition(".")[0] in names]


#: one exchange of each kind, to keep the runs short: all of them run in test_conformance
#: and with `mesh conformance http2`
SAMPLE = _exchanges("curl-get-hello", "curl-post-echo", "curl-head-hello", "h2load-hello-m4",
                    "grpc-unary", "grpc-fail")

REQUEST_IDS = ("the client role numbers streams itself (1, 3, 5... in the order requests are "
               "sent, RFC 9113 5.1.1) and maps the proxy's ids to them; a rewritten id never "
               "reaches the wire, which the check expects (design)")
FLOW_CONTROL = ("the encoder role never hears from the decoder (no SETTINGS, no WINDOW_UPDATE "
                "back), so it frames only the 65535 bytes of the peer's initial windows and holds "
                "the rest of the 64 KiB body, as HTTP/2 flow control requires (design)")
GRPC_STATUS_200 = ("a gRPC local reply is trailers-only with :status 200 and the code in "
                   "grpc-status (gRPC over HTTP/2 spec); the check wants the HTTP status of "
                   "mesh.codec.Status (404 for NO_ROUTE) in every :status (design)")

test_conformance_sessionlike = codec_conformance_tests(
    SessionLike("lean"), vectors=SAMPLE, fuzz_examples=30, xfail={
        "request_id.rewrite": REQUEST_IDS,
        "local_reply": GRPC_STATUS_200,
        "limits.frame": FLOW_CONTROL,
    })

test_conformance_h2_engine = codec_conformance_tests(
    SessionLike("h2"), vectors=SAMPLE, fuzz_examples=0,
    skip=("match.pure", "match.prefixes", "match.foreign", "decode.splits", "limits.header",
          "robustness.fuzz"),  # engine-independent, or slow on h2: covered by the runs above
    xfail={
        "encode.passthrough": ("bug: h2load sends GOAWAY right after its requests; h2 is CLOSED "
                               "from then on and send(Headers) of a response raises "
                               "LocalProtocolError (python-hyper/h2#1181)"),
        "request_id.rewrite": REQUEST_IDS,
        "local_reply": ("bug: local_reply() answers HEAD with a body; the h2 engine's client role "
                        "(like nghttp2) refuses the DATA (InvalidBodyLengthError), on "
                        "curl-head-hello before the gRPC vectors are reached"),
        "limits.frame": FLOW_CONTROL,
    })


def test_shipped_vectors_in_both_formats() -> None:
    """Each vectors file has its readable JSON twin with the same records."""
    for packed in sorted(VECTORS_DIR.glob("*.msgpack")):
        twin = packed.with_suffix(".json")
        assert twin.exists(), twin
        assert load(packed) == load(twin)
    names = {v.name for v in for_codec(http2)}
    assert {"curl-get-hello.request", "h2load-hello-m4.response", "grpc-unary.request"} <= names
    assert {v.name for v in SAMPLE} <= names and len(SAMPLE) == 12
