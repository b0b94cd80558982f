"""Record HTTP/1.1 conformance vectors from real peers: curl against Debian nginx.

    python scripts/capture_http1_vectors.py [--out codecs/http1/vectors/curl-nginx]

Starts nginx on a free 127.0.0.1 port (one process, everything under a
temporary directory), puts mesh.conformance.capture.Recorder in front of it,
runs one curl per scenario through the recorder and writes the exchanges as
OUT.msgpack and its JSON twin OUT.json.

What each vector must decode to is worked out with h11, a parser
independent of the codec under test, mapped to mesh events the way
mesh.codec documents for HTTP-like codecs: pseudo fields first, names lower
case, hop-by-hop fields (RFC 9110 7.6.1) dropped, ``Expect: 100-continue``
answered by the proxy and not forwarded (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h11
from mesh.conformance.capture import Recorder, Recording, exchange_vectors
from mesh.conformance.vectors import Expect, Summary, Vector, dump

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {d}/www;
        location = /hello {{ default_type text/plain; return 200 "hello world!\\n"; }}
        location = /post {{ default_type text/plain; return 201 "created\\n"; }}
        location = /status/204 {{ return 204; }}
        location = /cookies {{
            default_type text/plain;
            add_header Set-Cookie "a=1; Path=/";
            add_header Set-Cookie "b=2; Path=/";
            return 200 "two cookies\\n";
        }}
        location = /chunked {{
            default_type text/plain;
            alias {d}/www/chunked.txt;
            sub_filter 'foo' 'bar';
            sub_filter_once off;
            add_trailer X-Checksum "c0ffee";
        }}
        location /upload/ {{ dav_methods PUT; create_full_put_path on; }}
    }}
}}
"""

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
              b"te", b"trailer"}

#: (name, curl arguments after the URL base is substituted, stdin, note)
SCENARIOS: list[tuple[str, list[str], bytes | None, str]] = [
    ("get-hello", ["{u}/hello"], None, "plain GET, content-length response"),
    ("get-query", ["-A", "conformance/1.0", "-H", "X-Trace: abc123", "{u}/hello?lang=en&x=1"],
     None, "query string and custom headers"),
    ("head-hello", ["-I", "{u}/hello"], None, "HEAD: content-length but no body"),
    ("get-404", ["{u}/missing"], None, "nginx's own 404 page"),
    ("get-204", ["{u}/status/204"], None, "204: no body"),
    ("get-cookies", ["{u}/cookies"], None, "a repeated response field"),
    ("get-chunked", ["{u}/chunked"], None, "chunked response with a trailer"),
    ("post-form", ["-d", "name=mesh&check=conformance", "{u}/post"], None, "form POST"),
    ("put-chunked", ["-T", "-", "{u}/upload/chunked.txt"], b"line one\nline two\nline three\n",
     "chunked request body (curl -T -)"),
    ("put-expect", ["-H", "Expect: 100-continue", "-T", "-", "{u}/upload/expect.txt"],
     b"x" * 1500, "Expect: 100-continue, nginx answers 100 then 201"),
    ("get-http10", ["-0", "{u}/hello"], None, "HTTP/1.0 request; nginx closes after the response"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_nginx(prefix: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin") or sys.exit("nginx not found")
    (prefix / "www").mkdir()
    (prefix / "tmp").mkdir()
    (prefix / "www" / "chunked.txt").write_text("line 1 foo\nline 2 foo\nline 3 foo\n")
    port = free_port()
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(d=prefix, port=port))
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                             "-e", str(prefix / "error.log")], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"nginx did not start; see {prefix / 'error.log'}")


def peer_versions() -> str:
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin") or "nginx"
    server = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=True)
    return f"{' '.join(curl.stdout.split()[:2])} -> {server.stderr.strip().rpartition(': ')[2]}"


def run_curl(args: list[str], base: str, stdin: bytes | None) -> None:
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", "10",
            *[a.format(u=base) for a in args]]
    subprocess.run(argv, input=stdin or b"", check=True, timeout=20)


