"""``make bench``: run every benchmark in turn; each appends its figures to RESULTS.md."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "benchmarks.bench_load",
    "benchmarks.bench_scoring",
    "benchmarks.bench_api",
    "benchmarks.bench_observability",
    "benchmarks.bench_page",
)


def main() -> int:
    failed = []
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module], check=False).returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
