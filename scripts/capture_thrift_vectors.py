"""Record Thrift vectors from real peers: Apache Thrift (thrift-compiler code) and thriftpy2
clients against an Apache Thrift server, through mesh.conformance.capture.Recorder.

One call per connection, in framed/buffered x binary/compact, old non-strict binary, THeader
(binary and compact, with headers) and TMultiplexedProtocol. ``expect`` comes from Apache
Thrift's own readers (TFramedTransport/THeaderTransport + TBinary/TCompactProtocol
readMessageBegin), never from the codec under test.

    python scripts/capture_thrift_vectors.py
        -> codecs/thrift/vectors/apache-thriftpy2.{msgpack,json}
           tests/unit/thrift_vectors/oneway.json (oneway calls: no response)
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "peers" / "thrift"))

import peers  # noqa: E402
from mesh.conformance.capture import Recorder, exchange_vectors  # noqa: E402
from mesh.conformance.vectors import Expect, Vector, dump  # noqa: E402
from thrift.protocol import TBinaryProtocol, TCompactProtocol  # noqa: E402
from thrift.transport import TTransport  # noqa: E402
from thrift.transport.THeaderTransport import THeaderTransport  # noqa: E402

TYPES = {1: b"call", 2: b"reply", 3: b"exception", 4: b"oneway"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oracle(data: bytes, transport: str, protocol: str) -> tuple[list[Any], dict[str, Any]]:
    """Expected events and keys of one message, read by Apache Thrift."""
    mem = TTransport.TMemoryBuffer(data)
    headers: list[list[bytes]] = []
    if transport == "header":
        trans: Any = THeaderTransport(mem, allowed_client_types=(0,))
        trans.readFrame(0)
        headers = [[k.lower() if isinstance(k, bytes) else k.lower().encode(),
                    v if isinstance(v, bytes) else v.encode()] for k, v in trans.get_headers().items()]
        protocol = "compact" if trans.protocol_id == 2 else "binary"
    elif transport == "framed":
        trans = TTransport.TFramedTransport(mem)
    else:
        trans = mem
    proto = (TCompactProtocol.TCompactProtocol(trans) if protocol == "compact"
             else TBinaryProtocol.TBinaryProtocol(trans, strictRead=False))
    name, mtype, seqid = proto.readMessageBegin()
    raw = name.encode()
    fields = [[b":method", raw], [b":type", TYPES[mtype]], *headers]
    event = {"type": "headers", "stream_id": seqid, "fields": fields, "end_stream": True}
    service, _, method = name.rpartition(":")
    return [event], {"service": service or None, "method": method}


def vectors_for(name: str, rec: Any, transport: str, protocol: str, note: str) -> list[Vector]:
    req_events, keys = oracle(b"".join(rec.client), transport, protocol)
    resp_events, _ = oracle(b"".join(rec.server), transport, protocol)
    pair = exchange_vectors(name, rec, request=Expect(events=req_events, keys=keys, stream_ids=[0]),
                            response=Expect(events=resp_events), note=note)
    return [Vector(v.name, v.direction, v.frames, v.role, v.expect, True, False, v.request, v.eof, v.note)
            for v in pair]


def main() -> None:
    out: list[Vector] = []
    oneway: list[Vector] = []
    tmp = Path(tempfile.mkdtemp(prefix="thrift-capture-"))
    gen = peers.generate_apache(tmp / "gen")
    servers: dict[tuple[str, str, bool], int] = {}

    def server(transport: str, protocol: str, multiplex: bool = False) -> int:
        key = (transport, protocol, multiplex)
        if key not in servers:
            port = free_port()
            peers.serve_in_thread(peers.apache_server(gen, transport, protocol, port, multiplex=multiplex))
            time.sleep(0.2)
            servers[key] = port
        return servers[key]

    def record(name: str, lib: str, transport: str, protocol: str, call: Any, *, multiplex: bool = False,
               strict: bool = True, headers: dict[str, str] | None = None) -> None:
        with Recorder(upstream_port=server(transport, protocol, multiplex)) as rec:
            if lib == "apache":
                client = peers.apache_client(gen, transport, protocol, rec.port, multiplex=multiplex,
                                             strict=strict)
                for key, value in (headers or {}).items():
                    client.header_proto.set_header(key.encode(), value.encode())
            else:
                client = peers.thriftpy2_client(transport, protocol, rec.port, multiplex=multiplex)
            try:
                call(client)
            except Exception as exc:  # declared and application exceptions are scenarios
                print(f"  {name}: {type(exc).__name__}")
            if name.startswith("oneway"):
                time.sleep(0.2)
            client.close()
            (recording,) = rec.wait(1)
        note = f"{lib} client -> Apache Thrift server, {transport}/{protocol}"
        if name.startswith("oneway"):
            events, keys = oracle(b"".join(recording.client), transport, protocol)
            oneway.append(Vector(f"{name}.request", "request", tuple(recording.client),
                                 expect=Expect(events=events, keys=keys), exact=True, note=note))
            return
        out.extend(vectors_for(name, recording, transport, protocol, note))

    for transport in ("framed", "buffered"):
        for protocol in ("binary", "compact"):
            tag = f"{transport}-{protocol}"
            record(f"apache-echo-{tag}", "apache", transport, protocol, lambda c: c.echo("hello"))
            record(f"apache-items-{tag}", "apache", transport, protocol, lambda c: c.items(2))
            record(f"apache-notfound-{tag}", "apache", transport, protocol, lambda c: c.find("missing"))
            record(f"apache-fail-{tag}", "apache", transport, protocol, lambda c: c.fail("boom"))
            record(f"thriftpy2-item-{tag}", "thriftpy2", transport, protocol,
                   lambda c: c.item(c.__class__ and _tp2_item()))
            record(f"thriftpy2-ping-{tag}", "thriftpy2", transport, protocol, lambda c: c.ping())
            record(f"apache-mux-{tag}", "apache", transport, protocol, lambda c: c.add(2, 3), multiplex=True)
            record(f"oneway-apache-{tag}", "apache", transport, protocol, lambda c: c.note("n"))
            record(f"oneway-thriftpy2-{tag}", "thriftpy2", transport, protocol, lambda c: c.note("n"))
    for transport in ("framed", "buffered"):
        record(f"apache-oldbinary-{transport}", "apache", transport, "binary", lambda c: c.add(1, 2),
               strict=False)
    for protocol in ("binary", "compact"):
        record(f"apache-theader-{protocol}", "apache", "header", protocol, lambda c: c.echo("hi"),
               headers={"X-Route": "blue", "tenant": "t1"})
        record(f"apache-theader-plain-{protocol}", "apache", "header", protocol, lambda c: c.color(2))
    dump(out, ROOT / "codecs/thrift/vectors/apache-thriftpy2.msgpack")
    dump(out, ROOT / "codecs/thrift/vectors/apache-thriftpy2.json")
    dump(oneway, ROOT / "tests/unit/thrift_vectors/oneway.json")
    print(f"{len(out)} vectors -> codecs/thrift/vectors/; {len(oneway)} oneway -> tests/unit/thrift_vectors/")


def _tp2_item() -> Any:
    mod = peers.thriftpy2_module()
    return mod.Item(id=7, name="seven", tags=["x"], color=mod.Color.BLUE, counts={"k": 1})


if __name__ == "__main__":
    main()
