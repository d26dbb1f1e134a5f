"""Model pages: one model, the model list, a model's standing in every benchmark."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from leaderboard_api import fields as f
from leaderboard_api import schemas
from leaderboard_api.dataset.contract import ModelInfo
from leaderboard_api.queries import ModelQuery
from leaderboard_api.resources.base import Context, declared, declared_means, present, zero_shot

#: Model extras ``model_fields`` serves under other names.
_MODEL_SOURCES = frozenset({"use_instructions", "openness", "openness_score", "variants"})
#: Model extras the frontend reads as text (some catalogs hold booleans or objects there).
_MODEL_TEXT = ("public_training_code", "public_training_data", "adapted_from", "superseded_by")


def model_out(model: ModelInfo, *, num_benchmarks: int | None = None) -> schemas.ModelOut:
    more = f.extras(model, skip=_MODEL_SOURCES)
    for key in _MODEL_TEXT:
        camel = to_camel(key)
        if more.get(camel) is not None and not isinstance(more[camel], str):
            more[camel] = str(more[camel])
    return schemas.ModelOut(
        **f.model_fields(model),
        training_datasets=model.training_datasets,
        num_benchmarks=num_benchmarks,
        **more,
    )


class ModelPages:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _rows_by_model(self, benchmark: str) -> dict[str, dict[str, Any]]:
        """A benchmark's summary rows by model name (one pass, reused by every model page)."""

        def build() -> dict[str, dict[str, Any]]:
            return {row["model"]: row for row in self.ctx.summary(benchmark).rows()}

        return self.ctx.once(("rows-by-model", benchmark), build)

    def _model_rows(self, name: str) -> list[schemas.ModelScoreRowOut]:
        return self.ctx.once(("model-rows", name), lambda: self._compute_model_rows(name))

    def _compute_model_rows(self, name: str) -> list[schemas.ModelScoreRowOut]:
        rows = []
        for bench in self.ctx.snapshot.benchmarks.values():
            summary = self.ctx.summary(bench.name)
            row = self._rows_by_model(bench.name).get(name)
            if row is None:
                continue
            row = row | declared_means(declared(bench), row)
            rows.append(
                schemas.ModelScoreRowOut(
                    benchmark_name=bench.name,
                    benchmark_display_name=bench.display_name or bench.name,
                    rank=row["rank"],
                    total_models=summary.num_ranked,
                    mean_task=row["mean_task"],
                    mean_task_type=row["mean_task_type"],
                    zero_shot_pct=zero_shot(row["zero_shot_pct"]),
                    task_types=summary.task_types,
                    scores_by_task_type=present(row["scores_by_task_type"]),
                    complete=row["complete"],
                )
            )
        return rows

    def model(self, name: str) -> schemas.ModelOut:
        model = self.ctx.require_model(name)
        return model_out(model, num_benchmarks=len(self._model_rows(model.name)))

    def models(self, query: ModelQuery | None = None) -> list[schemas.ModelOut]:
        """The models matching ``query`` (every facet it names; any of a facet's values)."""
        q = query or ModelQuery()
        return [model_out(m) for m in self.ctx.snapshot.models.values() if q.matches(m)]

    def model_scores(self, name: str) -> schemas.ModelScoresOut:
        model = self.ctx.require_model(name)
        rows = self._model_rows(model.name)
        return schemas.ModelScoresOut(model=model_out(model, num_benchmarks=len(rows)), rows=rows)
