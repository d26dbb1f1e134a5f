"""Convert the exported MTEB catalog (tasks, benchmarks, menu, models) to the dataset contract."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaderboard_api.dataset.contract import BENCHMARKS_FILE, MENU_FILE, DatasetError
from leaderboard_api.dataset.importers.common import (
    ImportReport,
    loads_json,
    read_jsonl,
    write_catalogs,
)

#: Name of the main-score row when the task's main metric is unknown (no catalog entry).
MAIN_SCORE = "main_score"
#: mteb leaderboard summary columns -> our sort keys.
_SORT_KEYS = {
    "Mean (Task)": "mean_task",
    "Mean (TaskType)": "mean_task_type",
    "Mean (Public)": "mean_public",
    "Mean (Private)": "mean_private",
    "Mean (Subset)": "mean_subset",
}


@dataclass(frozen=True, slots=True)
class TaskMeta:
    """What the results import needs to know about a task."""

    main_metric: str
    languages: tuple[str, ...] = ()
    by_subset: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def languages_of(self, subset: str) -> list[str]:
        return list(self.by_subset.get(subset, () if self.by_subset else self.languages))


@dataclass(slots=True)
class MtebCatalog:
    """The catalog converted to contract shapes, plus raw models and per-task metadata."""

    tasks: list[dict[str, Any]]
    benchmarks: list[dict[str, Any]]
    menu: list[dict[str, Any]]
    models: dict[str, dict[str, Any]]
    meta: dict[str, TaskMeta]


def convert_mteb_catalog(catalog: Path, *, out: Path) -> None:
    """Write only the catalog files (models, tasks, benchmarks, menu) from an MTEB catalog."""
    cat = load_catalog(catalog)
    report = ImportReport("mteb-catalog", str(catalog), str(out))
    models = [model_entry({**m, "name": name}) for name, m in cat.models.items()]
    write_catalogs(
        out, report, models=models, tasks=cat.tasks, benchmarks=cat.benchmarks, menu=cat.menu
    )


def model_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """Fit one registry / ``model_meta.json`` record to the contract's ModelInfo shapes."""
    trained = entry.get("training_datasets")
    if isinstance(trained, dict | list):  # older metadata maps task -> splits
        entry["training_datasets"] = sorted({str(t) for t in trained})
    elif trained is not None:
        entry["training_datasets"] = None
    dims = entry.get("embed_dim")
    if isinstance(dims, list):  # Matryoshka models list every supported size
        entry["embed_dims"] = dims
        entry["embed_dim"] = max(dims) if dims else None
    for key in ("languages", "modalities"):
        if key in entry and entry[key] is None:
            entry[key] = []
    if entry.get("n_active_parameters") is None and entry.get("n_active_parameters_override"):
        entry["n_active_parameters"] = entry["n_active_parameters_override"]
    return entry


def load_catalog(catalog: Path) -> MtebCatalog:
    """Read ``tasks.jsonl``, ``benchmarks.jsonl``, ``menu.json`` (its ``home`` tree) and
    ``models.jsonl`` from an exported MTEB catalog; raises DatasetError naming a bad file."""
    if not catalog.is_dir():
        msg = "catalog directory not found"
        raise DatasetError(msg, file=str(catalog))
    raw_tasks = read_jsonl(catalog / "tasks.jsonl")
    menu_path = catalog / MENU_FILE
    try:
        menu = loads_json(menu_path.read_bytes())
    except (OSError, ValueError) as exc:
        msg = f"cannot read the menu ({exc})"
        raise DatasetError(msg, file=str(menu_path)) from exc
    home = menu.get("home") if isinstance(menu, dict) else menu
    if not isinstance(home, list):
        msg = "expected a list of groups, or an object with a 'home' list"
        raise DatasetError(msg, file=str(menu_path))
    return MtebCatalog(
        tasks=[_task_entry(t) for t in raw_tasks],
        benchmarks=[_benchmark_entry(b) for b in read_jsonl(catalog / BENCHMARKS_FILE)],
        menu=[_menu_node(node) for node in home],
        models={m["name"]: m for m in read_jsonl(catalog / "models.jsonl")},
        meta={t["name"]: _task_meta(t) for t in raw_tasks},
    )


def _flat_languages(langs: Any) -> list[str]:
    if isinstance(langs, dict):
        langs = [lang for values in langs.values() for lang in values]
    return list(dict.fromkeys(langs or []))


def _task_meta(raw: Mapping[str, Any]) -> TaskMeta:
    by_subset = raw.get("eval_langs_by_subset") or raw.get("eval_langs")
    return TaskMeta(
        main_metric=raw.get("main_score") or MAIN_SCORE,
        languages=tuple(_flat_languages(raw.get("eval_langs"))),
        by_subset=by_subset if isinstance(by_subset, dict) else {},
    )


def _task_entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    rest = dict(raw)
    entry = {
        "name": rest.pop("name"),
        "type": rest.pop("type", None) or "Unknown",
        "main_metric": rest.pop("main_score", None),
        "higher_is_better": True,
        "languages": _flat_languages(rest.pop("eval_langs", None)),
        "domains": rest.pop("domains", None) or [],
        "modalities": rest.pop("modalities", None) or [],
        "description": rest.pop("description", None),
        "reference": rest.pop("reference", None),
        "is_public": bool(rest.pop("is_public", True)),
    }
    return {**rest, **entry}


def _benchmark_entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One MTEB benchmark with the scoring MTEB's leaderboard applies to it: Borda over the
    whole field with partial tasks counted, everyone ranked together; benchmarks that name
    a summary sort column rank by position in that order (MIEB, ViDoRe); RTEB tables leave
    private tasks out."""
    rest = dict(raw)
    sort_by = rest.get("summary_sort_column")
    columns = sort_by if isinstance(sort_by, list) else [sort_by] if sort_by else []
    keys = [_SORT_KEYS[c] for c in columns if c in _SORT_KEYS]
    scoring = {
        "normalize": False,
        "rank_method": "borda",
        "rank_partial_last": False,
        "default_sort": keys[0] if keys else None,
        "bradley_terry": False,
        "borda": "field",
        "rank_by": keys or None,
        "exclude_private": rest.get("class") == "RtebBenchmark",
        "hide_uncovered": True,
    }
    tasks = [
        {
            "task": t["task"],
            "splits": t.get("splits"),
            "subsets": t.get("subsets"),
            # The languages of the subsets the benchmark keeps (its language count).
            **(
                {"languages_iso639_3": t["languages_iso639_3"]}
                if t.get("languages_iso639_3")
                else {}
            ),
        }
        for t in rest.pop("tasks", None) or []
    ]
    entry = {
        "name": rest.pop("name"),
        "display_name": rest.pop("display_name", None),
        "description": rest.pop("description", None),
        "reference": rest.pop("reference", None),
        "citation": rest.pop("citation", None),
        "icon": rest.pop("icon", None),
        "hidden": not rest.pop("display_on_leaderboard", True),
        "tasks": tasks,
        "scoring": scoring,
    }
    return {**rest, **entry}


def _menu_node(node: Mapping[str, Any]) -> dict[str, Any]:
    rest = dict(node)
    if "benchmark" in rest:
        return rest
    name = rest.pop("group", None) or rest.pop("name", None)
    children = [_menu_node(child) for child in rest.pop("children", None) or []]
    entry = {
        "name": name,
        "description": rest.pop("description", None),
        "open": bool(rest.pop("open", False)),
        "children": children,
    }
    return {**rest, **entry}
