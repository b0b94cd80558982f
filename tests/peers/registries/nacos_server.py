"""A Nacos naming server for the contract tests: the open API subset of nacos-sdk-python's v1
``NacosClient`` and of rpcmesh's ``nacos`` source.

- ``POST /nacos/v1/auth/login`` (only when the server has users): ``{"accessToken", "tokenTtl",
  "globalAdmin"}``; with users, every other call needs ``accessToken`` (403 otherwise);
- ``POST``/``PUT``/``DELETE``/``GET /nacos/v1/ns/instance``: register, modify, deregister, read
  one instance (form or query parameters, answer ``ok``);
- ``PUT /nacos/v1/ns/instance/beat``: a heartbeat (``beat`` JSON); an unknown instance with
  beat info is registered again, as Nacos does; answer ``{"clientBeatInterval", "code",
  "lightBeatEnabled"}``;
- ``GET /nacos/v1/ns/instance/list`` and ``GET /nacos/v2/ns/instance/list``: the service
  object in the shape of tests/golden/registries/nacos_v1_instance_list.json (v2: wrapped in
  ``{"code": 0, "message": "success", "data": ...}``, clusters as ``clusterName``); enabled
  instances only, healthy ones only with ``healthyOnly=true``;
- ``GET /nacos/v1/ns/service/list?pageNo=&pageSize=&groupName=&namespaceId=`` (``pageNo`` and
  ``pageSize`` required, as in Nacos's v1 API): ``{"count": N, "doms": [names]}``, and ``GET
  /nacos/v2/ns/service/list`` (``pageNo`` 1 and ``pageSize`` 20 by default, at most 500):
  ``{"code": 0, "message": "success", "data": {"count": N, "services": [names]}}``, the
  shapes of tests/golden/registries/nacos_v{1,2}_service_list.json: the names (without their
  group) of the group's services that have an instance, sorted, one page of them; ``count`` is
  the number of all of them. (Nacos keeps a service whose last instance left until its
  empty-service clean-up, a minute or more later; here it goes at once.)

- the config API subset of ``NacosClient`` and of rpcmesh's ``nacos_routes``: ``POST
  /nacos/v1/cs/configs`` (``dataId``, ``group``, ``content``, ``tenant``: publish, answer
  ``true``), ``GET`` (the content as text, 404 ``config data not exist``), ``DELETE`` (answer
  ``true``); ``POST /nacos/v1/cs/configs/listener`` with ``Listening-Configs`` (``dataId^2group
  ^2md5[^2tenant]^1`` per item): the items whose content MD5 differs from the one sent (an
  absent item has the MD5 ""), URL-encoded as ``dataId^2group[^2tenant]^1``, at once or as
  soon as one changes; none changed: an empty answer after ``Long-Pulling-Timeout`` less 0.5 s
  (as Nacos), at most ``config_hold`` seconds (short in tests).

Not there: the gRPC API of Nacos 2 clients, health-check expiry of ephemeral instances,
protection thresholds, config history, beta and tag configs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import quote_plus

from tests.peers.registries._server import RegistryServer, Reply, Request, serve_main, truthy

DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_NAMESPACE = "public"


def grouped(service: str, group: str | None) -> str:
    """``group@@service`` (a name already grouped is kept)."""
    return service if "@@" in service else f"{group or DEFAULT_GROUP}@@{service}"


class NacosServer(RegistryServer):
    """A Nacos naming server (open API v1/v2 subset) on 127.0.0.1."""

    def __init__(self, cache_millis: int = 10_000, users: dict[str, str] | None = None,
                 config_hold: float = 29.5) -> None:
        super().__init__()
        #: (tenant, group, dataId) -> content
        self.configs: dict[tuple[str, str, str], str] = {}
        #: the longest a config listener request is held without a change (seconds)
        self.config_hold = config_hold
        self.cache_millis = cache_millis
        self.users = users or {}
        self.tokens: set[str] = set()
        #: (namespace, group@@service) -> instanceId -> instance (the list answer's host shape)
        self.services: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        #: host entries added as they are (a test's malformed entries)
        self.raw: dict[tuple[str, str], list[Any]] = {}
        #: service-list entries added as they are, after the names (a test's malformed entries)
        self.raw_services: list[Any] = []

    # -- test hooks -----------------------------------------------------------------------------

    def add_raw_host(self, service: str, entry: Any, group: str = DEFAULT_GROUP,
                     namespace: str = DEFAULT_NAMESPACE) -> None:
        with self.cond:
            self.raw.setdefault((namespace, grouped(service, group)), []).append(entry)

    def add_raw_service(self, entry: Any) -> None:
        with self.cond:
            self.raw_services.append(entry)

    def instances(self, service: str, group: str = DEFAULT_GROUP,
                  namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
        with self.cond:
            return list(self.services.get((namespace, grouped(service, group)), {}).values())

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        params = request.form()
        if request.path == "/nacos/v1/auth/login" and request.method == "POST":
            return self._login(params)
        if self.users and params.get("accessToken") not in self.tokens:
            return Reply(403, "user not found!")
        route = (request.method, request.path)
        with self.cond:
            if route == ("POST", "/nacos/v1/ns/instance"):
                return self._register(params)
            if route == ("PUT", "/nacos/v1/ns/instance"):
                return self._modify(params)
            if route == ("DELETE", "/nacos/v1/ns/instance"):
                return self._deregister(params)
            if route == ("GET", "/nacos/v1/ns/instance"):
                return self._detail(params)
            if route == ("PUT", "/nacos/v1/ns/instance/beat"):
                return self._beat(params)
            if route == ("GET", "/nacos/v1/ns/instance/list"):
                return Reply(200, self._list(params, params.get("clusters", "")))
            if route == ("GET", "/nacos/v2/ns/instance/list"):
                return Reply(200, {"code": 0, "message": "success",
                                   "data": self._list(params, params.get("clusterName", ""))})
            if route == ("GET", "/nacos/v1/ns/service/list"):
                return self._service_list(params, "v1")
            if route == ("GET", "/nacos/v2/ns/service/list"):
                return self._service_list(params, "v2")
            if request.path == "/nacos/v1/cs/configs":
                return self._config(request.method, params)
            if route == ("POST", "/nacos/v1/cs/configs/listener"):
                return self._listen(params, request.headers)
        return Reply(404, f"no such API: {request.method} {request.path}")

    def _login(self, params: dict[str, str]) -> Reply:
        user, password = params.get("username"), params.get("password")
        if not self.users or self.users.get(user or "") != password:
            return Reply(403, "unknown user!")
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return Reply(200, {"accessToken": token, "tokenTtl": 18000, "globalAdmin": True})

    def _key(self, params: dict[str, str]) -> tuple[str, str] | Reply:
        service = params.get("serviceName")
        if not service:
            return Reply(400, "caused: Param 'serviceName' is required.;")
        namespace = params.get("namespaceId") or DEFAULT_NAMESPACE
        return namespace, grouped(service, params.get("groupName"))

    def _instance(self, params: dict[str, str], name: str) -> dict[str, Any] | Reply:
        try:
            port = int(params["port"])
            weight = float(params.get("weight", "1.0"))
        except (KeyError, ValueError) as exc:
            return Reply(400, f"caused: bad instance parameter {exc};")
        ip = params.get("ip") or ""
        cluster = params.get("clusterName") or "DEFAULT"
        metadata: Any = {}
        if params.get("metadata"):
            try:
                metadata = json.loads(params["metadata"])
            except ValueError:
                return Reply(400, "caused: instance metadata error;")
        return {
            "instanceId": f"{ip}#{port}#{cluster}#{name}",
            "ip": ip, "port": port, "weight": weight,
            "healthy": truthy(params.get("healthy"), True),
            "enabled": truthy(params.get("enabled", params.get("enable")), True),
            "ephemeral": truthy(params.get("ephemeral"), True),
            "clusterName": cluster, "serviceName": name, "metadata": metadata,
            "instanceHeartBeatInterval": 5000, "instanceIdGenerator": "simple",
            "instanceHeartBeatTimeOut": 15000, "ipDeleteTimeout": 30000,
        }

    def _register(self, params: dict[str, str]) -> Reply:
        key = self._key(params)
        if isinstance(key, Reply):
            return key
        instance = self._instance(params, key[1])
        if isinstance(instance, Reply):
            return instance
        instance["lastBeat"] = time.monotonic()
        self.services.setdefault(key, {})[instance["instanceId"]] = instance
        self.changed()
        return Reply(200, "ok")

    def _find(self, params: dict[str, str]) -> tuple[dict[str, dict[str, Any]], str] | Reply:
        key = self._key(params)
        if isinstance(key, Reply):
            return key
        cluster = params.get("clusterName") or params.get("cluster") or "DEFAULT"
        instance_id = f"{params.get('ip')}#{params.get('port')}#{cluster}#{key[1]}"
        return self.services.setdefault(key, {}), instance_id

    def _modify(self, params: dict[str, str]) -> Reply:
        found = self._find(params)
        if isinstance(found, Reply):
            return found
        instances, instance_id = found
        if instance_id not in instances:
            return Reply(400, f"caused: instance not found: {instance_id};")
        instance = instances[instance_id]
        if "weight" in params:
            instance["weight"] = float(params["weight"])
        if "enabled" in params or "enable" in params:
            instance["enabled"] = truthy(params.get("enabled", params.get("enable")), True)
        if params.get("metadata"):
            instance["metadata"] = json.loads(params["metadata"])
        self.changed()
        return Reply(200, "ok")

    def _deregister(self, params: dict[str, str]) -> Reply:
        found = self._find(params)
        if isinstance(found, Reply):
            return found
        instances, instance_id = found
        instances.pop(instance_id, None)
        self.changed()
        return Reply(200, "ok")

    def _detail(self, params: dict[str, str]) -> Reply:
        found = self._find(params)
        if isinstance(found, Reply):
            return found
        instances, instance_id = found
        if instance_id not in instances:
            return Reply(404, f"no ips found for cluster in service {params.get('serviceName')}")
        return Reply(200, _public(instances[instance_id]))

    def _beat(self, params: dict[str, str]) -> Reply:
        try:
            beat = json.loads(params.get("beat") or "null")
        except ValueError:
            beat = None
        if isinstance(beat, dict):
            params = {**params, "ip": str(beat.get("ip")), "port": str(beat.get("port")),
                      "clusterName": beat.get("cluster") or "DEFAULT"}
        found = self._find(params)
        if isinstance(found, Reply):
            return found
        instances, instance_id = found
        if instance_id in instances:
            instances[instance_id]["lastBeat"] = time.monotonic()
        elif isinstance(beat, dict):  # Nacos registers an unknown instance that beats
            metadata = beat.get("metadata")
            self._register({**params, "weight": str(beat.get("weight", 1.0)),
                            "ephemeral": str(beat.get("ephemeral", True)),
                            "metadata": json.dumps(metadata) if metadata else ""})
        else:
            return Reply(200, {"code": 20404})
        return Reply(200, {"clientBeatInterval": 5000, "code": 10200, "lightBeatEnabled": True})

    def _list(self, params: dict[str, str], clusters: str) -> dict[str, Any]:
        key = self._key(params)
        if isinstance(key, Reply):
            raise ValueError("serviceName is required")
        wanted = {c for c in clusters.split(",") if c}
        healthy_only = truthy(params.get("healthyOnly"), False)
        hosts: list[Any] = []
        for instance in self.services.get(key, {}).values():
            if wanted and instance["clusterName"] not in wanted:
                continue
            if not instance["enabled"] or (healthy_only and not instance["healthy"]):
                continue
            hosts.append(_public(instance))
        hosts += self.raw.get(key, [])
        return {
            "name": key[1], "groupName": key[1].split("@@")[0], "clusters": clusters,
            "cacheMillis": self.cache_millis, "hosts": hosts,
            "lastRefTime": int(time.time() * 1000), "checksum": "", "allIPs": False,
            "reachProtectionThreshold": False, "valid": True,
        }


    def _service_list(self, params: dict[str, str], api: str) -> Reply:
        if api == "v1" and not (params.get("pageNo") and params.get("pageSize")):
            missing = "pageNo" if not params.get("pageNo") else "pageSize"
            return Reply(400, f"Required int parameter '{missing}' is not present")
        try:
            number, size = int(params.get("pageNo") or 1), int(params.get("pageSize") or 20)
        except ValueError as exc:
            return Reply(400, f"caused: {exc};")
        if api == "v2":
            size = min(size, 500)
        namespace = params.get("namespaceId") or DEFAULT_NAMESPACE
        prefix = f"{params.get('groupName') or DEFAULT_GROUP}@@"
        names = sorted(name.removeprefix(prefix) for (ns, name), instances in self.services.items()
                       if ns == namespace and name.startswith(prefix) and instances)
        names += list(self.raw_services)
        page = names[max(0, number - 1) * size:max(0, number) * size]
        if api == "v1":
            return Reply(200, {"count": len(names), "doms": page})
        return Reply(200, {"code": 0, "message": "success",
                           "data": {"count": len(names), "services": page}})

    # -- config ---------------------------------------------------------------------------------

    def config(self, data_id: str, group: str = DEFAULT_GROUP, tenant: str = "") -> str | None:
        with self.cond:
            return self.configs.get((tenant, group, data_id))

    def _config(self, method: str, params: dict[str, str]) -> Reply:
        data_id, group = params.get("dataId"), params.get("group") or DEFAULT_GROUP
        if not data_id:
            return Reply(400, "caused: Required parameter 'dataId' is not present;")
        key = (params.get("tenant") or "", group, data_id)
        if method == "GET":
            if key not in self.configs:
                return Reply(404, "config data not exist")
            return Reply(200, self.configs[key])
        if method == "POST":
            if not params.get("content"):
                return Reply(400, "caused: Required parameter 'content' is not present;")
            self.configs[key] = params["content"]
        elif method == "DELETE":
            self.configs.pop(key, None)
        else:
            return Reply(405, f"no such API: {method} /nacos/v1/cs/configs")
        self.changed()
        return Reply(200, "true")

    def _changed_configs(self, items: list[list[str]]) -> str:
        changed = ""
        for item in items:
            data_id, group, digest = item[0], item[1], item[2]
            tenant = item[3] if len(item) > 3 else ""
            content = self.configs.get((tenant, group, data_id))
            now = "" if content is None else hashlib.md5(content.encode()).hexdigest()
            if now != digest:
                changed += "\x02".join([data_id, group] + ([tenant] if tenant else [])) + "\x01"
        return quote_plus(changed)

    def _listen(self, params: dict[str, str], headers: dict[str, str]) -> Reply:
        probe = params.get("Listening-Configs")
        if probe is None:
            return Reply(400, "invalid probeModify")
        items = [line.split("\x02") for line in probe.split("\x01") if line.strip()]
        if any(len(item) < 3 for item in items):
            return Reply(400, "invalid probeModify")
        try:
            asked = max(0.0, int(headers.get("long-pulling-timeout") or 30_000) / 1000 - 0.5)
        except ValueError:
            asked = 29.5
        deadline = time.monotonic() + min(asked, self.config_hold)
        while True:
            changed = self._changed_configs(items)
            left = deadline - time.monotonic()
            if changed or left <= 0 or not self.running:
                return Reply(200, changed)
            self.cond.wait(left)


def _public(instance: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in instance.items() if k != "lastBeat"}


if __name__ == "__main__":
    serve_main(NacosServer, 8848)
