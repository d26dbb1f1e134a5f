"""What each payload reads, as a fingerprint: equal fingerprints mean equal bytes.

A payload is keyed by a fingerprint over the data it depends on instead of by the snapshot
id, so a new dataset version reuses every payload its change did not touch (same bytes,
same ETag: browsers and CDNs keep getting 304s) and rebuilds only the others.

What goes into a fingerprint
    *global*: the code (a hash of this package's sources), the contract version, polars'
    version (row hashes are stable within one version only), the settings that shape
    bytes or headers (``cache_control``), and the catalogs every page reads: the dataset
    options (``dataset.json``), the task and benchmark catalogs and the menu.  A change to
    any of them changes every fingerprint; they change with a catalog release, not with
    results.
    *task rows*: a multiset hash of the task's result rows under one revision rule (every
    column, key strings hashed as text so the figure does not depend on categorical
    codes), and of the catalog entries of the models that have rows on it.
    *model entries*: a hash of one model's catalog entry.

Scopes (``Fingerprints.of``)
    ``benchmark`` pages (scores, summary, CSV, leaders, per-language, detail) read the
    rows of the benchmark's tasks under its revision rule and those models' entries.
    ``task`` pages read the task's rows under the dataset's rule.  ``model`` pages carry
    the model's rank in every benchmark it may appear in, so they read the model's entry
    and the fingerprint of every benchmark having one of the model's tasks (a superset of
    the benchmarks it is ranked in: a conservative dependency never serves stale bytes).
    ``all`` (the lists and the menu) reads everything.  A route whose dependencies are not
    tracked here (``?metric=`` cells from the metric store) is keyed by the snapshot id.

A fingerprint that missed a dependency would serve stale bytes, so the test suite checks
reuse against a fresh build of every route after changes of each kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl

from leaderboard_api import __version__
from leaderboard_api.dataset.contract import CONTRACT_VERSION, RevisionRule
from leaderboard_api.dataset.snapshot import Snapshot

Scope = Literal["all", "benchmark", "task", "model", "task-stats", "snapshot"]
_SEED = 0x1EADB0A2D
_DIGITS = 24


def _digest(*parts: str | bytes) -> str:
    h = hashlib.blake2b(digest_size=_DIGITS // 2)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


@cache
def code_fingerprint() -> str:
    """A hash of this package's Python sources: new code never reuses old payloads."""
    root = Path(__file__).resolve().parent
    parts: list[str | bytes] = [__version__, pl.__version__, str(CONTRACT_VERSION)]
    for file in sorted(root.rglob("*.py")):
        parts += [file.relative_to(root).as_posix(), file.read_bytes()]
    return _digest(*parts)


def settings_fingerprint(cache_control: str) -> str:
    """The code and the settings that shape payload bytes and headers."""
    return _digest(code_fingerprint(), cache_control)


