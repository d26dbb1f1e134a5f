"""List filters of ``/v1/tasks`` and ``/v1/models``: facets any of whose values may match."""

from __future__ import annotations

from dataclasses import dataclass

from leaderboard_api import fields as f
from leaderboard_api.dataset.contract import ModelInfo, TaskInfo


def _lower(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.lower() for v in values)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Every facet given must match; within a facet, any value (case-insensitive)."""

    types: tuple[str, ...] = ()
    #: Canonical ISO 639-3 codes.
    languages: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    name: str | None = None

    def key(self) -> tuple[tuple[str, object], ...]:
        """The cache-key part of the query (the facets it names)."""
        pairs = (
            ("types", tuple(sorted(_lower(self.types)))),
            ("languages", tuple(sorted(self.languages))),
            ("domains", tuple(sorted(_lower(self.domains)))),
            ("modalities", tuple(sorted(_lower(self.modalities)))),
            ("categories", tuple(sorted(_lower(self.categories)))),
            ("name", self.name.lower() if self.name else None),
        )
        return tuple((k, v) for k, v in pairs if v)

    def matches(self, task: TaskInfo) -> bool:
        if self.types and task.type.lower() not in _lower(self.types):
            return False
        if self.languages and not {f.lang_code(x) for x in task.languages} & set(self.languages):
            return False
        if self.domains and not {d.lower() for d in task.domains} & _lower(self.domains):
            return False
        if self.modalities and not {m.lower() for m in task.modalities} & _lower(self.modalities):
            return False
        category = str(task.extras().get("category") or "").lower()
        if self.categories and category not in _lower(self.categories):
            return False
        return not self.name or self.name.lower() in task.name.lower()


@dataclass(frozen=True, slots=True)
class ModelQuery:
    """Every facet given must match; within a facet, any value (case-insensitive)."""

    model_types: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    open_weights: bool | None = None
    instruction_tuned: bool | None = None
    min_params_b: float | None = None
    max_params_b: float | None = None
    modalities: tuple[str, ...] = ()
    #: With ``modalities``: the model handles none but the named ones.
    exclusive_modality: bool = False
    name: str | None = None

    def key(self) -> tuple[tuple[str, object], ...]:
        """The cache-key part of the query (the facets it names)."""
        pairs = (
            ("model_types", tuple(sorted(_lower(self.model_types)))),
            ("frameworks", tuple(sorted(_lower(self.frameworks)))),
            ("open_weights", self.open_weights),
            ("instruction_tuned", self.instruction_tuned),
            ("min", self.min_params_b),
            ("max", self.max_params_b),
            ("modalities", tuple(sorted(_lower(self.modalities)))),
            ("exclusive_modality", self.exclusive_modality or None),
            ("name", self.name.lower() if self.name else None),
        )
        return tuple((k, v) for k, v in pairs if v is not None and v != ())

    def matches(self, model: ModelInfo) -> bool:
        more = model.extras()
        if self.model_types and not {t.lower() for t in f.model_types(model)} & _lower(
            self.model_types
        ):
            return False
        framework = more.get("framework")
        have = {str(x).lower() for x in framework} if isinstance(framework, list) else set()
        if self.frameworks and not have & _lower(self.frameworks):
            return False
        if self.open_weights is not None and bool(model.open_weights) is not self.open_weights:
            return False
        if self.instruction_tuned is not None and (
            bool(more.get("use_instructions")) is not self.instruction_tuned
        ):
            return False
        params = None if model.n_parameters is None else model.n_parameters / 1e9
        if self.min_params_b is not None and (params is None or params < self.min_params_b):
            return False
        if self.max_params_b is not None and (params is None or params > self.max_params_b):
            return False
        if self.modalities:
            mine = {m.lower() for m in model.modalities}
            wanted = _lower(self.modalities)
            if not mine & wanted or (self.exclusive_modality and not mine <= wanted):
                return False
        return not self.name or self.name.lower() in model.name.lower()
