"""Steady-state hot path of the service (default settings) against a minimal bare ASGI app.

    python -m benchmarks.bench_api DATASET [--cache-dir DIR] [--rounds 3] [--seconds 5]

The service runs with its default settings (metrics on, no tracing, no access log) on
``DATASET`` with its own disk cache (``--cache-dir``), pinned to core 0 with taskset; the
measurement starts once ``/ready`` is 200 and ``warmupComplete`` is true, so the
background warmup does not share the core.  The bare app (``benchmarks/bare_app.py``)
replays the responses recorded from the service (same bytes, same headers), also on core
0, with no code of the service; its parity is checked before measuring.  wrk (1 thread,
32 connections) runs on core 1.  Scenarios on ``/v1/benchmarks/MTEB(eng, v2)/scores``:
304 revalidation, gzip 200, identity 200.  Both servers stay up for the whole run and
each round measures every scenario on both, alternating which one goes first; the
ratio is the median over rounds of the service's requests per second over the bare app's.

Target: >= 0.9x in every scenario.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx

from benchmarks.bare_app import Answer, Route, save
from benchmarks.record import command_line, record

ROUTE = "/v1/benchmarks/MTEB(eng, v2)/scores"
SCENARIOS = ("304 revalidation", "gzip 200", "identity 200")
TARGET = 0.9
VOLATILE = frozenset({"date", "server"})
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fail(proc: subprocess.Popen[bytes], log: IO[bytes], what: str) -> RuntimeError:
    log.seek(0)
    tail = log.read().decode(errors="replace")[-3000:]
    return RuntimeError(f"{what} (exit {proc.poll()}): {tail}")


@contextmanager
def process(
    cmd: list[str],
    *,
    env: dict[str, str],
    ready_url: str,
    timeout: float,
    cwd: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start ``cmd``, wait until ``ready_url`` answers 200, stop it on exit."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=cwd)
    try:
        while True:
            if proc.poll() is not None:
                raise _fail(proc, log, f"{cmd} exited")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > timeout:
                raise _fail(proc, log, f"{ready_url} not ready after {timeout} s")
            time.sleep(0.1)
        yield proc, time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_warm(ready_url: str, *, timeout: float) -> float:
    """Wait until every unparameterized route is built (so warmup does not share the core)."""
    started = time.perf_counter()
    while True:
        try:
            if httpx.get(ready_url, timeout=30).json().get("warmupComplete"):
                return time.perf_counter() - started
        except httpx.TimeoutException:
            pass  # the warmup can starve the loop on a busy machine: ask again
        if time.perf_counter() - started > timeout:
            raise TimeoutError("warmup did not complete")
        time.sleep(0.5)


def scenario_headers(etag: str) -> dict[str, dict[str, str]]:
    """The request headers of each scenario (what wrk sends besides Host)."""
    return {
        "304 revalidation": {"if-none-match": etag, "accept-encoding": "identity"},
        "gzip 200": {"accept-encoding": "gzip"},
        "identity 200": {"accept-encoding": "identity"},
    }


def fetch_raw(url: str, headers: dict[str, str]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers (minus Date and Server) and the raw, undecoded body bytes."""
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        body = b"".join(response.iter_raw())
        kept = [
            (name.lower(), value)
            for name, value in response.headers.raw
            if name.lower().decode("latin-1") not in VOLATILE
        ]
        return response.status_code, kept, body


def record_routes(url: str, etag: str) -> dict[str, Route]:
    """The service's answers to the benchmark's requests, as bare-app routes."""
    answers = {
        name: Answer(*fetch_raw(url, headers)) for name, headers in scenario_headers(etag).items()
    }
    assert answers["304 revalidation"].status == 304, answers["304 revalidation"]
    assert (b"content-encoding", b"gzip") in answers["gzip 200"].headers
    route = Route(
        identity=answers["identity 200"],
        gzip=answers["gzip 200"],
        not_modified={etag.encode("latin-1"): answers["304 revalidation"]},
    )
    return {ROUTE: route}


def check_parity(service_url: str, bare_url: str, etag: str) -> None:
    """Both servers answer every scenario with the same status, headers and bytes."""
    for name, headers in scenario_headers(etag).items():
        ours, theirs = fetch_raw(service_url, headers), fetch_raw(bare_url, headers)
        if ours != theirs:
            msg = f"{name}: the bare app differs from the service:\n{ours[:2]}\n{theirs[:2]}"
            raise RuntimeError(msg)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, headers: dict[str, str], *, seconds: int, connections: int, pid: int
) -> tuple[float, float]:
    """Requests per second of one wrk run pinned to core 1, and server CPU µs per request.

    Errors fail the run.  CPU time per request is less sensitive than throughput to other
    processes sharing the machine (it counts the server's own time only).
    """
    cpu_before = cpu_seconds(pid)
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    )
    out = done.stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        msg = f"wrk saw errors: {out}"
        raise RuntimeError(msg)
    cpu = cpu_seconds(pid) - cpu_before
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert found is not None, out
    assert total is not None, out
    return float(found.group(1)), cpu / int(total.group(1)) * 1e6


