"""MTEB's leaderboard rules on small datasets: revisions per task, variants, field Borda,
position ranks, declared means, private tasks and the widened zero-shot figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leaderboard_api.dataset.loader import load_snapshot
from leaderboard_api.dataset.revisions import version_key
from leaderboard_api.dataset.sources import resolve
from leaderboard_api.scoring import benchmark_summary
from leaderboard_api.scoring.training import widened_training
from tests.conftest import MakeSnapshot, bench, cell, write_dataset


def test_version_order() -> None:
    ordered = ["nonsense", "1.2", "1.12.3.dev0", "1.12.3", "1.12.10", "2.0.0"]
    shuffled = ["1.12.10", "2.0.0", "1.2", "nonsense", "1.12.3", "1.12.3.dev0"]
    assert sorted(shuffled, key=version_key) == ordered
    assert version_key("1.2.0") == version_key("1.2")


def _per_task(tmp_path: Path, rows: list[dict[str, Any]], **more: Any) -> Any:
    root = tmp_path / "d"
    write_dataset(root, rows, **more)
    (root / "dataset.json").write_text(json.dumps({"scoring": {"revisions": "per_task"}}))
    return load_snapshot(resolve(str(root)))


def test_revisions_are_chosen_per_task(tmp_path: Path) -> None:
    sha, ext = "a" * 40, "external"
    rows = [
        # T1 only in the real revision, T2 only under "external": both count.
        cell("m", "T1", 0.5, model_revision=sha, mteb_version="1.12.0"),
        cell("m", "T2", 0.6, model_revision=ext, mteb_version="1.12.0"),
        # T3 in both: the real revision beats the placeholder.
        cell("m", "T3", 0.1, model_revision=ext, mteb_version="1.14.0"),
        cell("m", "T3", 0.7, model_revision=sha, mteb_version="1.12.0"),
        # T4: a recorded evaluator version beats none, even on a placeholder.
        cell("m", "T4", 0.2, model_revision=sha),
        cell("m", "T4", 0.8, model_revision=ext, mteb_version="1.0.0"),
        # T5: the newer evaluator version wins between two real revisions.
        cell("m", "T5", 0.3, model_revision="b" * 40, mteb_version="1.9.0"),
        cell("m", "T5", 0.9, model_revision="c" * 40, mteb_version="1.10.0"),
        # T6: text that is no version number records no version.
        cell("m", "T6", 0.1, model_revision=sha, mteb_version="unknown"),
        cell("m", "T6", 0.95, model_revision=ext, mteb_version="1.0"),
        # n: the catalog's main revision wins over everything.
        cell("n", "T1", 0.4, model_revision="main", mteb_version="0.1"),
        cell("n", "T1", 0.99, model_revision=sha, mteb_version="9.0"),
    ]
    models = [{"name": "n", "revision": "main"}]
    snap = _per_task(tmp_path, rows, models=models)
    got = {
        (r["model_name"], r["task_name"]): r["score"]
        for r in snap.results.select("model_name", "task_name", "score").iter_rows(named=True)
    }
    assert got == {
        ("m", "T1"): 0.5,
        ("m", "T2"): 0.6,
        ("m", "T3"): 0.7,
        ("m", "T4"): 0.8,
        ("m", "T5"): 0.9,
        ("m", "T6"): 0.95,
        ("n", "T1"): 0.4,
    }
    assert snap.stats.revisions_dropped == 5


def test_per_model_rule_stays_available(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("m", "T1", 0.5, model_revision="a"),
        cell("m", "T2", 0.6, model_revision="b"),
        cell("m", "T3", 0.7, model_revision="b"),
    ]
    snap = make_snapshot(rows)  # no dataset.json: one revision per model
    assert snap.revision_rule == "per_model"
    assert sorted(snap.results["task_name"].cast(str).to_list()) == ["T2", "T3"]
    both = [bench("PerTask", ["T1", "T2", "T3"], revisions="per_task"), bench("Own", ["T1"])]
    snap = make_snapshot(rows, benchmarks=both)
    per_task = benchmark_summary(snap, "PerTask")
    assert per_task.frame.get_column("complete").to_list() == [True]
    own = benchmark_summary(snap, "Own")
    assert own.num_models == 0  # m's revision "b" has no T1


def test_variants_are_rows_of_their_own(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("m", "T1", 0.5),
        cell("m", "T1", 0.9, variant="colbert"),
        cell("o", "T1", 0.7),
    ]
    snap = make_snapshot(rows, benchmarks=[bench("B", ["T1"])])
    rows_out = benchmark_summary(snap, "B").rows()
    assert [(r["model"], r["rank"]) for r in rows_out] == [
        ("m\x1fcolbert", 1),
        ("o", 2),
        ("m", 3),
    ]


def test_field_borda_counts_partial_tasks_and_field_size(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("a", "T1", 0.9),
        cell("a", "T2", 0.1),
        cell("b", "T1", 0.8),
        cell("b", "T2", 0.2),
        cell("c", "T1", 0.7),
        # c has only half of T2's cells; MTEB still ranks its partial mean.
        cell("c", "T2", 0.95, subset="x"),
        cell("a", "T2", 0.1, subset="x"),
        cell("b", "T2", 0.2, subset="x"),
    ]
    benchmarks = [
        bench("Field", ["T1", "T2"], borda="field", rank_partial_last=False),
        bench("Pairwise", ["T1", "T2"]),
    ]
    snap = make_snapshot(rows, benchmarks=benchmarks)
    field = {r["model"]: r for r in benchmark_summary(snap, "Field").rows()}
    # T1: a 1st, b 2nd, c 3rd -> 2, 1, 0 points; T2 (partial means): c .95, b .2, a .1.
    assert {m: r["points"] for m, r in field.items()} == {"a": 2.0, "b": 2.0, "c": 2.0}
    assert [r["rank"] for r in field.values()] == [1, 1, 1]
    pairwise = {r["model"]: r for r in benchmark_summary(snap, "Pairwise").rows()}
    assert pairwise["c"]["rank"] == 3  # partial, and T2 not counted for it


def test_rank_by_and_declared_means(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("a", "Pub", 0.2),
        cell("a", "Priv", 0.9),
        cell("b", "Pub", 0.6),
        cell("b", "Priv", 0.3),
        cell("c", "Pub", 0.1),
    ]
    tasks: list[dict[str, Any]] = [{"name": "Pub"}, {"name": "Priv", "is_public": False}]
    benchmarks = [
        bench("ByMean", ["Pub", "Priv"], rank_by=["mean_task", "mean_public"]),
        bench("PublicOnly", ["Pub", "Priv"], exclude_private=True),
    ]
    snap = make_snapshot(rows, tasks=tasks, benchmarks=benchmarks)
    by_mean = benchmark_summary(snap, "ByMean").rows()
    assert [(r["model"], r["rank"]) for r in by_mean] == [("a", 1), ("b", 2), ("c", 3)]
    public = benchmark_summary(snap, "PublicOnly")
    assert public.tasks == ("Pub",)
    assert [r["model"] for r in public.rows()] == ["b", "a", "c"]


def test_widened_training(make_snapshot: MakeSnapshot) -> None:
    rows = [cell("base", "T", 0.5), cell("child", "T", 0.5), cell("free", "T", 0.5)]
    tasks: list[dict[str, Any]] = [
        {"name": "T"},
        {"name": "THard", "adapted_from": ["T"]},
        {"name": "TOld", "superseded_by": "T"},
        {"name": "Other"},
    ]
    models: list[dict[str, Any]] = [
        {"name": "base", "training_datasets": ["T"]},
        {"name": "child", "training_datasets": ["Other"], "adapted_from": "base"},
        {"name": "free"},
    ]
    snap = make_snapshot(rows, tasks=tasks, models=models)
    wide = widened_training(snap)
    assert wide["base"] == frozenset({"T", "THard", "TOld"})
    assert wide["child"] == frozenset({"Other", "T", "THard", "TOld"})
    assert wide["free"] is None
    summary = benchmark_summary(snap, "all").rows()
    zero = {r["model"]: r["zero_shot_pct"] for r in summary}
    assert zero["child"] == pytest.approx(0.0)
    assert zero["free"] is None


def test_registered_only_keeps_the_registry_models(tmp_path: Path) -> None:
    rows = [cell("listed", "T", 0.5), cell("unlisted", "T", 0.9), cell("unknown", "T", 0.7)]
    models = [{"name": "listed", "registered": True}, {"name": "unlisted", "registered": False}]
    root = tmp_path / "d"
    write_dataset(root, rows, models=models)
    (root / "dataset.json").write_text(json.dumps({"scoring": {"registered_only": True}}))
    snap = load_snapshot(resolve(str(root)))
    assert snap.results["model_name"].cast(str).to_list() == ["listed"]
    assert list(snap.models) == ["listed"]
    assert snap.stats.extra == {"unregistered_rows": 2}
    assert any("not registered" in w.message for w in snap.warnings)
