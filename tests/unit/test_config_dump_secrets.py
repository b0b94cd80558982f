"""/config_dump hides secrets; the runtime's own round trips (xDS merges) keep them."""

from __future__ import annotations

from mesh.config import dump, parse

DATA = {
    "listeners": [{"name": "r", "address": "127.0.0.1:1", "protocol": "tcp", "cluster": "c",
                   "protocol_options": {"password": "pw"}}],
    "clusters": [{"name": "c", "discovery": {"source": "consul",
                                             "config": {"service": "x", "token": "t0k"}}}],
}


def test_dump_redacts_codec_and_discovery_secrets() -> None:
    shown = dump(parse(DATA, "s.yaml"))
    assert shown["listeners"][0]["protocol_options"] == {"password": "<redacted>"}
    assert shown["clusters"][0]["discovery"]["config"] == {"service": "x", "token": "<redacted>"}


def test_dump_with_secrets_parses_back_equal() -> None:
    config = parse(DATA, "s.yaml")
    assert parse(dump(config, secrets=True), "s.yaml") == config