def _rows_by_task(frame: pl.DataFrame, model_hashes: Mapping[str, int]) -> dict[str, str]:
    """Task name -> a multiset hash of its rows and of its models' catalog entries."""
    if frame.height == 0:
        return {}
    columns = sorted(frame.columns)
    text = [
        pl.col(c).cast(pl.String) if frame.schema[c] == pl.Categorical else pl.col(c)
        for c in columns
    ]
    hashes = frame.select(text).hash_rows(seed=_SEED)
    half = 1 << 32
    rows = (
        frame.select(pl.col("task_name").cast(pl.String).alias("task"))
        .with_columns(hashes.alias("h"))
        .group_by("task")
        .agg(
            (pl.col("h") // half).sum().alias("hi"),
            (pl.col("h") % half).sum().alias("lo"),
            pl.len().alias("n"),
        )
    )
    lookup = pl.DataFrame(
        {"model": list(model_hashes), "mh": list(model_hashes.values())},
        schema={"model": pl.String, "mh": pl.UInt64},
    )
    models = (
        frame.select(
            pl.col("task_name").cast(pl.String).alias("task"),
            pl.col("model_name").cast(pl.String).alias("model"),
        )
        .unique()
        .join(lookup, on="model", how="left")
        .group_by("task")
        .agg(
            (pl.col("mh").fill_null(0) // half).sum().alias("mhi"),
            (pl.col("mh").fill_null(0) % half).sum().alias("mlo"),
        )
    )
    out: dict[str, str] = {}
    for task, hi, lo, n, mhi, mlo in rows.join(models, on="task").iter_rows():
        out[task] = _digest(f"{task}|{hi}|{lo}|{n}|{mhi}|{mlo}")
    return out


def _model_hash(entry: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(entry, digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Fingerprints of one snapshot's pages by scope and name (see the module docstring)."""

    snapshot_id: str
    global_: str
    benchmarks: Mapping[str, str]
    tasks: Mapping[str, str]
    models: Mapping[str, str]
    everything: str
    stats: Mapping[str, str] = field(default_factory=dict)

    def of(self, scope: Scope, name: str = "") -> str:
        """The fingerprint of a page of ``scope`` about ``name``; the snapshot id when the
        name is unknown (a route not tracked here is then never reused)."""
        if scope == "all":
            return self.everything
        table: Mapping[str, str] | None = {
            "benchmark": self.benchmarks,
            "task": self.tasks,
            "model": self.models,
            "task-stats": self.stats,
        }.get(scope)
        found = None if table is None else table.get(name)
        return found if found is not None else f"snapshot:{self.snapshot_id}"


def compute(snapshot: Snapshot, *, cache_control: str) -> Fingerprints:
    """Every fingerprint of ``snapshot`` (about a second on the whole MTEB data)."""
    base = settings_fingerprint(cache_control)
    catalog = _digest(
        base,
        snapshot.dataset.model_dump_json(),
        *(t.model_dump_json() for t in snapshot.tasks.values()),
        b"\x00benchmarks",
        *(b.model_dump_json() for b in snapshot.benchmarks.values()),
        b"\x00menu",
        *(m.model_dump_json() for m in snapshot.menu),
    )
    entries = {name: info.model_dump_json().encode() for name, info in snapshot.models.items()}
    model_hashes = {name: _model_hash(entry) for name, entry in entries.items()}
    rules: dict[RevisionRule, dict[str, str]] = {}

    def rows(rule: RevisionRule) -> dict[str, str]:
        if rule not in rules:
            rules[rule] = _rows_by_task(snapshot.results_for(rule), model_hashes)
        return rules[rule]

    own = rows(snapshot.revision_rule)
    benchmarks: dict[str, str] = {}
    for name, bench in snapshot.benchmarks.items():
        by_task = rows(snapshot.rule_of(bench))
        tasks = sorted({t.task for t in bench.tasks})
        benchmarks[name] = _digest(
            catalog, "benchmark", name, *(f"{t}={by_task.get(t, '-')}" for t in tasks)
        )
    tasks_fp = {name: _digest(catalog, "task", name, own.get(name, "-")) for name in snapshot.tasks}
    models = _model_fingerprints(snapshot, catalog, entries, benchmarks)
    everything = _digest(
        catalog,
        "all",
        *(f"{k}={v}" for k, v in sorted(own.items())),
        *(f"{k}={v}" for k, v in sorted(benchmarks.items())),
        *(f"{k}={model_hashes[k]}" for k in sorted(model_hashes)),
    )
    stats = _stats_fingerprints(snapshot, catalog)
    return Fingerprints(
        snapshot_id=snapshot.id,
        global_=catalog,
        benchmarks=benchmarks,
        tasks=tasks_fp,
        models=models,
        everything=everything,
        stats=stats,
    )


def _model_fingerprints(
    snapshot: Snapshot,
    catalog: str,
    entries: Mapping[str, bytes],
    benchmarks: Mapping[str, str],
) -> dict[str, str]:
    task_benchmarks: dict[str, set[str]] = {}
    for bench in snapshot.benchmarks.values():
        for item in bench.tasks:
            task_benchmarks.setdefault(item.task, set()).add(bench.name)
    pairs = _model_tasks(
        snapshot.results_for(rule)
        for rule in {
            snapshot.revision_rule,
            *(snapshot.rule_of(b) for b in snapshot.benchmarks.values()),
        }
    )
    out: dict[str, str] = {}
    for name, entry in entries.items():
        benches = sorted({b for t in pairs.get(name, ()) for b in task_benchmarks.get(t, ())})
        out[name] = _digest(
            catalog, "model", name, entry, *(f"{b}={benchmarks[b]}" for b in benches)
        )
    return out


def _model_tasks(frames: Iterable[pl.DataFrame]) -> dict[str, set[str]]:
    """Model name -> the tasks it has rows on, under any of the rules in use."""
    out: dict[str, set[str]] = {}
    for frame in frames:
        pairs = frame.select(
            pl.col("model_name").cast(pl.String), pl.col("task_name").cast(pl.String)
        ).unique()
        for model, task in pairs.iter_rows():
            out.setdefault(model, set()).add(task)
    return out


def _stats_fingerprints(snapshot: Snapshot, catalog: str) -> dict[str, str]:
    """Task -> a fingerprint of its descriptive-statistics file (path, size, mtime)."""
    if snapshot.root is None:
        return {}
    root = Path(snapshot.root)
    out: dict[str, str] = {}
    for task, rel in snapshot.stats_files.items():
        try:
            info = (root / rel).stat()
        except OSError:
            continue
        out[task] = _digest(catalog, "stats", task, rel, f"{info.st_size}:{info.st_mtime_ns}")
    return out


def fingerprint_values(fingerprints: Fingerprints) -> frozenset[str]:
    """Every fingerprint a page of this snapshot can have (to keep what it still reads)."""
    return frozenset(
        [
            fingerprints.everything,
            fingerprints.of("snapshot"),
            *fingerprints.benchmarks.values(),
            *fingerprints.tasks.values(),
            *fingerprints.models.values(),
            *fingerprints.stats.values(),
        ]
    )
