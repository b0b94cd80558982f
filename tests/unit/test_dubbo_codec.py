"""The dubbo codec on real frames (tests/golden/dubbo/frames.jsonl, recorded from the Node
provider and the Node / Python consumers by scripts/capture_dubbo_frames.py): framing under
any split, events and routing keys, the request id rewrite, heartbeats, READONLY, local
replies, generic calls, other serializations, the attachments rewrite and the refusals."""

from __future__ import annotations

import json
import random
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from mesh.codecs.dubbo import STATUS_CODES, codec
from mesh.codecs.hessian2 import Decoder, Encoder

from mesh.codec import (
    AGAIN,
    CLOSED,
    FAIL,
    MATCH,
    NEED_DATA,
    ConnectionOptions,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Role,
    Status,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dubbo" / "frames.jsonl"
INTERFACE = "com.rpcmesh.test.EchoService"
HEAD = struct.Struct(">2sBBqI")

# The methods each scenario called, in order (scripts/capture_dubbo_frames.py SCENARIOS).
METHODS: dict[str, list[str]] = {
    "echo": ["echo"], "echo_empty": ["echo"], "echo_unicode": ["echo"], "add": ["add"],
    "echo_bool_double": ["echoBool", "echoDouble"], "echo_long": ["echoLong"],
    "echo_pojo": ["echoUser"], "echo_list": ["echoList"], "echo_map": ["echoMap"],
    "arg_1mib": ["sizeOf"], "arg_64kib_string_array": ["sizeOf"],
    "result_300k_chars": ["bigResult"], "result_32767_chars": ["bigResult"],
    "business_exception": ["fail"], "server_error_80": ["crash"],
    "service_not_found_80": ["echo"], "attachments": ["attachments"],
    "client_timeout_late_response": ["sleep", "echo"], "concurrent_20": ["echo"],
    "heartbeat": ["echo"],
}


def _load() -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Records by (scenario, consumer, who sent them), in wire order."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in GOLDEN.read_text().splitlines():
        record = json.loads(line)
        record["raw"] = bytes.fromhex(record["hex"])
        out[record["scenario"], record["consumer"], record["from"]].append(record)
    return dict(out)


RECORDS = _load()
CONNECTIONS = sorted({(s, c) for s, c, _ in RECORDS})


def frame_of(scenario: str, consumer: str, who: str, seq: int = 0) -> bytes:
    raw: bytes = RECORDS[scenario, consumer, who][seq]["raw"]
    return raw


def stream(scenario: str, consumer: str, who: str) -> bytes:
    return b"".join(r["raw"] for r in RECORDS[scenario, consumer, who])


def connection(role: Role, **options: Any) -> Any:
    return codec.connection(role, ConnectionOptions(**options))


def drain(conn: Any) -> tuple[list[Headers], Any]:
    events = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is CLOSED:
            return events, event
        events.append(event)


def run(role: Role, chunks: list[bytes], eof: bool = True, **options: Any) -> list[Headers]:
    conn = connection(role, **options)
    events: list[Headers] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += drain(conn)[0]
    if eof:
        conn.receive_data(b"")
        more, end = drain(conn)
        events += more
        assert end is CLOSED
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_split(data: bytes, seed: int, pieces: int = 8) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def joined(buffers: Any) -> bytes:
    if isinstance(buffers, list):
        return b"".join(bytes(b) for b in buffers)
    return bytes(buffers)


def build(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    return HEAD.pack(b"\xda\xbb", flags, status, request_id, len(body)) + body


def request_body(path: str, method: str, types: str, args: list[Any], attachments: dict[str, Any],
                 version: str = "1.0.0", dubbo: str = "2.0.2") -> bytes:
    out = Encoder()
    for text in (dubbo, path, version, method, types):
        out.write_string(text)
    for arg in args:
        out.write(arg)
    out.write_map(attachments)
    return out.getvalue()


def keys_of(event: Headers) -> dict[str, str | None]:
    keys = codec.request_keys(event)
    return {"service": keys.service, "method": keys.method, "version": keys.version,
            "group": keys.group}


# -- framing under any split, events, keys ---------------------------------------------------


@pytest.mark.parametrize(("scenario", "consumer"), CONNECTIONS)
def test_requests_decode_the_same_however_they_are_cut(scenario: str, consumer: str) -> None:
    records = RECORDS[scenario, consumer, "consumer"]
    data = stream(scenario, consumer, "consumer")
    whole = run(Role.SERVER, [data])
    assert [e.stream_id for e in whole] == [r["request_id"] for r in records]
    if len(data) <= 64 * 1024:
        assert run(Role.SERVER, bytewise(data)) == whole
    for seed in range(6):
        assert run(Role.SERVER, random_split(data, seed)) == whole, seed
    calls = []
    for event, record in zip(whole, records, strict=True):
        ext = event.extensions
        assert event.end_stream and event.fields == []
        assert ext["frame"] == record["raw"]
        assert ext["flags"] == int(record["flags"], 16)
        assert "oneway" not in ext  # every recorded call is two-way
        if record["event"]:
            assert ext["event"] is True and ext["call"] is None
            continue
        assert not ext.get("event")
        calls.append(event)
    methods = METHODS[scenario]
    assert [codec.request_keys(e).method for e in calls] == (
        methods * len(calls) if len(methods) == 1 else methods)
    version = "9.9.9" if scenario == "service_not_found_80" else "1.0.0"
    for event in calls:
        keys = keys_of(event)
        assert keys == {"service": INTERFACE, "method": keys["method"], "version": version,
                        "group": None}
        assert codec.request_keys(event).get("no-such-attachment") is None
    if scenario == "attachments":
        keys = codec.request_keys(calls[0])
        assert (keys.get("x-trace-id"), keys.get("x-tenant")) == ("abc123", "t1")


@pytest.mark.parametrize(("scenario", "consumer"), CONNECTIONS)
def test_responses_decode_the_same_however_they_are_cut(scenario: str, consumer: str) -> None:
    records = RECORDS[scenario, consumer, "provider"]
    data = stream(scenario, consumer, "provider")
    whole = run(Role.CLIENT, [data])
    assert [e.stream_id for e in whole] == [r["request_id"] for r in records]
    if len(data) <= 64 * 1024:
        assert run(Role.CLIENT, bytewise(data)) == whole
    for seed in range(6):
        assert run(Role.CLIENT, random_split(data, seed)) == whole, seed
    for event, record in zip(whole, records, strict=True):
        ext = event.extensions
        assert event.end_stream and ext["frame"] == record["raw"]
        if record["event"]:  # the provider's answer to a heartbeat: swallowed, not answered
            assert ext["event"] is True
            conn = connection(Role.CLIENT)
            assert conn.is_heartbeat(event) and conn.heartbeat_reply(event) == []
            continue
        assert event.fields == [(b"status", str(record["status"]).encode())]
        assert ext["status"] == record["status"]
        expected = {"business_exception": "exception", "server_error_80": "error",
                    "service_not_found_80": "error"}.get(scenario, "ok")
        assert ext["status_class"] == expected


def test_any_bytes_like_input_is_accepted() -> None:
    data = stream("concurrent_20", "node", "consumer")
    whole = run(Role.SERVER, [data])
    assert run(Role.SERVER, [bytearray(data)]) == whole
    assert run(Role.SERVER, [memoryview(data)]) == whole
    assert run(Role.SERVER, [memoryview(bytearray(c)) for c in random_split(data, 3, 40)]) == whole


# -- the request id --------------------------------------------------------------------------


@pytest.mark.parametrize("new_id", [0, 7, 0x10000, 2**40 + 3, 2**63 - 1, -1])
@pytest.mark.parametrize(("role", "who"), [(Role.SERVER, "consumer"), (Role.CLIENT, "provider")])
def test_send_with_a_new_id_changes_bytes_4_to_11_only(role: Role, who: str, new_id: int) -> None:
    for scenario, consumer in (("echo_pojo", "node"), ("heartbeat", "python"),
                               ("business_exception", "python")):
        sender = connection(Role.CLIENT if role is Role.SERVER else Role.SERVER)
        for event in run(role, [stream(scenario, consumer, who)]):
            raw = event.extensions["frame"]
            assert joined(sender.send(event)) == raw  # unchanged: the very bytes
            event.stream_id = new_id
            out = joined(sender.send(event))
            assert len(out) == len(raw)
            assert out[:4] == raw[:4] and out[12:] == raw[12:]
            assert out[4:12] == struct.pack(">q", new_id)


def test_request_id_round_trip_through_the_proxy() -> None:
    """consumer -> server role -> client role (new id) -> provider -> client role -> server
    role (old id) -> consumer: the provider sees the new id, the consumer its own bytes."""
    for scenario in ("concurrent_20", "client_timeout_late_response", "echo_map"):
        downstream, upstream = connection(Role.SERVER), connection(Role.CLIENT)
        downstream.receive_data(stream(scenario, "node", "consumer"))
        requests = drain(downstream)[0]
        uid = {e.stream_id: 0x5EED0000 + i for i, e in enumerate(requests)}
        to_provider = b""
        for event in requests:
            old = event.stream_id
            event.stream_id = uid[old]
            to_provider += joined(upstream.send(event))
            event.stream_id = old
        provider = run(Role.SERVER, [to_provider])
        assert [e.stream_id for e in provider] == [uid[e.stream_id] for e in requests]
        assert [e.extensions["frame"][12:] for e in provider] == \
               [e.extensions["frame"][12:] for e in requests]
        # the provider answers with the ids it saw
        answers = b"".join(build(0x02, 20, uid[r["request_id"]], r["raw"][16:])
                           for r in RECORDS[scenario, "node", "provider"])
        upstream.receive_data(answers)
        back = {v: k for k, v in uid.items()}
        to_consumer = b""
        for event in drain(upstream)[0]:
            event.stream_id = back[event.stream_id]
            to_consumer += joined(downstream.send(event))
        assert to_consumer == stream(scenario, "node", "provider")


# -- heartbeats and READONLY -----------------------------------------------------------------


@pytest.mark.parametrize("consumer", ["node", "python"])
def test_heartbeat_request_is_answered_byte_exact(consumer: str) -> None:
    (probe,) = [r for r in RECORDS["heartbeat", consumer, "consumer"] if r["event"]]
    (answer,) = [r for r in RECORDS["heartbeat", consumer, "provider"] if r["event"]]
    conn = connection(Role.SERVER)
    conn.receive_data(probe["raw"])
    (event,) = drain(conn)[0]
    assert conn.is_heartbeat(event)
    reply = conn.heartbeat_reply(event)
    out = b"".join(joined(conn.send(e)) for e in reply)
    rid = struct.pack(">q", probe["request_id"])
    assert out == bytes.fromhex("dabb2214") + rid + bytes.fromhex("000000014e")
    assert out == answer["raw"]  # what the real provider answered
    # and the consumer's side of the proxy decodes it as the answer on the probe's id
    (decoded,) = run(Role.CLIENT, [out])
    assert decoded.stream_id == probe["request_id"] and decoded.extensions["event"]


@pytest.mark.parametrize("request_id", [0, 1, 0x0102030405060708])
def test_heartbeat_from_a_provider_is_answered_by_the_client_role(request_id: int) -> None:
    conn = connection(Role.CLIENT)
    conn.receive_data(build(0xE2, 0, request_id, b"N"))
    (event,) = drain(conn)[0]
    assert conn.is_heartbeat(event)
    out = b"".join(joined(conn.send(e)) for e in conn.heartbeat_reply(event))
    assert out == bytes.fromhex("dabb2214") + struct.pack(">q", request_id) + bytes.fromhex("000000014e")


def _draining(event: Headers) -> bool:
    # the flag was called "readonly" first; mesh.codec now documents it as "draining"
    return bool(event.extensions.get("draining") or event.extensions.get("readonly"))


def test_readonly_event_gets_no_reply_and_is_flagged() -> None:
    readonly = build(0xA2, 0, 42, b"\x01R")  # request | event, one-way, hessian2 "R"
    conn = connection(Role.CLIENT)
    conn.receive_data(readonly)
    (event,) = drain(conn)[0]
    assert event.stream_id == 42 and event.extensions["event"]
    assert conn.is_heartbeat(event)  # the proxy's to handle, never routed
    assert conn.heartbeat_reply(event) == []
    assert _draining(event)
    # a heartbeat (body N) is not READONLY, nor is a READONLY-looking response
    for other in (build(0xE2, 0, 1, b"N"), build(0x22, 20, 1, b"\x01R")):
        (event,) = run(Role.CLIENT, [other])
        assert not _draining(event)


# -- local replies ---------------------------------------------------------------------------


def test_status_codes_are_dubbo_native() -> None:
    assert {s: STATUS_CODES[s] for s in Status} == {
        Status.NO_ROUTE: 60, Status.UNAVAILABLE: 70, Status.TIMEOUT: 31,
        Status.OVERLOADED: 100, Status.BAD_REQUEST: 40, Status.INTERNAL: 80}


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("consumer", ["node", "python"])
def test_local_reply_is_the_native_error_and_decodes_back(status: Status, consumer: str) -> None:
    request_frame = frame_of("echo_unicode", consumer, "consumer")
    server = connection(Role.SERVER)
    server.receive_data(request_frame)
    (request,) = drain(server)[0]
    code = STATUS_CODES[status]
    message = f"{status.name}: no provider for h\u00e9llo \u4e2d"
    out = b"".join(joined(server.send(e)) for e in server.local_reply(request, status, message))
    magic, flags, got_status, rid, length = HEAD.unpack_from(out)
    assert (magic, flags, got_status, rid, length) == (b"\xda\xbb", 0x02, code, request.stream_id,
                                                       len(out) - 16)
    decoder = Decoder(out, 16)
    assert message in decoder.read_string() and decoder.at_end()
    client = connection(Role.CLIENT)
    client.send(request)
    client.receive_data(out)
    (reply,) = drain(client)[0]
    assert reply.stream_id == request.stream_id and reply.end_stream
    assert reply.fields == [(b"status", str(code).encode())]
    assert reply.extensions["status"] == code and reply.extensions["status_class"] == "error"


def test_local_reply_belongs_to_the_server_role() -> None:
    (request,) = run(Role.SERVER, [frame_of("echo", "node", "consumer")])
    with pytest.raises(LocalProtocolError):
        connection(Role.CLIENT).local_reply(request, Status.NO_ROUTE, "x")


# -- generic calls, other serializations, one-way -------------------------------------------


@pytest.mark.parametrize("method", ["$invoke", "$invokeAsync"])
def test_generic_call_routes_on_the_real_method(method: str) -> None:
    body = request_body("com.example.GreetService", method,
                        "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;",
                        ["sayHello", ["java.lang.String"], ["world"]],
                        {"path": "com.example.GreetService", "group": "g1", "generic": "true"},
                        version="2.1.0")
    (event,) = run(Role.SERVER, [build(0xC2, 0, 9, body)])
    assert keys_of(event) == {"service": "com.example.GreetService", "method": "sayHello",
                              "version": "2.1.0", "group": "g1"}
    assert codec.request_keys(event).get("generic") == "true"


def test_a_non_generic_method_is_taken_as_it_is() -> None:
    body = request_body("com.example.GreetService", "invoke", "Ljava/lang/String;", ["sayHello"], {})
    (event,) = run(Role.SERVER, [build(0xC2, 0, 9, body)])
    assert codec.request_keys(event).method == "invoke"


@pytest.mark.parametrize("serialization", [6, 3, 21])  # fastjson, java, protobuf-json...
def test_other_serializations_are_relayed_without_keys(serialization: int) -> None:
    body = b'"2.0.2"\n"com.example.GreetService"\n"1.0.0"\n"sayHello"\n"Ljava/lang/String;"\n"x"\n{}\n'
    raw = build(0xC0 | serialization, 0, 77, body)
    (event,) = run(Role.SERVER, [raw])
    assert event.stream_id == 77 and event.extensions["call"] is None
    keys = codec.request_keys(event)
    assert keys_of(event) == {"service": None, "method": None, "version": None, "group": None}
    assert keys.get("path") is None
    sender = connection(Role.CLIENT)
    assert joined(sender.send(event)) == raw
    event.stream_id = 78
    assert joined(sender.send(event)) == raw[:4] + struct.pack(">q", 78) + raw[12:]
    # and the provider's answer in that serialization comes back as it is
    answer = build(serialization, 20, 78, b'1\n"hello"\n')
    (reply,) = run(Role.CLIENT, [answer])
    assert reply.extensions["status_class"] == "ok"
    assert joined(connection(Role.SERVER).send(reply)) == answer


def test_one_way_request_is_flagged() -> None:
    raw = frame_of("echo", "python", "consumer")
    oneway = raw[:2] + bytes([raw[2] & ~0x40]) + raw[3:]
    (event,) = run(Role.SERVER, [oneway])
    assert event.extensions["oneway"] is True
    assert codec.request_keys(event).method == "echo"


# -- the attachments rewrite -----------------------------------------------------------------


def _arguments_end(raw: bytes, parameters: int) -> int:
    decoder = Decoder(raw, 16)
    for _ in range(5):
        decoder.read_string()
    for _ in range(parameters):
        decoder.skip()
    return decoder.pos


@pytest.mark.parametrize(("scenario", "consumer", "parameters"), [
    ("echo_pojo", "node", 1), ("echo_pojo", "python", 1), ("echo_map", "node", 1),
    ("add", "python", 2), ("attachments", "node", 0), ("echo_list", "node", 1)])
def test_set_attachments_re_encodes_the_attachments_alone(scenario: str, consumer: str,
                                                          parameters: int) -> None:
    raw = frame_of(scenario, consumer, "consumer")
    (event,) = run(Role.SERVER, [raw])
    before = Decoder(raw, _arguments_end(raw, parameters)).read_map()
    event.extensions["set_attachments"] = {"x-tenant": "t2", "x-new": "v\u00e9", "path": None}
    event.stream_id = 0x1234
    out = joined(connection(Role.CLIENT).send(event))
    length = HEAD.unpack_from(out)[4]
    assert length == len(out) - 16
    assert out[:4] == raw[:4] and out[4:12] == struct.pack(">q", 0x1234)
    end = _arguments_end(raw, parameters)
    assert out[16:end] == raw[16:end]  # version, path, method, types, arguments: as they came
    decoder = Decoder(out, end)
    after = decoder.read_map()
    assert decoder.at_end()
    expected = {k: v for k, v in before.items() if k != "path"}
    expected.update({"x-tenant": "t2", "x-new": "v\u00e9"})
    assert after == expected
    (again,) = run(Role.SERVER, [out])
    keys = codec.request_keys(again)
    assert (keys.get("x-tenant"), keys.get("x-new"), keys.get("path")) == ("t2", "v\u00e9", None)
    assert keys.service == INTERFACE


def test_set_attachments_is_ignored_without_a_hessian2_call() -> None:
    (probe,) = [r for r in RECORDS["heartbeat", "node", "consumer"] if r["event"]]
    (event,) = run(Role.SERVER, [probe["raw"]])
    event.extensions["set_attachments"] = {"x": "y"}
    assert joined(connection(Role.CLIENT).send(event)) == probe["raw"]


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [b"ls\r\n", b"invoke x()\r\n", b"help\n", b"\r\n"])
def test_telnet_text_is_refused_with_a_hint(text: bytes) -> None:
    conn = connection(Role.SERVER)
    conn.receive_data(text)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.reply is not None and b"telnet" in info.value.reply


@pytest.mark.parametrize("data", [b"\xda\xbc" + bytes(14), b"\x00" * 16, b"\xdb",
                                  b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + bytes(5)])
def test_bad_magic_is_refused_with_a_bad_request_frame(data: bytes) -> None:
    conn = connection(Role.SERVER)
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    reply = info.value.reply
    assert reply is not None
    magic, flags, status, _rid, length = HEAD.unpack_from(reply)
    assert (magic, flags & 0x80, status, length) == (b"\xda\xbb", 0, 40, len(reply) - 16)
    assert Decoder(reply, 16).read_string()


def test_bad_magic_after_a_good_frame() -> None:
    conn = connection(Role.SERVER)
    conn.receive_data(frame_of("echo", "node", "consumer") + b"GET / HTTP/1.1\r\n")
    assert conn.next_event().stream_id == 1
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])
def test_a_body_over_max_frame_size_is_refused_from_the_header_alone(role: Role) -> None:
    flags = 0xC2 if role is Role.SERVER else 0x02
    conn = connection(role, max_frame_size=4096)
    conn.receive_data(HEAD.pack(b"\xda\xbb", flags, 20, 99, 4097))  # no body byte sent
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    reply = info.value.reply
    assert reply is not None
    assert HEAD.unpack_from(reply)[2:4] == (40, 99)
    # exactly at the limit is fine
    body = bytes(4096)
    (event,) = run(role, [HEAD.pack(b"\xda\xbb", flags & ~0x3F | 0x06, 20, 5, 4096) + body],
                   max_frame_size=4096)
    assert event.stream_id == 5


