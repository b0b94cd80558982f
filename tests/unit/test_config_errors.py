"""Every way a config can be wrong, and the one-line error each one gets.

Each error must name the file, the place inside it, the reason and the fix:
``rpcmesh.yaml: listeners[0].address: <reason>. Fix: <fix>``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from mesh.config import ConfigError, load, loads, parse

SOURCE = "rpcmesh.yaml"
DELETE = object()

BASE: dict[str, Any] = {
    "listeners": [
        {
            "name": "web",
            "address": "127.0.0.1:10000",
            "routes": [
                {"match": {"path": {"prefix": "/api"}}, "cluster": "api"},
                {"cluster": "web"},
            ],
        }
    ],
    "clusters": [
        {"name": "api", "endpoints": ["127.0.0.1:8080"]},
        {"name": "web", "endpoints": ["127.0.0.1:8081"]},
    ],
}


def edited(*edits: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each ``("a/0/b", value)`` applied; DELETE removes the key."""
    data = copy.deepcopy(BASE)
    for where, value in edits:
        *parents, last = [int(step) if step.isdigit() else step for step in where.split("/")]
        node: Any = data
        for step in parents:
            node = node[step]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return data


def assert_error(
    call: Callable[[], object], path: str, reason: str, fix: str, source: str = SOURCE
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call()
    error = info.value
    assert (error.source, error.path) == (source, path), str(error)
    assert reason in error.reason, str(error)
    assert fix in error.fix, str(error)
    where = f"{source}: {path}" if path else source
    assert str(error) == f"{where}: {error.reason}. Fix: {error.fix}"
    assert "\n" not in str(error)
    return error


L0 = "listeners/0"
R0 = "listeners/0/routes/0"
C0 = "clusters/0"
ENDPOINT = {"address": "127.0.0.1:8080"}
CASES: list[tuple[tuple[tuple[str, Any], ...], str, str, str]] = [
    # --- the document
    ((("listenrs", []),), "listenrs", "unknown key 'listenrs'", "did you mean 'listeners'?"),
    ((("extra", 1),), "extra", "unknown key 'extra'", "the keys allowed here are: listeners,"),
    ((("listeners", DELETE),), "", "missing required key 'listeners'", "add listeners: ..."),
    ((("listeners", {}),), "listeners", "expected a list of listeners, got a mapping", "'- '"),
    ((("listeners", []),), "listeners", "the list is empty", "add a listener."),
    ((("clusters", None),), "clusters", "expected a list of clusters, got null", "after the colon"),
    # --- listeners
    (((f"{L0}/address", DELETE),), "listeners[0]", "missing required key 'address'", "add"),
    (((f"{L0}/adress", "127.0.0.1:1"),), "listeners[0].adress", "unknown key", "'address'?"),
    (((f"{L0}/address", "127.0.0.1"),), "listeners[0].address", "has no port", "'host:port'"),
    (((f"{L0}/address", "::1:80"),), "listeners[0].address", "IPv6 without brackets", "[::1]"),
    (((f"{L0}/address", "h:0"),), "listeners[0].address", "not a number in 1..65535", "1 and"),
    (((f"{L0}/address", "h:65536"),), "listeners[0].address", "in 1..65535", "between 1 and"),
    (((f"{L0}/address", 10000),), "listeners[0].address", "got the integer 10000", "host:port"),
    (((f"{L0}/name", 7),), "listeners[0].name", "expected a string, got the integer 7", "'7'"),
    (((f"{L0}/name", ""),), "listeners[0].name", "is an empty string", "write a value"),
    (((f"{L0}/cluster", "api"),), "listeners[0]", "has 'routes' and 'cluster', which exclude", "only one"),
    (((f"{L0}/routes", DELETE),), "listeners[0]", "needs one of 'routes' or 'cluster'", "add one"),
    (((f"{L0}/routes", []),), "listeners[0].routes", "the list is empty", "add a route."),
    (((f"{L0}/sniff_timeout", 0),), "listeners[0].sniff_timeout", "longer than 0", "'500ms'"),
    (((f"{L0}/sniff_max_bytes", 0),), "listeners[0].sniff_max_bytes", "0 is out of range", "1"),
    (((f"{L0}/max_header_size", True),), "listeners[0].max_header_size", "boolean true", "whole"),
    (((f"{L0}/idle_timeout", "5 min"),), "listeners[0].idle_timeout", "not a duration", "'15s'"),
    (((f"{L0}/filters", [{"config": {}}]),), "listeners[0].filters[0]", "missing", "add name"),
    (
        ((f"{L0}/filters", [{"name": "f", "config": [1]}]),),
        "listeners[0].filters[0].config",
        "expected a mapping of settings, got a list",
        "key: value",
    ),
    # --- routes
    (
        ((f"{R0}/cluster", "apj"),),
        "listeners[0].routes[0].cluster",
        "no cluster named 'apj'",
        "did you mean 'api'?",
    ),
    (
        ((f"{R0}/cluster", "zzz"),),
        "listeners[0].routes[0].cluster",
        "no cluster named 'zzz'",
        "define a cluster named 'zzz' under clusters:, or use one of: api, web.",
    ),
    (
        (("clusters", DELETE), (f"{L0}/routes", [{"cluster": "api"}])),
        "listeners[0].routes[0].cluster",
        "no cluster named 'api'",
        "define a cluster named 'api' under clusters:.",
    ),
    (
        ((f"{R0}/weighted_clusters", [{"cluster": "api", "weight": 1}]),),
        "listeners[0].routes[0]",
        "has 'cluster' and 'weighted_clusters', which exclude",
        "keep only one",
    ),
    (((f"{R0}/cluster", DELETE),), "listeners[0].routes[0]", "needs one of", "add one of"),
    (((f"{R0}/timeout", "-1s"),), "listeners[0].routes[0].timeout", "not a duration", "'250ms'"),
    (((f"{R0}/timeout", "15 s"),), "listeners[0].routes[0].timeout", "'15 s' is not a duration", "15s"),
    (
        ((f"{R0}/hash_key", "path"),),
        "listeners[0].routes[0].hash_key",
        "only applies when a route's cluster uses lb 'ring_hash'",
        "set lb: ring_hash",
    ),
    (
        ((f"{R0}/name", "dup"), ("listeners/0/routes/1/name", "dup")),
        "listeners[0].routes[1].name",
        "route name 'dup' is already used by listeners[0].routes[0]",
        "give each route a name of its own.",
    ),
    (((f"{R0}/tmeout", 1),), "listeners[0].routes[0].tmeout", "unknown key", "'timeout'?"),
    # --- weighted clusters
    (
        ((f"{R0}/cluster", DELETE), (f"{R0}/weighted_clusters", [{"cluster": "api", "weight": 0}])),
        "listeners[0].routes[0].weighted_clusters",
        "every weight is 0",
        "above 0",
    ),
    (
        (
            (f"{R0}/cluster", DELETE),
            (f"{R0}/weighted_clusters", [{"cluster": "api", "weight": 1}, {"cluster": "api", "weight": 2}]),
        ),
        "listeners[0].routes[0].weighted_clusters[1].cluster",
        "'api' is listed twice",
        "merge",
    ),
    (
        ((f"{R0}/cluster", DELETE), (f"{R0}/weighted_clusters", [{"cluster": "api", "weight": -1}])),
        "listeners[0].routes[0].weighted_clusters[0].weight",
        "-1 is out of range",
        "from 0 to 1000000",
    ),
    (
        ((f"{R0}/cluster", DELETE), (f"{R0}/weighted_clusters", [{"cluster": "api"}])),
        "listeners[0].routes[0].weighted_clusters[0]",
        "missing required key 'weight'",
        "add weight",
    ),
    (
        ((f"{R0}/cluster", DELETE), (f"{R0}/weighted_clusters", "api")),
        "listeners[0].routes[0].weighted_clusters",
        "got the string 'api'",
        "'- '",
    ),
    # --- match
    (
        ((f"{R0}/match", {"pth": "/"}),),
        "listeners[0].routes[0].match.pth",
        "unknown key 'pth'",
        "did you mean 'path'?",
    ),
    (
        ((f"{R0}/match/path", {"prefx": "/api"}),),
        "listeners[0].routes[0].match.path.prefx",
        "unknown key 'prefx'",
        "did you mean 'prefix'?",
    ),
    (
        ((f"{R0}/match/path", {"prefix": "/a", "exact": "/b"}),),
        "listeners[0].routes[0].match.path",
        "has 'exact' and 'prefix', which exclude each other",
        "keep only one of 'exact', 'prefix', 'regex' or 'present'",
    ),
    (((f"{R0}/match/path", {}),), "listeners[0].routes[0].match.path", "needs one of", "add one"),
    (
        ((f"{R0}/match/path", {"regex": "[a"}),),
        "listeners[0].routes[0].match.path.regex",
        "invalid regex '[a': unterminated character set",
        "whole value",
    ),
    (
        ((f"{R0}/match/path", {"present": False}),),
        "listeners[0].routes[0].match.path.present",
        "'present: false' matches nothing",
        "'invert: true'",
    ),
    (
        ((f"{R0}/match/path", 123),),
        "listeners[0].routes[0].match.path",
        "expected a string or a mapping, got the integer 123",
        "{prefix: /api}",
    ),
    (
        ((f"{R0}/match/path", {"exact": 2}),),
        "listeners[0].routes[0].match.path.exact",
        "got the integer 2",
        "quote it: '2'.",
    ),
    (((f"{R0}/match", "/api"),), "listeners[0].routes[0].match", "expected a mapping", "keys such"),
    (
        ((f"{R0}/match/headers", {"name": "x"}),),
        "listeners[0].routes[0].match.headers",
        "expected a list of header matches",
        "'- '",
    ),
    (
        ((f"{R0}/match/headers", [{"exact": "bob"}]),),
        "listeners[0].routes[0].match.headers[0]",
        "missing required key 'name'",
        "add name",
    ),
    (
        ((f"{R0}/match/headers", [{"name": "x user", "exact": "b"}]),),
        "listeners[0].routes[0].match.headers[0].name",
        "has spaces",
        "remove the spaces.",
    ),
    (
        ((f"{R0}/match/headers", [{"name": "x", "exactt": "b"}]),),
        "listeners[0].routes[0].match.headers[0].exactt",
        "unknown key",
        "did you mean 'exact'?",
    ),
    (
        ((f"{R0}/match/headers", [{"name": "x"}]),),
        "listeners[0].routes[0].match.headers[0]",
        "needs one of 'exact', 'prefix', 'regex' or 'present'",
        "add one of",
    ),
    (
        ((f"{R0}/match/headers", [{"name": "x", "present": True, "invert": "yes"}]),),
        "listeners[0].routes[0].match.headers[0].invert",
        "expected true or false",
        "without quotes",
    ),
    # --- tcp listeners
    (
        ((f"{L0}/protocol", "tcp"),),
        "listeners[0].routes",
        "a tcp listener takes exactly one route, and this one has 2",
        "'cluster: NAME'",
    ),
    (
        (
            (f"{L0}/protocol", "tcp"),
            (
                f"{L0}/routes",
                [{"weighted_clusters": [{"cluster": "api", "weight": 1}, {"cluster": "web", "weight": 1}]}],
            ),
        ),
        "listeners[0].routes[0].weighted_clusters",
        "to a single cluster",
        "one route to one",
    ),
    (
        ((f"{L0}/protocol", "tcp"), (f"{L0}/routes", [{"cluster": "api", "match": {"path": "/"}}])),
        "listeners[0].routes[0].match",
        "no requests to match on",
        "remove match:",
    ),
    # --- clusters
    (
        (("clusters/1/name", "api"),),
        "clusters[1].name",
        "cluster name 'api' is already used by clusters[0]",
        "a name of its own",
    ),
    (((f"{C0}/endpoints", DELETE),), "clusters[0]", "a cluster needs exactly one of endpoints and discovery", "list the endpoints"),
    (((f"{C0}/endpoints", []),), "clusters[0].endpoints", "the list is empty", "add an endpoint."),
    (
        ((f"{C0}/endpoints", ["127.0.0.1:8080", "127.0.0.1:8080"]),),
        "clusters[0].endpoints[1]",
        "endpoint 127.0.0.1:8080 is already listed at clusters[0].endpoints[0]",
        "raise its weight",
    ),
    (((f"{C0}/endpoints", ["localhost"]),), "clusters[0].endpoints[0]", "has no port", "host:port"),
    (
        ((f"{C0}/endpoints", [{**ENDPOINT, "weight": 0}]),),
        "clusters[0].endpoints[0].weight",
        "0 is out of range",
        "of at least 1",
    ),
    (
        ((f"{C0}/endpoints", [{"adress": "h:1"}]),),
        "clusters[0].endpoints[0].adress",
        "unknown key 'adress'",
        "did you mean 'address'?",
    ),
    (
        ((f"{C0}/endpoints", [{**ENDPOINT, "metadata": {"zone": 1}}]),),
        "clusters[0].endpoints[0].metadata.zone",
        "got the integer 1",
        "quote it: '1'.",
    ),
    (
        ((f"{C0}/endpoints", [{**ENDPOINT, "metadata": ["a"]}]),),
        "clusters[0].endpoints[0].metadata",
        "expected a mapping of labels",
        "zone: a",
    ),
    (
        ((f"{C0}/lb", "round-robin"),),
        "clusters[0].lb",
        "unknown load balancer 'round-robin'",
        "did you mean 'round_robin'?",
    ),
    (
        ((f"{C0}/lb", "fastest"),),
        "clusters[0].lb",
        "unknown load balancer 'fastest'",
        "least_request, modula, random, ring_hash, round_robin.",
    ),
    (((f"{C0}/lb", "ring_hash"),), "clusters[0]", "lb 'ring_hash' needs a hash_key", "header:<name>"),
    (
        ((f"{C0}/hash_key", "path"),),
        "clusters[0].hash_key",
        "only applies to lb 'ring_hash'",
        "remove hash_key, or set lb: ring_hash.",
    ),
    (
        ((f"{C0}/lb", "ring_hash"), (f"{C0}/hash_key", "header:")),
        "clusters[0].hash_key",
        "names no header",
        "'header:x-user'",
    ),
    (
        ((f"{C0}/lb", "ring_hash"), (f"{C0}/hash_key", "cookie")),
        "clusters[0].hash_key",
        "unknown hash key 'cookie'",
        "use one of: header:<name>, host, method, path",
    ),
    (((f"{C0}/connect_timeout", 0),), "clusters[0].connect_timeout", "longer than 0", "'2s'"),
    (((f"{C0}/max_connections", 0),), "clusters[0].max_connections", "out of range", "at least 1"),
    (
        ((f"{C0}/max_connections", "5"),),
        "clusters[0].max_connections",
        "got the string '5'",
        "without quotes",
    ),
    (
        ((f"{C0}/max_concurrent_streams", 0),),
        "clusters[0].max_concurrent_streams",
        "0 is out of range",
        "at least 1",
    ),
    (
        ((f"{C0}/max_requests_per_connection", -1),),
        "clusters[0].max_requests_per_connection",
        "-1 is out of range",
        "at least 0",
    ),
    (
        ((f"{C0}/passive_health", {"failures": 3}),),
        "clusters[0].passive_health.failures",
        "unknown key",
        "consecutive_failures",
    ),
    (
        ((f"{C0}/passive_health", {"ejection_time": "30 sec"}),),
        "clusters[0].passive_health.ejection_time",
        "'30 sec' is not a duration",
        "'15s'",
    ),
    # --- admin, logging, samples
    ((("admin", {"address": "localhost"}),), "admin.address", "has no port", "host:port"),
    ((("admin", {"adress": "h:1"}),), "admin.adress", "unknown key", "did you mean 'address'?"),
    ((("admin", True),), "admin", "expected a mapping, got the boolean true", "address: ..."),
    (
        (("logging", {"level": "warn"}),),
        "logging.level",
        "unknown log level 'warn'",
        "did you mean 'warning'?",
    ),
    (
        (("logging", {"level": "verbose"}),),
        "logging.level",
        "unknown log level 'verbose'",
        "use one of: debug, error, info, warning.",
    ),
    ((("logging", {"access_log": "yes"}),), "logging.access_log", "got the string 'yes'", "true or false"),
    (
        (("samples", [{"name": "h", "address": "127.0.0.1:1", "kind": "hello"}]),),
        "samples[0].kind",
        "unknown sample kind 'hello'",
        "did you mean 'http_hello'? The choices are: http_hello.",
    ),
    (
        (("samples", [{"name": "h", "address": "127.0.0.1:1"}]),),
        "samples[0]",
        "missing required key 'kind'",
        "add kind: ...",
    ),
    (
        (
            (
                "samples",
                [
                    {"name": "h", "address": "127.0.0.1:1", "kind": "http_hello"},
                    {"name": "h", "address": "127.0.0.1:2", "kind": "http_hello"},
                ],
            ),
        ),
        "samples[1].name",
        "sample upstream name 'h' is already used by samples[0]",
        "of its own",
    ),
    # --- two sockets on one port
    (
        (("listeners/1", {"name": "again", "address": "127.0.0.1:10000", "cluster": "api"}),),
        "listeners[1].address",
        "127.0.0.1:10000 is also the address of listener 'web' (listeners[0].address)",
        "its own port",
    ),
    (
        (("listeners/1", {"name": "web", "address": "127.0.0.1:10001", "cluster": "api"}),),
        "listeners[1].name",
        "listener name 'web' is already used by listeners[0]",
        "of its own",
    ),
    (
        ((f"{L0}/address", "127.0.0.1:9901"),),
        "listeners[0].address",
        "is also the address of the admin API (its default address)",
        "its own port",
    ),
    (
        (("samples", [{"name": "h", "address": "0.0.0.0:10000", "kind": "http_hello"}]),),
        "samples[0].address",
        "0.0.0.0:10000 is also the address of listener 'web'",
        "its own port",
    ),
    (
        (("admin", {"address": "127.0.0.1:10000"}),),
        "listeners[0].address",
        "is also the address of the admin API (admin.address)",
        "its own port",
    ),
]


@pytest.mark.parametrize(
    ("edits", "path", "reason", "fix"), CASES, ids=[f"{case[1]}: {case[2]}" for case in CASES]
)
def test_invalid_config(edits: tuple[tuple[str, Any], ...], path: str, reason: str, fix: str) -> None:
    text = yaml.safe_dump(edited(*edits), sort_keys=False)
    assert_error(lambda: loads(text, SOURCE), path, reason, fix)


def test_base_config_is_valid() -> None:
    # Every case above breaks exactly one thing in this config.
    assert loads(yaml.safe_dump(BASE), SOURCE).listeners[0].name == "web"


def test_parse_refuses_a_non_string_key() -> None:
    data = edited((f"{R0}/match", {1: "/"}))
    assert_error(
        lambda: parse(data, SOURCE), "listeners[0].routes[0].match", "key 1 is not a string", "quote the key."
    )


def test_parse_refuses_a_document_that_is_not_a_mapping() -> None:
    assert_error(
        lambda: parse([], SOURCE),  # type: ignore[arg-type]
        "",
        "expected a mapping, got a list",
        "listeners: ...",
    )


def test_metadata_key_paths_are_quoted_when_not_identifiers() -> None:
    data = edited((f"{C0}/endpoints", [{**ENDPOINT, "metadata": {"k8s.io/zone": 1}}]))
    assert_error(
        lambda: parse(data, SOURCE),
        "clusters[0].endpoints[0].metadata['k8s.io/zone']",
        "got the integer 1",
        "quote it",
    )


# --- plugin names, checked only when the caller knows what is installed


def test_unknown_protocol_lists_the_known_ones() -> None:
    text = yaml.safe_dump(edited((f"{L0}/protocol", "htp1")))
    assert_error(
        lambda: loads(text, SOURCE, known_protocols={"http1", "tcp"}),
        "listeners[0].protocol",
        "unknown protocol 'htp1'",
        "did you mean 'http1'? Known protocols: auto, http1, tcp.",
    )


def test_unknown_protocol_without_a_close_match() -> None:
    text = yaml.safe_dump(edited((f"{C0}/protocol", "grpc")))
    assert_error(
        lambda: loads(text, SOURCE, known_protocols={"http1"}),
        "clusters[0].protocol",
        "unknown protocol 'grpc'",
        "Known protocols: http1. A plugin's package must be installed",
    )


def test_upstream_protocol_cannot_be_auto() -> None:
    text = yaml.safe_dump(edited((f"{L0}/upstream_protocol", "auto")))
    assert_error(
        lambda: loads(text, SOURCE, known_protocols={"http1"}),
        "listeners[0].upstream_protocol",
        "unknown protocol 'auto'",
        "Known protocols: http1.",
    )


def test_unknown_filter_lists_the_known_ones() -> None:
    text = yaml.safe_dump(edited((f"{L0}/filters", [{"name": "forwarder"}])))
    assert_error(
        lambda: loads(text, SOURCE, known_filters={"forwarded"}),
        "listeners[0].filters[0].name",
        "unknown filter 'forwarder'",
        "did you mean 'forwarded'? Known filters: forwarded.",
    )


# --- the text itself: syntax, duplicates, files


@pytest.mark.parametrize(
    ("text", "path", "reason", "fix"),
    [
        (
            "listeners: [\n",
            "line 2, column 1",
            "YAML syntax error: expected the node content",
            "indentation and the quoting",
        ),
        ("listeners:\n\t- name: web\n", "line 2, column 1", "found character '\\t'", "indent with spaces"),
        (
            "listeners:\n  - name: a\n    name: b\n",
            "line 3, column 5",
            "key 'name' appears twice in one mapping (first on line 2)",
            "keep one of them",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "line 2, column 1",
            "expected a single document",
            "indentation and the quoting",
        ),
        (
            "listeners: !!python/object:os.system x\n",
            "line 1, column 12",
            "could not determine a constructor",
            "indentation",
        ),
        ('{"listeners": [}', "line 1, column 16", "JSON syntax error: Expecting value", "no trailing commas"),
        ('{\n  "listeners": [\n}\n', "line 3, column 1", "JSON syntax error", "no trailing commas"),
        ("", "", "the document is empty", "docs/config.md"),
        ("# only a comment\n", "", "the document is empty", "docs/config.md"),
        ("just a string\n", "", "expected a mapping, got the string 'just a string'", "listeners"),
    ],
)
def test_unreadable_text(text: str, path: str, reason: str, fix: str) -> None:
    assert_error(lambda: loads(text, SOURCE), path, reason, fix)


def test_duplicate_json_keys() -> None:
    assert_error(
        lambda: loads('{"listeners": [], "listeners": []}', SOURCE),
        "",
        "key 'listeners' appears twice in one JSON object",
        "keep one of them",
    )


def test_json_errors_in_a_config_name_the_path() -> None:
    text = json.dumps(edited((f"{L0}/address", "127.0.0.1:0")))
    assert_error(
        lambda: loads(text, "rpcmesh.json"),
        "listeners[0].address",
        "1..65535",
        "between 1 and 65535",
        source="rpcmesh.json",
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert_error(lambda: load(path), "", "no such file", "check the path", source=str(path))


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    assert_error(lambda: load(tmp_path), "", "cannot read the file", "check the path", source=str(tmp_path))


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("listeners: café\n".encode("latin-1"))
    assert_error(lambda: load(path), "", "cannot read the file", "UTF-8", source=str(path))


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rpcmesh.yaml"
    path.write_text(yaml.safe_dump(edited((f"{R0}/match/path", {"prefx": "/api"}))))
    error = assert_error(
        lambda: load(path),
        "listeners[0].routes[0].match.path.prefx",
        "unknown key 'prefx'",
        "did you mean 'prefix'?",
        source=str(path),
    )
    assert str(error) == (
        f"{path}: listeners[0].routes[0].match.path.prefx: unknown key 'prefx'. Fix: did you mean 'prefix'?"
    )
