"""Record HTTP/2 conformance vectors from real peers, through mesh.conformance.capture.Recorder.

    python scripts/record_http2_vectors.py [--out codecs/http2/vectors]

- curl --http2-prior-knowledge and h2load (nghttp2) as clients, hypercorn as the server
  (tests/peers/grpc_echo/h2c_server.py: h2c with prior knowledge) -> OUT/curl-h2load-hypercorn
- a grpcio client against the grpcio server of tests/peers/grpc_echo/server.py
  (service mesh.test.Echo, bytes messages) -> OUT/grpcio.

Each scenario is one connection: the request vector is what the client wrote, the response
vector what the server answered, read by read. Both files are written as .msgpack and the
readable .json twin (docs/plugins.md).

What each vector must decode to comes from the ``h2`` library driven directly (an h2 server
connection reads the client's bytes, an h2 client connection that sent the same requests
reads the server's), mapped to mesh events as mesh.codec and docs/http2.md describe them:
Headers with the fields in the order they were on the wire (pseudo fields first, as HTTP/2
requires), Data (adjacent pieces of one stream merged), Trailers, Reset; nothing for
connection-level frames (SETTINGS, PING, WINDOW_UPDATE, GOAWAY). Stream ids are the HTTP/2
stream ids, which are also the request ids the client role is given when the suite replays
the request. Routing keys follow the gRPC HTTP/2 spec (``/package.Service/Method``) and the
HTTP rules (host without port, path without query), worked out here from the fields.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "tests" / "peers" / "grpc_echo"

from mesh.conformance.capture import Recorder, Recording, exchange_vectors  # noqa: E402
from mesh.conformance.vectors import Expect, Vector, dump, summarize  # noqa: E402

from mesh.codec import Data, Event, Headers, Reset, Trailers  # noqa: E402

Fields = list[tuple[bytes, bytes]]

#: (name, curl arguments after the base URL is substituted, note)
CURL: list[tuple[str, list[str], str]] = [
    ("curl-get-hello", ["{u}/hello"], "plain GET"),
    ("curl-get-query", ["-A", "conformance/1.0", "-H", "X-Trace: abc123", "-H", "Cookie: a=1",
                        "-H", "Cookie: b=2", "{u}/hello?lang=en&x=1"],
     "query string, custom and repeated fields"),
    ("curl-head-hello", ["-I", "{u}/hello"], "HEAD: content-length but no DATA"),
    ("curl-get-404", ["{u}/status/404"], "a 404 from the upstream"),
    ("curl-post-echo", ["-d", "name=mesh&check=conformance", "{u}/echo"], "form POST, echoed"),
    ("curl-post-empty", ["-X", "POST", "-H", "Content-Length: 0", "{u}/echo"],
     "POST without a body"),
    ("curl-post-large", ["--data-binary", "@{large}", "{u}/echo"],
     "a 20000-byte body each way, in two DATA frames"),
]

#: (name, h2load arguments after the base URL is substituted, note)
H2LOAD: list[tuple[str, list[str], str]] = [
    ("h2load-hello-m4", ["-n", "8", "-c", "1", "-m", "4", "{u}/hello"],
     "8 GETs on one connection, 4 streams at a time"),
    ("h2load-echo-m3", ["-n", "3", "-c", "1", "-m", "3", "-d", "{body}", "{u}/echo"],
     "3 concurrent POSTs with a body"),
]


# -- peers ---------------------------------------------------------------------------


def start_peer(script: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """A peer of tests/peers/grpc_echo: started, READY <port> read from its stdout."""
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", *args],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        sys.exit(f"{script.name} did not start: {line!r}")
    return proc, int(line.split()[1])


def stop_peer(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tool_version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return " ".join(out.split()[:2])


def python_version(module: str) -> str:
    from importlib.metadata import version

    return f"{module} {version(module)}"


# -- the oracle: h2 driven directly --------------------------------------------------


def _h2(client: bool) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(client_side=client, header_encoding=None,
                                       validate_inbound_headers=True,
                                       normalize_inbound_headers=False)
    conn = h2.connection.H2Connection(config)
    # as large as anything a real peer may have been allowed to send
    conn.local_settings = h2.settings.Settings(client=client, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1,
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**20,
        h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1,
    })
    conn.initiate_connection()
    conn.increment_flow_control_window(2**31 - 1 - 65535)
    return conn


def _mesh_events(h2_events: list[Any]) -> list[Event]:
    out: list[Event] = []
    for ev in h2_events:
        if isinstance(ev, h2.events.RequestReceived | h2.events.ResponseReceived):
            out.append(Headers(ev.stream_id, [(bytes(n), bytes(v)) for n, v in ev.headers],
                               ev.stream_ended is not None))
        elif isinstance(ev, h2.events.DataReceived):
            out.append(Data(ev.stream_id, bytes(ev.data), ev.stream_ended is not None))
        elif isinstance(ev, h2.events.TrailersReceived):
            out.append(Trailers(ev.stream_id, [(bytes(n), bytes(v)) for n, v in ev.headers]))
        elif isinstance(ev, h2.events.StreamReset):
            out.append(Reset(ev.stream_id, int(ev.error_code)))
    return out


def _stream_ids(events: list[Event]) -> list[int]:
    seen: list[int] = []
    for event in events:
        if event.stream_id not in seen:
            seen.append(event.stream_id)
    return seen


def _value(fields: Fields, name: bytes) -> str | None:
    values = [v for n, v in fields if n == name]
    return b",".join(values).decode("latin-1") if values else None


def _keys(fields: Fields) -> dict[str, str | None]:
    """Routing keys by the gRPC HTTP/2 spec and the HTTP rules, from the fields alone."""
    authority = _value(fields, b":authority") or _value(fields, b"host") or ""
    host = authority.rpartition(":")[0] if ":" in authority else authority
    path = _value(fields, b":path") or ""
    plain_path = path.partition("?")[0]
    keys: dict[str, str | None] = {"host": host, "path": plain_path}
    if (_value(fields, b"content-type") or "").startswith("application/grpc"):
        service, _, method = path[1:].partition("/")
        keys.update(service=service, method=method)
    else:
        keys.update(service=host, method=_value(fields, b":method"))
    return keys


def request_expect(data: bytes) -> tuple[Expect, list[Headers]]:
    server = _h2(client=False)
    events = _mesh_events(server.receive_data(data))
    heads = [e for e in events if isinstance(e, Headers)]
    if not heads:
        raise ValueError("no request in the recorded client bytes")
    return Expect(summarize(events), _keys(heads[0].fields), _stream_ids(events)), heads


def response_expect(requests: list[Headers], data: bytes) -> Expect:
    client = _h2(client=True)
    for head in requests:
        # the request as it went out; its body is irrelevant to reading the response
        client.send_headers(head.stream_id, head.fields, end_stream=True)
    client.data_to_send()
    events = _mesh_events(client.receive_data(data))
    return Expect(summarize(events), None, _stream_ids(events))


def vectors_for(name: str, recording: Recording, note: str) -> list[Vector]:
    plain = exchange_vectors(name, recording, note=note)
    expect_req, heads = request_expect(plain[0].data)
    expect_resp = response_expect(heads, plain[1].data)
    return exchange_vectors(name, recording, request=expect_req, response=expect_resp, note=note)


# -- scenarios -----------------------------------------------------------------------


class ClosingRecorder(Recorder):
    """A Recorder that also ends the upstream side once the client has closed and gone quiet.

    hypercorn keeps an HTTP/2 connection whose client half-closed until its keep-alive
    timeout; a real client (curl, h2load) has exited by then, so nothing more can happen on
    the connection: what the server wrote within GRACE seconds is the whole response.
    """

    GRACE = 0.3

    def _pump(self, src: socket.socket, dst: socket.socket, chunks: list[bytes], side: str,
              recording: Recording) -> None:
        super()._pump(src, dst, chunks, side, recording)
        if side == "client" and not recording.done.is_set():
            time.sleep(self.GRACE)
            try:
                dst.shutdown(socket.SHUT_RDWR)  # the upstream's pump sees EOF and closes both
            except OSError:
                pass


def run_tool(argv: list[str], **values: Path) -> Callable[[str], None]:
    """Run ``argv`` against a base URL ({u}); other {names} from ``values``."""

    def run(base: str) -> None:
        subprocess.run([a.format(u=base, **values) for a in argv], check=True, timeout=20,
                       stdout=subprocess.DEVNULL)

    return run


def record_one(recorder: Recorder, count: int, run: Callable[[str], None]) -> Recording:
    run(f"http://127.0.0.1:{recorder.port}")
    return recorder.wait(count + 1)[count]


def capture_http(tmp: Path) -> list[Vector]:
    proc, port = start_peer(PEERS / "h2c_server.py")
    body = tmp / "body.txt"
    body.write_bytes(b"h2load body " * 40)
    large = tmp / "large.txt"
    large.write_bytes(b"".join(b"line %05d of a larger body\n" % i for i in range(741))[:20000])
    curl, h2load = tool_version(["curl", "--version"]), tool_version(["h2load", "--version"])
    server = python_version("hypercorn")
    vectors: list[Vector] = []
    try:
        with ClosingRecorder(port) as recorder:
            count = 0
            for name, args, note in CURL:
                argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", "10",
                        "--http2-prior-knowledge", *args]
                rec = record_one(recorder, count, run_tool(argv, large=large))
                count += 1
                shown = " ".join(a.format(u="http://127.0.0.1:PORT", large="LARGE") for a in args)
                vectors += vectors_for(name, rec, f"{curl} --http2-prior-knowledge {shown} -> "
                                                  f"{server}: {note}")
            for name, args, note in H2LOAD:
                rec = record_one(recorder, count, run_tool(["h2load", *args], body=body))
                count += 1
                shown = " ".join(a.format(u="http://127.0.0.1:PORT", body="BODY") for a in args)
                vectors += vectors_for(name, rec, f"{h2load} {shown} -> {server}: {note}")
    finally:
        stop_peer(proc)
    return vectors


def _grpc_scenarios() -> list[tuple[str, Callable[[Any], None], str]]:
    import grpc

    def unary(channel: Any) -> None:
        call = channel.unary_unary("/mesh.test.Echo/Unary")
        call(b"hello grpc", timeout=5, metadata=[("x-route", "blue"), ("x-bin", b"\x00\x01")])

    def fail(channel: Any) -> None:
        call = channel.unary_unary("/mesh.test.Echo/Fail")
        try:
            call(b'{"code": "NOT_FOUND", "message": "no such thing: caf\\u00e9 100%"}', timeout=5)
        except grpc.RpcError:
            pass

    def unimplemented(channel: Any) -> None:
        try:
            channel.unary_unary("/mesh.test.Missing/Nothing")(b"", timeout=5)
        except grpc.RpcError:
            pass

    def server_stream(channel: Any) -> None:
        call = channel.unary_stream("/mesh.test.Echo/ServerStream")
        list(call(b'{"count": 3, "size": 20}', timeout=5))

    def client_stream(channel: Any) -> None:
        call = channel.stream_unary("/mesh.test.Echo/ClientStream")
        call(iter([b"one", b"two", b"three"]), timeout=5)

    return [
        ("grpc-unary", unary, "unary call with metadata (one -bin) and a 5 s deadline"),
        ("grpc-fail", fail, "NOT_FOUND from the handler, with trailing metadata"),
        ("grpc-unimplemented", unimplemented, "UNIMPLEMENTED from grpcio itself"),
        ("grpc-server-stream", server_stream, "server streaming, 3 messages"),
        ("grpc-client-stream", client_stream, "client streaming, 3 messages"),
    ]


def grpc_server() -> tuple[Any, int]:
    """The mesh.test.Echo handlers of tests/peers/grpc_echo/server.py, served in this process.

    Started here rather than as that script so that true binary metadata (SETTINGS 0xfe03)
    can be turned off: grpc-core sends raw -bin values ("\\x00" + bytes, which RFC 9113
    forbids in field values) to any peer that offers the extension, and a grpcio server
    offers it by default. rpcmesh never offers it, so what a client sends to rpcmesh is what
    it sends to a server without it: base64 -bin values.
    """
    import importlib.util
    from concurrent import futures

    import grpc

    spec = importlib.util.spec_from_file_location("grpc_echo_server", PEERS / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[*module.SERVER_OPTIONS, ("grpc.http2.true_binary", 0)])
    server.add_generic_rpc_handlers((module.handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def capture_grpc() -> list[Vector]:
    import grpc

    server, port = grpc_server()
    version = python_version("grpcio")
    vectors: list[Vector] = []
    try:
        with Recorder(port) as recorder:
            for count, (name, scenario, note) in enumerate(_grpc_scenarios()):
                options = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0),
                           ("grpc.http2.true_binary", 0)]
                channel = grpc.insecure_channel(f"127.0.0.1:{recorder.port}", options=options)
                scenario(channel)
                channel.close()
                rec = recorder.wait(count + 1, timeout=20)[count]
                vectors += vectors_for(name, rec, f"{version} client -> {version} server: {note}")
    finally:
        server.stop(grace=0.5).wait(timeout=2)
    return vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "codecs" / "http2" / "vectors"),
                        help="folder for curl-h2load-hypercorn.* and grpcio.*")
    args = parser.parse_args()
    for tool in ("curl", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install curl nghttp2-client)")
    os.environ.pop("http_proxy", None)
    os.environ.pop("HTTP_PROXY", None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mesh-h2-capture-") as tmp:
        http = capture_http(Path(tmp))
    grpc_vectors = capture_grpc()
    for stem, vectors in (("curl-h2load-hypercorn", http), ("grpcio", grpc_vectors)):
        for suffix in (".msgpack", ".json"):
            dump(vectors, out / f"{stem}{suffix}", codec="http2")
        print(f"{len(vectors)} vectors -> {out / stem}.msgpack, .json")
    print(f"recorded in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
