from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from mesh import registry
from mesh.codec import Codec, PoolMode
from mesh.registry import PluginError, load_registry


def test_builtin_codecs_and_filters_come_through_entry_points() -> None:
    reg = load_registry()
    http1 = reg.codec("http1")
    assert isinstance(http1, Codec) and http1.pool_mode is PoolMode.PING_PONG
    assert reg.codecs["http1"].distribution.startswith("rpcmesh ")
    assert "forwarded" in reg.filters


def test_unknown_codec_names_the_installed_ones() -> None:
    with pytest.raises(PluginError, match="installed codecs: .*http1"):
        load_registry().codec("nope")


class _Dist:
    def __init__(self, name: str) -> None:
        self.name, self.version = name, "1.0"


def _ep(name: str, value: str, dist: str) -> EntryPoint:
    ep = EntryPoint(name, value, "mesh.codecs")
    return ep._for(_Dist(dist))  # type: ignore[attr-defined,no-any-return]


def test_duplicate_names_are_an_error_naming_both_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [_ep("http1", "mesh.codecs.http1:codec", "rpcmesh"),
           _ep("http1", "acme_http.codec:codec", "acme-http")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "mesh.codecs" else [])
    with pytest.raises(PluginError) as err:
        load_registry()
    message = str(err.value)
    assert "rpcmesh 1.0" in message and "acme-http 1.0" in message and "'http1'" in message


def test_broken_plugin_is_reported_with_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [_ep("bad", "no_such_module_xyz:codec", "acme-bad")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "mesh.codecs" else [])
    with pytest.raises(PluginError, match="cannot load 'bad'.*acme-bad 1.0"):
        load_registry()
