"""The codec's own decisions, beyond what the conformance suite checks.

Split multi-key gets and their joined reply, noreply, PIPELINE id echo,
limits, refusals, quit, sniffing and routing keys. Bytes are memcached's
own where it matters (the vectors recorded from it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mesh.codec import (
    AGAIN,
    CLOSED,
    FAIL,
    MATCH,
    NEED_DATA,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Role,
    Status,
)
from mesh.conformance.vectors import for_codec, load

import rpcmesh_memcached

codec = rpcmesh_memcached.codec
VECTORS = Path(__file__).parent / "vectors"
SHIPPED = {v.name: v for v in for_codec(codec)}


def flat(buffers: Any) -> bytes:
    return b"".join(bytes(b) for b in buffers) if isinstance(buffers, list) else bytes(buffers)


def events_of(conn: Any, data: bytes = b"", eof: bool = False) -> list[Event]:
    if data:
        conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    out = []
    while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
        out.append(event)
    return out


def server(**limits: int) -> Any:
    return codec.connection(Role.SERVER, ConnectionOptions(**limits))


def client(**limits: int) -> Any:
    return codec.connection(Role.CLIENT, ConnectionOptions(**limits))


def send_all(conn: Any, events: list[Event]) -> bytes:
    return b"".join(flat(conn.send(e)) for e in events)


def refusal(conn: Any, data: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as caught:
        events_of(conn, data)
    return caught.value


# -- multi-key gets --------------------------------------------------------------------


def test_a_multi_key_get_becomes_one_request_per_key() -> None:
    requests = events_of(server(), b"get a b  c\r\n")
    assert [(e.stream_id, e.fields) for e in requests] == [
        (1, [(b"command", b"get"), (b"key", b"a")]),
        (2, [(b"command", b"get"), (b"key", b"b")]),
        (3, [(b"command", b"get"), (b"key", b"c")]),
    ]
    assert [codec.request_keys(e).get("key") for e in requests] == ["a", "b", "c"]


def test_the_joined_reply_is_what_memcached_itself_answers_to_the_multi_key_get() -> None:
    """pymemcache's get_many/gets_many line, split; memcached's replies to the split gets
    (recorded: multiget-split), joined by the server role: byte for byte memcached's own
    reply to the unsplit line (recorded: multiget-direct)."""
    direct_request, direct_response = load(VECTORS / "multiget-direct.json")
    split_reply = SHIPPED["multiget-split.response"].data
    downstream = server()
    requests = events_of(downstream, direct_request.data)
    upstream = client()
    upstream_bytes = send_all(upstream, requests)
    assert upstream_bytes == SHIPPED["multiget-split.request"].data  # what the client role sends
    replies = events_of(upstream, split_reply)
    assert send_all(downstream, replies) == direct_response.data


def test_an_error_for_one_key_answers_the_whole_get_and_the_rest_is_dropped() -> None:
    downstream = server()
    a, b, c = events_of(downstream, b"get a b c\r\n")
    value = [Headers(a.stream_id, [(b"reply", b"VALUE"), (b"key", b"a"), (b"flags", b"0"),
                                   (b"bytes", b"1")]), Data(a.stream_id, b"x", True)]
    out = send_all(downstream, value)
    out += send_all(downstream, downstream.local_reply(b, Status.UNAVAILABLE, "shard B down"))
    out += send_all(downstream, [Headers(c.stream_id, [(b"reply", b"END")], True)])
    assert out == b"VALUE a 0 1\r\nx\r\nSERVER_ERROR shard B down\r\n"


def test_the_client_role_refuses_a_multi_key_get() -> None:
    with pytest.raises(LocalProtocolError, match="one key"):
        client().send(Headers(1, [(b"command", b"get"), (b"key", b"a"), (b"key", b"b")], True))


# -- noreply --------------------------------------------------------------------------------


def test_noreply_is_not_forwarded_and_its_reply_not_written() -> None:
    downstream, upstream = server(), client()
    requests = events_of(downstream, b"set k 0 0 1 noreply\r\nx\r\nincr n 1 noreply\r\nget k\r\n")
    assert send_all(upstream, requests) == b"set k 0 0 1\r\nx\r\nincr n 1\r\nget k\r\n"
    replies = events_of(upstream, b"STORED\r\nNOT_FOUND\r\nVALUE k 0 1\r\nx\r\nEND\r\n")
    assert [r.stream_id for r in replies] == [1, 2, 3, 3]
    assert send_all(downstream, replies) == b"VALUE k 0 1\r\nx\r\nEND\r\n"


def test_noreply_is_a_key_for_get() -> None:
    (request,) = events_of(server(), b"get noreply\r\n")
    assert request.fields == [(b"command", b"get"), (b"key", b"noreply")]


# -- PIPELINE: replies carry the ids of the requests they answer, in send order ------------------


def test_replies_take_the_ids_the_requests_were_sent_with() -> None:
    upstream = client()
    sent = [Headers(70, [(b"command", b"get"), (b"key", b"a")], True),
            Headers(3, [(b"command", b"delete"), (b"key", b"a")], True),
            Headers(1000, [(b"command", b"version")], True)]
    send_all(upstream, sent)
    replies = events_of(upstream, b"END\r\nNOT_FOUND\r\nVERSION 1.6.18\r\n")
    assert [(r.stream_id, r.fields[0][1]) for r in replies] == [(70, b"END"), (3, b"NOT_FOUND"),
                                                               (1000, b"VERSION")]


def test_the_server_role_answers_in_command_order_only() -> None:
    downstream = server()
    _, second = events_of(downstream, b"delete a\r\ndelete b\r\n")
    with pytest.raises(LocalProtocolError, match="command order"):
        downstream.send(Headers(second.stream_id, [(b"reply", b"DELETED")], True))


def test_a_reply_that_does_not_fit_the_command_means_the_stream_is_out_of_step() -> None:
    upstream = client()
    send_all(upstream, [Headers(1, [(b"command", b"get"), (b"key", b"a")], True)])
    error = refusal(upstream, b"STORED\r\n")
    assert "does not answer a get command" in str(error) and error.reply is None


def test_bytes_with_no_command_sent_are_refused() -> None:
    assert "no command" in str(refusal(client(), b"END\r\n"))


# -- data blocks ---------------------------------------------------------------------------------


def test_a_storage_command_is_handed_out_whole() -> None:
    downstream = server()
    assert events_of(downstream, b"set k 0 0 10\r\n01234") == []
    assert events_of(downstream, b"56789") == []  # the CRLF after the block is not in yet
    head, body = events_of(downstream, b"\r\n")
    assert (head.end_stream, body.payload, body.end_stream) == (False, b"0123456789", True)


def test_the_written_length_is_the_data_given_not_the_bytes_field() -> None:
    upstream = client()
    head = Headers(1, [(b"command", b"cas"), (b"key", b"k"), (b"flags", b"1"), (b"exptime", b"0"),
                       (b"bytes", b"99"), (b"cas", b"42")])
    assert flat(upstream.send(head)) == b""
    assert flat(upstream.send(Data(1, b"abc", False))) == b""
    assert flat(upstream.send(Data(1, b"de", True))) == b"cas k 1 0 5 42\r\nabcde\r\n"


def test_a_data_block_over_max_frame_size_is_refused_on_its_command_line() -> None:
    downstream = server(max_frame_size=1000)
    error = refusal(downstream, b"set k 0 0 1001\r\n")  # no byte of the block sent yet
    assert error.reply == b"CLIENT_ERROR a 1001-byte data block is over the limit (1000 bytes)\r\n"


def test_a_value_over_max_frame_size_is_refused_on_its_value_line() -> None:
    upstream = client(max_frame_size=1000)
    send_all(upstream, [Headers(1, [(b"command", b"get"), (b"key", b"k")], True)])
    assert "over the limit" in str(refusal(upstream, b"VALUE k 0 1001\r\n"))


def test_a_long_line_is_refused_before_its_end_arrives() -> None:
    error = refusal(server(max_header_size=100), b"get " + b"k" * 200)
    assert error.reply == b"CLIENT_ERROR line longer than 100 bytes\r\n"


def test_a_bad_data_chunk_is_refused() -> None:
    error = refusal(server(), b"set k 0 0 3\r\nabcd\r\n")
    assert error.reply is not None and error.reply.startswith(b"CLIENT_ERROR the 3-byte data block")


@pytest.mark.parametrize("line", [
    b"set k 0 0 -1", b"set k x 0 1", b"set k 4294967296 0 1", b"set k 0 0 1 2 3", b"set k 0 0",
    b"set " + b"k" * 251 + b" 0 0 1", b"cas k 0 0 1", b"incr k", b"get", b"touch k",
])
def test_lines_memcached_would_answer_without_reading_them_properly_are_refused(line: bytes) -> None:
    """A storage line memcached refuses leaves its data block to be read as commands: two
    replies for one request would put the shared upstream connection out of step."""
    error = refusal(server(), line + b"\r\nx\r\n")
    assert error.reply is not None and error.reply.startswith(b"CLIENT_ERROR ")


def test_an_unknown_command_is_refused_with_a_client_error_and_later_calls_raise_again() -> None:
    downstream = server()
    error = refusal(downstream, b"version\r\nmg foo v\r\n")
    assert error.reply == b"CLIENT_ERROR unknown command 'mg'\r\n"
    with pytest.raises(RemoteProtocolError):
        downstream.next_event()


def test_a_bare_lf_inside_a_line_is_refused() -> None:
    """memcached ends a line at LF too: 'get a\\nflush_all' would be two commands to it."""
    assert "control character" in str(refusal(server(), b"get a\nflush_all\r\n"))


# -- quit and the end of input ----------------------------------------------------------------------


def test_quit_ends_the_input_and_is_never_forwarded() -> None:
    downstream = server()
    (version,) = events_of(downstream, b"version\r\nquit\r\nget never\r\n")
    assert version.fields == [(b"command", b"version")]
    assert downstream.next_event() is CLOSED and downstream.should_close


def test_the_client_closing_mid_command_is_an_error_and_between_commands_is_not() -> None:
    assert events_of(server(), b"version\r\n", eof=True)[0].fields[0] == (b"command", b"version")
    downstream = server()
    downstream.receive_data(b"set k 0 0 5\r\nab")
    downstream.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="inside a data block"):
        downstream.next_event()


# -- replies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_local_replies_are_native_error_lines(status: Status) -> None:
    downstream = server()
    (request,) = events_of(downstream, b"delete k\r\n")
    reply = send_all(downstream, downstream.local_reply(request, status, f"{status.name}: why"))
    word = b"CLIENT_ERROR" if status is Status.BAD_REQUEST else b"SERVER_ERROR"
    assert reply == word + b" " + status.name.encode() + b": why\r\n"


def test_a_message_with_a_newline_stays_on_one_line() -> None:
    downstream = server()
    (request,) = events_of(downstream, b"version\r\n")
    reply = send_all(downstream, downstream.local_reply(request, Status.INTERNAL, "a\r\nEND"))
    assert reply == b"SERVER_ERROR a  END\r\n"


def test_stats_blocks_keep_every_line() -> None:
    upstream = client()
    send_all(upstream, [Headers(1, [(b"command", b"stats"), (b"args", b"cachedump 1 2")], True)])
    (reply,) = events_of(upstream, b"ITEM k [5 b; 0 s]\r\nEND\r\n")
    assert reply.fields == [(b"reply", b"STATS"), (b"item", b"k [5 b; 0 s]")]
    downstream = server()
    events_of(downstream, b"stats cachedump 1 2\r\n")
    assert send_all(downstream, [reply]) == b"ITEM k [5 b; 0 s]\r\nEND\r\n"


def test_error_replies_are_classed_for_the_stats() -> None:
    upstream = client()
    send_all(upstream, [Headers(1, [(b"command", b"incr"), (b"key", b"k"), (b"value", b"1")], True)])
    (reply,) = events_of(upstream, b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
    assert reply.extensions == {"status_class": "error"}


# -- sniffing and routing keys -------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "answer"), [
    (b"get k\r\n", MATCH), (b"gets ", MATCH), (b"version\r\n", MATCH), (b"flush_all\r\n", MATCH),
    (b"quit\r\n", MATCH), (b"g", AGAIN), (b"get", AGAIN), (b"stats\r", AGAIN), (b"", AGAIN),
    (b"GET / HTTP/1.1\r\n", FAIL), (b"getx ", FAIL), (b"*2\r\n$3\r\nGET\r\n", FAIL),
    (b"\xda\xbb\xc2\x00", FAIL), (b"\x00\x00\x00\x1d\x80\x01\x00\x01", FAIL),
    (b"\x80\x00\x00\x05", FAIL), (b"mg key v\r\n", FAIL), (b"version x", MATCH),
])
def test_match(prefix: bytes, answer: object) -> None:
    assert codec.match(prefix) is answer


def test_routing_keys() -> None:
    (head, _) = events_of(server(), b"set user:42 5 0 1\r\nx\r\n")
    keys = codec.request_keys(head)
    assert (keys.method, keys.service, keys.get("key"), keys.get("flags")) == ("set", "user", "user:42", "5")
    (version,) = events_of(server(), b"version\r\n")
    assert (codec.request_keys(version).get("key"), codec.request_keys(version).service) == (None, None)
