"""The value syntaxes shared by the config file and the command line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.config import parse_address, parse_duration
from mesh.config._values import InvalidValue, format_address, parse_hash_key


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (15, 15.0),
        (0, 0.0),
        (0.25, 0.25),
        ("15s", 15.0),
        ("15", 15.0),  # command-line flags arrive as strings
        ("0.5", 0.5),
        ("250ms", 0.25),
        ("1m", 60.0),
        ("1.5s", 1.5),
        ("2h", 7200.0),
        ("1m30s", 90.0),
        ("100us", 0.0001),
        (" 5s ", 5.0),
        ("0s", 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("5 s", "is not a duration"),
        ("5sec", "is not a duration"),
        ("1e3", "is not a duration"),
        ("nan", "is not a duration"),
        ("s", "is not a duration"),
        ("", "is not a duration"),
        ("-1s", "is not a duration"),
        (-1, "not a finite, non-negative time"),
        (float("inf"), "not a finite, non-negative time"),
        (float("nan"), "not a finite, non-negative time"),
        (True, "expected a duration, got the boolean true"),
        (None, "expected a duration, got null"),
        ([1], "expected a duration, got a list"),
    ],
)
def test_bad_durations(value: object, reason: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_duration(value)
    assert reason in info.value.reason
    assert "'250ms'" in info.value.fix
    assert isinstance(info.value, ValueError)


@given(st.integers(min_value=0, max_value=10**9))
def test_millisecond_durations(ms: int) -> None:
    assert parse_duration(f"{ms}ms") == pytest.approx(ms / 1000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:10000", ("127.0.0.1", 10000)),
        ("[::1]:10000", ("::1", 10000)),
        ("[0:0::1]:80", ("::1", 80)),
        ("localhost:1", ("localhost", 1)),
        ("backend.svc.cluster.local:65535", ("backend.svc.cluster.local", 65535)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
    ],
)
def test_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_address(value) == expected


@pytest.mark.parametrize(
    ("value", "reason", "fix"),
    [
        ("127.0.0.1", "has no port", "'host:port'"),
        (":80", "has no host", "'0.0.0.0:80' for every interface"),
        ("::1:80", "looks like IPv6 without brackets", "'[::1]:PORT'"),
        ("[::g]:80", "is not an IPv6 address", "check the address"),
        ("host:0", "not a number in 1..65535", "between 1 and 65535"),
        ("host:65536", "not a number in 1..65535", "between 1 and 65535"),
        ("host:http", "not a number in 1..65535", "between 1 and 65535"),
        ("host:", "not a number in 1..65535", "between 1 and 65535"),
        ("bad host:80", "is not a host name or IP address", "'backend.local'"),
        (10000, "expected an address string, got the integer 10000", "'127.0.0.1:10000'"),
    ],
)
def test_bad_addresses(value: object, reason: str, fix: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_address(value)
    assert reason in info.value.reason
    assert fix in info.value.fix
    assert str(info.value) == f"{info.value.reason}. Fix: {info.value.fix}"


@given(st.ip_addresses(), st.integers(min_value=1, max_value=65535))
def test_address_round_trip(ip: object, port: int) -> None:
    host = str(ip)
    assert parse_address(format_address(host, port)) == (host, port)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("path", "path"),
        ("source_ip", "source_ip"),
        ("header:X-User", "header:x-user"),
        ("header: x-user ", "header:x-user"),
    ],
)
def test_hash_keys(value: str, canonical: str) -> None:
    assert parse_hash_key(value) == canonical


@pytest.mark.parametrize(
    ("value", "fix"),
    [("header:", "'header:x-user'"), ("source-ip", "did you mean 'source_ip'?"), ("cookie", "use one of")],
)
def test_bad_hash_keys(value: str, fix: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_hash_key(value)
    assert fix in info.value.fix
