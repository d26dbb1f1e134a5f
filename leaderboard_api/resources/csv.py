"""The CSV body of a benchmark's scores table."""

from __future__ import annotations

import csv
import io

from leaderboard_api.resources.benchmarks import BenchmarkPages

_HEADER = (
    "rank",
    "model",
    "complete",
    "tasks_covered",
    "mean_task",
    "mean_task_type",
    "total_params_b",
    "zero_shot_pct",
)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


class CsvPages:
    def __init__(self, benchmarks: BenchmarkPages) -> None:
        self._benchmarks = benchmarks

    def scores_csv(self, name: str, *, languages: tuple[str, ...]) -> bytes:
        scores = self._benchmarks.scores(name, languages=languages)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = [*_HEADER, *(f"type:{t}" for t in scores.task_types), *scores.tasks]
        writer.writerow(header)
        for row in scores.rows:
            values: list[object] = [
                row.rank,
                row.model.name,
                str(row.complete).lower(),
                row.tasks_covered,
                row.mean_task,
                row.mean_task_type,
                row.total_params_b,
                row.zero_shot_pct,
            ]
            values += [row.scores_by_task_type.get(t) for t in scores.task_types]
            values += [row.scores_by_task.get(t) for t in scores.tasks]
            writer.writerow([_cell(v) for v in values])
        return buffer.getvalue().encode()
