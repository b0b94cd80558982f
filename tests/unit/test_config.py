"""The config model and loader on valid input: defaults, shapes, round trips."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import types
from pathlib import Path

import pytest

import mesh.config
from mesh.config import (
    Admin,
    Config,
    ConfigError,
    Endpoint,
    HeaderMatch,
    PassiveHealth,
    RouteMatch,
    StringMatch,
    WeightedCluster,
    default_config,
    dump,
    load,
    loads,
    parse,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"

MINIMAL = """
listeners:
  - name: web
    address: 127.0.0.1:10000
    cluster: app
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
"""


def full_example() -> str:
    """The complete example of docs/config.md, so the reference cannot drift from the code."""
    found = re.search(r"<!-- full-example -->\n```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert found, "docs/config.md lost its <!-- full-example --> block"
    return found.group(1)


def test_public_api() -> None:
    assert sorted(mesh.config.__all__) == sorted(
        [
            *["Admin", "Cluster", "Config", "ConfigError", "Discovery", "Endpoint", "FilterConfig", "HeaderMatch"],
            *["Listener", "Logging", "PassiveHealth", "Route", "RouteMatch", "SampleUpstream"],
            *["StringMatch", "WeightedCluster", "Xds", "default_config", "dump", "load", "loads", "parse"],
            "parse_address",
            "parse_duration",
        ]
    )
    for name in mesh.config.__all__:
        assert hasattr(mesh.config, name)


def test_default_config() -> None:
    config = default_config()
    (listener,) = config.listeners
    assert (listener.name, listener.host, listener.port) == ("default", "127.0.0.1", 10000)
    assert listener.protocol == "auto"
    (route,) = listener.routes
    assert route.match == RouteMatch()
    assert route.clusters == (WeightedCluster("hello", 1),)
    assert config.cluster("hello").endpoints == (Endpoint("127.0.0.1", 10080),)
    (sample,) = config.samples
    assert (sample.name, sample.host, sample.port, sample.kind) == (
        "hello",
        "127.0.0.1",
        10080,
        "http_hello",
    )
    assert config.admin == Admin("127.0.0.1", 9901)
    assert "default.yaml" in config.source


def test_minimal_config_gets_the_model_defaults() -> None:
    config = loads(MINIMAL, "rpcmesh.yaml")
    listener = config.listeners[0]
    assert listener.protocol == "auto"
    assert (listener.sniff_timeout, listener.sniff_max_bytes) == (5.0, 4096)
    assert (listener.idle_timeout, listener.max_header_size) == (300.0, 65536)
    assert listener.filters == () and listener.upstream_protocol is None
    assert listener.routes[0].name == "web/0"
    assert listener.routes[0].timeout == 15.0
    cluster = config.cluster("app")
    assert cluster.lb == "round_robin" and cluster.hash_key is None
    assert (cluster.connect_timeout, cluster.idle_timeout) == (2.0, 60.0)
    assert (cluster.max_connections, cluster.max_requests_per_connection) == (1024, 0)
    assert cluster.max_concurrent_streams == 1024
    assert cluster.passive_health == PassiveHealth(5, 30.0)
    assert config.admin == Admin() and config.logging.level == "info"
    assert config.logging.access_log is True
    assert config.samples == () and config.source == "rpcmesh.yaml"


def test_full_example_from_the_docs() -> None:
    config = loads(full_example(), "docs/config.md")
    edge, rpc, tcp = config.listeners
    canary, users, health = edge.routes
    assert canary.clusters == (WeightedCluster("users", 90), WeightedCluster("users-next", 10))
    assert canary.timeout == 2.5 and health.timeout == 0.0
    assert users.hash_key == "header:x-user"
    assert users.match.method == StringMatch(exact="GET")
    assert users.match.headers == (HeaderMatch("x-debug", StringMatch(present=True), invert=True),)
    assert edge.filters[0].config["trusted_hops"] == 1
    assert (edge.sniff_timeout, edge.idle_timeout) == (2.0, 300.0)
    assert (edge.upstream_protocol, rpc.upstream_protocol) == ("http1", None)
    assert (rpc.host, rpc.port, rpc.routes[0].name) == ("::1", 20880, "orders-rpc/0")
    assert rpc.routes[0].match.version == StringMatch(prefix="2.")
    assert tcp.protocol == "tcp" and tcp.routes[0].clusters == (WeightedCluster("cache", 1),)
    ring = config.cluster("users")
    assert ring.endpoints[1] == Endpoint("10.0.0.8", 8080, 3, types.MappingProxyType({"zone": "b"}))
    assert ring.connect_timeout == 0.5 and ring.passive_health == PassiveHealth(3, 60.0)
    assert ring.max_concurrent_streams == 100
    assert config.cluster("orders").endpoints[0].host == "fd00::7"
    assert config.logging.level == "warning" and config.admin == Admin()


@pytest.mark.parametrize("text", [MINIMAL, full_example()], ids=["minimal", "full"])
def test_dump_round_trips(text: str) -> None:
    config = loads(text, "rpcmesh.yaml")
    data = dump(config)
    assert parse(data, "rpcmesh.yaml") == config
    # What /config_dump serves: JSON, loadable again as a config file.
    assert loads(json.dumps(data), "rpcmesh.yaml") == config


def test_dump_round_trips_the_default() -> None:
    config = default_config()
    assert parse(json.loads(json.dumps(dump(config))), config.source) == config


def test_dump_spells_out_defaults() -> None:
    data = dump(loads(MINIMAL))
    assert data["listeners"][0]["routes"] == [
        {"name": "web/0", "match": {}, "cluster": "app", "timeout": 15.0, "hash_key": None}
    ]
    assert data["clusters"][0]["endpoints"] == [{"address": "127.0.0.1:8080", "weight": 1, "metadata": {}}]
    assert data["admin"] == {"address": "127.0.0.1:9901"}


def test_json_input() -> None:
    document = {
        "listeners": [{"name": "web", "address": "[::1]:10000", "cluster": "app"}],
        "clusters": [{"name": "app", "endpoints": [{"address": "127.0.0.1:8080", "weight": 2}]}],
        "admin": None,
    }
    config = loads(json.dumps(document, indent=2), "rpcmesh.json")
    assert config.listeners[0].host == "::1"
    assert config.cluster("app").endpoints[0].weight == 2
    assert config.admin is None


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rpcmesh.yaml"
    path.write_text(MINIMAL)
    config = load(path)
    assert config.source == str(path)
    assert config == loads(MINIMAL, str(path))


def test_string_match() -> None:
    assert StringMatch(exact="/a").matches("/a") and not StringMatch(exact="/a").matches("/ab")
    assert StringMatch(prefix="/api").matches("/api/v1")
    assert not StringMatch(prefix="/api").matches("/ap")
    # fullmatch, as Envoy's safe_regex: a partial match is no match.
    regex = StringMatch(regex=re.compile(r"/users/\d+"))
    assert regex.matches("/users/42") and not regex.matches("/users/42/x")
    assert StringMatch(present=True).matches("") and not StringMatch(present=True).matches(None)
    assert not StringMatch(exact="").matches(None)
    assert not StringMatch().matches("anything")


def test_header_match_invert() -> None:
    absent = HeaderMatch("x-canary", StringMatch(present=True), invert=True)
    assert absent.matches(None) and not absent.matches("1")
    assert HeaderMatch("x-user", StringMatch(exact="bob")).matches("bob")


def test_yaml_shapes_of_matches() -> None:
    config = loads(
        MINIMAL.replace(
            "    cluster: app\n",
            "    routes:\n"
            "      - match:\n"
            "          path: /exact\n"
            "          host: {regex: '.*[.]example[.]com'}\n"
            "          headers:\n"
            "            - {name: X-User, prefix: b}\n"
            "            - {name: x-empty, exact: ''}\n"
            "        cluster: app\n",
        )
    )
    match = config.listeners[0].routes[0].match
    assert match.path == StringMatch(exact="/exact")
    assert match.host is not None and match.host.matches("api.example.com")
    assert match.headers[0] == HeaderMatch("x-user", StringMatch(prefix="b"))
    assert match.headers[1].match == StringMatch(exact="")


def test_known_plugin_names_are_accepted() -> None:
    text = MINIMAL.replace("    cluster: app", "    protocol: http1\n    cluster: app")
    config = loads(text, known_protocols={"http1"}, known_filters=set())
    assert config.listeners[0].protocol == "http1"
    auto = loads(MINIMAL, known_protocols=set())  # "auto" needs no codec of that name
    assert auto.listeners[0].protocol == "auto"


def test_yaml_merge_keys_may_be_overridden() -> None:
    # A top-level anchor would be an unknown key, so the anchor lives inside the list.
    text = MINIMAL.replace(
        "  - name: app\n",
        "  - &base {name: base, endpoints: [127.0.0.1:8081], max_connections: 10}\n"
        "  - <<: *base\n    name: app\n",
    )
    config = loads(text)
    assert config.cluster("app").max_connections == 10
    assert config.cluster("app").endpoints[0].port == 8080


def test_model_is_frozen_and_endpoints_hashable() -> None:
    config = loads(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listeners[0].port = 1  # type: ignore[misc]
    endpoint = config.cluster("app").endpoints[0]
    assert {endpoint: "up"}[Endpoint("127.0.0.1", 8080)] == "up"
    tagged = Endpoint("h", 1, metadata=types.MappingProxyType({"zone": "a"}))
    assert hash(tagged) == hash(Endpoint("h", 1, metadata=types.MappingProxyType({"zone": "a"})))


def test_filter_config_is_read_only_all_the_way_down() -> None:
    text = MINIMAL.replace(
        "    cluster: app",
        "    cluster: app\n    filters:\n      - name: f\n        config: {a: {b: [1, 2]}}",
    )
    settings = loads(text).listeners[0].filters[0].config
    with pytest.raises(TypeError):
        settings["a"]["b"] = 1
    assert settings["a"]["b"] == (1, 2)
    assert dump(loads(text))["listeners"][0]["filters"] == [{"name": "f", "config": {"a": {"b": [1, 2]}}}]


def test_config_cluster_lookup() -> None:
    config = loads(MINIMAL, "rpcmesh.yaml")
    assert config.cluster("app").name == "app"
    with pytest.raises(KeyError, match="no cluster named 'nope' in rpcmesh.yaml"):
        config.cluster("nope")


def test_config_built_directly() -> None:
    # The proxy core and its tests build configs in code, without the loader.
    config = Config(listeners=(), clusters=(), admin=None, logging=mesh.config.Logging())
    assert config.source == "<string>" and config.samples == ()


def test_config_error_is_a_picklable_value_error() -> None:
    error = ConfigError("a.yaml", "listeners[0]", "bad", "fix it.")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "a.yaml: listeners[0]: bad. Fix: fix it."
    assert str(ConfigError("a.yaml", "", "empty", "write.")) == "a.yaml: empty. Fix: write."
