"""Reloading after one model's results changed: incremental vs fresh load vs disk-cache read.

Usage: ``python -m benchmarks.bench_reload DATASET [--rounds N] [--scratch DIR] [--no-record]``

DATASET is copied to a scratch folder (never modified). In one process the copy is loaded
cold (disk cache empty), then, ``--rounds`` times, three changes are made and each is
loaded with ``load_snapshot(..., previous=<the snapshot being served>)``:

- ``add``: a new model with one benchmark's results (an existing registered model's rows
  for the tasks of ``MTEB(eng, v2)``, else of the first benchmark, under a new name), as a
  new results file plus its ``models.jsonl`` line;
- ``edit``: an existing model's results file rewritten with other scores;
- ``remove``: the added model's file and catalog line removed again.

Then fresh processes measure a restart on the last snapshot id (disk-cache read), a restart
after one more change made while no process ran (incremental from the disk cache alone),
and a fresh load without cache, which is also compared with what the incremental loads
cached (results, catalogs, warnings, stats, metric names and rows): it must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from benchmarks.record import command_line, record

ADDED = "bench-reload__added.parquet"
ADDED_MODEL = "bench-reload/added-model"
PREFERRED_BENCHMARK = "MTEB(eng, v2)"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- changes to the dataset copy ---------------------------------------------------------


def _registered(data: Path) -> dict[str, dict[str, Any]]:
    path = data / "models.jsonl"
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            doc = orjson.loads(line)
            out[doc["name"]] = doc
    return out


def _subject(data: Path) -> Path:
    """The results file the changes are made from: a registered model's, mid-sized."""
    models = _registered(data)
    files = sorted((data / "results").rglob("*.parquet"), key=lambda p: (p.stat().st_size, p))
    files = [f for f in files if f.name != ADDED]
    wanted = [
        f
        for f in files
        if not models
        or models.get(str(pl.read_parquet(f, columns=["model_name"])["model_name"][0]), {}).get(
            "registered", True
        )
    ]
    chosen = wanted or files
    return chosen[(len(chosen) * 3) // 4]


def _benchmark_tasks(data: Path) -> list[str]:
    path = data / "benchmarks.jsonl"
    if not path.is_file():
        return []
    benches = [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    picked = next((b for b in benches if b["name"] == PREFERRED_BENCHMARK), benches[0])
    return [t["task"] for t in picked.get("tasks", [])]


def change_add(data: Path) -> str:
    subject = _subject(data)
    frame = pl.read_parquet(subject)
    tasks = _benchmark_tasks(data)
    some = frame.filter(pl.col("task_name").is_in(tasks)) if tasks else frame
    frame = some if some.height else frame
    original = str(frame["model_name"][0])
    frame = frame.with_columns(pl.lit(ADDED_MODEL).alias("model_name"))
    frame.write_parquet(data / "results" / ADDED)
    models = data / "models.jsonl"
    entry = _registered(data).get(original)
    if entry is not None:
        with models.open("ab") as fh:
            fh.write(orjson.dumps({**entry, "name": ADDED_MODEL}) + b"\n")
    return f"added {ADDED_MODEL} ({frame.height:,} rows, from {subject.name})"


def change_edit(data: Path, factor: float) -> str:
    subject = _subject(data)
    frame = pl.read_parquet(subject)
    frame = frame.with_columns((pl.col("score") * factor).alias("score"))
    frame.write_parquet(subject)
    return f"edited {subject.name} ({frame.height:,} rows, scores x{factor})"


def change_remove(data: Path) -> str:
    (data / "results" / ADDED).unlink()
    models = data / "models.jsonl"
    if models.is_file():
        lines = [
            x
            for x in models.read_bytes().splitlines(keepends=True)
            if not (x.strip() and orjson.loads(x)["name"] == ADDED_MODEL)
        ]
        models.write_bytes(b"".join(lines))
    return f"removed {ADDED_MODEL}"


# --- child processes ---------------------------------------------------------------------


def child_session(data: Path, cache: Path, rounds: int, settle: float) -> dict[str, Any]:
    from leaderboard_api.dataset.loader import Timings, load_snapshot
    from leaderboard_api.dataset.sources import resolve

    started = time.perf_counter()
    snapshot = load_snapshot(resolve(str(data)), cache_dir=cache)
    cold = time.perf_counter() - started
    steps = []
    factor = 0.999
    for _ in range(rounds):
        for kind in ("add", "edit", "remove"):
            if kind == "add":
                what = change_add(data)
            elif kind == "edit":
                factor = 1.001 if factor < 1 else 0.999
                what = change_edit(data, factor)
            else:
                what = change_remove(data)
            # A watcher notices a change some seconds later; files changed less than
            # validate.RACY_NS before a load have their bytes compared at the next one.
            time.sleep(settle)
            t0 = time.perf_counter()
            source = resolve(str(data))
            t1 = time.perf_counter()
            timings = Timings()
            new = load_snapshot(source, cache_dir=cache, previous=snapshot, timings=timings)
            t2 = time.perf_counter()
            steps.append(
                {
                    "kind": kind,
                    "what": what,
                    "resolve_s": t1 - t0,
                    "load_s": t2 - t1,
                    "cpu_s": timings.cpu,
                    "breakdown": {k: round(v, 4) for k, v in timings.steps.items()},
                    "summary": timings.render(),
                    "layers": len(new.file_index.layers) if new.file_index else 0,
                    "rows": new.stats.rows,
                }
            )
            snapshot = new
    return {
        "cold_s": cold,
        "steps": steps,
        "peak_rss_mb": _rss_mb(),
        "last_id": snapshot.id,
    }


def child_restart(data: Path, cache: Path) -> dict[str, Any]:
    from leaderboard_api.dataset.loader import Timings, load_snapshot
    from leaderboard_api.dataset.sources import resolve

    t0 = time.perf_counter()
    source = resolve(str(data))
    t1 = time.perf_counter()
    timings = Timings()
    snap = load_snapshot(source, cache_dir=cache, timings=timings)
    t2 = time.perf_counter()
    return {
        "resolve_s": t1 - t0,
        "load_s": t2 - t1,
        "path": ", ".join(timings.steps),
        "summary": timings.render(),
        "rows": snap.stats.rows,
        "peak_rss_mb": _rss_mb(),
    }


def _plain(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def child_fresh(data: Path, cache: Path, tasks: int) -> dict[str, Any]:
    from leaderboard_api.dataset.loader import build_snapshot, read_cache
    from leaderboard_api.dataset.sources import resolve

    source = resolve(str(data))
    t0 = time.perf_counter()
    fresh = build_snapshot(source)
    built = time.perf_counter() - t0
    peak = _rss_mb()
    cached = read_cache(cache, source)
    problems = []
    if cached is None:
        problems.append("no cache entry for this id")
    else:
        if cached.results.schema != fresh.results.schema:
            problems.append("results schema")
        if not _plain(cached.results).equals(_plain(fresh.results)):
            problems.append("results rows or order")
        for name in ("models", "tasks", "benchmarks", "stats_files"):
            if dict(getattr(cached, name)) != dict(getattr(fresh, name)):
                problems.append(name)
        for name in ("menu", "warnings", "stats", "dataset"):
            if getattr(cached, name) != getattr(fresh, name):
                problems.append(name)
        if (cached.metrics is None) != (fresh.metrics is None):
            problems.append("metric store presence")
        elif cached.metrics is not None and fresh.metrics is not None:
            if dict(cached.metrics.names) != dict(fresh.metrics.names):
                problems.append("metric names")
            touched = (
                fresh.results.filter(pl.col("model_name") == ADDED_MODEL)
                .get_column("task_name")
                .cast(pl.String)
                .unique()
                .sort()
                .to_list()
            )
            names = sorted(fresh.metrics.names)
            step = max(1, len(names) // max(tasks, 1))
            for task in sorted(set(names[::step][:tasks] + touched[:tasks])):
                if not cached.metrics.rows(task).equals(fresh.metrics.rows(task)):
                    problems.append(f"metric rows of {task}")
    return {
        "fresh_s": built,
        "peak_rss_mb": peak,
        "rows": fresh.stats.rows,
        "metric_rows_read": fresh.stats.rows_read,
        "files": fresh.stats.files,
        "identical": not problems,
        "problems": problems,
    }


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_reload", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the parent --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", type=Path, nargs="?")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=40, help="tasks whose metric rows to compare")
    parser.add_argument("--scratch", type=Path, default=None, help="where the copy goes")
    parser.add_argument(
        "--settle", type=float, default=2.5, help="seconds between a change and its load"
    )
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, data, cache, *rest = args.child
        if mode == "session":
            out = child_session(Path(data), Path(cache), int(rest[0]), float(rest[1]))
        elif mode == "restart":
            out = child_restart(Path(data), Path(cache))
        else:
            out = child_fresh(Path(data), Path(cache), int(rest[0]))
        print(json.dumps(out))
        return
    if args.dataset is None or not (args.dataset / "results").is_dir():
        parser.error("DATASET must be a dataset folder with results/")
    if args.scratch is not None:
        args.scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-reload-", dir=args.scratch))
    try:
        data, cache = work / "data", work / "cache"
        t0 = time.perf_counter()
        shutil.copytree(args.dataset, data, symlinks=False)
        copied = time.perf_counter() - t0
        print(f"copied {args.dataset} to {data} in {copied:.1f}s", flush=True)
        session = run_child("session", str(data), str(cache), str(args.rounds), str(args.settle))
        restart = run_child("restart", str(data), str(cache))
        what = change_edit(data, 0.995)
        time.sleep(args.settle)
        offline = run_child("restart", str(data), str(cache))
        fresh = run_child("fresh", str(data), str(cache), str(args.tasks))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = _report(args.dataset, session, restart, offline, what, fresh)
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Reload after one model's results changed", command=command_line(), lines=lines)
    if not fresh["identical"]:
        sys.exit(f"incremental loads differ from a fresh load: {fresh['problems']}")


def _report(
    dataset: Path,
    session: dict[str, Any],
    restart: dict[str, Any],
    offline: dict[str, Any],
    offline_change: str,
    fresh: dict[str, Any],
) -> list[str]:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"- dataset: `{dataset}` ({fresh['files']:,} results files, "
        f"{fresh['metric_rows_read']:,} rows read, {fresh['rows']:,} leaderboard rows)",
        f"- identical to a fresh load: {'yes' if fresh['identical'] else 'NO'}"
        + (f" ({', '.join(fresh['problems'])})" if fresh["problems"] else ""),
        f"- load average at the end (1, 5, 15 min; the machine is shared): {load}",
        "",
        "| load | time | note |",
        "|---|---|---|",
        f"| cold, empty disk cache (incl. writing it) | {session['cold_s']:.2f} s | |",
        f"| fresh, no cache (parse + validate + normalize) | {fresh['fresh_s']:.2f} s "
        f"| peak RSS {fresh['peak_rss_mb']:.0f} MB |",
        f"| restart on the new id (disk-cache read) | {restart['load_s']:.2f} s "
        f"| {restart['path']} |",
        f"| restart after a change made while down (incremental from the disk cache) "
        f"| {offline['load_s']:.2f} s | {offline_change}; {offline['summary']} |",
    ]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for step in session["steps"]:
        by_kind.setdefault(step["kind"], []).append(step)
    for kind, steps in by_kind.items():
        times = [s["load_s"] for s in steps]
        median = statistics.median(times)
        lines.append(
            f"| incremental, previous snapshot in memory: {kind} | {median:.2f} s "
            f"(median of {len(times)}; {min(times):.2f}-{max(times):.2f}) | {steps[0]['what']} |"
        )
    resolve_s = statistics.median(s["resolve_s"] for s in session["steps"])
    lines += [
        "",
        f"Detecting a change (`sources.resolve`: the content hash of every file) takes "
        f"{resolve_s:.2f} s (median) on top of the load.",
        "",
        "Every incremental load, in order (breakdown from `loader.Timings`; CPU: seconds of",
        "CPU the process used, every thread, which contention from other processes does not",
        "inflate the way it inflates wall time):",
        "",
        "| # | change | load | CPU | layers after | breakdown |",
        "|---|---|---|---|---|---|",
    ]
    for number, step in enumerate(session["steps"], start=1):
        parts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in step["breakdown"].items())
        lines.append(
            f"| {number} | {step['kind']} | {step['load_s']:.2f} s | {step['cpu_s']:.2f} s "
            f"| {step['layers']} | {parts} |"
        )
    lines += [
        "",
        f"Peak RSS of the process holding the served and the new snapshot: "
        f"{session['peak_rss_mb']:.0f} MB (includes the cold load).",
    ]
    return lines


if __name__ == "__main__":
    main()
