"""Live data on a whole dataset: a change served in seconds, untouched ETags kept, restarts warm.

Usage: ``python -m benchmarks.bench_live DATASET [--benchmark NAME] [--record]``

DATASET is a dataset directory (for example the whole MTEB results repository imported
with ``leaderboard-api import mteb``).  Its ``results/`` files are hard-linked (or copied)
into a scratch folder, so the original is never touched.  The service runs with default
settings on a free loopback port with an empty cache directory, and:

1. starts cold: time to ready, to every route built, RSS once warm;
2. fetches every unparameterized route (from the lists) and notes its ETag;
3. adds one new model's results for one benchmark's tasks (a copy of an existing model's
   rows under a new name) and reloads: time from the change to the new numbers served,
   requests per second of a built route while the reload runs against before it, and how
   many ETags changed (those of benchmarks, tasks and models the change does not touch
   must not);
4. restarts on the same cache directory: time until every unparameterized route answers,
   and whether anything was built again.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.record import command_line, record

TOKEN = "bench-live-admin-token-0123456789"
NEW_MODEL = "bench-live/new-model"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


class Client:
    """A keep-alive HTTP/1.1 client on one connection (the stdlib's, no dependencies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        quoted = urllib.parse.quote(path, safe="/?=&,%")
        for attempt in range(2):
            try:
                self.conn.request("GET", quoted, headers=headers or {})
                response = self.conn.getresponse()
                body = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, body
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        self.conn.request("POST", path, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        if status != 200:
            msg = f"{path}: {status}"
            raise RuntimeError(msg)
        return json.loads(body)


def _start(data: Path, cache: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The server on a free port; its log goes to ``log`` (its tail is printed on failure)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERBOARD_", "OTEL_"))}
    env["LEADERBOARD_CACHE_DIR"] = str(cache)
    env["LEADERBOARD_ADMIN_TOKEN"] = TOKEN
    cmd = [sys.executable, "-m", "leaderboard_api", "serve", "--data", str(data)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return proc, port


def _wait(port: int, proc: subprocess.Popen[bytes], *, warm: bool, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            msg = f"server exited with {proc.returncode}"
            raise RuntimeError(msg)
        try:
            status, _, body = Client(port).get("/ready")
        except OSError:
            time.sleep(0.1)
            continue
        doc = json.loads(body)
        if status == 200 and (not warm or doc.get("warmupComplete")):
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError("server not ready in time")


def _paths(client: Client) -> list[str]:
    paths = ["/v1/benchmarks", "/v1/benchmarks/menu", "/v1/tasks", "/v1/models"]
    for bench in client.json("/v1/benchmarks"):
        base = f"/v1/benchmarks/{bench['name']}"
        paths += [base, f"{base}/scores", f"{base}/scores.csv", f"{base}/leaders"]
        paths += [f"{base}/per-language"]
    for task in client.json("/v1/tasks"):
        paths += [f"/v1/tasks/{task['name']}", f"/v1/tasks/{task['name']}/scores"]
    for model in client.json("/v1/models"):
        paths += [f"/v1/models/{model['name']}", f"/v1/models/{model['name']}/scores"]
    return paths


def _etags(client: Client, paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        status, headers, _ = client.get(path, {"accept-encoding": "gzip"})
        out[path] = headers.get("etag", "") if status == 200 else f"status {status}"
    return out


def _scratch_copy(dataset: Path, dest: Path) -> None:
    """Catalog files copied (they may be edited), results hard-linked when possible."""
    dest.mkdir(parents=True)
    for item in dataset.iterdir():
        if item.name == "results":
            try:
                shutil.copytree(item, dest / "results", copy_function=os.link)
            except OSError:
                shutil.rmtree(dest / "results", ignore_errors=True)
                shutil.copytree(item, dest / "results")
        elif item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)


def _add_model(data: Path, benchmark: dict[str, Any]) -> tuple[str, int]:
    """Write one new model's rows for the benchmark's tasks (copied from its leader)."""
    tasks = list(benchmark["tasks"])
    frame = (
        pl.scan_parquet(sorted((data / "results").rglob("*.parquet")), missing_columns="insert")
        .filter(pl.col("task_name").cast(pl.String).is_in(tasks))
        .collect()
    )
    donor = frame.group_by("model_name").len().sort("len", "model_name", descending=True)[0, 0]
    rows = frame.filter(pl.col("model_name") == donor).with_columns(
        pl.lit(NEW_MODEL).alias("model_name"), (pl.col("score") * 0.999).alias("score")
    )
    rows.write_parquet(data / "results" / "zz-bench-live-new-model.parquet")
    models = data / "models.jsonl"
    if models.is_file():
        with models.open("a") as fh:
            fh.write(json.dumps({"name": NEW_MODEL, "n_parameters": 123_000_000}) + "\n")
    return str(donor), rows.height


def _hammer(port: int, path: str, etag: str, stop: threading.Event, counts: list[float]) -> None:
    client = Client(port)
    while not stop.is_set():
        client.get(path, {"if-none-match": etag, "accept-encoding": "gzip"})
        counts.append(time.monotonic())


def _tail(log: Path, lines: int = 40) -> None:
    text = log.read_text(errors="replace").splitlines() if log.is_file() else []
    print("\n".join(["--- server log (tail) ---", *text[-lines:]]), file=sys.stderr)


def _rate(counts: list[float], start: float, end: float) -> float:
    n = sum(1 for t in counts if start <= t <= end)
    return n / max(end - start, 1e-9)


def run(
    dataset: Path, benchmark_name: str | None, timeout: float, scratch_root: Path | None = None
) -> list[str]:
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-live-", dir=scratch_root) as scratch:
        data = Path(scratch) / "data"
        cache = Path(scratch) / "cache"
        _scratch_copy(dataset, data)
        log = Path(scratch) / "server.log"
        proc, port = _start(data, cache, log)
        try:
            ready = _wait(port, proc, warm=False, timeout=timeout)
            warm = _wait(port, proc, warm=True, timeout=timeout) + ready
            client = Client(port)
            lines.append(f"- cold start: ready {ready:.1f} s, every route built {warm:.1f} s")
            lines.append(f"- RSS once warm: {_rss_mb(proc.pid)} MB")
            paths = _paths(client)
            before = _etags(client, paths)
            benches = {b["name"]: b for b in client.json("/v1/benchmarks")}
            name = benchmark_name or (
                "MTEB(eng, v2)" if "MTEB(eng, v2)" in benches else sorted(benches)[0]
            )
            bench = client.json(f"/v1/benchmarks/{name}")
            scores_path = f"/v1/benchmarks/{name}/scores"
            counts: list[float] = []
            stop = threading.Event()
            hammer = threading.Thread(
                target=_hammer, args=(port, scores_path, before[scores_path], stop, counts)
            )
            hammer.start()
            time.sleep(3.0)
            steady_end = time.monotonic()
            donor, rows = _add_model(data, bench)
            changed_at = time.monotonic()
            status, body = client.post("/admin/reload", {"authorization": f"Bearer {TOKEN}"})
            reloaded_at = time.monotonic()
            if status != 200:
                msg = f"reload failed: {status} {body[:300]!r}"
                raise RuntimeError(msg)
            outcome = json.loads(body)
            while True:
                status, _, page = client.get(scores_path)
                if NEW_MODEL.encode() in page:
                    served_at = time.monotonic()
                    break
                if time.monotonic() - changed_at > timeout:
                    raise TimeoutError("new model never served")
                time.sleep(0.05)
            stop.set()
            hammer.join()
            steady = _rate(counts, steady_end - 2.5, steady_end)
            during = _rate(counts, changed_at, reloaded_at)
            lines.append(
                f"- change: {rows} rows of a new model (copied from {donor}) on {name!r}'s "
                f"{len(bench['tasks'])} tasks"
            )
            lines.append(
                f"- change to served: {served_at - changed_at:.2f} s (reload call "
                f"{reloaded_at - changed_at:.2f} s: {outcome.get('reused')} payloads reused, "
                f"{outcome.get('built')} built before the swap)"
            )
            lines.append(
                f"- 304s of the scores route: {steady:.0f}/s before, {during:.0f}/s during the "
                f"reload ({during / max(steady, 1e-9):.2f}x; Python client, same machine)"
            )
            _wait(port, proc, warm=True, timeout=timeout)
            after = _etags(client, paths)
            kept = sum(1 for p in paths if before[p] == after.get(p))
            lines.append(
                f"- ETags after the change: {kept} of {len(paths)} unchanged, "
                f"{len(paths) - kept} changed"
            )
            touched_tasks = set(bench["tasks"])
            others = [
                b
                for b in benches.values()
                if not set(client.json(f"/v1/benchmarks/{b['name']}")["tasks"]) & touched_tasks
            ]
            moved = [
                p
                for b in others
                for p in paths
                if p.startswith(f"/v1/benchmarks/{b['name']}/") and before[p] != after[p]
            ]
            lines.append(
                f"- benchmarks sharing no task with it: {len(others)}; their pages with a new "
                f"ETag: {len(moved)}"
            )
            lines.append(f"- RSS after the reload, warm: {_rss_mb(proc.pid)} MB")
        except Exception:
            _tail(log)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        proc, port = _start(data, cache, log)
        try:
            started = time.monotonic()
            ready = _wait(port, proc, warm=False, timeout=timeout)
            client = Client(port)
            bad = 0
            for path in paths:
                status, _, _ = client.get(path, {"accept-encoding": "gzip"})
                bad += status != 200
            swept = time.monotonic() - started
            lines.append(
                f"- restart on the same cache: ready {ready:.2f} s; all {len(paths)} routes "
                f"answered by {swept:.2f} s ({bad} not 200)"
            )
            _wait(port, proc, warm=True, timeout=timeout)
            metrics = client.get("/metrics")[2].decode()
            builds = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("leaderboard_payload_build_seconds_count")
            )
            lines.append(f"- payloads built after the restart: {builds:.0f}")
            lines.append(f"- RSS after the restart, warm: {_rss_mb(proc.pid)} MB")
        except Exception:
            _tail(log)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--benchmark", default=None)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--scratch", type=Path, default=None, help="where the copy goes")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    lines = run(args.dataset.resolve(), args.benchmark, args.timeout, args.scratch)
    lines.insert(0, f"- dataset: {args.dataset} (default settings, empty cache directory)")
    if args.record:
        record(
            "Live data: change to served, ETags kept, restart", command=command_line(), lines=lines
        )
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
