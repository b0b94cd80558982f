"""Record dubbo conformance vectors from real peers: the Node provider and both consumers.

    python scripts/capture_dubbo_vectors.py [--out codecs/dubbo/vectors/recorded]

Starts tests/peers/dubbo_node/provider.js (sofa-rpc-node + dubbo-remoting, hessian2) on a
free 127.0.0.1 port and runs the scenarios of scripts/capture_dubbo_frames.py, each with
sofa-rpc-node's consumer and PyPI dubbo-ssl-python's on a fresh connection, through
mesh.conformance.capture.Recorder; writes OUT.msgpack and OUT.json.

One request vector (what the consumer wrote, read by read) and one response vector (what the
provider answered) per scenario and consumer. The heartbeat scenario's connection carries a
call and a heartbeat probe: its frames are cut apart (by the 16-byte header), the call
exchange goes in as one pair and the probe as a ``heartbeat`` request vector. The provider's
heartbeat *response* is left out: the suite's ``heartbeat`` check wants every event the codec
takes for a heartbeat to be a probe it answers, and a heartbeat response is a heartbeat the
proxy swallows without answering (tests/unit/test_dubbo_codec.py covers it).

``expect`` does not come from the codec: stream ids, flags and status are read from the
frame headers with ``struct`` (one Headers per frame, ``end_stream``; responses carry the
status byte as the one field ``status``), routing keys from the calls we asked the consumer
to make (interface, method, version, attachments). Every vector is ``exact``: the codec
relays frames and only patches the request id.

Left out: arg_1mib and result_300k_chars (a 1 MiB and a 0.4 MiB frame would make the vector
files and the suite's sweeps large for no new framing case). Exchanges with a frame of 32 KiB
or more (arg_64kib_string_array, result_32767_chars) go to tests/unit/dubbo_vectors/large.json
instead of the shipped file: the suite's ``limits.header`` check takes any message its
``send`` encodes to 32 KiB or more for a head padded with its extra field, but a Dubbo frame
is one Headers event whose head is the fixed 16-byte header (the body is bounded by
max_frame_size, not max_header_size), so a big recorded frame fails that check without any
padding in it. tests/unit/test_dubbo_conformance.py runs them with ``limits.header`` xfailed.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import capture_dubbo_frames as frames_script  # noqa: E402
from mesh.conformance.capture import Recorder, Recording  # noqa: E402
from mesh.conformance.vectors import Expect, Vector, dump  # noqa: E402

from mesh.codec import Role  # noqa: E402
from tests.integration.dubbo_peers import (  # noqa: E402
    INTERFACE,
    node_peers_missing,
    python_consumer_missing,
    start_dubbo_provider,
)

HEADER = struct.Struct(">HBBqI")
SKIPPED = ("arg_1mib", "result_300k_chars")
LARGE = 32 * 1024  # mesh.conformance's limits.header padding (see the docstring)


def header(frame: bytes) -> tuple[int, int, int]:
    """(flags, status, request id) of one frame, read with struct."""
    _magic, flags, status, rid, _length = HEADER.unpack_from(frame)
    return flags, status, rid


def expected_events(frames: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for frame in frames:
        flags, status, rid = header(frame)
        fields = [] if flags & 0x80 else [[b"status", b"%d" % status]]
        events.append({"type": "headers", "stream_id": rid, "fields": fields, "end_stream": True})
    return events


def expect(frames: list[bytes], keys: dict[str, str | None] | None = None) -> Expect:
    events = expected_events(frames)
    ids: list[int] = []
    for event in events:
        if event["stream_id"] not in ids:
            ids.append(event["stream_id"])
    return Expect(events=events, keys=keys, stream_ids=ids)


def request_keys(scenario: Any, kind: str) -> dict[str, str | None]:
    calls = scenario.py_calls if kind == "python" and scenario.py_calls is not None else scenario.calls
    first = calls[0]
    keys: dict[str, str | None] = {"service": INTERFACE, "method": first.method,
                                   "version": scenario.version, "group": None}
    keys.update(first.attachments or {})
    return keys


def vectors_of(scenario: Any, kind: str, recording: Recording) -> list[Vector]:
    name = f"{scenario.name}-{kind}"
    note = (f"{kind} consumer -> sofa-rpc-node provider (dubbo-remoting, hessian2), scenario "
            f"{scenario.name!r} of scripts/capture_dubbo_frames.py")
    sent = frames_script.split_frames(b"".join(recording.client), f"{name} from the consumer")
    answered = frames_script.split_frames(b"".join(recording.server), f"{name} from the provider")
    keys = request_keys(scenario, kind)
    eof = recording.closed_first == "server"
    if not any(header(f)[0] & 0x20 for f in sent + answered):
        return [
            Vector(f"{name}.request", "request", tuple(recording.client), Role.SERVER,
                   expect(sent, keys), exact=True, note=note),
            Vector(f"{name}.response", "response", tuple(recording.server), Role.CLIENT,
                   expect(answered), exact=True, request=f"{name}.request", eof=eof, note=note),
        ]
    # the heartbeat scenario: a call and a probe share the connection; cut them apart
    note += " (frames cut apart by header: the connection also carried a heartbeat)"
    calls = [f for f in sent if not header(f)[0] & 0x20]
    replies = [f for f in answered if not header(f)[0] & 0x20]
    probes = [f for f in sent if header(f)[0] & 0x20]
    assert probes and calls and replies, name
    return [
        Vector(f"{name}.request", "request", tuple(calls), Role.SERVER, expect(calls, keys),
               exact=True, note=note),
        Vector(f"{name}.response", "response", tuple(replies), Role.CLIENT, expect(replies),
               exact=True, request=f"{name}.request", note=note),
        Vector(f"{name}.probe", "request", (probes[0],), Role.SERVER, expect(probes[:1]),
               exact=True, heartbeat=True, note=note + "; the consumer's heartbeat probe"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "codecs" / "dubbo" / "vectors" / "recorded"))
    parser.add_argument("--large", default=str(REPO / "tests" / "unit" / "dubbo_vectors" / "large.json"))
    args = parser.parse_args()
    for why in (node_peers_missing(), python_consumer_missing()):
        if why:
            print(f"capture_dubbo_vectors: {why}", file=sys.stderr)
            return 2
    vectors: list[Vector] = []
    large: list[Vector] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        provider = start_dubbo_provider(workdir, version="1.0.0")
        try:
            for scenario in frames_script.SCENARIOS:
                if scenario.name in SKIPPED:
                    continue
                for kind in scenario.kinds:
                    with Recorder(upstream_port=provider.port) as rec:
                        frames_script.run(scenario, kind, rec.port, workdir)
                        (recording,) = rec.wait(1, timeout=15)
                    pair = vectors_of(scenario, kind, recording)
                    big = any(len(f) >= LARGE for v in pair
                              for f in frames_script.split_frames(v.data, v.name))
                    (large if big else vectors).extend(pair)
        finally:
            provider.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    dump(vectors, args.out + ".msgpack", codec="dubbo")
    dump(vectors, args.out + ".json", codec="dubbo")
    Path(args.large).parent.mkdir(parents=True, exist_ok=True)
    dump(large, args.large, codec="dubbo")
    print(f"{len(vectors)} vectors -> {args.out}.msgpack/.json; {len(large)} -> {args.large}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
