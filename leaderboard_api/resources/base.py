"""What every resource of one snapshot shares: the per-snapshot memo, lookups, the memoized
benchmark summaries and the naming of table rows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from leaderboard_api import fields as f
from leaderboard_api import schemas
from leaderboard_api.dataset.contract import BenchmarkInfo, ModelInfo, TaskInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring.errors import UnknownBenchmark, UnknownModel, UnknownTask
from leaderboard_api.scoring.languages import normalize_languages
from leaderboard_api.scoring.rowkeys import row_key, split_key
from leaderboard_api.scoring.summary import BenchmarkSummary, benchmark_summary, summary_ratings
from leaderboard_api.scoring.tasks import build_index

T = TypeVar("T")


def present(scores: dict[str, Any]) -> dict[str, Any]:
    """A score map without its missing entries (the frontend reads an absent key as missing)."""
    return {k: v for k, v in scores.items() if v is not None}


def zero_shot(value: float | None) -> int:
    return -1 if value is None else int(value)  # truncated, as MTEB shows it


def declared(bench: BenchmarkInfo) -> frozenset[str]:
    """The aggregation names a benchmark declares (custom groupings aside)."""
    return frozenset(a for a in bench.extras().get("aggregations") or [] if isinstance(a, str))


#: Declared aggregation -> the summary column ``meanTask`` shows for it, by precedence.
_PRIMARY = (
    ("mean_task", "mean_task"),
    ("mean_subset", "mean_subset"),
    ("mean_task_type", "mean_task_type"),
    ("public_private", "mean_public"),
)


def declared_means(declared: frozenset[str], row: dict[str, Any]) -> dict[str, Any]:
    """The means a benchmark's declared aggregations show, MTEB's way: ``meanTask`` holds
    the first declared of mean_task, mean_subset, mean_task_type, public_private (its public
    mean); undeclared means are null.  Nothing declared: all shown (an empty update)."""
    if not declared:
        return {}
    primary = next((row[column] for agg, column in _PRIMARY if agg in declared), None)
    split = "public_private" in declared and "mean_task" in declared
    return {
        "mean_task": primary,
        "mean_task_type": row["mean_task_type"] if "mean_task_type" in declared else None,
        "mean_public": row["mean_public"] if split else None,
        "mean_private": row["mean_private"] if split else None,
    }


class Context:
    """One snapshot with its scoring index and alias table, and what is computed once for it.

    Thread-safe: builds run in worker threads, and each memo entry is computed once.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._lock = threading.Lock()
        self._memo: dict[Any, Any] = {}
        self._key_locks: dict[Any, threading.Lock] = {}
        self._briefs: dict[str, schemas.ModelBriefOut] = {}
        self.index = build_index(snapshot)
        self.aliases = f.alias_table(snapshot.benchmarks)

    # --- memo -------------------------------------------------------------------------

    def once(self, key: Any, make: Callable[[], T]) -> T:
        """``make()``, computed once per snapshot under ``key``."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]  # type: ignore[no-any-return]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._memo:
                    return self._memo[key]  # type: ignore[no-any-return]
            value = make()
            with self._lock:
                self._memo[key] = value
            return value

    def forget(self, kinds: Iterable[str]) -> int:
        """Drop the memo entries whose key starts with one of ``kinds``; how many went."""
        drop = frozenset(kinds)
        with self._lock:
            gone = [key for key in self._memo if isinstance(key, tuple) and key[0] in drop]
            for key in gone:
                del self._memo[key]
                self._key_locks.pop(key, None)
        return len(gone)

    def memo_size(self) -> int:
        """How many results are memoized (bounded by the snapshot, not by requests)."""
        with self._lock:
            return len(self._memo)

    # --- lookups ----------------------------------------------------------------------

    def require_benchmark(self, name: str) -> BenchmarkInfo:
        """The benchmark named ``name`` or one of its aliases; raises UnknownBenchmark."""
        bench = self.snapshot.benchmarks.get(name)
        if bench is None:
            canonical = self.aliases.get(name)
            if canonical is None:
                raise UnknownBenchmark(name)
            bench = self.snapshot.benchmarks[canonical]
        return bench

    def canonical_benchmark(self, name: str) -> str:
        """The canonical name of a benchmark named by its name or an alias."""
        return self.require_benchmark(name).name

    def require_task(self, name: str) -> TaskInfo:
        task = self.snapshot.tasks.get(name)
        if task is None:
            raise UnknownTask(name)
        return task

    def require_model(self, name: str) -> ModelInfo:
        """The model named ``name``, or the model of a variant row's name; UnknownModel."""
        model = self.snapshot.models.get(name) or self.snapshot.models.get(
            self._variant_names().get(name, "")
        )
        if model is None:
            raise UnknownModel(name)
        return model

    def _variant_names(self) -> dict[str, str]:
        """Variant row name -> its model's name (the frontend links rows by their name)."""

        def build() -> dict[str, str]:
            out: dict[str, str] = {}
            for name, info in self.snapshot.models.items():
                variants = info.extras().get("variants")
                for variant in variants if isinstance(variants, dict) else {}:
                    out[self.row_name(row_key(name, str(variant)))] = name
            return out

        return self.once(("variant-names",), build)

    def benchmark_names(self) -> list[str]:
        return list(self.snapshot.benchmarks)

    def task_names(self) -> list[str]:
        return list(self.snapshot.tasks)

    def model_names(self) -> list[str]:
        return list(self.snapshot.models)

    def normalize_languages(self, values: Iterable[str]) -> tuple[str, ...]:
        return normalize_languages(values)

    # --- summaries --------------------------------------------------------------------

    def summary(self, name: str, languages: tuple[str, ...] = ()) -> BenchmarkSummary:
        """The benchmark's summary.

        The unfiltered one is memoized (every benchmark, model and leaders page reads it)
        and carries Bradley–Terry intervals when the benchmark asks for them, built at
        warmup.  Language-filtered ones are built fresh and not kept: their bytes live in
        the bounded LRU, and keeping every filter's frames here would defeat that bound.
        """
        bench = self.require_benchmark(name)
        if languages:
            return benchmark_summary(self.snapshot, name, languages=languages, index=self.index)

        def build() -> BenchmarkSummary:
            summary = benchmark_summary(self.snapshot, name, index=self.index)
            if bench.scoring.bradley_terry and summary.num_models > 1:
                summary = summary.with_ratings(summary_ratings(summary))
            return summary

        return self.once(("summary", name), build)

    # --- table rows -------------------------------------------------------------------

    def model_brief(self, name: str) -> schemas.ModelBriefOut:
        """The model's metadata as served inside tables (memoized: it repeats everywhere)."""
        found = self._briefs.get(name)
        if found is None:
            model = self.snapshot.models.get(name) or ModelInfo(name=name)
            found = self._briefs.setdefault(name, schemas.ModelBriefOut(**f.model_fields(model)))
        return found

    def experiments(self, key: str) -> dict[str, Any] | None:
        """The experiment settings of a variant row (``models.jsonl`` ``variants``), else None."""
        model, variant = split_key(key)
        if variant is None:
            return None
        info = self.snapshot.models.get(model)
        found = (info.extras().get("variants") if info else None) or {}
        settings = found.get(variant) if isinstance(found, dict) else None
        return dict(settings) if isinstance(settings, dict) else {"variant": variant}

    def row_name(self, key: str) -> str:
        """The name a table row shows: the model's, or for a variant the model's with its
        settings, ``org/model (k=v, ...)`` (the form MTEB's registry names such variants
        in), so every row of a table has a name of its own."""
        model, variant = split_key(key)
        if variant is None:
            return model
        settings = self.experiments(key) or {}
        shown = [f"{k}={v}" for k, v in sorted(settings.items()) if v not in (None, "", {}, [])]
        return f"{model} ({', '.join(shown) if shown else variant})"

    def row_model(self, key: str, **update: Any) -> schemas.ModelBriefOut:
        """The model brief of a table row (a variant's named as its row, with ``variant_of``)."""
        model, variant = split_key(key)
        brief = self.model_brief(model)
        if variant is not None:
            update |= {"name": self.row_name(key), "variant_of": model}
        return brief.model_copy(update=update) if update else brief
