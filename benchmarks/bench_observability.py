"""Requests/s with and without the observability layers, measured with wrk on pinned cores.

Each variant runs in its own uvicorn process (``--loop uvloop --http httptools``, pinned to
core 0 with ``taskset``); ``wrk -t1 -c32`` runs pinned to core 1, after a 1 s warmup.
Variants run one after another, round-robin (``--rounds``), and the best run of each is
compared with the first variant.  Traces go to an OTLP/HTTP receiver in this process
(which pins itself to core 1 too), so export costs land on the server's core as in
production.

    python benchmarks/bench_observability.py                       # minimal fast-path app
    python benchmarks/bench_observability.py --app mymod:factory --path /v1/benchmarks

``--app`` names a zero-argument factory returning the inner ASGI app (default: a fast
path serving one prebuilt payload); the layers of a variant are wrapped around it.  A
variant is ``NAME:LAYERS[:KEY=VALUE,...]`` with LAYERS a ``+``-joined subset of
``metrics``, ``tracing``, ``reqid`` (request id, no access lines) and ``access`` (access
lines to /dev/null), and KEY=VALUE environment for that server only (e.g.
``off::LEADERBOARD_METRICS=false`` for an app that wires its own metrics).  Results are
appended to ``benchmarks/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import importlib
import logging
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_APP = "bench_observability:minimal_app"
DEFAULT_PATH = "/v1/benchmarks/MTEB(eng,%20v2)/scores"
DEFAULT_VARIANTS = (
    "off:",
    "metrics:metrics",
    "trace100:tracing:OTEL_TRACES_SAMPLER=traceidratio,OTEL_TRACES_SAMPLER_ARG=1.0",
    "trace1:tracing:OTEL_TRACES_SAMPLER=traceidratio,OTEL_TRACES_SAMPLER_ARG=0.01",
    "all1:metrics+tracing+reqid:OTEL_TRACES_SAMPLER=traceidratio,OTEL_TRACES_SAMPLER_ARG=0.01",
)
LAYERS = frozenset({"metrics", "tracing", "reqid", "access"})


# ---------------------------------------------------------------- server side (in uvicorn)


def minimal_app() -> Any:
    """A fast path answering ``BENCH_PATH`` (decoded) from one prebuilt payload; else 404."""
    from urllib.parse import unquote

    from starlette.applications import Starlette

    from leaderboard_api.serving.fastpath import FastPath
    from leaderboard_api.serving.payload import Payload

    rows = ",".join(f'{{"model":"org/model-{i}","score":{i / 7:.4f}}}' for i in range(120))
    payload = Payload.build(
        f'{{"rows":[{rows}]}}'.encode(),
        media_type="application/json",
        last_modified=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        cache_control="public, max-age=60",
    )
    table = {unquote(os.environ.get("BENCH_PATH", DEFAULT_PATH)): payload}
    framework = Starlette(routes=[])
    return FastPath(framework, lookup=lambda path, query: table.get(path))


def _templates_of(app: Any) -> list[str]:
    """Route templates of the innermost framework app (follows ``.app``), else BENCH_PATH."""
    from starlette.routing import BaseRoute

    from leaderboard_api.observability.routes import RouteTemplates

    current = app
    for _ in range(8):
        routes = getattr(current, "routes", None)
        if routes:
            return list(
                RouteTemplates.from_routes(r for r in routes if isinstance(r, BaseRoute)).templates
            )
        current = getattr(current, "app", None)
        if current is None:
            break
    return ["/v1/benchmarks/{name}/scores", "/v1/benchmarks/{name}"]


def bench_app() -> Any:
    """uvicorn ``--factory`` target: ``BENCH_INNER`` wrapped in the ``BENCH_LAYERS``."""
    from leaderboard_api.observability.logs import AccessLogMiddleware
    from leaderboard_api.observability.metrics import Metrics, MetricsMiddleware
    from leaderboard_api.observability.routes import RouteTemplates
    from leaderboard_api.observability.tracing import setup_tracing

    module, _, name = os.environ.get("BENCH_INNER", DEFAULT_APP).partition(":")
    app = getattr(importlib.import_module(module), name)()
    layers = {layer for layer in os.environ.get("BENCH_LAYERS", "").split("+") if layer}
    templates = RouteTemplates(_templates_of(app))
    if "access" in layers or "reqid" in layers:
        if "access" in layers:
            handler = logging.FileHandler(os.devnull)
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
        app = AccessLogMiddleware(app, log_requests="access" in layers)
    if "tracing" in layers:
        handle = setup_tracing()
        if handle is None:
            msg = "tracing layer asked for, but no OTEL exporter is configured"
            raise RuntimeError(msg)
        atexit.register(handle.shutdown)  # flush spans at exit (the driver stops with SIGINT)
        app = handle.middleware(app, templates=templates)
    if "metrics" in layers:
        # No /metrics route here: serving it would add a frame to every request.
        app = MetricsMiddleware(app, metrics=Metrics(), templates=templates)
    return app


# ---------------------------------------------------------------- driver side


@dataclass
class Variant:
    name: str
    layers: str
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, rest = text.partition(":")
        layers, _, env_text = rest.partition(":")
        unknown = {layer for layer in layers.split("+") if layer} - LAYERS
        if not name or unknown:
            msg = f"bad variant {text!r}: want NAME:LAYERS[:K=V,...], layers from {sorted(LAYERS)}"
            raise SystemExit(msg)
        env = dict(item.split("=", 1) for item in env_text.split(",") if item)
        return cls(name, layers, env)


@dataclass
class Run:
    rps: float
    requests: int
    p50: str
    p99: str
    cpu_us: float = 0.0  # server CPU time (all threads) per request


@dataclass
class Receiver:
    posts: int = 0
    spans: int = 0


@contextmanager
def _receiver() -> Iterator[tuple[str, Receiver]]:
    """OTLP/HTTP trace receiver that counts what it is sent."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    stats = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            stats.posts += 1
            stats.spans += sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", stats
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(variant: Variant, *, app: str, path: str, otlp: str) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**os.environ, "BENCH_INNER": app, "BENCH_LAYERS": variant.layers, "BENCH_PATH": path}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(HERE), env.get("PYTHONPATH")]))
    # The bench's own tracing layer, or an app (like the real service) that traces itself
    # whenever a sampler is configured: either way spans go to this process's receiver.
    if "tracing" in variant.layers or "OTEL_TRACES_SAMPLER" in variant.env:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
    env.update(variant.env)
    command = [
        "taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--factory",
        "bench_observability:bench_app", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                msg = f"server for {variant.name} exited with {process.returncode}"
                raise SystemExit(msg)
            try:
                if httpx.get(base + path, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                msg = f"server for {variant.name} never answered 200 on {path}"
                raise SystemExit(msg)
            time.sleep(0.2)
        yield base, process.pid  # taskset execs python: same pid
    finally:
        # SIGINT, not SIGTERM: uvicorn re-raises the signal after shutting down, and only
        # SIGINT's KeyboardInterrupt lets atexit (the tracing flush) run.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wrk(url: str, *, seconds: int, connections: int) -> Run:
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    output = subprocess.run(
        [*command, "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        msg = f"wrk saw errors:\n{output}"
        raise SystemExit(msg)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    requests = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or requests is None or p50 is None or p99 is None:
        msg = f"could not read wrk output:\n{output}"
        raise SystemExit(msg)
    return Run(float(rps.group(1)), int(requests.group(1)), p50.group(1), p99.group(1))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Run every variant, print a table and append it to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--app", default=DEFAULT_APP, help="inner app factory, module:name")
    parser.add_argument("--path", default=DEFAULT_PATH, help="URL path wrk requests")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant (best kept)")
    parser.add_argument("--variant", action="append", help="NAME:LAYERS[:K=V,...] (repeatable)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install -y {tool})")
    variants = [Variant.parse(text) for text in (args.variant or DEFAULT_VARIANTS)]
    nproc = _nproc()  # before pinning: nproc counts the cores this process may use
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the receiver shares wrk's core, not the server's
    best: dict[str, Run] = {}
    spans: dict[str, int] = {}
    cheapest: dict[str, float] = {}
    with _receiver() as (otlp, received):
        for _ in range(args.rounds):
            for variant in variants:
                before = received.spans
                with _server(variant, app=args.app, path=args.path, otlp=otlp) as (base, pid):
                    _wrk(base + args.path, seconds=1, connections=args.connections)
                    cpu = _cpu_seconds(pid)
                    run = _wrk(
                        base + args.path, seconds=args.duration, connections=args.connections
                    )
                    run.cpu_us = (_cpu_seconds(pid) - cpu) / max(run.requests, 1) * 1e6
                time.sleep(0.5)  # let the last batch of spans arrive
                spans[variant.name] = received.spans - before
                print(
                    f"{variant.name:>10}: {run.rps:8.0f} req/s  {run.cpu_us:6.1f} µs CPU/req  "
                    f"p50 {run.p50}  p99 {run.p99}"
                )
                if variant.name not in best or run.rps > best[variant.name].rps:
                    best[variant.name] = run
                cheapest[variant.name] = min(cheapest.get(variant.name, run.cpu_us), run.cpu_us)
    baseline = best[variants[0].name].rps
    baseline_cpu = cheapest[variants[0].name]
    rows = []
    for v in variants:
        run = best[v.name]
        rows.append(
            f"| {v.name} | {v.layers or '-'} | {run.rps:.0f} | {run.rps / baseline:.3f} "
            f"| {cheapest[v.name]:.1f} | {baseline_cpu / cheapest[v.name]:.3f} "
            f"| {run.p50} | {run.p99} | {spans[v.name]} |"
        )
    table = "\n".join(
        [
            "| variant | layers | req/s (best) | ratio | server CPU µs/req (best) | CPU ratio "
            "| p50 | p99 | spans exported (last run, warmup included) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if args.no_record:
        return
    command = " ".join(
        shlex.quote(part) for part in ["python", "benchmarks/bench_observability.py", *sys.argv[1:]]
    )
    section = (
        f"\n## Observability overhead, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"- machine: {os.cpu_count()} cores (`nproc`: {nproc}), {platform.machine()}, "
        f"Python {platform.python_version()}\n"
        f"- command: `{command}`\n"
        f"- app: `{args.app}`, path `{args.path}`; server `uvicorn --loop uvloop --http "
        f"httptools` on core 0, `wrk -t1 -c{args.connections} -d{args.duration}s` on core 1, "
        f"best of {args.rounds} rounds; ratios are against `{variants[0].name}` (CPU ratio: "
        f"its server CPU time per request over this one's, less sensitive to other load)\n\n"
        f"{table}\n"
    )
    results = HERE / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n")
    with results.open("a") as out:
        out.write(section)
    print(f"appended to {results}")


def _nproc() -> str:
    return subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    main()
