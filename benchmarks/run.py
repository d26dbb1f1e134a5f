"""``make bench``: run every benchmark in turn; each appends its figures to RESULTS.md."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS: tuple[tuple[str, ...], ...] = (
    ("benchmarks.bench_load",),
    ("benchmarks.bench_scoring",),
    ("benchmarks.bench_api",),
    ("benchmarks.bench_observability",),
    # The same comparison on the real service (sample data): metrics on vs off, tracing.
    (
        "benchmarks.bench_observability",
        "--app",
        "leaderboard_api.app:create_app",
        "--path",
        "/v1/benchmarks/TEB(eng,%20v1)/scores",
        "--variant",
        "metrics-off::LEADERBOARD_METRICS=false",
        "--variant",
        "metrics-on::LEADERBOARD_METRICS=true",
        "--variant",
        "trace1::OTEL_TRACES_SAMPLER=parentbased_traceidratio,OTEL_TRACES_SAMPLER_ARG=0.01",
        "--variant",
        "trace100::OTEL_TRACES_SAMPLER=parentbased_always_on",
    ),
    ("benchmarks.bench_page",),
)


def main() -> int:
    failed = []
    for module, *args in BENCHMARKS:
        print(f"== {module} {' '.join(args)}", flush=True)
        done = subprocess.run([sys.executable, "-m", module, *args], check=False)
        if done.returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
