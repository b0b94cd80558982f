"""Record the memcached codec's conformance vectors from real peers: pymemcache against Debian memcached.

    python examples/memcached/scripts/capture_vectors.py

Starts two memcached processes on free 127.0.0.1 ports (a default one, and
one with a 1 KiB item limit for a real SERVER_ERROR), puts
mesh.conformance.capture.Recorder in front of them, runs pymemcache through
the recorder once per scenario (each scenario is one connection) and writes:

- ``rpcmesh_memcached/vectors/pymemcache-memcached.{msgpack,json}``: what the
  package ships and ``mesh conformance memcached`` runs on;
- ``tests/vectors/noreply.json``: noreply commands, request vectors only
  (memcached writes nothing back for them; the suite's local_reply check
  assumes every request is answered, so they are checked by the tests);
- ``tests/vectors/multiget-direct.json``: a multi-key get and what memcached
  itself answers to it, which the server role's joined reply must equal.

What each vector must decode to is worked out here from protocol.txt by a
small whole-buffer parser that shares no code with the codec, and checked
against what pymemcache returned. Two shapes of connection keep the
suite's body-size check meaningful: a connection that carries a data block
starts with one (writers start with a storage command, readers with a hit).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymemcache  # type: ignore[import-untyped]
from mesh.codec import Role
from mesh.conformance.capture import Recorder, Recording, exchange_vectors
from mesh.conformance.vectors import Expect, Summary, Vector, dump
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheClientError,
    MemcacheServerError,
)

HERE = Path(__file__).resolve().parent.parent
BIG = 32 * 1024
#: Printable, so the JSON twin stays readable; binary bytes ride in the small 'blob' value.
BIG_VALUE = (b"0123456789abcdef" * 4 + b"\r\n") * (BIG // 66) + b"!" * (BIG % 66)
BLOB = bytes(range(256))

# -- the protocol, independently of the codec (protocol.txt) -----------------------

STORAGE = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}
ARGS = {b"delete": [b"key", b"time"], b"incr": [b"key", b"value"], b"decr": [b"key", b"value"],
        b"touch": [b"key", b"exptime"], b"version": [], b"flush_all": [b"delay"]}
ERRORS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


def _head(sid: int, fields: list[tuple[bytes, bytes]], end: bool) -> Summary:
    return {"type": "headers", "stream_id": sid, "fields": fields, "end_stream": end}


def parse_commands(data: bytes) -> tuple[list[Summary], list[bytes], bool]:
    """Expected request events, the command of each request id (gets split by key), and
    whether re-encoding the events gives these very bytes (not when noreply or quit is
    dropped, a multi-key get split, or spaces doubled)."""
    events: list[Summary] = []
    commands: list[bytes] = []
    exact = True
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        line, pos = data[pos:end], end + 2
        cmd, *args = line.split()
        exact = exact and line == b" ".join([cmd, *args])
        if cmd == b"quit":
            return events, commands, False
        if args and args[-1] == b"noreply" and cmd not in (b"get", b"gets"):
            args.pop()
            exact = False
        if cmd in (b"get", b"gets"):
            exact = exact and len(args) == 1
            requests = [[(b"command", cmd), (b"key", key)] for key in args]
        elif cmd == b"stats":
            requests = [[(b"command", cmd), *([(b"args", b" ".join(args))] if args else [])]]
        elif cmd in STORAGE:
            names = [b"key", b"flags", b"exptime", b"bytes"] + ([b"cas"] if cmd == b"cas" else [])
            size = int(args[3])
            assert data[pos + size : pos + size + 2] == b"\r\n"
            commands.append(cmd)
            events.append(_head(len(commands), [(b"command", cmd), *zip(names, args, strict=False)], False))
            events.append({"type": "data", "stream_id": len(commands), "payload": data[pos : pos + size],
                           "end_stream": True})
            pos += size + 2
            continue
        else:
            requests = [[(b"command", cmd), *zip(ARGS[cmd], args, strict=False)]]
        for fields in requests:
            commands.append(cmd)
            events.append(_head(len(commands), fields, True))
    return events, commands, exact


def _reply(sid: int, data: bytes, pos: int, cmd: bytes) -> tuple[list[Summary], int]:
    end = data.index(b"\r\n", pos)
    line, pos = data[pos:end], end + 2
    word, space, rest = line.partition(b" ")
    if word in ERRORS:
        return [_head(sid, [(b"reply", word), *([(b"message", rest)] if space else [])], True)], pos
    if cmd in (b"get", b"gets") and word == b"VALUE":
        parts = rest.split(b" ")
        size = int(parts[2])
        value = data[pos : pos + size]
        assert data[pos + size : pos + size + 7] == b"\r\nEND\r\n", "one key per get"
        names = [b"key", b"flags", b"bytes", b"cas"]
        return [_head(sid, [(b"reply", b"VALUE"), *zip(names, parts, strict=False)], False),
                {"type": "data", "stream_id": sid, "payload": value, "end_stream": True}], pos + size + 7
    if cmd == b"stats" and line != b"RESET":
        fields = []
        while line != b"END":
            tag, _, text = line.partition(b" ")
            fields.append((tag.lower(), text))
            end = data.index(b"\r\n", pos)
            line, pos = data[pos:end], end + 2
        return [_head(sid, [(b"reply", b"STATS"), *fields], True)], pos
    if cmd in (b"incr", b"decr") and line.isdigit():
        return [_head(sid, [(b"reply", b"NUMBER"), (b"value", line)], True)], pos
    if cmd == b"version":
        return [_head(sid, [(b"reply", b"VERSION"), (b"version", rest)], True)], pos
    return [_head(sid, [(b"reply", line)], True)], pos


def parse_replies(data: bytes, commands: list[bytes]) -> list[Summary]:
    """Expected reply events: one reply per request id, in order."""
    events: list[Summary] = []
    pos = 0
    for sid, cmd in enumerate(commands, 1):
        replies, pos = _reply(sid, data, pos, cmd)
        events += replies
    assert pos == len(data), f"{len(data) - pos} bytes after the last reply"
    return events


def request_expect(data: bytes) -> tuple[Expect, list[bytes], bool]:
    events, commands, exact = parse_commands(data)
    first = dict(events[0]["fields"])
    key = first.get(b"key")
    service = key.partition(b":")[0].decode() if key and b":" in key else None
    keys = {"method": first[b"command"].decode(), "key": key.decode() if key else None,
            "service": service}
    return Expect(events, keys, list(range(1, len(commands) + 1))), commands, exact


# -- peers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_memcached(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("memcached", path="/usr/bin:/usr/sbin:/usr/local/bin")
    if binary is None:
        sys.exit("memcached not found: apt-get install -y memcached")
    port = free_port()
    user = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses root without -u
    proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", *user,
                             "-m", "64", *extra], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("memcached did not start")


def memcached_version(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"version\r\n")
        return s.recv(100).split()[1].decode()


# -- scenarios: (name, shape, what it does); shape: "pair", "request" (no usable response) -------

State = dict[str, Any]


def store(c: Client, st: State) -> None:
    assert c.set("user:1", b"alice")
    c.set_many({"user:2": b"bob", "session:9": b"line1\r\nEND\r\n", "empty": b"", "blob": BLOB})
    assert not c.add("user:1", b"again") and c.add("fresh", b"new")
    assert c.replace("user:2", b"bobby") and not c.replace("nobody", b"x")
    assert c.append("user:1", b"!") and c.prepend("user:1", b"dear ")
    assert c.set("counter", b"10")


def read(c: Client, st: State) -> None:
    assert c.get("user:1") == b"dear alice!" and c.get("nobody") is None
    value, st["cas"] = c.gets("user:2")
    assert value == b"bobby"
    assert c.get("session:9") == b"line1\r\nEND\r\n" and c.get("empty") == b""
    assert c.get("blob") == BLOB


def multiget(c: Client, st: State) -> None:
    found = c.get_many(["user:1", "nobody", "user:2", "session:9"])
    assert found == {"user:1": b"dear alice!", "user:2": b"bobby", "session:9": b"line1\r\nEND\r\n"}
    assert set(c.gets_many(["user:1", "user:2"])) == {"user:1", "user:2"}


def multiget_split(port: int) -> None:
    # What rpcmesh's client role writes upstream for the multi-key gets above:
    # one get per key, pipelined in one write. Written here by hand, not by the codec.
    keys = [b"user:1", b"nobody", b"user:2", b"session:9"]
    payload = b"".join(b"get %s\r\n" % k for k in keys) + b"gets user:1\r\ngets user:2\r\n"
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


def cas(c: Client, st: State) -> None:
    assert c.cas("user:2", b"robert", st["cas"]) is True
    assert c.cas("user:2", b"bobby2", st["cas"]) is False
    assert c.cas("nobody", b"x", 1) is None


def counters(c: Client, st: State) -> None:
    assert c.incr("counter", 5) == 15 and c.decr("counter", 20) == 0 and c.incr("nobody", 1) is None
    assert c.delete("fresh") and not c.delete("fresh")
    c.delete_many(["gone:1", "gone:2"])
    assert c.touch("user:1", 600) and not c.touch("nobody", 600)
    try:
        c.incr("user:1", 1)
        raise AssertionError("incr on a non-number must fail")
    except MemcacheClientError:
        pass  # CLIENT_ERROR cannot increment or decrement non-numeric value


def big_store(c: Client, st: State) -> None:
    assert c.set("big", BIG_VALUE)


def big_read(c: Client, st: State) -> None:
    assert c.get("big") == BIG_VALUE


def too_large(c: Client, st: State) -> None:
    try:
        c.set("toolarge", b"x" * 2000)
        raise AssertionError("a 2000-byte item must not fit under -I 1024")
    except MemcacheServerError:
        pass  # SERVER_ERROR object too large for cache


def admin(c: Client, st: State) -> None:
    assert c.version()
    assert b"pid" in c.stats() and b"maxbytes" in c.stats("settings")
    assert c.flush_all(noreply=False)


def quit_(c: Client, st: State) -> None:
    c.version()
    c.quit()


def noreply(c: Client, st: State) -> None:
    c.set("n:1", b"1", noreply=True)
    c.set_many({"n:2": b"2", "n:3": b"3"}, noreply=True)
    c.delete("n:1", noreply=True)
    c.incr("n:2", 5, noreply=True)
    c.touch("n:3", 60, noreply=True)
    c.add("n:3", b"x", noreply=True)
    assert c.get("n:2") == b"7"


Scenario = tuple[str, str, Callable[[Client, State], None], str]
SCENARIOS: list[Scenario] = [
    ("store", "pair", store, "set, set_many (pipelined), add, replace, append, prepend"),
    ("read", "pair", read, "get hit and miss, gets, a value holding CRLF and END, an empty value, "
                           "all 256 byte values"),
    ("multiget", "request", multiget, "get_many and gets_many: one line, several keys"),
    ("cas", "pair", cas, "cas: STORED, EXISTS, NOT_FOUND"),
    ("counters", "pair", counters, "incr/decr, delete, delete_many (pipelined), touch, "
                                   "incr on a non-number (CLIENT_ERROR, pymemcache then closes)"),
    ("big-store", "pair", big_store, f"a {BIG}-byte value"),
    ("big-read", "pair", big_read, f"the {BIG}-byte value read back"),
    ("too-large", "pair", too_large, "memcached -I 1024: SERVER_ERROR object too large for cache"),
    ("admin", "pair", admin, "version, stats, stats settings, flush_all"),
    ("quit", "pair", quit_, "version then quit: memcached closes"),
]


def record(recorder: Recorder, action: Callable[[int], None]) -> Recording:
    """Run ``action(port)`` (one connection through ``recorder``) and return its recording."""
    count = len(recorder.recordings) + 1
    action(recorder.port)
    return recorder.wait(count)[count - 1]


def with_pymemcache(body: Callable[[Client, State], None], st: State) -> Callable[[int], None]:
    def action(port: int) -> None:
        client = Client(("127.0.0.1", port), default_noreply=False, connect_timeout=5, timeout=5)
        try:
            body(client, st)
        finally:
            client.close()
    return action


def vectors_for(name: str, shape: str, recording: Recording, note: str) -> list[Vector]:
    """``shape``: "pair" (request and response), "request" (request only), "direct" (a
    response no client role can decode: memcached's reply to a multi-key get, no expect)."""
    request = b"".join(recording.client)
    expect, commands, exact = request_expect(request)
    if shape == "request":
        return [Vector(f"{name}.request", "request", tuple(recording.client), Role.SERVER, expect,
                       exact=exact, note=note)]
    reply = Expect()
    if shape == "pair":
        response = b"".join(recording.server)
        reply = Expect(parse_replies(response, commands), None, list(range(1, len(commands) + 1)))
    pair = exchange_vectors(name, recording, request=expect, response=reply, note=note)
    # The server role writes replies back as memcached wrote them: responses are exact.
    return [Vector(v.name, v.direction, v.frames, v.role, v.expect, v.direction == "response" or exact,
                   request=v.request, eof=v.eof, note=v.note) for v in pair]


def capture(main: int, small: int) -> dict[str, list[Vector]]:
    peers = f"pymemcache {pymemcache.__version__} -> memcached {memcached_version(main)}"
    out: dict[str, list[Vector]] = {"shipped": [], "noreply": [], "direct": []}
    st: State = {}
    with Recorder(main) as rec, Recorder(small) as rec_small:
        for name, shape, body, note in SCENARIOS:
            recording = record(rec_small if name == "too-large" else rec, with_pymemcache(body, st))
            out["shipped"] += vectors_for(name, shape, recording, f"{peers}: {note}")
            if name == "multiget":
                out["direct"] += vectors_for("multiget-direct", "direct", recording,
                                             f"{peers}: memcached's own reply to multi-key gets")
                split = record(rec, multiget_split)
                out["shipped"] += vectors_for("multiget-split", "pair", split, (
                    f"memcached {memcached_version(main)}: the gets of 'multiget' one key each, pipelined "
                    "in one write (what rpcmesh's client role sends upstream; written by hand)"))
        out["noreply"] = vectors_for("noreply", "request", record(rec, with_pymemcache(noreply, st)),
                                     f"{peers}: noreply commands, then a get")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="examples/memcached (default)")
    args = parser.parse_args()
    main_proc, main_port = start_memcached()
    small_proc, small_port = start_memcached("-I", "1024", "-o", "slab_chunk_max=1024")
    try:
        found = capture(main_port, small_port)
    finally:
        for proc in (main_proc, small_proc):
            proc.terminate()
            proc.wait(timeout=5)
    shipped = args.out / "rpcmesh_memcached" / "vectors" / "pymemcache-memcached"
    tests = args.out / "tests" / "vectors"
    for folder in (shipped.parent, tests):
        folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".msgpack", ".json"):
        dump(found["shipped"], shipped.with_suffix(suffix), codec="memcached")
    dump(found["noreply"], tests / "noreply.json", codec="memcached")
    dump(found["direct"], tests / "multiget-direct.json", codec="memcached")
    print(f"{len(found['shipped'])} vectors -> {shipped}.msgpack/.json; "
          f"{len(found['noreply']) + len(found['direct'])} -> {tests}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
