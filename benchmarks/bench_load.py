"""Load the full real MTEB results (1.29M rows) cold and from the disk cache: time and peak RSS.

Each measurement runs in a fresh process so peak RSS is that load's alone.
Targets: cold load + validation <= 3 s, from the disk cache <= 1 s, peak RSS <= 600 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.record import SHARED, command_line, record

CHILD = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from leaderboard_api.dataset.loader import load_snapshot
from leaderboard_api.dataset.sources import resolve
imported = time.perf_counter()
source = resolve(sys.argv[1])
resolved = time.perf_counter()
cache = Path(sys.argv[2]) if sys.argv[2] != "-" else None
snap = load_snapshot(source, cache_dir=cache)
done = time.perf_counter()
print(json.dumps({
    "import_s": imported - t0,
    "resolve_s": resolved - imported,
    "load_s": done - resolved,
    "rows": snap.stats.rows,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run_child(data: Path, cache: Path | None) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(cache) if cache else "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    full = SHARED / "mteb" / "full" / "results.parquet"
    if not full.is_file():
        print(f"skipped: {full} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        (data / "results").mkdir(parents=True)
        (data / "results" / "results.parquet").symlink_to(full)
        catalog = SHARED / "mteb" / "catalog"
        if catalog.is_dir():
            from leaderboard_api.dataset.importers.mteb import convert_mteb_catalog

            convert_mteb_catalog(catalog, out=data)
        cache = Path(tmp) / "cache"
        cold = [run_child(data, None) for _ in range(args.runs)]
        shutil.rmtree(cache, ignore_errors=True)
        run_child(data, cache)  # fills the disk cache
        warm = [run_child(data, cache) for _ in range(args.runs)]

    def line(label: str, runs: list[dict[str, float]]) -> str:
        load = statistics.median(r["load_s"] + r["resolve_s"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        return (
            f"| {label} | {load:.3f} s | {min(r['load_s'] + r['resolve_s'] for r in runs):.3f} s "
            f"| {rss:.0f} MB | {int(runs[0]['rows']):,} |"
        )

    record(
        "Dataset load: full MTEB results (1.29M rows) + MTEB catalog",
        command=command_line(),
        lines=[
            "Fresh process per run; time covers resolving the snapshot id (content hash of the",
            "files), reading, validating and normalizing; RSS is the process peak (incl. imports).",
            "",
            "| mode | median | best | peak RSS | rows kept |",
            "|---|---|---|---|---|",
            line("cold (parse + validate)", cold),
            line("from disk cache", warm),
            "",
            "Targets: cold <= 3 s, disk cache <= 1 s, peak RSS <= 600 MB.",
        ],
    )


if __name__ == "__main__":
    main()
