"""What a model was trained on, for the zero-shot figure: its own training tasks, widened.

A model's catalog ``training_datasets`` names tasks (``None``: unknown).  For the zero-shot
percentage of a table the set is widened as MTEB's leaderboard does:

* a model ``adapted_from`` another one (in the catalog) also counts that model's training
  tasks, recursively;
* a task counts together with every task it is related to, transitively: the tasks it was
  adapted from (``adapted_from`` in ``tasks.jsonl``, a name or a list), the task that
  supersedes it (``superseded_by``), and the tasks related to those in turn.
"""

from __future__ import annotations

from collections.abc import Mapping

from leaderboard_api.dataset.contract import ModelInfo, TaskInfo
from leaderboard_api.dataset.snapshot import Snapshot


def _names(value: object) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return []


def related_tasks(tasks: Mapping[str, TaskInfo]) -> dict[str, frozenset[str]]:
    """Task name -> every task in its group of related tasks (itself included)."""
    links: dict[str, set[str]] = {}
    for name, task in tasks.items():
        more = task.extras()
        for other in _names(more.get("adapted_from")) + _names(more.get("superseded_by")):
            links.setdefault(name, set()).add(other)
            links.setdefault(other, set()).add(name)
    groups: dict[str, frozenset[str]] = {}
    for start in links:
        if start in groups:
            continue
        seen, todo = {start}, [start]
        while todo:
            for nxt in links.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        group = frozenset(seen)
        for member in group:
            groups[member] = group
    return groups


def _own(name: str, models: Mapping[str, ModelInfo], seen: set[str]) -> set[str] | None:
    info = models.get(name)
    if info is None or info.training_datasets is None:
        return None
    out = set(info.training_datasets)
    parent = info.extras().get("adapted_from")
    if isinstance(parent, str) and parent not in seen:
        seen.add(parent)
        inherited = _own(parent, models, seen)
        if inherited is not None:
            out |= inherited
    return out


def widened_training(snapshot: Snapshot) -> dict[str, frozenset[str] | None]:
    """Model name -> its widened training tasks (None when its training data is unknown)."""

    def make(snap: Snapshot) -> dict[str, frozenset[str] | None]:
        groups = related_tasks(snap.tasks)
        out: dict[str, frozenset[str] | None] = {}
        for name in snap.models:
            own = _own(name, snap.models, {name})
            if own is None:
                out[name] = None
                continue
            wide = set(own)
            for task in own:
                wide |= groups.get(task, frozenset())
            out[name] = frozenset(wide)
        return out

    return snapshot.derived("widened-training", make)
