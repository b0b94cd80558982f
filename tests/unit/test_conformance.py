"""The fake codecs the core is tested with pass the conformance suite.

Their vectors are written here rather than recorded: the fakes have no real
peers. The suite runs through the pytest helper vendors use, one test per
check, so this file is also that helper's test.
"""

from __future__ import annotations

from mesh.conformance import Expect, Vector
from mesh.conformance.pytest import codec_conformance_tests

from mesh.codec import Role
from tests.unit import fakeline, fakemux


def _exchange(request: bytes, response: bytes, keys: dict[str, str | None],
              events: list[dict[str, object]] | None = None) -> list[Vector]:
    half = len(request) // 2
    return [
        Vector("hello.request", "request", (request[:half], request[half:]),
               expect=Expect(events, keys), exact=True),
        Vector("hello.response", "response", (response,), Role.CLIENT, request="hello.request",
               exact=True),
    ]


LINE_VECTORS = _exchange(
    b"LINE users get hello world\r\n", b"200 hi there\r\n", {"service": "users", "method": "get"},
    [{"type": "headers", "stream_id": 1, "fields": [(b"payload", b"hello world")], "end_stream": True}],
)
MUX_VECTORS = [
    *_exchange(b"MUX 7 users hello\r\n", b"7 200 ok\r\n", {"service": "users"}),
    Vector("big-id.request", "request", (b"MUX 4294967301 orders list_all\r\n",),
           expect=Expect(stream_ids=[4294967301], keys={"service": "orders"})),
]
PIPE_VECTORS = _exchange(b"PIPE users hello\r\n", b"200 ok\r\n", {"service": "users"})

test_fakeline = codec_conformance_tests(fakeline.codec, LINE_VECTORS, fuzz_examples=150)
test_mux = codec_conformance_tests(fakemux.mux, MUX_VECTORS, fuzz_examples=150)
test_pipe = codec_conformance_tests(fakemux.pipe, PIPE_VECTORS, fuzz_examples=150)