def service_env(cache_dir: Path) -> dict[str, str]:
    """The caller's environment with every service setting at its default but the cache."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LEADERBOARD_", "OTEL_", "PROMETHEUS_"))
    }
    env["LEADERBOARD_CACHE_DIR"] = str(cache_dir)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data", type=Path, help="an imported MTEB dataset directory")
    parser.add_argument("--cache-dir", type=Path, default=Path("/work/ext/cache-bench"))
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warm-timeout", type=float, default=600)
    parser.add_argument("--note", default="", help="a line recorded with the figures")
    parser.add_argument(
        "--service-root",
        type=Path,
        default=ROOT,
        help="run the service from this checkout (e.g. a copy of the code before a change)",
    )
    parser.add_argument("--no-record", action="store_true", help="print, do not append")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("skipped: wrk or taskset is not installed (apt-get install wrk util-linux)")
        return
    if not (args.data / "results").is_dir():
        print(f"skipped: {args.data} is not a dataset directory")
        return
    port, bare_port = free_port(), free_port()
    service_cmd = ["taskset", "-c", "0", sys.executable, "-m", "leaderboard_api", "serve"]
    service_cmd += ["--data", str(args.data), "--port", str(port)]
    service_base = f"http://127.0.0.1:{port}"
    urls = {"service": service_base + quote(ROUTE), "bare": f"http://127.0.0.1:{bare_port}"}
    urls["bare"] += quote(ROUTE)
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {"service": {}, "bare": {}}
    env = service_env(args.cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(args.service_root), *filter(None, [env.get("PYTHONPATH")])]
    )
    lines: list[str] = []
    recorded = Path(tempfile.mkdtemp(prefix="lb-bench-bare-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, recorded, True)
        proc, ready = stack.enter_context(
            process(
                service_cmd,
                env=env,
                cwd=args.service_root,
                ready_url=f"{service_base}/ready",
                timeout=args.warm_timeout,
            )
        )
        warm = wait_warm(f"{service_base}/ready", timeout=args.warm_timeout)
        status = httpx.get(f"{service_base}/ready").json()
        etag = httpx.get(urls["service"], headers={"accept-encoding": "identity"}).headers["etag"]
        save(recorded, record_routes(urls["service"], etag))
        bare_cmd = ["taskset", "-c", "0", sys.executable, str(ROOT / "benchmarks" / "bare_app.py")]
        bare_cmd += [str(recorded), "--port", str(bare_port)]
        bare_proc, _ = stack.enter_context(
            process(bare_cmd, env=dict(os.environ), ready_url=urls["bare"], timeout=60)
        )
        pids = {"service": proc.pid, "bare": bare_proc.pid}
        check_parity(urls["service"], urls["bare"], etag)
        headers = scenario_headers(etag)
        load_before = os.getloadavg()[0]
        for round_index in range(args.rounds):
            order = ("service", "bare") if round_index % 2 == 0 else ("bare", "service")
            for name in SCENARIOS:
                for who in order:
                    measured = wrk(
                        urls[who],
                        headers[name],
                        seconds=args.seconds,
                        connections=args.connections,
                        pid=pids[who],
                    )
                    runs[who].setdefault(name, []).append(measured)
        check_parity(urls["service"], urls["bare"], etag)
        load_after = os.getloadavg()[0]
        rss = rss_mb(proc.pid)
    lines += [
        f"- data: `{args.data}` ({status.get('warmed', '?')} payloads warm); service ready "
        f"{ready:.1f} s after start, warmup complete {warm:.1f} s later; RSS after the runs "
        f"{rss:.0f} MB",
        "- settings: defaults (metrics on, tracing off, access log off), "
        f"LEADERBOARD_CACHE_DIR={args.cache_dir}; uvicorn with uvloop and httptools",
        f"- server and bare app pinned to core 0 (`taskset -c 0`), `wrk -t1 "
        f"-c{args.connections} -d{args.seconds}s` on core 1; {args.rounds} rounds, each "
        "scenario on both servers back to back, the first server alternating by round",
        "- bare app: `benchmarks/bare_app.py` replaying the service's recorded responses "
        "(identical status, headers and bytes, checked before and after), with minimal "
        "If-None-Match / Accept-Encoding parsing and none of the service's code",
        f"- machine load (1-minute load average on {os.cpu_count()} cores) before / after "
        f"the runs: {load_before:.1f} / {load_after:.1f}",
    ]
    if args.note:
        lines.append(f"- {args.note}")
    lines += [
        "",
        "| scenario | service req/s | bare req/s | ratio (median) | ratio per round "
        "| CPU µs/req service / bare | CPU ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    worst = float("inf")
    for name in SCENARIOS:
        service = [r for r, _ in runs["service"][name]]
        bare = [r for r, _ in runs["bare"][name]]
        service_cpu = statistics.median(c for _, c in runs["service"][name])
        bare_cpu = statistics.median(c for _, c in runs["bare"][name])
        ratios = [s / b for s, b in zip(service, bare, strict=True)]
        ratio = statistics.median(ratios)
        worst = min(worst, ratio)
        per_round = ", ".join(f"{value:.2f}" for value in ratios)
        lines.append(
            f"| {name} | {statistics.median(service):,.0f} | {statistics.median(bare):,.0f} "
            f"| {ratio:.2f}x | {per_round} | {service_cpu:.1f} / {bare_cpu:.1f} "
            f"| {bare_cpu / service_cpu:.2f}x |"
        )
    verdict = "meets" if worst >= TARGET else "misses"
    lines += [
        "",
        f"Target: ratio >= {TARGET} in every scenario: {verdict}.  CPU ratio: the bare app's "
        "server CPU time per request over the service's (what the ratio would be on an "
        "otherwise idle machine).",
    ]
    title = "API hot path vs minimal bare ASGI app, default settings: MTEB(eng, v2) scores"
    if args.no_record:
        print("\n".join(lines))
    else:
        record(title, command=command_line(), lines=lines)


if __name__ == "__main__":
    main()
