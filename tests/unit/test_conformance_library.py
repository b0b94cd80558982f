"""The suite's own machinery: vectors files, reports, byte display, the CLI, the recorder."""

from __future__ import annotations

import json
import socket
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from mesh.conformance import CHECKS, Expect, Outcome, Vector, VectorError, check_codec
from mesh.conformance._show import show_bytes
from mesh.conformance.capture import Recorder, exchange_vectors
from mesh.conformance.pytest import codec_conformance_tests
from mesh.conformance.vectors import dump, load, merge_data, summarize

from mesh.cli import main
from mesh.codec import Data, Headers, Role
from tests.unit import broken_codecs, fakeline
from tests.unit.test_conformance import LINE_VECTORS

BINARY = Vector("binary", "request", (b"\xda\xbb\x00\x01", b"\xff\r\n"), note="not text",
                expect=Expect([{"type": "data", "stream_id": 3, "payload": b"\x00\xff", "end_stream": True}],
                              {"service": "x", "group": None}, [3]))


# -- vectors files ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".msgpack", ".json"])
def test_vectors_round_trip_through_both_formats(tmp_path: Path, suffix: str) -> None:
    vectors = [*LINE_VECTORS, BINARY]
    path = tmp_path / f"v{suffix}"
    dump(vectors, path, codec="line")
    assert load(path) == vectors


def test_the_json_twin_reads_as_text(tmp_path: Path) -> None:
    dump(LINE_VECTORS, tmp_path / "v.json")
    text = (tmp_path / "v.json").read_text()
    assert '"frames": ["LINE users get", " hello world\\r\\n"]' in text  # short lists on one line
    assert '["payload", "hello world"]' in text
    assert json.loads(text)["format"] == "rpcmesh-vectors"


def test_json_accepts_hex_for_binary(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps([{"name": "a", "direction": "request", "frames": [{"hex": "dabb 00"}]}]))
    assert load(path)[0].frames == (b"\xda\xbb\x00",)


@pytest.mark.parametrize(("record", "error"), [
    ({"name": "a", "direction": "request", "frames": ["x"], "hearbeat": True}, "unknown keys"),
    ({"name": "a", "direction": "sideways", "frames": ["x"]}, "direction is 'request' or 'response'"),
    ({"name": "a", "direction": "request", "frames": []}, "frames is a non-empty list"),
    ({"name": "a", "direction": "request", "frames": ["\u20ac"]}, "latin-1"),
    ({"name": "a", "direction": "response", "frames": ["x"], "request": "b"}, "not a request vector"),
    ({"direction": "request", "frames": ["x"]}, "needs a name"),
])
def test_bad_vectors_are_refused_with_the_place_and_the_fix(tmp_path: Path, record: dict[str, object],
                                                           error: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(VectorError, match=error) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: vector")


def test_unreadable_vectors_files(tmp_path: Path) -> None:
    with pytest.raises(VectorError, match="cannot read vectors"):
        load(tmp_path / "missing.msgpack")
    (tmp_path / "x.msgpack").write_bytes(b"\xc1")
    with pytest.raises(VectorError, match="not valid msgpack"):
        load(tmp_path / "x.msgpack")
    (tmp_path / "y.json").write_text('{"format": "other"}')
    with pytest.raises(VectorError, match="not a rpcmesh-vectors version 1 file"):
        load(tmp_path / "y.json")


def test_adjacent_data_is_merged_before_comparing() -> None:
    events = [Headers(1, [(b"a", b"b")]), Data(1, b"he"), Data(1, bytearray(b"llo")), Data(1, b"", True)]
    assert merge_data(events)[1:] == [Data(1, b"hello", True)]
    assert summarize(events) == [
        {"type": "headers", "stream_id": 1, "fields": [(b"a", b"b")], "end_stream": False},
        {"type": "data", "stream_id": 1, "payload": b"hello", "end_stream": True}]


# -- showing bytes -----------------------------------------------------------------------


def test_long_input_is_cut_and_binary_shown_as_hex() -> None:
    shown = show_bytes(b"GET / HTTP/1.1\r\n" + b"a" * 1_000_000)
    assert shown.startswith("1000016 bytes: b'GET / HTTP/1.1\\r\\naaa") and len(shown) < 400
    assert show_bytes(b"\xda\xbb\x00\x01") == "4 bytes: hex da bb 00 01"
    assert show_bytes(b"abcdef", at=2) == "6 bytes (offset 2 marked |): b'ab' | b'cdef'"


# -- reports -------------------------------------------------------------------------------


def test_report_lists_every_check_with_its_contract_and_renders_for_ci() -> None:
    report = check_codec(broken_codecs.lossy, LINE_VECTORS, fuzz_examples=10)
    assert [r.name for r in report.results] == [c.name for c in CHECKS]
    assert all(r.contract.startswith("mesh.codec") for r in report.results)
    lines = report.text().splitlines()
    assert lines[0] == "PASS codec.shape — lossy: PING_PONG, both roles satisfy CodecConnection"
    assert any(ln.startswith("FAIL decode.splits — vector 'hello.request'") for ln in lines)
    assert lines[-1] == "lossy: 10 passed, 1 failed, 2 skipped"
    doc = json.loads(report.to_json())
    assert doc["passed"] is False and doc["codec"] == "lossy"
    failed = [c for c in doc["checks"] if c["outcome"] == "failed"]
    assert failed[0]["name"] == "decode.splits" and "split at offsets" in failed[0]["message"]
    suite = ET.fromstring(report.to_junit_xml().split("\n", 1)[1])
    assert suite.get("tests") == str(len(CHECKS)) and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='decode.splits']/failure")
    assert failure is not None and "b'LINE users get' | b' hello world\\r\\n'" in (failure.text or "")
    assert len(suite.findall("testcase/skipped")) == 2


