from __future__ import annotations

import collections

from mesh.codec import HeaderKeys, Headers
from mesh.config import parse
from mesh.router import RouteTable


def _table(routes: list[dict]) -> RouteTable:
    config = parse({
        "listeners": [{"name": "l", "address": "127.0.0.1:10000", "routes": routes}],
        "clusters": [{"name": n, "endpoints": ["127.0.0.1:1"]} for n in ("a", "b", "c", "d")],
        "admin": None}, "<test>")
    return RouteTable(config.listeners[0].routes)


def _keys(method: str = "GET", path: str = "/", host: str = "example.com", **headers: str) -> HeaderKeys:
    fields = [(b":method", method.encode()), (b":authority", host.encode()), (b":path", path.encode())]
    fields += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return HeaderKeys(Headers(1, fields))


TABLE = [
    {"match": {"path": "/exact"}, "cluster": "a"},
    {"match": {"path": {"prefix": "/api/"}, "method": "POST"}, "cluster": "b"},
    {"match": {"path": {"regex": r"/users/\d+"}, "headers": [{"name": "x-canary", "present": True}]},
     "cluster": "c"},
    {"match": {"host": {"prefix": "admin."}}, "cluster": "d"},
    {"match": {"headers": [{"name": "x-env", "exact": "prod", "invert": True}]}, "cluster": "c"},
    {"cluster": "a"},
]


def test_first_match_wins_over_every_matcher_kind() -> None:
    table = _table(TABLE)

    def dest(**kw: str) -> str:
        route = table.match(_keys(**kw))
        assert route is not None
        return route.pick_cluster()

    assert dest(path="/exact", x_env="prod") == "a"
    assert dest(path="/exact?q=1", x_env="prod") == "a"  # the query is not part of the path
    assert dest(path="/exactly", x_env="prod") == "a"  # falls through to the catch-all
    assert dest(method="POST", path="/api/x", x_env="prod") == "b"
    assert dest(method="GET", path="/api/x", x_env="prod") == "a"
    assert dest(path="/users/42", x_canary="1", x_env="prod") == "c"
    assert dest(path="/users/42x", x_canary="1", x_env="prod") == "a"  # regex is a full match
    assert dest(host="admin.example.com:8080", x_env="prod") == "d"
    assert dest(path="/other") == "c"  # x-env absent: "not prod" matches


def test_no_route_when_nothing_matches() -> None:
    table = _table([{"match": {"path": {"prefix": "/only"}}, "cluster": "a"}])
    assert table.match(_keys(path="/else")) is None


def test_weighted_clusters_split_by_weight() -> None:
    table = _table([{"weighted_clusters": [{"cluster": "a", "weight": 90},
                                           {"cluster": "b", "weight": 10}]}])
    route = table.match(_keys())
    assert route is not None
    counts = collections.Counter(route.pick_cluster() for _ in range(5000))
    assert 0.06 < counts["b"] / 5000 < 0.14


def test_keys_nobody_asks_for_are_not_computed() -> None:
    table = _table([{"match": {"path": {"prefix": "/"}}, "cluster": "a"}])
    keys = _keys()
    table.match(keys)
    assert set(keys._cache) == {"path"}
