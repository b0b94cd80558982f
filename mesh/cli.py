"""The ``mesh`` command: run, proxy, validate, plugins, conformance."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from mesh import __version__
from mesh.config import Config, ConfigError, default_config, load, parse
from mesh.conformance import cli as conformance_cli
from mesh.log import configure_logging
from mesh.registry import PluginError, Registry, load_registry

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh", description="rpcmesh: an RPC-aware proxy")
    parser.add_argument("--version", action="version", version=f"rpcmesh {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run from a config file, or the embedded default")
    run.add_argument("config", nargs="?", help="YAML or JSON config; omitted: embedded default")
    proxy = sub.add_parser("proxy", help="one listener in front of one static cluster, no file")
    proxy.add_argument("--listen", required=True, metavar="HOST:PORT")
    proxy.add_argument("--protocol", default="auto", metavar="NAME|auto|tcp")
    proxy.add_argument("--upstream", required=True, metavar="HOST:PORT[,HOST:PORT...]")
    proxy.add_argument("--upstream-protocol", default=None, metavar="NAME",
                       help="codec spoken to the upstream (default: the client's), e.g. http1 "
                            "behind an http2 listener")
    proxy.add_argument("--lb", default="round_robin",
                       help="round_robin, random, least_request, ring_hash, ketama or modula")
    proxy.add_argument("--hash-key", default=None, help="for ring_hash: path, host, header:NAME...")
    proxy.add_argument("--admin", default=None, metavar="HOST:PORT", help="admin API address")
    proxy.add_argument("--timeout", default="15s", help="route timeout (0 = none)")
    proxy.add_argument("--access-log", action="store_true", help="one JSON line per exchange")
    proxy.add_argument("--log-level", default="info")
    validate = sub.add_parser("validate", help="check a config file and exit")
    validate.add_argument("config")
    sub.add_parser("plugins", help="list installed codecs and filters")
    conformance_cli.add_parser(sub)
    return parser


def proxy_config(args: argparse.Namespace) -> Config:
    """The config ``mesh proxy`` flags stand for (kept stable for scripts)."""
    data: dict[str, Any] = {
        "listeners": [{
            "name": "proxy", "address": args.listen, "protocol": args.protocol,
            "routes": [{"name": "default", "cluster": "upstream", "timeout": args.timeout}],
        }],
        "clusters": [{
            "name": "upstream", "lb": args.lb,
            **({"protocol": args.upstream_protocol} if args.upstream_protocol else {}),
            "endpoints": [e.strip() for e in args.upstream.split(",") if e.strip()],
            **({"hash_key": args.hash_key} if args.hash_key else {}),
        }],
        "admin": {"address": args.admin} if args.admin else None,
        "logging": {"level": args.log_level, "access_log": args.access_log},
    }
    return parse(data, "<mesh proxy flags>")


def _serve(config: Config, registry: Registry,
           reload_from: tuple[str, Callable[[str], Config]] | None = None) -> int:
    from mesh.runtime import ProxyRuntime, StartupError

    configure_logging(config.logging.level)
    try:
        runtime = ProxyRuntime(config, registry)
        runtime.reload_from = reload_from
        trio.run(runtime.run)
    except StartupError as exc:
        print(f"mesh: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _welcome(config: Config) -> None:
    listener = config.listeners[0]
    lines = [f"rpcmesh {__version__} on its embedded default config:"]
    lines.append(f"  try:   curl http://{listener.host}:{listener.port}/hello")
    if config.admin:
        a = config.admin
        lines.append(f"  admin: curl http://{a.host}:{a.port}/stats  (also /clusters /config_dump)")
    lines.append("  stop:  Ctrl-C.  Your own config: mesh run FILE (see docs/config.md)")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _check_sources(config: Config, registry: Registry) -> str | None:
    """Discovery settings, checked by their own plugin as at start-up (no registry is asked)."""
    for i, cluster in enumerate(config.clusters):
        spec = cluster.discovery
        if spec is None:
            continue
        plugin = registry.discovery.get(spec.source)
        if plugin is None:
            known = ", ".join(sorted(registry.discovery)) or "none"
            return (f"clusters[{i}].discovery.source: no discovery source named {spec.source!r} "
                    f"is installed. Fix: use one of: {known}.")
        try:
            plugin.obj(spec.config)
        except (ValueError, TypeError) as exc:
            return (f"clusters[{i}].discovery.config ({spec.source}): {exc}. Fix: see "
                    "docs/discovery.md for its settings.")
    for i, listener in enumerate(config.listeners):
        if listener.nacos_routes is not None:
            from mesh.nacos_routes import NacosConfigClient

            try:
                NacosConfigClient(listener.nacos_routes)
            except ValueError as exc:
                return (f"listeners[{i}].nacos_routes.address: {exc}. Fix: write it as "
                        "host:port[,host:port...].")
    return None


def _plugins(registry: Registry) -> int:
    print("codecs (mesh.codecs):")
    for name, plugin in sorted(registry.codecs.items()):
        mode = getattr(plugin.obj, "pool_mode", None)
        print(f"  {name:12} {plugin.value:40} {plugin.distribution}"
              f"  [{mode.name if mode else '?'}]")
    print("filters (mesh.filters):")
    for name, plugin in sorted(registry.filters.items()):
        print(f"  {name:12} {plugin.value:40} {plugin.distribution}")
    print("discovery sources (mesh.discovery):")
    for name, plugin in sorted(registry.discovery.items()):
        print(f"  {name:12} {plugin.value:40} {plugin.distribution}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "conformance":
            return conformance_cli.run(args)
        registry = load_registry()
        known = set(registry.codecs) | {"auto", "tcp"}
        if args.command == "plugins":
            return _plugins(registry)
        if args.command == "validate":
            config = load(args.config, known_protocols=known, known_filters=set(registry.filters))
            problem = _check_sources(config, registry)
            if problem:
                print(f"mesh: {args.config}: {problem}", file=sys.stderr)
                return 2
            print(f"{args.config}: OK ({len(config.listeners)} listeners, "
                  f"{len(config.clusters)} clusters)")
            return 0
        if args.command == "proxy":
            return _serve(proxy_config(args), registry)
        if args.config:
            def reload(path: str) -> Config:
                return load(path, known_protocols=known, known_filters=set(registry.filters))

            # kill -HUP reads the file again and swaps it in (docs/config.md)
            return _serve(reload(args.config), registry, (args.config, reload))
        config = default_config()
        _welcome(config)
        return _serve(config, registry)
    except (ConfigError, PluginError) as exc:
        print(f"mesh: {exc}", file=sys.stderr)
        return 2