def test_no_vectors_is_a_failure_not_a_pass() -> None:
    report = check_codec(fakeline.codec, [], fuzz_examples=0)
    assert report["vectors.decode"].outcome is Outcome.FAILED
    assert "no vectors" in report["vectors.decode"].reason
    assert report["decode.splits"].outcome is Outcome.SKIPPED


def test_factories_classes_and_module_paths_are_accepted() -> None:
    for codec in (fakeline.LineCodec, lambda: fakeline.LineCodec(), "tests.unit.fakeline:codec"):
        report = check_codec(codec, LINE_VECTORS, only=["codec.shape", "decode.splits"])
        assert report.passed and report.codec == "line"
    with pytest.raises(KeyError, match="no check named 'nope'"):
        check_codec(fakeline.codec, LINE_VECTORS, only=["nope"])


def test_pytest_helper_refuses_unknown_check_names() -> None:
    with pytest.raises(ValueError, match="no checks named"):
        codec_conformance_tests(fakeline.codec, LINE_VECTORS, xfail={"decode.split": "typo"})


# -- the command line -------------------------------------------------------------------------


def test_cli_prints_a_line_per_check_writes_reports_and_fails(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    vectors = tmp_path / "line.msgpack"
    dump(LINE_VECTORS, vectors)
    xml, js = tmp_path / "r.xml", tmp_path / "r.json"
    code = main(["conformance", "tests.unit.broken_codecs:lossy", "--vectors", str(vectors),
                 "--fuzz", "10", "--seed", "3", "--report", str(xml), "--report", str(js)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL decode.splits — " in out and "PASS local_reply — " in out
    assert "SKIP request_id.rewrite — PING_PONG" in out
    assert ET.parse(xml).getroot().get("failures") == "1"
    assert json.loads(js.read_text())["passed"] is False


def test_cli_passes_with_zero_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors = tmp_path / "line.json"
    dump(LINE_VECTORS, vectors)
    code = main(["conformance", "tests.unit.broken_codecs:lossy", "--vectors", str(vectors),
                 "--check", "codec.shape", "--check", "local_reply"])
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1] == "lossy: 2 passed, 0 failed, 0 skipped"


@pytest.mark.parametrize(("argv", "error"), [
    (["nope"], "no codec named 'nope'"),
    (["tests.unit.fakeline:codec", "--vectors", "/nonexistent.msgpack"], "cannot read vectors"),
    (["tests.unit.fakeline:codec", "--check", "nope"], "no check named 'nope'"),
])
def test_cli_usage_errors_exit_2(argv: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", *argv]) == 2
    assert error in capsys.readouterr().err


# -- recording ----------------------------------------------------------------------------------


def _one_shot_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(100)
            conn.sendall(b"200 pong\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return server, thread


def test_recorder_keeps_both_directions_and_who_closed() -> None:
    server, thread = _one_shot_server()
    with server, Recorder(server.getsockname()[1]) as recorder:
        with socket.create_connection(("127.0.0.1", recorder.port)) as client:
            client.sendall(b"LINE users get ping\r\n")
            assert client.recv(100) == b"200 pong\r\n"
        (recording,) = recorder.wait(1)
    thread.join(5)
    assert b"".join(recording.client) == b"LINE users get ping\r\n"
    assert recording.server == [b"200 pong\r\n"]
    request, response = exchange_vectors("ping", recording)
    assert (request.name, request.role, response.request, response.role) == (
        "ping.request", Role.SERVER, "ping.request", Role.CLIENT)
    assert check_codec(fakeline.codec, [request, response], only=["vectors.decode"]).passed


def test_recorder_relays_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback traffic only"):
        Recorder(80, "192.0.2.1")
