"""Benchmark ``leaderboard-api import mteb`` on a whole results repository: default,
``--main-only``, ``validate`` of the outputs and a re-import after 100 changed files.

Usage: ``python -m benchmarks.bench_import /path/to/results --catalog CATALOG [--record]``.
Each import runs as a child process; peak RSS is the largest sum of the RSS of the child and
its worker processes, sampled every 50 ms from /proc (Linux).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.record import command_line, record

CLI = [sys.executable, "-m", "leaderboard_api"]


@dataclass
class Run:
    """One child process: wall seconds, peak RSS of its process tree, its output."""

    seconds: float
    peak_mb: float
    stdout: str


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants (0 for processes that are gone)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run(cmd: list[str]) -> Run:
    """Run ``cmd``, sampling its process tree's RSS; raise if it fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}"
        raise SystemExit(msg)
    return Run(seconds, peak / 1024, out)


def _import(src: Path, out: Path, *, catalog: Path, jobs: int, main_only: bool = False) -> Run:
    cmd = [*CLI, "import", "mteb", str(src), "--catalog", str(catalog), "--out", str(out)]
    cmd += ["--quiet", "--jobs", str(jobs)] + (["--main-only"] if main_only else [])
    return run(cmd)


def _line(out: str, start: str) -> str:
    return next((ln.strip() for ln in out.splitlines() if ln.strip().startswith(start)), "")


def change_files(tree: Path, n: int, *, seed: int = 0) -> dict[str, int]:
    """Change ``n`` result files of a hard-linked tree: 60% edited, 20% added, 20% deleted.

    Files are replaced (write + rename), never written in place, so the files they are
    linked to keep their content.
    """
    files = sorted(p for p in tree.rglob("*.json") if p.name != "model_meta.json" and p.is_file())
    picked = random.Random(seed).sample(files, n)
    edited, added, deleted = (
        picked[: n * 3 // 5],
        picked[n * 3 // 5 : n * 4 // 5],
        picked[n * 4 // 5 :],
    )
    for path in edited:
        raw = path.read_bytes()
        tmp = path.with_name(path.name + ".bench-tmp")
        tmp.write_bytes(raw.replace(b"0.", b"0.0", 1))  # one score changes
        os.replace(tmp, path)
    for i, path in enumerate(added):
        shutil.copyfile(path, path.with_name(f"BenchCopy{i}.json"))
    for path in deleted:
        path.unlink()
    return {"edited": len(edited), "added": len(added), "deleted": len(deleted)}


def _same_bytes(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".import-manifest.json"
        }

    return files(a) == files(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, help="the MTEB results repository (or results/)")
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--changed", type=int, default=100, help="files changed for re-import")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp folder)")
    parser.add_argument("--verify", action="store_true", help="compare re-import to fresh")
    parser.add_argument("--validate-full", action="store_true", help="also validate default")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    src = args.results / "results" if (args.results / "results").is_dir() else args.results
    work = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.work))
    lines: list[str] = []
    try:
        default = _import(src, work / "default", catalog=args.catalog, jobs=args.jobs)
        main_only = _import(
            src, work / "main", catalog=args.catalog, jobs=args.jobs, main_only=True
        )
        validate_main = run([*CLI, "validate", str(work / "main")])
        validate_full = (
            run([*CLI, "validate", str(work / "default")]) if args.validate_full else None
        )
        # Re-import: a hard-linked copy of the tree and of the default output, then changes.
        tree = work / "tree" / "results"
        tree.parent.mkdir()
        subprocess.run(["cp", "-al", str(src), str(tree)], check=True)
        subprocess.run(["cp", "-al", str(work / "default"), str(work / "inc")], check=True)
        noop = _import(tree, work / "inc", catalog=args.catalog, jobs=args.jobs)
        changes = change_files(tree, args.changed)
        again = _import(tree, work / "inc", catalog=args.catalog, jobs=args.jobs)
        same = None
        if args.verify:
            _import(tree, work / "fresh", catalog=args.catalog, jobs=args.jobs)
            same = _same_bytes(work / "inc", work / "fresh")
        n_files = len(list((work / "default" / "results").glob("*.parquet")))
        lines += [
            f"- source: `{args.results}`, {_line(default.stdout, 'imported:')}",
            f"- catalog: `{args.catalog}`; `--jobs {args.jobs}`; output: {n_files} parquet "
            "files (one per model folder) under results/",
            "",
            "| run | wall | peak RSS (process tree) | rows |",
            "|---|---|---|---|",
            f"| default import (every metric) | {default.seconds:.1f} s | "
            f"{default.peak_mb:,.0f} MB | {_rows(default.stdout)} |",
            f"| `--main-only` import | {main_only.seconds:.1f} s | "
            f"{main_only.peak_mb:,.0f} MB | {_rows(main_only.stdout)} |",
            f"| re-import, nothing changed | {noop.seconds:.2f} s | {noop.peak_mb:,.0f} MB | |",
            f"| re-import, {args.changed} files changed ({changes}) | {again.seconds:.2f} s | "
            f"{again.peak_mb:,.0f} MB | |",
            f"| `validate` of the `--main-only` output | {validate_main.seconds:.1f} s | "
            f"{validate_main.peak_mb:,.0f} MB | |",
        ]
        if validate_full is not None:
            lines.append(
                f"| `validate` of the default output | {validate_full.seconds:.1f} s | "
                f"{validate_full.peak_mb:,.0f} MB | |"
            )
        lines += [
            "",
            f"- re-import: {_line(again.stdout, 'imported:')}",
            f"- skipped (default import): {_line(default.stdout, 'skipped:')}",
        ]
        if same is not None:
            lines.append(
                f"- re-import byte-identical to a fresh import of the changed tree: {same}"
            )
        lines.append(f"- 1-minute load average after the runs: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    title = "Import: the whole MTEB results repository (`import mteb`)"
    if args.record:
        record(title, command=command_line(), lines=lines)
    else:
        print("\n".join(lines))


def _rows(out: str) -> str:
    wrote = _line(out, "wrote:")
    return wrote.split("(", 2)[-1].split(")", 1)[0] if "parquet" in wrote else ""


if __name__ == "__main__":
    main()
