"""The ``service_routes`` listener key: parsing, defaults, errors, the dump round trip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trio

from mesh.config import ConfigError, dump, parse
from mesh.config._model import ServiceRoutes
from mesh.registry import load_registry
from mesh.runtime import ProxyRuntime, StartupError

DOCS = Path(__file__).resolve().parents[2] / "docs"
EUREKA = {"source": "eureka", "config": {"url": "http://127.0.0.1:8761/eureka/"}}


def config(listener: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    gateway = {"name": "gateway", "address": "127.0.0.1:8080", "protocol": "http1",
               "service_routes": EUREKA}
    return {"listeners": [{**gateway, **(listener or {})}], "admin": None, **top}


def error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(data, "gw.yaml")
    return str(caught.value)


def test_defaults_and_round_trip() -> None:
    parsed = parse(config(), "gw.yaml")
    listener = parsed.listeners[0]
    assert listener.routes == () and parsed.clusters == ()
    assert listener.service_routes == ServiceRoutes(
        "eureka", {"url": "http://127.0.0.1:8761/eureka/"}, refresh=30.0, lower_case=False,
        local_zone=None)
    assert parse(dump(parsed), "gw.yaml") == parsed  # clusters: [] is fine with service routes

    full = parse({**config({
        "protocol": "auto",
        "routes": [{"name": "own", "match": {"path": {"prefix": "/own/"}}, "cluster": "own"}],
        "service_routes": {"source": "nacos",
                           "config": {"address": "10.0.0.5:8848", "group": "g",
                                      "clusters": ["a", "b"]},
                           "refresh": "1m30s", "lower_case": True, "local_zone": "zone-a"}}),
        "clusters": [{"name": "own", "endpoints": ["127.0.0.1:9000"]}]}, "gw.yaml")
    found = full.listeners[0].service_routes
    assert found is not None
    assert (found.refresh, found.lower_case, found.local_zone) == (90.0, True, "zone-a")
    assert [route.name for route in full.listeners[0].routes] == ["own"]
    assert dump(full)["listeners"][0]["service_routes"] == {
        "source": "nacos", "config": {"address": "10.0.0.5:8848", "group": "g",
                                      "clusters": ["a", "b"]},
        "refresh": 90.0, "lower_case": True, "local_zone": "zone-a"}
    assert parse(dump(full), "gw.yaml") == full
    with pytest.raises(TypeError):  # read-only all the way down, as the running config is
        found.config["address"] = "x"  # type: ignore[index]
    assert "service_routes" not in dump(parse({
        "listeners": [{"name": "l", "address": "127.0.0.1:1", "cluster": "c"}],
        "clusters": [{"name": "c", "endpoints": ["127.0.0.1:2"]}]}, "x"))["listeners"][0]


def test_errors_name_the_place_and_the_fix() -> None:
    assert error(config({"protocol": "tcp"})) == (
        "gw.yaml: listeners[0].service_routes: service routes match request paths, and this "
        "listener speaks 'tcp'. Fix: use protocol http1, http2 or auto, or remove service_routes.")
    assert "listeners[0].cluster: the cluster shorthand is a catch-all route" in error(
        {**config({"cluster": "c"}), "clusters": [{"name": "c", "endpoints": ["127.0.0.1:1"]}]})
    assert error(config({"service_routes": {"source": "zookeeper"}})) == (
        "gw.yaml: listeners[0].service_routes.source: unknown service_routes source "
        "'zookeeper'. Fix: use one of: consul, eureka, nacos.")
    for source, key in (("eureka", "app"), ("eureka", "vip_address"), ("nacos", "service"),
                        ("consul", "service")):
        message = error(config({"service_routes": {"source": source, "config": {key: "x"}}}))
        assert f"listeners[0].service_routes.config.{key}: service_routes makes one cluster " \
               "per service" in message and f"Fix: remove {key}" in message
    assert "expected a mapping of settings" in error(
        config({"service_routes": {"source": "consul", "config": "x"}}))
    assert "service_routes.refresh: must be longer than 0" in error(
        config({"service_routes": {**EUREKA, "refresh": 0}}))
    assert "service_routes.lower_case: expected true or false" in error(
        config({"service_routes": {**EUREKA, "lower_case": "yes"}}))
    assert "did you mean 'lower_case'" in error(
        config({"service_routes": {**EUREKA, "lowercase": True}}))
    assert "missing required key 'source'" in error(config({"service_routes": {"config": {}}}))
    assert "needs one of 'routes' or 'cluster'" in error(config({"service_routes": None}))


def test_refused_together_with_xds() -> None:
    message = error(config(xds={"address": "127.0.0.1:18000"}))
    assert message == (
        "gw.yaml: listeners[0].service_routes: service_routes and the xds section would both "
        "rewrite the running config's routes and clusters, so they cannot be used together. "
        "Fix: remove the xds section, or remove service_routes and have the control plane "
        "send these routes.")


def test_docs_describe_the_key() -> None:
    text = (DOCS / "config.md").read_text()
    assert re.search(r"^\| `service_routes` \|", text, re.M)
    discovery = (DOCS / "discovery.md").read_text()
    assert "## Spring Cloud routes" in discovery


def test_bad_catalog_settings_refuse_to_start() -> None:
    """The source's own settings are checked when the proxy starts, naming the listener."""
    parsed = parse(config({"service_routes": {"source": "consul", "config": {"wait": "1h"}}}),
                   "gw.yaml")
    errors: list[BaseException] = []

    async def main() -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(ProxyRuntime(parsed, load_registry()).run)
        except* StartupError as group:
            errors.extend(group.exceptions)

    trio.run(main)
    assert [str(e) for e in errors] == [
        "listener 'gateway': service_routes 'consul': wait must be at most 10m (Consul's longest "
        "blocking query)"]
