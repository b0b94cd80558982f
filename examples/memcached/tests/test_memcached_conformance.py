"""The conformance suite on the installed plugin, as a vendor runs it from their own tests.

``codec_conformance_tests("memcached")`` resolves the codec through the
``mesh.codecs`` entry point (so this also proves the distribution registers
it) and finds the vectors shipped in ``rpcmesh_memcached/vectors/``.
"""

from __future__ import annotations

from pathlib import Path

from mesh.codec import NEED_DATA, ConnectionOptions, Headers, Role, Status
from mesh.conformance import check_codec
from mesh.conformance.pytest import codec_conformance_tests
from mesh.conformance.vectors import for_codec, load
from mesh.registry import load_registry

import rpcmesh_memcached

VECTORS = Path(__file__).parent / "vectors"

test_conformance = codec_conformance_tests("memcached")

# noreply commands get no reply from memcached, and none from the proxy either (see the
# server role's docstring), so the suite's local_reply check, which wants a decodable reply
# to every request, cannot hold for them; every other check runs on them here.
test_conformance_noreply = codec_conformance_tests(
    "memcached", vectors=VECTORS / "noreply.json", skip=("local_reply",))


def test_the_entry_point_names_the_package_codec() -> None:
    plugin = load_registry().codecs["memcached"]
    assert plugin.obj is rpcmesh_memcached.codec
    assert plugin.distribution.startswith("rpcmesh-memcached ")  # "name version"


def test_vectors_ship_inside_the_package() -> None:
    names = {v.name for v in for_codec(rpcmesh_memcached.codec)}
    assert {"store.request", "read.response", "multiget.request", "too-large.response"} <= names


def test_a_local_reply_to_a_noreply_command_writes_nothing() -> None:
    """memcached is silent after noreply, even on errors; so is the proxy's own reply."""
    (vector,) = load(VECTORS / "noreply.json")
    server = rpcmesh_memcached.codec.connection(Role.SERVER, ConnectionOptions())
    server.receive_data(vector.data)
    requests = []
    while (event := server.next_event()) is not NEED_DATA:
        if isinstance(event, Headers):
            requests.append(event)
    assert [r.extensions.get("noreply", False) for r in requests] == [True] * 7 + [False]
    for request in requests:
        (reply,) = server.local_reply(request, Status.UNAVAILABLE, "UNAVAILABLE: shard down")
        wrote = server.send(reply)
        assert (wrote == b"") is request.extensions.get("noreply", False)
    assert wrote == [b"SERVER_ERROR UNAVAILABLE: shard down\r\n"]  # the final get is answered


def test_the_library_entry_and_the_entry_point_name_give_one_report() -> None:
    only = ["vectors.decode", "encode.passthrough", "local_reply"]
    by_name = check_codec("memcached", only=only)
    by_object = check_codec(rpcmesh_memcached.codec, only=only)
    assert by_name.passed and by_object.passed, by_object.text()
    assert [r.reason for r in by_name.results] == [r.reason for r in by_object.results]

