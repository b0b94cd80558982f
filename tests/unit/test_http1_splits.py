"""Every reader gives the same events whether its input comes whole, byte by byte or cut anywhere.

Outcomes are normalised (adjacent Data merged, a bare end-of-body marker folded
into its head, see test_http1_support.normalise): how the codec slices a body
depends on the reads, what the body is must not.
"""

from __future__ import annotations

import pytest

from mesh.codec import CLOSED
from tests.unit.test_http1_support import (
    REQUESTS,
    RESPONSES,
    bytewise,
    client,
    drain,
    random_split,
    run_client,
    run_server,
)

SEEDS = range(12)
SMALL_LIMIT = {"big-head": 1024}  # a head that must trip a 1 KiB limit


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_requests_decode_the_same_however_they_are_cut(name: str) -> None:
    data = REQUESTS[name]
    limit = SMALL_LIMIT.get(name, 65536)
    whole = run_server([data], max_header_size=limit)
    assert run_server(bytewise(data), max_header_size=limit) == whole
    for seed in SEEDS:
        assert run_server(random_split(data, seed), max_header_size=limit) == whole, seed


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_responses_decode_the_same_however_they_are_cut(name: str) -> None:
    exchanges = RESPONSES[name]
    limit = SMALL_LIMIT.get(name, 65536)
    whole = run_client(exchanges, max_header_size=limit)
    assert run_client(exchanges, bytewise, max_header_size=limit) == whole
    for seed in SEEDS:
        cut = run_client(exchanges, lambda b, s=seed: random_split(b, s), max_header_size=limit)
        assert cut == whole, seed


def test_any_bytes_like_input_is_accepted() -> None:
    data = REQUESTS["chunked-trailers"]
    whole = run_server([data])
    assert run_server([bytearray(data)]) == whole
    assert run_server([memoryview(data)]) == whole
    assert run_server([memoryview(bytearray(c)) for c in random_split(data, 3)]) == whole


@pytest.mark.parametrize("cut", [1, 5, 40, 66, 70])
def test_bytes_after_a_switch_are_trailing_data_wherever_the_read_ends(cut: int) -> None:
    (request, data), = RESPONSES["switching"]  # fmt: skip
    conn = client()
    conn.send(request)
    conn.receive_data(data[:cut])
    conn.receive_data(data[cut:])
    events, end = drain(conn)
    assert end is CLOSED
    assert [e.fields[0] for e in events] == [(b":status", b"101")]
    assert bytes(conn.trailing_data) == b"\x81\x02hi"