def test_a_recorded_frame_over_the_limit_is_refused_before_its_body() -> None:
    raw = frame_of("arg_1mib", "node", "consumer")
    conn = connection(Role.SERVER, max_frame_size=64 * 1024)
    conn.receive_data(raw[:16])
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


@pytest.mark.parametrize("cut", [1, 2, 15, 16, 17, 100])
@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])
def test_eof_in_the_middle_of_a_frame(role: Role, cut: int) -> None:
    who = "consumer" if role is Role.SERVER else "provider"
    raw = frame_of("echo_pojo", "node", who)
    conn = connection(role)
    conn.receive_data(raw + raw[: min(cut, len(raw) - 1)])
    conn.receive_data(b"")
    assert conn.next_event().stream_id == 1
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_eof_between_frames_is_closed() -> None:
    conn = connection(Role.SERVER)
    conn.receive_data(frame_of("echo", "node", "consumer"))
    assert drain(conn)[1] is NEED_DATA
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED
    assert not conn.should_close


def test_wrong_direction_frames_are_refused() -> None:
    response = frame_of("echo", "node", "provider")
    conn = connection(Role.SERVER)
    conn.receive_data(response)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.reply is not None and HEAD.unpack_from(info.value.reply)[2] == 40
    conn = connection(Role.CLIENT)
    conn.receive_data(frame_of("echo", "node", "consumer"))
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_a_request_body_without_routing_fields_is_a_bad_request() -> None:
    for body in (b"", b"\x05", b"N", b"\x052.0.2NNN"):
        conn = connection(Role.SERVER)
        conn.receive_data(build(0xC2, 0, 3, body))
        with pytest.raises(RemoteProtocolError) as info:
            conn.next_event()
        assert info.value.reply is not None
        assert HEAD.unpack_from(info.value.reply)[2:4] == (40, 3)


