"""Deliberately broken codecs fail the suite, with a message that names the check and shows the bytes."""

from __future__ import annotations

import pytest
from mesh.conformance import (
    CheckSkipped,
    ConformanceError,
    Outcome,
    check_codec,
    check_local_reply,
    check_request_id,
    check_splits,
)

from tests.unit import broken_codecs
from tests.unit.test_conformance import LINE_VECTORS, MUX_VECTORS


def _only_failure(codec: object, vectors: object = LINE_VECTORS, fuzz: int = 40) -> tuple[str, str]:
    report = check_codec(codec, vectors, fuzz_examples=fuzz)
    assert not report.passed
    assert len(report.failures) == 1, report.text()
    failure = report.failures[0]
    assert failure.line.startswith(f"FAIL {failure.name} — ")
    assert failure.message.startswith(f"{failure.name}: ")  # the message names its check
    return failure.name, failure.message


def test_lossy_codec_fails_the_split_check_and_shows_where() -> None:
    name, message = _only_failure(broken_codecs.lossy)
    assert name == "decode.splits"
    assert "split at offsets [14]" in message
    # The input, cut at the split point, and the events both ways.
    assert "b'LINE users get' | b' hello world\\r\\n'" in message
    assert "'service': 'users'" in message and "whole:" in message and "split:" in message


def test_deaf_client_fails_the_local_reply_check_with_the_reply_bytes() -> None:
    name, message = _only_failure(broken_codecs.deaf_client)
    assert name == "local_reply"
    assert "local_reply(NO_ROUTE)" in message
    assert "b'NO_ROUTE NO_ROUTE: conformance check" in message  # the undecodable bytes
    with pytest.raises(ConformanceError, match="status b'NO_ROUTE' is not three digits"):
        check_local_reply(broken_codecs.deaf_client, LINE_VECTORS)


def test_fragile_codec_fails_the_fuzz_check_naming_the_exception_and_input() -> None:
    name, message = _only_failure(broken_codecs.fragile)
    assert name == "robustness.fuzz"
    assert "next_event() raised ValueError: bad tag b'lINE'" in message
    assert "only RemoteProtocolError may escape" in message
    assert "input: 28 bytes (offset 28 marked |): b'lINE users get hello world\\r\\n'" in message


def test_individual_checks_raise_assertion_errors_for_pytest() -> None:
    with pytest.raises(AssertionError) as info:
        check_splits(broken_codecs.lossy, LINE_VECTORS)
    assert isinstance(info.value, ConformanceError)
    assert info.value.check == "decode.splits"
    assert info.value.contract == "mesh.codec.CodecConnection.receive_data"
    with pytest.raises(CheckSkipped, match="PING_PONG"):
        check_request_id(broken_codecs.lossy, LINE_VECTORS)


def test_a_codec_that_claims_everything_fails_match_foreign() -> None:
    report = check_codec(broken_codecs.greedy, LINE_VECTORS, only=["match.foreign", "match.prefixes"])
    assert report["match.prefixes"].outcome is Outcome.PASSED
    foreign = report["match.foreign"]
    assert foreign.outcome is Outcome.FAILED
    assert "would steal" in foreign.reason and "prefix: 1 bytes:" in foreign.message


def test_a_mux_codec_that_drops_the_rewritten_id_fails_request_id() -> None:
    with pytest.raises(ConformanceError) as info:
        check_request_id(broken_codecs.forgetful_mux, MUX_VECTORS)
    message = str(info.value)
    assert message.startswith("request_id.rewrite: vector 'hello.request': ids {7: 65543}")
    assert "b'MUX 1 users hello\\r\\n'" in message  # the bytes that lost the id