# -- expectations from h11 ---------------------------------------------------------


def _plain_fields(headers: Any, drop: set[bytes]) -> list[tuple[bytes, bytes]]:
    named = {t.strip().lower() for n, v in headers for t in v.split(b",") if n == b"connection"}
    skip = HOP_BY_HOP | named | drop
    return [(bytes(n), bytes(v)) for n, v in headers if n not in skip]


def _body_events(events: list[Any], summaries: list[Summary]) -> None:
    body = b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))
    end = next(e for e in events if isinstance(e, h11.EndOfMessage))
    trailers = [(bytes(n), bytes(v)) for n, v in end.headers]
    if body:
        summaries.append({"type": "data", "stream_id": 1, "payload": body, "end_stream": not trailers})
    if trailers:
        summaries.append({"type": "trailers", "stream_id": 1, "fields": trailers})
    elif not body:
        summaries[-1]["end_stream"] = True


def _h11_events(conn: h11.Connection, data: bytes, eof: bool) -> list[Any]:
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    events = []
    while (event := conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
        events.append(event)
        if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    return events


def request_expect(data: bytes) -> tuple[Expect, h11.Request]:
    events = _h11_events(h11.Connection(h11.SERVER), data, eof=False)
    req = events[0]
    headers = list(req.headers)
    host = next((v for n, v in headers if n == b"host"), b"")
    expect = {b"expect"} if (b"expect", b"100-continue") in headers else set()
    fields = [(b":method", bytes(req.method)), (b":scheme", b"http"), (b":authority", host),
              (b":path", bytes(req.target)), *_plain_fields(headers, {b"host"} | expect)]
    summaries: list[Summary] = [{"type": "headers", "stream_id": 1, "fields": fields, "end_stream": False}]
    _body_events(events, summaries)
    target = req.target.decode()
    keys = {"method": req.method.decode(), "host": host.decode().rpartition(":")[0],
            "path": target.partition("?")[0], "service": host.decode().rpartition(":")[0]}
    return Expect(summaries, keys, [1]), req


def response_expect(req: h11.Request, data: bytes, eof: bool) -> Expect:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=req.method, target=req.target, headers=[("Host", "x")]))
    events = _h11_events(conn, data, eof)
    summaries: list[Summary] = []
    for event in events:
        if isinstance(event, h11.InformationalResponse | h11.Response):
            fields = [(b":status", b"%d" % event.status_code), *_plain_fields(event.headers, set())]
            summaries.append({"type": "headers", "stream_id": 1, "fields": fields, "end_stream": False})
    _body_events(events, summaries)
    return Expect(summaries, None, [1])


def vectors_for(name: str, recording: Recording, note: str) -> list[Vector]:
    plain = exchange_vectors(name, recording, note=note)
    expect_req, req = request_expect(plain[0].data)
    expect_resp = response_expect(req, plain[1].data, plain[1].eof)
    return exchange_vectors(name, recording, request=expect_req, response=expect_resp, note=note)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="codecs/http1/vectors/curl-nginx",
                        help="path without suffix; .msgpack and .json are written")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mesh-capture-") as tmp:
        proc, port = start_nginx(Path(tmp))
        try:
            vectors = capture(port)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".msgpack", ".json"):
        dump(vectors, out.with_suffix(suffix), codec="http1")
    print(f"{len(vectors)} vectors -> {out}.msgpack, {out}.json")
    return 0


def capture(port: int) -> list[Vector]:
    vectors: list[Vector] = []
    versions = peer_versions()
    with Recorder(port) as recorder:
        base = f"http://127.0.0.1:{recorder.port}"
        for i, (name, args, stdin, note) in enumerate(SCENARIOS):
            run_curl(args, base, stdin)
            recording = recorder.wait(i + 1)[i]
            shown = " ".join(a.format(u="http://127.0.0.1:PORT") for a in args)
            vectors += vectors_for(name, recording, f"{versions}: curl {shown}: {note}")
    return vectors


if __name__ == "__main__":
    sys.exit(main())
