"""Serve the full real MTEB data and compare the service's hot path with a bare ASGI app.

Both run under the same uvicorn (uvloop, httptools), pinned to core 0 with taskset; wrk
(1 thread, 32 connections) runs pinned to core 1.  Scenarios on
``/v1/benchmarks/MTEB(eng, v2)/scores``: 304 revalidation, gzip 200, identity 200.  The
service and the bare app alternate, several rounds, and the median of each is compared.
Also recorded: cold start to ready (every summary preloaded) and RSS once warm.

Target: the service keeps >= 0.85x the bare app's requests per second in every scenario.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

from benchmarks.record import SHARED, command_line, record

ROUTE = "/v1/benchmarks/MTEB(eng, v2)/scores"
SCENARIOS = {
    "304 revalidation": "etag",
    "gzip 200": "gzip",
    "identity 200": "identity",
}


def build_dataset(out: Path) -> Path:
    """A dataset dir whose results link to the full MTEB parquet, with the MTEB catalog."""
    from leaderboard_api.dataset.importers.mteb import convert_mteb_catalog

    (out / "results").mkdir(parents=True, exist_ok=True)
    link = out / "results" / "results.parquet"
    if not link.exists():
        link.symlink_to(SHARED / "mteb" / "full" / "results.parquet")
    if not (out / "tasks.jsonl").exists():
        convert_mteb_catalog(SHARED / "mteb" / "catalog", out=out)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def process(
    cmd: list[str], *, env: dict[str, str], ready_url: str, timeout: float
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                msg = f"{cmd[0]} exited: {log.read().decode(errors='replace')[-3000:]}"
                raise RuntimeError(msg)
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > timeout:
                raise TimeoutError(ready_url)
            time.sleep(0.05)
        yield proc, time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_warm(ready_url: str, *, timeout: float = 300) -> float:
    """Wait until every unparameterized route is built (so warmup does not share the core)."""
    started = time.perf_counter()
    while not httpx.get(ready_url, timeout=5).json().get("warmupComplete"):
        if time.perf_counter() - started > timeout:
            raise TimeoutError("warmup did not complete")
        time.sleep(0.2)
    return time.perf_counter() - started


def cold_parameterized(base: str) -> list[float]:
    """Seconds for first requests of distinct language filters (each builds once)."""
    path = quote("/v1/benchmarks/MTEB(Multilingual, v2)/scores")
    out = []
    for language in ("eng", "fra", "deu", "spa", "jpn", "cmn", "rus", "ara", "hin", "por"):
        started = time.perf_counter()
        response = httpx.get(f"{base}{path}?languages={language}", timeout=60)
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return out


def wrk(url: str, headers: list[str], *, seconds: int) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) from one wrk run pinned to core 1."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    value, unit = float(p99.group(1)), p99.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        msg = f"wrk saw {errors.group(1)} error responses: {out}"
        raise RuntimeError(msg)
    return rps, p99_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)")
        return
    if not (SHARED / "mteb" / "full" / "results.parquet").is_file():
        print("skipped: ../shared/data/mteb/full/results.parquet not found")
        return
    root = Path(__file__).resolve().parents[1]
    data = build_dataset(root / ".cache" / "bench-api-mteb")
    cache = Path(tempfile.mkdtemp(prefix="lb-bench-cache-"))
    env = {**os.environ, "LEADERBOARD_CACHE_DIR": str(cache), "LEADERBOARD_LOG_LEVEL": "WARNING"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    port, bare_port = free_port(), free_port()
    service_cmd = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "leaderboard_api",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}{quote(ROUTE)}"
    results: dict[str, dict[str, list[tuple[float, float]]]] = {"service": {}, "bare": {}}
    bodies = Path(tempfile.mkdtemp(prefix="lb-bench-bare-"))
    lines: list[str] = []
    cached_ready: list[float] = []
    cold_builds: list[float] = []
    try:
        # Cold start without a disk cache, then the rounds reuse the cache like a restart.
        t_start = time.perf_counter()
        with process(
            service_cmd, env=env, ready_url=f"http://127.0.0.1:{port}/ready", timeout=180
        ) as (proc, cold):
            ready_rss = rss_mb(proc.pid)
            lines.append(
                f"- cold start to ready (load, every list and leaderboard built; no disk cache): "
                f"{cold:.2f} s, RSS at ready {ready_rss:.0f} MB"
            )
            wait_warm(f"http://127.0.0.1:{port}/ready")
            full = httpx.get(f"http://127.0.0.1:{port}/ready").json()
            warm_rss = rss_mb(proc.pid)
            lines.append(
                f"- every unparameterized route built ({full['warmed']} payloads) "
                f"{time.perf_counter() - t_start:.1f} s after start; RSS then {warm_rss:.0f} MB"
            )
            identity = httpx.get(url, headers={"accept-encoding": "identity"}, timeout=30)
            etag = identity.headers["etag"]
            target = bodies / "v1" / "benchmarks" / "MTEB(eng, v2)" / "scores.json"
            target.parent.mkdir(parents=True)
            target.write_bytes(identity.content)
        bare_cmd = [
            "taskset",
            "-c",
            "0",
            sys.executable,
            str(root / "benchmarks" / "bare_app.py"),
            str(bodies),
            "--port",
            str(bare_port),
        ]
        bare_url = f"http://127.0.0.1:{bare_port}{quote(ROUTE)}"
        for _ in range(args.rounds):
            for who, cmd, target_url, ready in (
                ("service", service_cmd, url, f"http://127.0.0.1:{port}/ready"),
                ("bare", bare_cmd, bare_url, bare_url),
            ):
                with process(cmd, env=env, ready_url=ready, timeout=120) as (proc, took):
                    if who == "service":
                        cached_ready.append(took)
                        wait_warm(f"http://127.0.0.1:{port}/ready")
                        if not cold_builds:
                            cold_builds.extend(cold_parameterized(f"http://127.0.0.1:{port}"))
                    tag = httpx.get(target_url, headers={"accept-encoding": "identity"}).headers[
                        "etag"
                    ]
                    assert tag == etag, (who, tag, etag)
                    for name, mode in SCENARIOS.items():
                        headers = {
                            "etag": [f"If-None-Match: {etag}", "Accept-Encoding: identity"],
                            "gzip": ["Accept-Encoding: gzip"],
                            "identity": ["Accept-Encoding: identity"],
                        }[mode]
                        results[who].setdefault(name, []).append(
                            wrk(target_url, headers, seconds=args.seconds)
                        )
                    if who == "service":
                        warm_rss = rss_mb(proc.pid)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(bodies, ignore_errors=True)
    lines += [
        f"- restart to ready with the disk cache (median of {len(cached_ready)}): "
        f"{statistics.median(cached_ready):.2f} s",
        f"- cold parameterized request (a language filter on MTEB(Multilingual, v2) not yet "
        f"cached; scoring, JSON and compression): "
        f"median {statistics.median(cold_builds) * 1000:.0f} ms"
        f" over {len(cold_builds)} languages",
        f"- service RSS after the wrk rounds: {warm_rss:.0f} MB",
        "",
        "| scenario | service req/s | bare req/s | ratio | service p99 | bare p99 |",
        "|---|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        svc = results["service"][name]
        bare = results["bare"][name]
        s_rps = statistics.median(r for r, _ in svc)
        b_rps = statistics.median(r for r, _ in bare)
        s_p99 = statistics.median(p for _, p in svc)
        b_p99 = statistics.median(p for _, p in bare)
        lines.append(
            f"| {name} | {s_rps:,.0f} | {b_rps:,.0f} | {s_rps / b_rps:.2f}x "
            f"| {s_p99:.2f} ms | {b_p99:.2f} ms |"
        )
    lines += [
        "",
        f"Medians of {args.rounds} alternating rounds of {args.seconds} s each. "
        "Target: ratio >= 0.85.",
    ]
    record(
        "API hot path vs bare ASGI app: MTEB(eng, v2) scores on the full MTEB data",
        command=command_line(),
        lines=lines,
    )


if __name__ == "__main__":
    main()