def test_send_refuses_what_is_not_a_dubbo_event() -> None:
    conn = connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        conn.send(Headers(1, [], True))


# -- sniffing --------------------------------------------------------------------------------


def test_match() -> None:
    assert codec.match(b"") is AGAIN and codec.match(b"\xda") is AGAIN
    assert codec.match(b"\xda\xbb") is MATCH
    assert codec.match(frame_of("echo", "node", "consumer")) is MATCH
    for foreign in (b"G", b"GET /", b"*3\r\n", b"\x00\x00", b"\xda\xbc", b"ls\r\n"):
        assert codec.match(foreign) is FAIL


def test_no_route_for_a_non_hessian2_call_says_why() -> None:
    from mesh.codecs.dubbo import codec as dubbo

    from mesh.codec import ConnectionOptions, Headers, Role, Status

    server = dubbo.connection(Role.SERVER, ConnectionOptions())
    fastjson = b"\xda\xbb\xc6\x00" + (9).to_bytes(8, "big") + (2).to_bytes(4, "big") + b"{}"
    server.receive_data(fastjson)
    request = server.next_event()
    assert isinstance(request, Headers) and request.extensions["call"] is None
    (reply,) = server.local_reply(request, Status.NO_ROUTE, "NO_ROUTE: no route matched")
    frame = reply.extensions["frame"]
    assert frame[3] == 60 and b"serialization id 6 is not hessian2" in frame
