"""Serving a whole dataset: time to ready and to fully warm, and memory, cold and from cache.

Usage: ``python -m benchmarks.bench_serving DATASET [--cache-dir DIR] [--record]``

DATASET is any dataset directory, e.g. the whole MTEB results repository imported with
every metric (``leaderboard-api import mteb RESULTS --catalog CATALOG --out DATASET``).
The service runs with default settings on a free loopback port; the disk cache starts
empty for the cold run and is reused for the second run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.record import command_line, record


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) // 1024
    return out


def _ready(base: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"{base}/ready", timeout=2) as response:
            doc: dict[str, object] = json.loads(response.read())
            return doc
    except (OSError, ValueError):
        return None


def run_once(dataset: Path, cache: Path, *, timeout: float) -> dict[str, float]:
    """Start the service, wait for ready and for warmup, measure, stop it."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERBOARD_", "OTEL_"))}
    env["LEADERBOARD_CACHE_DIR"] = str(cache)
    cmd = [sys.executable, "-m", "leaderboard_api", "serve", "--data", str(dataset)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    out: dict[str, float] = {}
    try:
        while True:
            doc = _ready(base)
            if doc is not None and doc.get("status") == "ready":
                if "ready_s" not in out:
                    out["ready_s"] = time.monotonic() - started
                    out["ready_rss_mb"] = _status(proc.pid)["VmRSS"]
                if doc.get("warmupComplete"):
                    out["warm_s"] = time.monotonic() - started
                    break
            if proc.poll() is not None:
                msg = f"server exited with {proc.returncode}"
                raise RuntimeError(msg)
            if time.monotonic() - started > timeout:
                msg = "server not warm in time"
                raise TimeoutError(msg)
            time.sleep(0.5)
        time.sleep(5)  # let allocators return what the last builds freed
        status = _status(proc.pid)
        out["warm_rss_mb"] = status["VmRSS"]
        out["peak_rss_mb"] = status["VmHWM"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/leaderboard-bench-cache"))
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    shutil.rmtree(args.cache_dir, ignore_errors=True)
    cold = run_once(args.dataset, args.cache_dir, timeout=args.timeout)
    cached = run_once(args.dataset, args.cache_dir, timeout=args.timeout)
    lines = [
        f"- dataset: `{args.dataset}` (default settings, one worker, loopback)",
        "",
        "| start | ready | every route built | RSS at ready | RSS warm | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("cold (empty disk cache)", cold), ("restart from the disk cache", cached)):
        lines.append(
            f"| {name} | {r['ready_s']:.1f} s | {r['warm_s']:.1f} s | {r['ready_rss_mb']:.0f} MB "
            f"| {r['warm_rss_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB |"
        )
    if args.record:
        record("Serving a whole dataset", command=command_line(), lines=lines)
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
