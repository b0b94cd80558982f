"""Endpoints from DNS: every address a name resolves to, refreshed periodically.

Envoy's ``STRICT_DNS`` cluster: the cluster's endpoints are all the A/AAAA records of
``name`` on ``port``, resolved again every ``refresh``. Settings (cluster ``discovery:
{source: dns, config: {...}}``): ``name`` (required), ``port`` (required), ``refresh``
(``5s``), ``family`` (``any``, ``ipv4`` or ``ipv6``), ``weight`` (``1``, every address).

A failed lookup keeps the last addresses (logged once per failure streak); an answer with no
address is treated the same way, since an empty cluster helps nobody.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import structlog
import trio

from mesh.config import Endpoint
from mesh.config._values import parse_duration
from mesh.discovery import Publish, Report

__all__ = ["DnsSource"]

log = structlog.get_logger("mesh.discovery")

_SETTINGS = ("name", "port", "refresh", "family", "weight")
_FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


class DnsSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        unknown = sorted(set(config) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {', '.join(_SETTINGS)}")
        name, port = config.get("name"), config.get("port")
        if not isinstance(name, str) or not name:
            raise ValueError("name is required (the host name to resolve)")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("port is required (1-65535)")
        family = config.get("family", "any")
        if family not in _FAMILIES:
            raise ValueError(f"family must be one of {', '.join(_FAMILIES)}")
        weight = config.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError("weight must be a positive integer")
        try:
            self.refresh = parse_duration(config.get("refresh", 5.0))
        except ValueError as exc:
            raise ValueError(f"refresh: {exc}") from None
        if self.refresh <= 0:
            raise ValueError("refresh must be more than 0s")
        self.name, self.port, self.weight = name, port, weight
        self.family = _FAMILIES[family]

    async def resolve(self) -> list[Endpoint]:
        infos = await trio.socket.getaddrinfo(self.name, self.port, self.family,
                                              socket.SOCK_STREAM)
        hosts = sorted({str(info[4][0]) for info in infos})
        return [Endpoint(host, self.port, self.weight) for host in hosts]

    async def run(self, publish: Publish, report: Report) -> None:
        last: list[Endpoint] = []
        failing = False
        while True:
            try:
                endpoints = await self.resolve()
                if not endpoints:
                    raise OSError("no address in the answer")
            except OSError as exc:
                if not failing:
                    log.warning("dns_failed", name=self.name, error=str(exc),
                                kept_endpoints=len(last))
                    report(f"resolving {self.name} failed ({exc}): keeping the last addresses")
                failing = True
            else:
                failing = False
                if endpoints != last:
                    log.info("dns_addresses", name=self.name,
                             endpoints=[f"{e.host}:{e.port}" for e in endpoints])
                    last = endpoints
                    publish(endpoints)
            await trio.sleep(self.refresh)
