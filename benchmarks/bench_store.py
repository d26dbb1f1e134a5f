"""The on-disk payload store: open, put and get rates for a snapshot's worth of payloads.

    .venv/bin/python -m benchmarks.bench_store [--payloads 6500] [--dir DIR] [--no-record]

Payloads are built (untimed) from leaderboard-like JSON of 2-200 KB, log-uniform, with the
default compression policy; a pool of distinct bodies is reused under ``--payloads`` keys
(the store never looks at content).  Timed, in a fresh directory on the same disk:

- put of every payload (single thread, as a build worker would), and a sample with fsync;
- open of the store it left (one directory scan), and again at 10,000 entries;
- a restart: open, read the manifest, get every payload (page cache warm);
- the same get pass with CRC checks off, with 4 threads, and the restart with the files
  dropped from the page cache first (``posix_fadvise(DONTNEED)``: the disk, or the host's
  cache of it), with 1 and 4 threads.

The figures are printed and appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import orjson

from benchmarks.record import command_line, record
from leaderboard_api.serving.payload import Payload
from leaderboard_api.serving.store import PayloadStore

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
POOL = 300
MB = 1024 * 1024


def leaderboard_json(target: int, rng: random.Random) -> bytes:
    """A JSON body of about ``target`` bytes shaped like a leaderboard table."""
    rows: list[dict[str, object]] = []
    size = 0
    while size < target:
        row = {
            "model": f"org-{rng.randrange(500)}/model-{rng.randrange(10**6)}",
            "rank": len(rows) + 1,
            "borda": rng.randrange(1, 400),
            "mean": round(rng.uniform(20, 80), 4),
            "scores": {f"Task{t}": round(rng.uniform(0, 100), 2) for t in range(8)},
            "parameters": rng.choice([None, 110_000_000, 7_000_000_000]),
        }
        rows.append(row)
        size += len(orjson.dumps(row)) + 1
    return orjson.dumps({"benchmark": "MTEB(eng, v2)", "rows": rows})


def build_pool(seed: int) -> list[Payload]:
    rng = random.Random(seed)
    sizes = [int(math.exp(rng.uniform(math.log(2_000), math.log(200_000)))) for _ in range(POOL)]
    payloads = []
    for number, size in enumerate(sizes):
        payloads.append(
            Payload.build(
                leaderboard_json(size, rng),
                media_type="application/json",
                last_modified=WHEN,
                cache_control="public, max-age=60",
                # Long-tail pages hold no identity body, as the service builds them.
                keep_identity=number % 3 != 0,
            )
        )
    return payloads


def timed(action: Callable[[], object], *, best_of: int = 1) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds) of the fastest of ``best_of`` runs, and the last result."""
    runs: list[tuple[float, float]] = []
    result: object = None
    for _ in range(best_of):
        result = None  # the previous run's result is not held during the next
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return (*min(runs), result)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def drop_from_page_cache(store: PayloadStore) -> None:
    for path in (store.directory / "objects").rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run(count: int, base: Path) -> list[str]:
    print(f"building a pool of {POOL} payloads ...", flush=True)
    pool = build_pool(7)
    keys = [f"/v1/route/{i}|params|fp-{i:08x}" for i in range(count)]
    items = [(key, pool[i % POOL]) for i, key in enumerate(keys)]
    stored = sum(len(payload.to_bytes()) for _, payload in items)
    identity = sum(len(payload.identity) for _, payload in items)
    root = Path(tempfile.mkdtemp(prefix="bench-store-", dir=base))
    lines = [
        f"- {count} payloads, JSON bodies 2-200 KB log-uniform ({identity / MB:.0f} MB of "
        f"identity bodies), every coding, a third with identity decoded on demand: "
        f"{stored / MB:.0f} MB on disk, {stored / count / 1024:.1f} KB per payload",
        f"- store directory on the same disk as `{base}`",
        "",
        "| step | wall | wall per payload | CPU per payload | throughput (wall) |",
        "|---|---|---|---|---|",
    ]

    def row(step: str, run: tuple[float, float, object], n: int, nbytes: int | None) -> None:
        wall, cpu, _ = run
        rate = f"{nbytes / MB / wall:.0f} MB/s" if nbytes else "-"
        lines.append(
            f"| {step} | {wall * 1000:.0f} ms | {wall / n * 1e6:.0f} µs "
            f"| {cpu / n * 1e6:.0f} µs | {rate} |"
        )
        print(lines[-1], flush=True)

    def opened(namespace: str = "c3", **options: bool) -> PayloadStore:
        return PayloadStore(root, max_bytes=8 << 30, namespace=namespace, **options)

    try:
        empty = timed(opened)
        store = opened()
        put = timed(lambda: store.put_many(items))
        assert put[2] == count, put[2]
        row("put (1 thread, no fsync)", put, count, stored)
        sample = items[:500]
        synced = opened("fsync", fsync=True)
        row("put with fsync (500 of them)", timed(lambda: synced.put_many(sample)), 500, None)
        store.write_manifest("snapshot", {f"/path/{i}": key for i, key in enumerate(keys)})

        def restart() -> dict[str, Payload]:
            fresh = opened()
            manifest = fresh.read_manifest("snapshot")
            assert manifest is not None
            found = fresh.get_many(manifest.values())
            assert len(found) == count, len(found)
            return found

        row(f"open (scan of {count} entries)", timed(opened, best_of=3), count, None)
        before = rss_mb()
        found = restart()
        held = rss_mb() - before
        del found
        row("restart: open + manifest + get all (warm)", timed(restart, best_of=3), count, stored)
        row(
            "get all (warm, CRC checked)",
            timed(lambda: store.get_many(keys), best_of=3),
            count,
            stored,
        )
        loose = opened(verify=False)
        row("get all (warm, no CRC)", timed(lambda: loose.get_many(keys), best_of=3), count, stored)
        with ThreadPoolExecutor(4) as workers:
            chunks = [keys[i::4] for i in range(4)]
            threaded = timed(lambda: list(workers.map(store.get_many, chunks)), best_of=3)
        row("get all (warm, 4 threads)", threaded, count, stored)
        drop_from_page_cache(store)
        row("restart, files dropped from the page cache", timed(restart), count, stored)

        def restart_threaded() -> int:
            fresh = opened()
            manifest = fresh.read_manifest("snapshot")
            assert manifest is not None
            wanted = list(manifest.values())
            with ThreadPoolExecutor(4) as workers:
                parts = workers.map(fresh.get_many, [wanted[i::4] for i in range(4)])
                return sum(map(len, parts))

        drop_from_page_cache(store)
        cold = timed(restart_threaded)
        assert cold[2] == count, cold[2]
        row("the same, get with 4 threads", cold, count, stored)
        extra = 10_000 - count
        if extra > 0:
            store.put_many((f"extra-{i}", pool[i % 10]) for i in range(extra))
            row("open (scan of 10,000 entries)", timed(opened, best_of=3), 10_000, None)
        lines.append(f"| open (empty store) | {empty[0] * 1000:.1f} ms | - | - | - |")
        lines.append("")
        lines.append(
            f"- holding every payload read back at the restart: +{held:.0f} MB RSS "
            f"({stored / MB:.0f} MB serialized)"
        )
        lines.append(
            f"- load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
            f"on {os.cpu_count()} cores (wall times include waiting for a core; CPU does not)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=6500)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    lines = run(args.payloads, args.dir)
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Payload store on disk", command=command_line(), lines=lines)


if __name__ == "__main__":
    main()
