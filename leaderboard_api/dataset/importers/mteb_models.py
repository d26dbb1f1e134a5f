"""The models.jsonl entries of an MTEB import: catalog entry over the best revision's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leaderboard_api.dataset.importers.mteb_catalog import model_entry


@dataclass(slots=True)
class Revision:
    """One revision folder: its model, metadata, imported files and experiment variants."""

    folder: str
    model_name: str
    meta: dict[str, Any] | None = None
    imported: int = 0
    variants: set[str] = field(default_factory=set)
    variant_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def models(
    revisions: list[Revision], catalog: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per model with results or in the catalog, sorted by name."""
    by_name: dict[str, list[Revision]] = {}
    for rev in revisions:
        by_name.setdefault(rev.model_name, []).append(rev)
    entries = []
    for name in sorted(by_name.keys() | catalog.keys()):
        revs, registered = by_name.get(name, []), catalog.get(name, {})
        wanted = registered.get("revision")
        metas = [r for r in revs if r.meta is not None]
        best = max(
            metas,
            key=lambda r: (
                (r.meta or {}).get("revision") == wanted or r.folder == wanted,
                r.imported,
                r.folder,
            ),
            default=None,
        )
        entry = {**(best.meta if best and best.meta else {})}
        entry.update({k: v for k, v in registered.items() if v is not None})
        entry["name"] = name
        if catalog:
            # In the catalog's registry: MTEB's leaderboard shows only those models.
            entry["registered"] = name in catalog
        with_results = sorted(r.folder for r in revs if r.imported)
        if with_results:
            entry["revisions"] = with_results
        variants: dict[str, dict[str, Any]] = {}
        # The best revision's kwargs win when two revisions ran an experiment of the same name.
        for rev in sorted(revs, key=lambda r: (r is best, r.folder)):
            variants.update({v: rev.variant_kwargs.get(v, {}) for v in sorted(rev.variants)})
        if variants:
            entry["variants"] = dict(sorted(variants.items()))
        entries.append(model_entry(entry))
    return entries
